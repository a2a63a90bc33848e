"""Benchmarks for tradewatch detectors (NAB scoring, detector speed)."""
