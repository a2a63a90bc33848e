"""The difference between two runs' alerts (or incidents): added, removed, re-graded.

Pure: two lists in, a :class:`Diff` out; no pipeline, no I/O.
:mod:`evaluation.backtest` runs two configs and diffs their output with it.

Items match by their stable identity: ``alert_id`` for alerts (a hash of the
detector name, the series key or declaration id and the window start; see
:func:`streams.alerts.alert_id`, no config in it), ``incident_id`` for incidents.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from detectors.calibration import SEVERITY_LEVELS
from streams.events import TradeAlert, TradeIncident

__all__ = ["Diff", "diff_alerts", "diff_incidents"]

T = TypeVar("T", TradeAlert, TradeIncident)
_RANK = {s: i for i, s in enumerate(SEVERITY_LEVELS)}


@dataclasses.dataclass(frozen=True)
class Diff(Generic[T]):
    """What the candidate run changes against the baseline run, by stable identity."""

    added: list[T]
    removed: list[T]
    #: (baseline's, candidate's) for the same identity with another severity
    severity_changed: list[tuple[T, T]]
    unchanged: int

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.severity_changed)

    def counts(self) -> dict[str, int]:
        return {
            "added": len(self.added),
            "removed": len(self.removed),
            "severity_changed": len(self.severity_changed),
            "unchanged": self.unchanged,
        }


def _by_identity(items: Iterable[T], identity: Callable[[T], str]) -> dict[str, T]:
    """One item per identity; a repeated identity keeps its most severe item (then the
    highest surprise): a run never publishes two alerts with one id, but a file might."""
    out: dict[str, T] = {}
    for item in items:
        key = identity(item)
        known = out.get(key)
        if known is None or (_RANK[item.severity], item.surprise) > (
            _RANK[known.severity],
            known.surprise,
        ):
            out[key] = item
    return out


def _diff(before: Iterable[T], after: Iterable[T], identity: Callable[[T], str]) -> Diff[T]:
    old = _by_identity(before, identity)
    new = _by_identity(after, identity)

    def ranked(items: Iterable[T]) -> list[T]:
        return sorted(items, key=lambda x: (-x.surprise, identity(x)))

    changed = [(old[k], new[k]) for k in old.keys() & new.keys() if old[k].severity != new[k].severity]
    changed.sort(key=lambda pair: (-pair[1].surprise, identity(pair[1])))
    return Diff(
        added=ranked(new[k] for k in new.keys() - old.keys()),
        removed=ranked(old[k] for k in old.keys() - new.keys()),
        severity_changed=changed,
        unchanged=len(old.keys() & new.keys()) - len(changed),
    )


def diff_alerts(before: Iterable[TradeAlert], after: Iterable[TradeAlert]) -> Diff[TradeAlert]:
    """Alerts only the candidate raises, only the baseline raises, and both at other
    severities; each list ranked by ``surprise``, largest first.

    >>> diff_alerts([], []).empty
    True
    """
    return _diff(before, after, lambda a: a.alert_id)


def diff_incidents(
    before: Iterable[TradeIncident], after: Iterable[TradeIncident]
) -> Diff[TradeIncident]:
    """The same over incidents (give each run's highest revisions; a lower revision of
    the same incident would otherwise stand in for it)."""
    return _diff(before, after, lambda i: i.incident_id)
