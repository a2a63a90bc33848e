"""tradewatch's stream side: Kafka in, detectors in the middle, alerts and metrics out.

The data flow, one module per step::

    trade.declarations --(events, validate)--> window --(detectors/)--> alerts --> trade.alerts
           |                                                               metrics beside: /metrics
           +-- malformed, late --> trade.declarations.dlq (original bytes + reason headers)

``events`` holds the wire contracts, ``validate`` the reasons a record is rejected,
``pipeline`` the pure window->detect->alert core (one per partition), ``worker`` what
a record becomes, ``app`` the faust wiring, ``offline`` the same core without Kafka.
"""

__version__ = "0.1.0"
