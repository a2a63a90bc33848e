"""Progress on long offline work: records done, rate and time left, on a terminal only.

A replay of two years of real-shaped trade runs for half an hour; without a sign
of life an analyst cannot tell a slow run from a hung one. ``replay``, ``evaluate``
and ``backtest`` wrap their input in :func:`progress`, which redraws one line on
standard error about twice a second::

    baseline: 61,234 / 119,652 records (51%)  8.1k records/s  0:07 left

It writes only when its stream is a terminal (``isatty()``): in a pipe, a log file
or CI it is silent, so the JSON a command prints to stdout and the summary lines
on stderr stay clean. When the total is only an estimate (a generated set's
nominal size) the line says ``~``; past it, only the count and rate are shown.

The clock is injected (house style): tests drive the reporter without sleeping,
and nothing here asserts or depends on real speed.

>>> import io
>>> list(progress(iter([b"a", b"b"]), "replay", stream=io.StringIO()))  # not a TTY: silent
[b'a', b'b']
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TextIO, TypeVar

__all__ = ["Progress", "progress"]

T = TypeVar("T")

#: Seconds between two redraws: often enough to look alive, rare enough to cost nothing.
REDRAW_SECONDS = 0.5
#: Records between two looks at the clock (a clock call per record would be measurable).
CHECK_EVERY = 64


def _is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def _duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _rate(per_s: float) -> str:
    for unit, scale in (("M", 1e6), ("k", 1e3)):
        if per_s >= scale:
            return f"{per_s / scale:.1f}{unit}"
    return f"{per_s:.0f}"


class Progress:
    """One redrawn status line for a count of records; silent unless ``stream`` is a TTY.

    ``total`` is how many records are expected (``None``: unknown); ``estimated``
    marks it as approximate. Call :meth:`update` as records pass, :meth:`close` at
    the end (it draws the final line and a newline), or use :func:`progress`.
    """

    def __init__(
        self,
        label: str,
        total: int | None = None,
        *,
        estimated: bool = False,
        unit: str = "records",
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        redraw_seconds: float = REDRAW_SECONDS,
    ) -> None:
        self.label = label
        self.total = total
        self.estimated = estimated
        self.unit = unit
        self.stream = sys.stderr if stream is None else stream
        self.enabled = _is_terminal(self.stream)
        self.clock = clock
        self.redraw_seconds = redraw_seconds
        self.count = 0
        self._started = clock()
        self._drawn_at = -float("inf")
        self._closed = False

    def update(self, n: int = 1) -> None:
        """Count ``n`` more records; redraw when the last line is old enough."""
        self.count += n
        if self.enabled:
            now = self.clock()
            if now - self._drawn_at >= self.redraw_seconds:
                self._draw(now, end="")

    def close(self) -> None:
        """Draw the final line (count, rate, elapsed) and end it; idempotent."""
        if self._closed:
            return
        self._closed = True
        if self.enabled:
            self._draw(self.clock(), end="\n", final=True)

    def line(self, now: float, final: bool = False) -> str:
        """The status text at time ``now`` (public so its format is testable)."""
        elapsed = max(now - self._started, 1e-9)
        rate = self.count / elapsed
        parts = [f"{self.label}: {self.count:,}"]
        known = self.total is not None and self.total > 0
        if known and not final and self.count <= self.total:  # type: ignore[operator]
            total = int(self.total)  # type: ignore[arg-type]
            approx = "~" if self.estimated else ""
            parts[0] += f" / {approx}{total:,} {self.unit} ({100 * self.count / total:.0f}%)"
        else:
            parts[0] += f" {self.unit}"
        parts.append(f"{_rate(rate)} {self.unit}/s")
        if final:
            parts.append(f"done in {_duration(elapsed)}")
        elif known and self.count <= self.total and rate > 0:  # type: ignore[operator]
            left = (self.total - self.count) / rate  # type: ignore[operator]
            parts.append(f"{'~' if self.estimated else ''}{_duration(left)} left")
        else:
            parts.append(f"{_duration(elapsed)} elapsed")
        return "  ".join(parts)

    def _draw(self, now: float, end: str, final: bool = False) -> None:
        self._drawn_at = now
        # "\r" returns to the line start, "\x1b[K" clears what a longer line left behind
        self.stream.write(f"\r{self.line(now, final)}\x1b[K{end}")
        self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress(
    items: Iterable[T],
    label: str,
    total: int | None = None,
    *,
    estimated: bool = False,
    unit: str = "records",
    stream: TextIO | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[T]:
    """Yield ``items`` unchanged, reporting progress on a terminal (see the module doc).

    Not a terminal: the items pass through with no per-record cost at all.
    """
    reporter = Progress(label, total, estimated=estimated, unit=unit, stream=stream, clock=clock)
    if not reporter.enabled:
        yield from items
        return
    pending = 0
    try:
        for item in items:
            pending += 1
            if pending == CHECK_EVERY:
                reporter.update(pending)
                pending = 0
            yield item
    finally:
        reporter.count += pending
        reporter.close()
