"""The window grid of a configuration, and every setting measured against it.

Settings that used to count windows (a cooldown of 7 windows, forget a series
after 120 windows) silently changed meaning when the window size changed: 7
daily windows are a week, 7 monthly ones more than half a year. They are
durations now (``alerts.cooldown = "7d"``), turned into whole windows of the
configured grid by :func:`window_plan`, and :func:`check_windows` explains a
duration that does not fit the grid with the key's path:

    config error at alerts.cooldown: 1d is shorter than one window (month)

Detector parameters that count windows (a warm-up, a lag) stay counts of
windows, documented per window by each detector in ``_window_params``; in the
config they may also be given as a duration (``warmup = "90d"``), which is
turned into windows here at load, so the detector only ever sees a count.

A setting left unset takes its default duration, at least one window: the
defaults were chosen for daily windows, and on monthly windows "a cooldown of
7 days" becomes one month rather than an error the analyst did not cause.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any

import msgspec

from detectors.calendar import DAY, WindowGrid, check_timezone, format_duration, parse_duration

if TYPE_CHECKING:
    from streams.config import Settings

__all__ = ["WindowPlan", "window_plan", "check_windows", "pop_renamed_keys", "resolve_window_params",
           "DEFAULTS"]

#: Defaults of the duration settings (for daily windows; never less than one window).
DEFAULTS = {
    "alerts.cooldown": "7d",
    "alerts.catchup": "2d",
    "alerts.persistence": "3d",
    "windows.idle_series": "120d",
    "windows.max_gap": "366d",
}
#: Keys that counted windows -> the duration that replaces each.
RENAMED = {
    "alerts.cooldown_windows": "alerts.cooldown",
    "alerts.catchup_windows": "alerts.catchup",
    "windows.idle_series_windows": "windows.idle_series",
    "windows.max_empty_windows": "windows.max_gap",
}
#: Durations that may be 0 (switched off); the others need at least one window.
_MAY_BE_ZERO = frozenset({"alerts.cooldown", "alerts.catchup", "alerts.persistence",
                          "windows.max_gap"})


@dataclasses.dataclass(frozen=True)
class WindowPlan:
    """The grid and the duration settings as whole windows of it."""

    grid: WindowGrid
    #: After an alert on a series, the same detector is quiet on it for this many windows.
    cooldown_windows: int
    #: After an outage window, alerts of this many windows are capped at "low".
    catchup_windows: int
    #: A series surge's evidence counts the declarations of its series' windows over
    #: threshold within this many windows before it (0: its own window only).
    persistence_windows: int
    #: A series without a declaration for this many windows is forgotten.
    idle_series_windows: int
    #: At most this many empty windows are emitted for one silence.
    max_empty_windows: int


def _grid_of(windows: Any) -> WindowGrid:
    if windows.calendar is not None:
        return WindowGrid.calendar(windows.calendar, windows.timezone, windows.holidays)
    if windows.size is not None:
        return WindowGrid.fixed(parse_duration(windows.size), windows.holidays)
    size = windows.size_seconds if windows.size_seconds is not None else 86_400.0
    return WindowGrid.fixed(size, windows.holidays)


def _windows(path: str, value: str | float | None, grid: WindowGrid) -> int:
    """Whole windows of a duration setting (its default if unset); ConfigError if it does not fit."""
    from streams.config import ConfigError

    explicit = value is not None
    try:
        seconds = parse_duration(value if explicit else DEFAULTS[path])  # type: ignore[arg-type]
    except ValueError as err:
        raise ConfigError(path, str(err)) from None
    if seconds == 0 and path in _MAY_BE_ZERO:
        return 0
    if seconds < grid.shortest_seconds:
        if explicit:
            what = "0 (off)" if path in _MAY_BE_ZERO else "at least one window"
            raise ConfigError(path, f"{format_duration(seconds)} is shorter than one window "
                                    f"({grid.label}); use {what} or a longer duration")
        return 1
    return grid.windows_in(seconds)


def window_plan(settings: Settings) -> WindowPlan:
    """The grid of ``settings.windows`` and its duration settings in whole windows."""
    w, a = settings.windows, settings.alerts
    grid = _grid_of(w)
    return WindowPlan(
        grid=grid,
        cooldown_windows=_windows("alerts.cooldown", a.cooldown, grid),
        catchup_windows=_windows("alerts.catchup", a.catchup, grid),
        persistence_windows=_windows("alerts.persistence", a.persistence, grid),
        idle_series_windows=_windows("windows.idle_series", w.idle_series, grid),
        max_empty_windows=_windows("windows.max_gap", w.max_gap, grid),
    )


def pop_renamed_keys(raw: dict[str, Any]) -> dict[str, Any]:
    """Take the old window-count keys out of ``raw`` (path -> value) so the rest can be read."""
    found = {}
    for old in RENAMED:
        section, key = old.split(".")
        table = raw.get(section)
        if isinstance(table, dict) and key in table:
            found[old] = table.pop(key)
    return found


def _renamed_error(old: str, value: Any, grid: WindowGrid) -> Exception:
    from streams.config import ConfigError

    new = RENAMED[old]
    hint = ""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        hint = (f' = "{format_duration(value * grid.nominal_seconds)}"'
                f" ({value} windows of {grid.label})")
    return ConfigError(old, f"renamed: window counts became durations; write {new}{hint}")


def check_windows(settings: Settings, renamed: dict[str, Any], dedup_given: bool = True) -> Settings:
    """Raise ConfigError (with the key's path) for a window setting that does not fit the grid.

    Returns the settings with an unset ``validation.dedup_horizon_seconds`` raised
    to the longest window plus its grace, in whole days (the default 2 days
    already cover daily windows).
    """
    from streams.config import ConfigError

    w = settings.windows
    given = [k for k in ("size_seconds", "size", "calendar") if getattr(w, k) is not None]
    if len(given) > 1:
        raise ConfigError(f"windows.{given[1]}", f"give one of windows.size_seconds, windows.size "
                                                 f"and windows.calendar, not {' and '.join(given)}")
    try:
        check_timezone(w.timezone)
    except ValueError as err:
        raise ConfigError("windows.timezone", str(err)) from None
    if w.timezone != "UTC" and w.calendar is None:
        raise ConfigError("windows.timezone", "applies to calendar windows only (fixed windows are "
                          "aligned to the epoch in UTC); use windows.calendar = \"day\", \"week\" "
                          "or \"month\"")
    if w.size is not None:
        try:
            seconds = parse_duration(w.size)
        except ValueError as err:
            raise ConfigError("windows.size", str(err)) from None
        if seconds <= 0:
            raise ConfigError("windows.size", "must be > 0")
    try:
        grid = _grid_of(w)
    except ValueError as err:
        raise ConfigError("windows.holidays", str(err)) from None
    for old, value in renamed.items():
        raise _renamed_error(old, value, grid)
    if w.grace_seconds > grid.shortest_seconds:
        raise ConfigError("windows.grace_seconds", (
            f"{format_duration(w.grace_seconds)} is longer than one window ({grid.label}): "
            f"a window would still take late data after the next one had closed"))
    window_plan(settings)  # every duration setting fits the grid
    dedup = settings.validation.dedup_horizon_seconds
    needed = math.ceil((grid.longest_seconds + w.grace_seconds) / DAY) * DAY  # whole days
    if not dedup_given and 0 < dedup < needed:
        validation = msgspec.structs.replace(settings.validation, dedup_horizon_seconds=needed)
        return msgspec.structs.replace(settings, validation=validation)
    if 0 < dedup < needed:
        raise ConfigError("validation.dedup_horizon_seconds", (
            f"{format_duration(dedup)} is shorter than one window ({grid.label}) plus its grace: "
            f"a copy sent later in the same window would be counted twice; use at least "
            f"{format_duration(needed)}, or 0 (off)"))
    return settings


def resolve_window_params(settings: Settings) -> Settings:
    """Turn detector parameters given as durations into counts of windows; check the rest.

    A detector lists the parameters that count windows in ``_window_params`` and
    those that need sub-weekly windows in ``_sub_weekly_params``.
    """
    from detectors.registry import DETECTOR_KINDS
    from streams.config import ConfigError

    grid = _grid_of(settings.windows)
    specs = dict(settings.detectors)
    for name, spec in settings.detectors.items():
        cls = DETECTOR_KINDS.get(spec.kind)
        if cls is None:
            continue  # unknown kind: the registry names it
        params = dict(spec.params)
        for param in getattr(cls, "_window_params", ()):
            value = params.get(param)
            if isinstance(value, str):
                path = f"detectors.{name}.params.{param}"
                try:
                    seconds = parse_duration(value)
                except ValueError as err:
                    raise ConfigError(path, f"{err}, or a number of windows") from None
                if 0 < seconds < grid.shortest_seconds:
                    raise ConfigError(path, f"{value} is shorter than one window ({grid.label})")
                params[param] = grid.windows_in(seconds)
        for param in getattr(cls, "_sub_weekly_params", ()):
            if params.get(param) is True and not grid.sub_weekly:
                raise ConfigError(f"detectors.{name}.params.{param}", (
                    f"a weekday profile needs windows shorter than half a week, and windows are "
                    f"{grid.label}: leave it unset (it switches itself off) or set it to false"))
        if params != spec.params:
            specs[name] = msgspec.structs.replace(spec, params=params)
    return msgspec.structs.replace(settings, detectors=specs)
