"""How one fetch is walked so an alert leaves soon after the record that raised it.

The worker reads up to :data:`streams.app.BATCH_MAX` records per fetch: large
fetches amortise the commit and the delivery wait, and keep the worker's
throughput. But an alert raised early in a fetch used to wait for the whole
fetch: every record of it handled (a window close of another partition costs tens
of milliseconds), then one delivery at the end. At 2,000 records/s with a daily
window closing every few hundred records, that was most of a second per alert.
Two things here take the fetch's size out of an alert's latency:

* :func:`arrival_order` walks the fetch in the order its records were produced,
  across partitions, instead of partition after partition: a record waits for the
  records produced before it, not for everything another partition had buffered.
  Each partition's own records keep their offset order, so nothing a partition
  computes depends on it (partitions share no detector state).
* :class:`EarlyDelivery` says when the alerts handled so far should be delivered
  at once, before the rest of the fetch is handled. Delivering costs a round trip
  to the broker (``acks=all``); a stream with many alerts would pay it per
  record, so an early delivery is due only once :data:`EARLY_COST_FACTOR` times
  as long as the last delivery took has passed since it ended: early deliveries
  then cost at most about a tenth of the worker's time.

Neither changes what is published or the order of the loop's guarantees (issue 8):
every output of a fetch is delivered and acknowledged before its state is saved
and its offsets committed; an alert delivered early and then followed by a crash
is published again, with the same id, when the fetch is replayed.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, TypeVar

__all__ = ["EARLY_COST_FACTOR", "EarlyDelivery", "arrival_order"]

#: Between the end of a delivery and an early one, at least this many times as long
#: as that delivery took: early deliveries cost at most 1 / (1 + factor) of the time.
EARLY_COST_FACTOR = 9.0

K = TypeVar("K")


def arrival_order(batches: Mapping[K, Sequence[Any]]) -> Iterator[tuple[K, Any]]:
    """``(partition, record)`` for every record of a fetch, oldest producer timestamp
    first; each partition's records in their own (offset) order, whatever their
    timestamps.

    >>> from types import SimpleNamespace as R
    >>> fetch = {"p0": [R(timestamp=3), R(timestamp=4)], "p1": [R(timestamp=1), R(timestamp=5)]}
    >>> [(p, r.timestamp) for p, r in arrival_order(fetch)]
    [('p1', 1), ('p0', 3), ('p0', 4), ('p1', 5)]
    """
    if len(batches) == 1:
        (key, records), = batches.items()
        yield from ((key, r) for r in records)
        return
    streams = [[(r.timestamp, i, n, key, r) for n, r in enumerate(records)]
               for i, (key, records) in enumerate(batches.items())]
    # ties (and timestamps that go back within a partition) are broken by partition,
    # then position: heapq.merge only ever takes each list's next item, so a
    # partition's order is kept even where its timestamps are not sorted
    for _, _, _, key, r in heapq.merge(*streams):
        yield key, r


class EarlyDelivery:
    """Whether output handled so far is delivered now or with the rest of the fetch.

    The caller reports each delivery (:meth:`delivered`: when it started and
    ended, on the clock it passes to :meth:`due`). Before the first delivery
    nothing is known of its cost, so the first alert goes at once; an alert raised
    at the start of a fetch goes at once if the last delivery ended long enough
    ago, whichever fetch it belonged to.

    >>> early = EarlyDelivery()
    >>> early.due(now=0.0)
    True
    >>> early.delivered(started=1.0, ended=1.01)
    >>> early.due(now=1.05), early.due(now=1.10)
    (False, True)
    """

    def __init__(self, factor: float = EARLY_COST_FACTOR) -> None:
        self.factor = factor
        self._next = -math.inf

    def due(self, now: float) -> bool:
        """Deliver what is pending now (``now`` on the clock given to :meth:`delivered`)?"""
        return now >= self._next

    def delivered(self, started: float, ended: float) -> None:
        """A delivery (early or at the end of a fetch) ran from ``started`` to ``ended``."""
        self._next = ended + self.factor * (ended - started)
