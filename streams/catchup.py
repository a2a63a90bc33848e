"""When a partition's open windows may be closed by the wall clock: caught up, then quiet.

Event time only moves when records arrive, so the last windows of a replay (or of
a feed that pauses) would stay open forever; the wall clock has to close them.
But wall-clock silence alone does not mean the input has ended: a consumer
reading ``getmany`` batches drains one partition's fetch before the next, and a
partition waiting its turn looks idle. Closing its windows then dead-letters the
rest of its day as late, and the alerts depend on fetch timing.

So a partition is *due* for an idle close only when

* it is caught up: its last sampled consumer lag (high watermark minus the
  worker's position) was zero, and
* it has been quiet: ``quiet_seconds`` of wall clock have passed both since it
  was first seen caught up and since its last record, in this process.

A partition restored from a checkpoint or newly assigned starts with no history
here, so restored windows are never closed before the partition has been caught
up for the quiet period. The clock is the caller's (injected in tests).

>>> t = CatchUp(quiet_seconds=30)
>>> t.record(("t", 0), now=0.0)
>>> t.lag(("t", 0), 0, now=1.0)
>>> t.due(now=30.0), t.due(now=31.0)
([], [('t', 0)])
"""

from __future__ import annotations

__all__ = ["CatchUp"]

TopicPartition = tuple[str, int]


class CatchUp:
    """Per (topic, partition): since when its lag is zero, and when its last record came."""

    def __init__(self, quiet_seconds: float) -> None:
        self.quiet_seconds = quiet_seconds
        self._caught_up_since: dict[TopicPartition, float] = {}
        self._last_record: dict[TopicPartition, float] = {}

    def record(self, tp: TopicPartition, now: float) -> None:
        """A record of ``tp`` was handled at ``now``."""
        self._last_record[tp] = now

    def lag(self, tp: TopicPartition, lag: int, now: float) -> None:
        """The lag of ``tp`` was sampled at ``now``."""
        if lag > 0:
            self._caught_up_since.pop(tp, None)
        else:
            self._caught_up_since.setdefault(tp, now)

    def unknown(self, tp: TopicPartition) -> None:
        """The lag of ``tp`` cannot be known now (no fresh fetch: the broker may be down).

        A worker that cannot reach the broker does not know that nothing is waiting
        for it, so the quiet period starts again once a fresh sample says lag 0.
        """
        self._caught_up_since.pop(tp, None)

    def last_record(self, tp: TopicPartition) -> float | None:
        return self._last_record.get(tp)

    def restart(self, tp: TopicPartition, now: float) -> None:
        """Forget ``tp``'s history (its state was just restored): quiet from ``now`` on."""
        self._caught_up_since.pop(tp, None)
        self._last_record[tp] = now

    def forget(self, tp: TopicPartition) -> None:
        """``tp`` was revoked."""
        self._caught_up_since.pop(tp, None)
        self._last_record.pop(tp, None)

    def due(self, now: float) -> list[TopicPartition]:
        """Partitions caught up and quiet for ``quiet_seconds``: their windows may close."""
        quiet = self.quiet_seconds
        return [tp for tp, since in self._caught_up_since.items()
                if now - max(since, self._last_record.get(tp, since)) >= quiet]
