"""Event-time tumbling windows per series key, with grace for late events and idle close.

Windows are aligned to the epoch (``start = floor(ts / size) * size``), so every
series and every worker agree on boundaries and a window's start identifies it.
The watermark is the largest event time seen so far; window ``[start, end)``
closes when ``watermark >= end + grace``. An event whose window has already
closed is *late*: :meth:`TumblingWindows.add` returns ``False`` and the caller
dead-letters it (nothing is dropped silently).

Event time only advances when events flow, so a quiet stream would never close its
last window. :meth:`TumblingWindows.close_idle` closes everything still open once
no event has arrived for ``idle_timeout`` seconds of the *injected wall clock*;
tests pass a fake clock.

>>> w = TumblingWindows(size=86_400, grace=3_600)
>>> w.add(ts=10.0, keys=("hs6:DE>KG:854231",), value=100.0, mass=1.0, declaration_id="a")
True
>>> w.add(ts=86_400 + 3_600, keys=("hs6:DE>KG:854231",), value=5.0, mass=1.0, declaration_id="b")
True
>>> [(c.start, c.aggregates["hs6:DE>KG:854231"].value_eur) for c in w.advance()]
[(0.0, 100.0)]
>>> w.add(ts=20.0, keys=("hs6:DE>KG:854231",), value=1.0, mass=1.0, declaration_id="c")
False
"""

from __future__ import annotations

import dataclasses
import heapq
import math
import time
from collections.abc import Callable, Iterable

__all__ = ["SeriesAggregate", "ClosedWindow", "TumblingWindows"]


@dataclasses.dataclass(slots=True)
class SeriesAggregate:
    """Totals of one series in one window, plus the largest declarations as evidence.

    ``top`` keeps at most ``top_k`` (value, declaration id) pairs as a min-heap,
    so evidence costs O(log k) per event and bounded memory.
    """

    count: int = 0
    value_eur: float = 0.0
    mass_kg: float = 0.0
    top: list[tuple[float, str]] = dataclasses.field(default_factory=list)

    def add(self, value: float, mass: float, declaration_id: str, top_k: int) -> None:
        self.count += 1
        self.value_eur += value
        self.mass_kg += mass
        if len(self.top) < top_k:
            heapq.heappush(self.top, (value, declaration_id))
        elif value > self.top[0][0]:
            heapq.heapreplace(self.top, (value, declaration_id))

    def top_declarations(self) -> list[str]:
        """Declaration ids, largest value first."""
        return [d for _, d in sorted(self.top, reverse=True)]


@dataclasses.dataclass(frozen=True, slots=True)
class ClosedWindow:
    """A closed window: its bounds and the aggregate of every series that had events."""

    start: float
    end: float
    aggregates: dict[str, SeriesAggregate]

    @property
    def is_empty(self) -> bool:
        """No series had any event: on a whole partition this means a data gap."""
        return not self.aggregates


class TumblingWindows:
    """Tumbling event-time windows for many series keys at once.

    Parameters
    ----------
    size
        Window length in seconds (86 400 = daily windows).
    grace
        How long after a window's end (in event time) late events are still accepted.
    idle_timeout
        Wall-clock seconds without any event after which open windows are closed.
    max_empty_windows
        After a jump in event time, at most this many empty windows are emitted
        for the gap; detectors see them as missing data, not as zero trade.
    top_k
        How many of the largest declarations each aggregate keeps as evidence.
    clock
        Wall clock for idle close; injected so tests control it.
    """

    def __init__(
        self,
        size: float,
        grace: float = 0.0,
        idle_timeout: float = 30.0,
        max_empty_windows: int = 366,
        top_k: int = 5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if size <= 0:
            raise ValueError(f"size must be > 0 seconds, got {size}")
        if grace < 0:
            raise ValueError(f"grace must be >= 0 seconds, got {grace}")
        self.size = float(size)
        self.grace = float(grace)
        self.idle_timeout = float(idle_timeout)
        self.max_empty_windows = max_empty_windows
        self.top_k = top_k
        self.clock = clock
        self.watermark = -math.inf
        self._open: dict[float, dict[str, SeriesAggregate]] = {}
        #: Every window starting before this has closed; -inf until the first close.
        self._closed_before = -math.inf
        self._last_arrival = clock()

    def window_start(self, ts: float) -> float:
        return math.floor(ts / self.size) * self.size

    def is_late(self, ts: float) -> bool:
        """True when the window ``ts`` falls in has already closed."""
        return self.window_start(ts) < self._closed_before

    def add(
        self, ts: float, keys: Iterable[str], value: float, mass: float, declaration_id: str
    ) -> bool:
        """Add one event to the window of ``ts`` for every key; False if it is late."""
        self._last_arrival = self.clock()
        start = self.window_start(ts)
        if start < self._closed_before:
            return False
        window = self._open.get(start)
        if window is None:
            window = self._open[start] = {}
        top_k = self.top_k
        for key in keys:
            agg = window.get(key)
            if agg is None:
                agg = window[key] = SeriesAggregate()
            agg.add(value, mass, declaration_id, top_k)
        if ts > self.watermark:
            self.watermark = ts
        return True

    def advance(self) -> list[ClosedWindow]:
        """Close every window whose end + grace the watermark has passed, oldest first."""
        return self._close_until(self.watermark - self.grace)

    def close_idle(self) -> list[ClosedWindow]:
        """Close all open windows if no event arrived for ``idle_timeout`` wall seconds."""
        if not self._open or self.clock() - self._last_arrival < self.idle_timeout:
            return []
        return self.flush()

    def flush(self) -> list[ClosedWindow]:
        """Close every open window now (end of input, shutdown, idle)."""
        if not self._open:
            return []
        last_start = max(self._open)
        return self._close_until(last_start + self.size)

    def _close_until(self, horizon: float) -> list[ClosedWindow]:
        if horizon == -math.inf or (not self._open and self._closed_before == -math.inf):
            return []
        start = self._closed_before if self._closed_before > -math.inf else min(self._open)
        last = self.window_start(horizon - self.size)  # newest window with end <= horizon
        closed: list[ClosedWindow] = []
        empties = 0
        while start <= last:
            aggregates = self._open.pop(start, None)
            if aggregates is not None:
                closed.append(ClosedWindow(start, start + self.size, aggregates))
                empties = 0
            elif empties < self.max_empty_windows:
                closed.append(ClosedWindow(start, start + self.size, {}))
                empties += 1
            else:  # a long gap: jump to the next window that has events
                start = min((s for s in self._open if s > start), default=last + self.size)
                continue
            start += self.size
        self._closed_before = max(self._closed_before, start)
        return closed

    @property
    def open_series(self) -> int:
        """How many (window, series) aggregates are held in memory right now."""
        return sum(len(w) for w in self._open.values())
