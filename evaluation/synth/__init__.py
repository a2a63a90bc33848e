"""Synthetic, calibrated export-declaration streams with labelled injected scenarios.

``generator`` draws the ordinary background (a pre-sanctions steady state, laptop
scale), ``scenarios`` adds evasion patterns and benign traps on top of it, each with
its ground truth, and :mod:`evaluation.scorecard` scores the detectors against them.

>>> from evaluation.synth import StreamConfig, generate_records
>>> records = list(generate_records(StreamConfig(days=3, daily_declarations=50)))
>>> len(records) > 0 and records[0].startswith(b'{"schema_version":1')
True
"""

from evaluation.synth.generator import (
    SeriesMix,
    StreamConfig,
    SyntheticStream,
    generate_records,
    write_jsonl,
)

__all__ = ["SeriesMix", "StreamConfig", "SyntheticStream", "generate_records", "write_jsonl"]
