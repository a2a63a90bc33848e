"""Online anomaly detectors for trade series, in river's style and free of Kafka.

The contract every detector here keeps (checked for all of them by
``tests/unit/detectors/test_contract.py``):

* ``score_one(x)`` returns a calibrated anomaly score in ``[0, 1]``: 0 is
  ordinary, values near 1 are near-certain anomalies, so one threshold means
  the same thing for every detector. It never changes the detector's state.
* ``learn_one(x)`` updates the state and returns ``None``.
* The caller scores first, then learns (prequential order), so a spike is
  judged against what came before it.
* ``explain_one(x)`` returns an :class:`~detectors.base.Explanation`
  (observed, expected, expected range, score) for the alert's evidence.
* Every constructor argument is stored unchanged under its own name, so
  ``repr`` echoes the configuration and ``clone()`` makes a fresh copy.

Nothing in this package imports ``faust``, ``kafka`` or ``streams``.
"""
