"""Evaluation tooling: generators, backgrounds, labelled scenarios and scorecards.

Not part of the runtime: a production worker never imports this package (only the
CLI does, for ``tradewatch evaluate``/``generate``). It builds the streams the
detectors are measured on and scores what they raise:

* :mod:`evaluation.synth` - the synthetic declaration generator and its labelled
  scenario sets (small, full),
* :mod:`evaluation.realdata` - real EU export statistics expanded into declarations,
  and :mod:`evaluation.real_scenarios`, the scenarios injected into them,
* :mod:`evaluation.scorecard` - precision/recall per scenario, offline or through
  Kafka (:mod:`evaluation.scorecard_kafka`), and :mod:`evaluation.real_evaluate`,
  the real-background report (incidents per month, recall, top-3 share).
"""
