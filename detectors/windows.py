"""Event-time tumbling windows per series key, with grace for late events and a bounded watermark.

Window boundaries come from a :class:`~detectors.calendar.WindowGrid`: fixed
lengths aligned to the epoch (``start = floor(ts / size) * size``), or local
days, ISO weeks and calendar months in a time zone. Either way every series and
every worker agree on boundaries and a window's start identifies it.
The watermark is the largest event time seen so far; window ``[start, end)``
closes when ``watermark >= end + grace``. An event whose window has already
closed is *late*: :meth:`TumblingWindows.add` returns ``False`` and the caller
dead-letters it (nothing is dropped silently).

**The watermark is bounded against outliers.** One record dated far ahead of
the rest (a producer clock set to "now" in a replay of 2022) would otherwise
close every window up to its date and make the whole rest of the stream late. A
record more than ``max_lead`` seconds ahead of the watermark is *held*: it is
counted in its own (future) window, but does not move the watermark. Only when
``confirmations`` such records have been seen in a row (no ordinary record moving
the watermark in between) does the watermark jump, to the ``confirmations``-th
largest of them: a genuine jump (the backlog after an upstream outage, when the
whole partition was silent) is followed after a few records; outliers amid a
stream that keeps moving never add up to one.

Event time only advances when events flow, so a quiet stream would never close its
last windows. :meth:`TumblingWindows.close_idle` closes them, up to the
watermark's own window (beyond it are only held records); *when* is the
caller's decision (the worker does it once a partition is caught up and quiet;
see :mod:`streams.catchup`). This module holds no clock.

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
from collections.abc import Iterable

from detectors.calendar import WindowGrid

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
        Window length in seconds (86 400 = daily windows), aligned to the epoch;
        or give ``grid`` instead.
    grid
        The window grid (calendar days, ISO weeks, months; see :mod:`detectors.calendar`).
    grace
        How long after a window's end (in event time) late events are still accepted.
    max_empty_windows
        After a jump in event time, at most this many empty windows are emitted
        for the gap (the caller decides whether each is an outage or a quiet window).
    top_k
        How many of the largest declarations each aggregate keeps as evidence.
    max_lead
        A record more than this many seconds ahead of the watermark is held: it
        does not move the watermark by itself (``inf``: no bound).
    confirmations
        How many held records it takes for the watermark to jump ahead.
    """

    def __init__(
        self,
        size: float | None = None,
        grace: float = 0.0,
        max_empty_windows: int = 366,
        top_k: int = 5,
        max_lead: float = math.inf,
        confirmations: int = 1,
        grid: WindowGrid | None = None,
    ) -> None:
        if (size is None) == (grid is None):
            raise ValueError("give exactly one of size (seconds) and grid")
        if size is not None and not size > 0:
            raise ValueError(f"size must be > 0 seconds, got {size}")
        if grace < 0:
            raise ValueError(f"grace must be >= 0 seconds, got {grace}")
        if max_lead <= 0:
            raise ValueError(f"max_lead must be > 0 seconds, got {max_lead}")
        if confirmations < 1:
            raise ValueError(f"confirmations must be >= 1, got {confirmations}")
        self.grid = grid if grid is not None else WindowGrid.fixed(float(size))  # type: ignore[arg-type]
        self.grace = float(grace)
        self.max_empty_windows = max_empty_windows
        self.top_k = top_k
        self.max_lead = float(max_lead)
        self.confirmations = confirmations
        self.watermark = -math.inf
        #: Event times of the records held since the watermark last moved: the candidates
        #: that confirm a jump.
        self.held: list[float] = []
        self._open: dict[float, dict[str, SeriesAggregate]] = {}
        #: Every window starting before this has closed; -inf until the first close.
        self._closed_before = -math.inf

    def window_start(self, ts: float) -> float:
        """Start of the window that holds ``ts``."""
        return self.grid.start(ts)

    def is_late(self, ts: float) -> bool:
        """True when the window ``ts`` falls in has already closed."""
        return self.window_start(ts) < self._closed_before

    def is_ahead(self, ts: float) -> bool:
        """True when ``ts`` is more than ``max_lead`` ahead of the watermark (it would be held)."""
        return self.watermark > -math.inf and ts - self.watermark > self.max_lead

    def add(
        self, ts: float, keys: Iterable[str], value: float, mass: float, declaration_id: str
    ) -> bool:
        """Add one event to the window of ``ts`` for every key; False if it is late."""
        start = self.window_start(ts)
        if start < self._closed_before:
            return False
        window = self._open.get(start)
        if window is None:
            window = self._open[start] = {}
        top_k = self.top_k
        for key in keys:  # SeriesAggregate.add, inlined: this runs per declaration and series
            agg = window.get(key)
            if agg is None:
                agg = window[key] = SeriesAggregate()
            agg.count += 1
            agg.value_eur += value
            agg.mass_kg += mass
            top = agg.top
            if len(top) < top_k:
                heapq.heappush(top, (value, declaration_id))
            elif value > top[0][0]:
                heapq.heapreplace(top, (value, declaration_id))
        if ts > self.watermark:
            self._observe(ts)
        return True

    def _observe(self, ts: float) -> None:
        """Move the watermark to ``ts``, or hold ``ts`` if it is too far ahead to trust alone."""
        if not self.is_ahead(ts):
            self.watermark = ts
            self.held = []  # the stream goes on where it was: those were outliers, not a jump
            return
        self.held.append(ts)
        if len(self.held) >= self.confirmations:
            # confirmed: the N-th largest, so up to N-1 outliers among them cannot lead
            self.watermark = sorted(self.held, reverse=True)[self.confirmations - 1]
            self.held = [t for t in self.held if self.is_ahead(t)]

    def advance(self) -> list[ClosedWindow]:
        """Close every window whose end + grace the watermark has passed, oldest first."""
        horizon = self.watermark - self.grace
        closed_before = self._closed_before
        if (closed_before > -math.inf and horizon > -math.inf
                and self.grid.start(horizon) <= closed_before):
            return []  # nothing to close: what _close_until finds, without its set-up (per record)
        return self._close_until(horizon)

    def close_idle(self) -> list[ClosedWindow]:
        """Close every open window up to the watermark's own (the input has gone quiet).

        Every record that moved the watermark lies at or before it, so only held
        records (and the few above a confirmed jump) are in later windows. Those
        stay open: closing them would make every record before their date late,
        which is what holding prevents. Without such records this is :meth:`flush`.
        """
        if not self._open or self.watermark == -math.inf:
            return []
        last = self.window_start(self.watermark)
        if min(self._open) > last:
            return []
        return self._close_until(self.grid.end(last))

    def flush(self) -> list[ClosedWindow]:
        """Close every open window now, held ones included (end of input)."""
        if not self._open:
            return []
        last_start = max(self._open)
        self.held = []
        return self._close_until(self.grid.end(last_start))

    def _close_until(self, horizon: float) -> list[ClosedWindow]:
        if horizon == -math.inf or (not self._open and self._closed_before == -math.inf):
            return []
        grid = self.grid
        start = self._closed_before if self._closed_before > -math.inf else min(self._open)
        stop = grid.start(horizon)  # the first window that ends after the horizon stays open
        closed: list[ClosedWindow] = []
        empties = 0
        while start < stop:
            end = grid.end(start)
            aggregates = self._open.pop(start, None)
            if aggregates is not None:
                closed.append(ClosedWindow(start, end, aggregates))
                empties = 0
            elif empties < self.max_empty_windows:
                closed.append(ClosedWindow(start, end, {}))
                empties += 1
            else:  # a long gap: jump to the next window that has events, never past ``stop``
                start = min(min((s for s in self._open if s > start), default=math.inf), stop)
                continue
            start = end
        self._closed_before = max(self._closed_before, start)
        return closed

    @property
    def open_windows(self) -> int:
        """How many windows are open right now."""
        return len(self._open)

    @property
    def open_series(self) -> int:
        """How many (window, series) aggregates are held in memory right now."""
        return sum(len(w) for w in self._open.values())
