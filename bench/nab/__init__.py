"""The Numenta Anomaly Benchmark (NAB): a faithful scorer and a streaming runner.

* :mod:`bench.nab.scoring` - the pure NAB scorer (windows, scaled sigmoid,
  profiles, threshold optimisation, normalisation).
* :mod:`bench.nab.corpus` - finds the NAB root and loads data, labels, profiles.
* :mod:`bench.nab.run` - runs our spike detector over the corpus and scores it
  (``python -m bench.nab --out DIR``).
"""
