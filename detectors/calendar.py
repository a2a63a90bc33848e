"""The window grid: where windows start and end, fixed-length or on the calendar.

A trade series is read by the calendar: customs statistics are monthly, analysts
think in ISO weeks, and a fixed 30-day window drifts through the months. So a
window grid is either

* **fixed**: ``size`` seconds aligned to the epoch (1970-01-01 UTC), so every
  worker agrees on the boundaries (``"1d"``, ``"7d"``: a 7-day window starts on
  a Thursday, the epoch's weekday); or
* **calendar**: a local ``day``, an ISO ``week`` (Monday 00:00) or a calendar
  ``month`` in a time zone (``zoneinfo``, standard library). In a zone with
  daylight saving time a local day is 23 or 25 hours long twice a year, and a
  week or month containing such a day one hour shorter or longer.

Every window is identified by its start (epoch seconds). The grid answers the
questions the windows, the alert rules and the gap model ask: the start of the
window holding a time (:meth:`WindowGrid.start`), the next and previous starts,
how many windows lie between two starts (:meth:`WindowGrid.count`), and how many
whole windows a duration such as ``"7d"`` makes (:meth:`WindowGrid.windows_in`).

The grid is plain data (unit, size, zone name, holidays): it is part of a
partition's checkpointed state and the state codec writes it like any other.

>>> g = WindowGrid.calendar("month")
>>> s = g.start(_ts(2024, 2, 17))
>>> _iso(s), _iso(g.next(s)), g.length(s) / 86400
('2024-02-01T00:00:00+00:00', '2024-03-01T00:00:00+00:00', 29.0)
>>> g.count(s, g.start(_ts(2025, 1, 5)))
11
>>> berlin = WindowGrid.calendar("day", timezone="Europe/Berlin")
>>> [berlin.length(berlin.start(_ts(2024, m, d, 12))) / 3600 for m, d in ((3, 31), (10, 27), (6, 1))]
[23.0, 25.0, 24.0]
>>> WindowGrid.fixed(86400).windows_in(parse_duration("7d"))
7
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import re
import zoneinfo

__all__ = [
    "CALENDAR_UNITS",
    "HOLIDAY_PHASE",
    "WindowGrid",
    "format_duration",
    "parse_duration",
]

DAY = 86_400.0
HOUR = 3_600.0
WEEK = 7 * DAY
#: Mean Gregorian month (365.2425 / 12 days): the nominal length of a calendar month.
MONTH = 365.2425 / 12 * DAY
#: The calendar units a grid can follow.
CALENDAR_UNITS = ("day", "week", "month")
#: :meth:`WindowGrid.phase` of a window that starts on a configured holiday.
HOLIDAY_PHASE = -1
#: One DST hour of slack: the shortest local day is 23 h, the shortest week 7 d - 1 h.
_DST = HOUR
_NOMINAL = {"day": DAY, "week": WEEK, "month": MONTH}
_SHORTEST = {"day": DAY - _DST, "week": WEEK - _DST, "month": 28 * DAY - _DST}
_LONGEST = {"day": DAY + _DST, "week": WEEK + _DST, "month": 31 * DAY + _DST}
_UNITS = {"s": 1.0, "m": 60.0, "h": HOUR, "d": DAY, "w": WEEK}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_HOLIDAY = re.compile(r"^(?:\d{4}-)?\d{2}-\d{2}$")


def parse_duration(text: str | float | int) -> float:
    """Seconds in a duration: ``"30s"``, ``"15m"``, ``"12h"``, ``"7d"``, ``"2w"`` or a number of seconds.

    Durations are fixed lengths; a month is not one (use ``"28d"`` ... ``"31d"``,
    which :meth:`WindowGrid.windows_in` rounds to whole calendar months).

    >>> parse_duration("7d"), parse_duration("90m"), parse_duration(3600)
    (604800.0, 5400.0, 3600.0)
    >>> parse_duration("1 month")
    Traceback (most recent call last):
    ...
    ValueError: '1 month' is not a duration (use e.g. "30s", "15m", "12h", "7d", "2w")
    """
    if isinstance(text, bool):
        raise ValueError(f"{text!r} is not a duration")
    if isinstance(text, int | float):
        if not math.isfinite(text) or text < 0:
            raise ValueError(f"{text!r} is not a duration (seconds must be finite and >= 0)")
        return float(text)
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f'{text!r} is not a duration (use e.g. "30s", "15m", "12h", "7d", "2w")')
    return float(match.group(1)) * _UNITS[match.group(2)]


def format_duration(seconds: float) -> str:
    """The shortest exact spelling of ``seconds``: ``604800 -> "7d"``, ``5400 -> "90m"``.

    >>> format_duration(604800.0), format_duration(86400 * 14), format_duration(5400), format_duration(1.5)
    ('7d', '14d', '90m', '1.5s')
    """
    for unit in ("d", "h", "m"):
        n = seconds / _UNITS[unit]
        if n >= 1 and n == int(n):
            return f"{int(n)}{unit}"
    return f"{seconds:g}s"


@functools.lru_cache(maxsize=32)
def _zone(name: str) -> dt.tzinfo:
    if name == "UTC":
        return dt.UTC
    return zoneinfo.ZoneInfo(name)


def check_timezone(name: str) -> None:
    """Raise ValueError unless ``name`` is a time zone the standard library knows."""
    try:
        _zone(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (an IANA name such as "
                         f"\"Europe/Berlin\", or \"UTC\")") from None


def check_holiday(text: str) -> None:
    """Raise ValueError unless ``text`` is ``MM-DD`` (every year) or ``YYYY-MM-DD`` (one date)."""
    if not _HOLIDAY.match(text):
        raise ValueError(f"{text!r} is not a holiday (use \"MM-DD\" for every year, "
                         f"\"YYYY-MM-DD\" for one date)")
    year = text[:4] if len(text) == 10 else "2024"  # a leap year: 02-29 is a valid yearly date
    dt.date.fromisoformat(f"{year}-{text[-5:]}")


class WindowGrid:
    """Window boundaries: fixed seconds from the epoch, or local days, ISO weeks, months.

    Build one with :meth:`fixed` or :meth:`calendar`. Every attribute is plain
    data (the state codec writes it); ``_lo``/``_hi`` remember the window of the
    last lookup, so the per-declaration :meth:`start` of a calendar grid costs a
    comparison, not a time-zone conversion.

    Parameters
    ----------
    unit
        ``"fixed"``, ``"day"``, ``"week"`` or ``"month"``.
    size
        Fixed windows: their length in seconds. Calendar windows: the nominal
        length (a day, a week, a mean month), used to turn durations into windows.
    timezone
        Calendar windows: the IANA zone whose midnights are the boundaries.
    holidays
        Dates (``MM-DD`` every year, ``YYYY-MM-DD`` once) whose windows have a
        phase of their own (:meth:`phase`): the gap model learns them apart.
    """

    def __init__(self, unit: str = "fixed", size: float = DAY, timezone: str = "UTC",
                 holidays: tuple[str, ...] = ()) -> None:
        if unit not in ("fixed", *CALENDAR_UNITS):
            raise ValueError(f"unit must be 'fixed' or one of {CALENDAR_UNITS}, got {unit!r}")
        if not size > 0:
            raise ValueError(f"size must be > 0 seconds, got {size}")
        check_timezone(timezone)
        for day in holidays:
            check_holiday(day)
        self.unit = unit
        self.size = float(size)
        self.timezone = timezone
        self.holidays = tuple(holidays)
        self._lo = math.inf  # [_lo, _hi): the window of the last lookup
        self._hi = -math.inf

    @classmethod
    def fixed(cls, size: float, holidays: tuple[str, ...] = ()) -> WindowGrid:
        """Windows of ``size`` seconds aligned to the epoch (UTC)."""
        return cls("fixed", size, "UTC", holidays)

    @classmethod
    def calendar(cls, unit: str, timezone: str = "UTC", holidays: tuple[str, ...] = ()) -> WindowGrid:
        """Local days, ISO weeks (Monday 00:00) or calendar months in ``timezone``."""
        if unit not in CALENDAR_UNITS:
            raise ValueError(f"calendar unit must be one of {CALENDAR_UNITS}, got {unit!r}")
        return cls(unit, _NOMINAL[unit], timezone, holidays)

    # -- description -----------------------------------------------------------------

    @property
    def label(self) -> str:
        """What one window is, for messages: ``"month"``, ``"week (Europe/Berlin)"``, ``"1d"``."""
        if self.unit == "fixed":
            return format_duration(self.size)
        return self.unit if self.timezone == "UTC" else f"{self.unit} ({self.timezone})"

    @property
    def nominal_seconds(self) -> float:
        """The typical length of a window (a mean month for months)."""
        return self.size

    @property
    def shortest_seconds(self) -> float:
        """No window is shorter than this (February; a local day with the spring DST change)."""
        return self.size if self.unit == "fixed" else _SHORTEST[self.unit]

    @property
    def longest_seconds(self) -> float:
        """No window is longer than this (a 31-day month; the autumn DST day)."""
        return self.size if self.unit == "fixed" else _LONGEST[self.unit]

    @property
    def sub_weekly(self) -> bool:
        """Windows shorter than half a week: a weekday effect is visible in them."""
        return self.longest_seconds <= WEEK / 2

    def __repr__(self) -> str:
        return f"WindowGrid({self.label})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WindowGrid) and (self.unit, self.size, self.timezone,
                                                  self.holidays) == (
            other.unit, other.size, other.timezone, other.holidays)

    def __hash__(self) -> int:
        return hash((self.unit, self.size, self.timezone, self.holidays))

    # -- boundaries ------------------------------------------------------------------

    def start(self, ts: float) -> float:
        """Start of the window that holds time ``ts`` (epoch seconds)."""
        if self._lo <= ts < self._hi:
            return self._lo
        if self.unit == "fixed":
            return math.floor(ts / self.size) * self.size
        if not math.isfinite(ts):
            raise ValueError(f"no calendar window holds {ts}")
        day = dt.datetime.fromtimestamp(ts, _zone(self.timezone)).date()
        lo = self._midnight(self._first_day(day))
        self._lo, self._hi = lo, self._midnight(self._next_day(self._first_day(day)))
        return lo

    def next(self, start: float) -> float:
        """Start of the window after the one starting at ``start`` (its end)."""
        if self.unit == "fixed":
            return start + self.size
        if start == self._lo:
            return self._hi
        return self._midnight(self._next_day(self._local_day(start)))

    end = next

    def previous(self, start: float) -> float:
        """Start of the window before the one starting at ``start``."""
        if self.unit == "fixed":
            return start - self.size
        return self.start(start - 1.0)

    def length(self, start: float) -> float:
        """Seconds in the window starting at ``start`` (23/24/25 h for a local day)."""
        return self.next(start) - start

    def shift(self, start: float, n: int) -> float:
        """Start of the window ``n`` windows after (``n < 0``: before) the one at ``start``."""
        if self.unit == "fixed":
            return start + n * self.size
        if not math.isfinite(start):
            return start
        day = self._local_day(start)
        if self.unit == "day":
            return self._midnight(day + dt.timedelta(days=n))
        if self.unit == "week":
            return self._midnight(day + dt.timedelta(days=7 * n))
        months = day.year * 12 + day.month - 1 + n
        return self._midnight(dt.date(months // 12, months % 12 + 1, 1))

    def count(self, a: float, b: float) -> int:
        """How many windows from the one starting at ``a`` to the one starting at ``b`` (b - a).

        Both must be window starts; negative when ``b`` is before ``a``.
        """
        if self.unit == "fixed":
            return round((b - a) / self.size)
        da, db = self._local_day(a), self._local_day(b)
        if self.unit == "day":
            return (db - da).days
        if self.unit == "week":
            return (db - da).days // 7
        return (db.year - da.year) * 12 + db.month - da.month

    def windows_in(self, seconds: float) -> int:
        """Whole windows a duration makes, to the nearest (``"31d"`` of months: 1); 0 for 0.

        Callers reject a non-zero duration shorter than :attr:`shortest_seconds`
        first (it would round to no window at all or to a surprising one).
        """
        if seconds <= 0:
            return 0
        return max(1, math.floor(seconds / self.size + 0.5))

    # -- the calendar of a window ----------------------------------------------------

    def local_date(self, start: float) -> dt.date:
        """The local date a window starts on (UTC for fixed windows)."""
        return self._local_day(start)

    def phase(self, start: float) -> int:
        """Which kind of window this is, for learning what a partition usually does in it.

        Windows of a day or a few days: the local weekday the window starts on
        (Monday = 0); shorter windows: weekday x 24 + hour, so a quiet night is
        learned apart from a quiet Sunday; :data:`HOLIDAY_PHASE` on a configured
        holiday. Weekly and longer windows all look alike (0): no weekday effect.
        """
        if not self.sub_weekly:
            return 0
        local = dt.datetime.fromtimestamp(start, _zone(self.timezone))
        day = local.date()
        if self.holidays and (day.isoformat() in self.holidays or day.isoformat()[5:] in self.holidays):
            return HOLIDAY_PHASE
        if self.longest_seconds < DAY:
            return day.weekday() * 24 + local.hour
        return day.weekday()

    # -- helpers ---------------------------------------------------------------------

    def _local_day(self, ts: float) -> dt.date:
        return dt.datetime.fromtimestamp(ts, _zone(self.timezone)).date()

    def _first_day(self, day: dt.date) -> dt.date:
        if self.unit == "week":
            return day - dt.timedelta(days=day.weekday())
        if self.unit == "month":
            return day.replace(day=1)
        return day

    def _next_day(self, first: dt.date) -> dt.date:
        if self.unit == "day":
            return first + dt.timedelta(days=1)
        if self.unit == "week":
            return first + dt.timedelta(days=7)
        return (first.replace(day=28) + dt.timedelta(days=4)).replace(day=1)

    def _midnight(self, day: dt.date) -> float:
        """The instant local ``day`` begins (a midnight skipped by DST: the transition)."""
        return dt.datetime(day.year, day.month, day.day, tzinfo=_zone(self.timezone)).timestamp()


def _ts(year: int, month: int, day: int, hour: int = 0) -> float:
    return dt.datetime(year, month, day, hour, tzinfo=dt.UTC).timestamp()


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat()
