"""Declaration ids a partition has accepted recently: a resent declaration is counted once.

A producer that retries, or an upstream system that lodges the same declaration
twice, must not double a route's daily total (200 copies of one declaration
would be a 200-fold spike). Declarations are keyed by product, so every copy of
an id lands on the same partition and a per-partition set is complete.

The set is bounded by event time: an id is forgotten ``horizon`` seconds of
event time behind the partition's watermark. With a horizon of at least one
window plus its grace, a copy of a forgotten id falls in a window that has
already closed, and is dead-lettered as late anyway. The set belongs to the
partition's pipeline state, so it is checkpointed with it and moves with it.

>>> seen = SeenIds(horizon=86_400)
>>> seen.add("MRN-1", ts=0.0)
>>> "MRN-1" in seen
True
>>> seen.expire(watermark=86_401.0)
>>> "MRN-1" in seen, len(seen)
(False, 0)
"""

from __future__ import annotations

import heapq

__all__ = ["SeenIds"]


class SeenIds:
    """Ids seen within ``horizon`` seconds of event time; ``horizon = 0`` remembers none."""

    def __init__(self, horizon: float) -> None:
        if horizon < 0:
            raise ValueError(f"horizon must be >= 0 seconds, got {horizon}")
        self.horizon = float(horizon)
        self.ids: set[str] = set()
        #: (event time, id), a min-heap: the oldest is forgotten first, whatever the order
        #: of arrival (a held record dated far ahead does not pin the ones behind it).
        self.by_time: list[tuple[float, str]] = []

    def __contains__(self, declaration_id: object) -> bool:
        return declaration_id in self.ids

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, declaration_id: str, ts: float) -> None:
        if self.horizon > 0 and declaration_id not in self.ids:
            self.ids.add(declaration_id)
            heapq.heappush(self.by_time, (ts, declaration_id))

    def expire(self, watermark: float) -> None:
        """Forget every id more than ``horizon`` seconds of event time behind ``watermark``."""
        cutoff = watermark - self.horizon
        by_time = self.by_time
        while by_time and by_time[0][0] < cutoff:
            self.ids.discard(heapq.heappop(by_time)[1])
