"""tradewatch's stream side: Kafka in, detectors in the middle, alerts and metrics out.

The data flow, one module per step::

    trade.declarations --(events, validate)--> window --(detectors/)--> alerts --> trade.alerts
           |                                                                 |
           |                          incidents (per window, destination, goods family)
           |                                                                 +--> trade.incidents
           +-- malformed, late --> trade.declarations.dlq (original bytes + reason headers)
                                                                   metrics beside: /metrics

``events`` holds the wire contracts, ``validate`` the reasons a record is rejected,
``pipeline`` the pure window->detect->alert core (one per partition), ``incidents``
the grouping of a window's alerts, ``worker`` what
a record becomes, ``app`` the faust wiring, ``offline`` the same core without Kafka.
"""

__version__ = "0.1.0"
