"""Evaluation tooling: backgrounds, labelled scenarios and scorecards.

Not part of the runtime: a production worker never imports this package. It builds
the streams the detectors are measured on (here: real EU export statistics expanded
into declarations, :mod:`evaluation.realdata`) and the labelled scenarios injected
into them (:mod:`evaluation.real_scenarios`).
"""
