"""How much evidence stands behind a series surge: declarations weighed, not just counted.

A bare minimum of declarations per window (the old ``min_declarations`` rule) is wrong
both ways. It drops the sparse, high-value lanes where evasion lives: a re-routing of
chips through Kyrgyzstan may be one declaration a day, each window far over its range,
and no single window ever holds three. And it passes the commonest false surge of a
lumpy lane: three declarations, one of them a single large order that carries the
whole excess (a one-off, however improbable). So the alert policy weighs:

* **one-offs**: a window whose excess vanishes without its largest declaration
  (``observed - largest <= expected_high``) is a single shipment's doing; its
  declarations count as one (``alerts.discount_largest``);
* **persistence**: the evidence of a window adds the (weighed) declarations of its
  series' earlier windows that were over threshold too, within ``alerts.persistence``
  (any detector, surge side): a surge that lasts accumulates what one window lacks;
* **value for its tier**: with ``alerts.heavy_excess_factor``, a surge whose excess
  reaches that multiple of its goods' materiality floor (halved for CHPL tiers 1 and 2)
  is published on thinner evidence.

A window without declarations never has evidence for a surge (the scoring relies on it
to skip quiet series: :mod:`streams.scoring`, "Quiet series").

The ledger of recent over-threshold windows is a plain ``{series key: {window start:
weight}}`` dict, part of the alert policy's state, so the checkpoint codec stores it
as it stores the cooldowns; it keeps only windows within the persistence span.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["Ledger", "heavy_floor", "record", "support", "sweep", "window_weight"]

#: series key -> {window start: weighed declarations of that over-threshold window}.
Ledger = dict[str, dict[float, int]]
#: CHPL tiers whose materiality floor counts half for heavy sparse evidence.
PRIORITY_TIERS = frozenset({"1", "2"})


def window_weight(count: int, observed: float, expected_high: float, largest: float,
                  discount_largest: bool = True) -> int:
    """The declarations a window's own evidence is worth.

    >>> window_weight(3, observed=100.0, expected_high=40.0, largest=20.0)
    3
    >>> window_weight(3, observed=100.0, expected_high=40.0, largest=70.0)  # one big order
    1
    >>> window_weight(0, observed=0.0, expected_high=40.0, largest=0.0)
    0
    """
    if count <= 0:
        return 0
    if discount_largest and count > 1 and observed - largest <= expected_high:
        return 1
    return count


def support(ledger: Ledger, key: str, window_start: float, span: int,
            windows_between: Callable[[float, float], int]) -> int:
    """Weighed declarations of ``key``'s over-threshold windows in the ``span`` windows
    before the one starting at ``window_start`` (that window itself excluded)."""
    if span <= 0:
        return 0
    seen = ledger.get(key)
    if not seen:
        return 0
    return sum(w for start, w in seen.items() if 0 < windows_between(start, window_start) <= span)


def record(ledger: Ledger, key: str, window_start: float, weight: int) -> None:
    """Note an over-threshold window of ``key`` (several detectors: the window counts once)."""
    seen = ledger.setdefault(key, {})
    seen[window_start] = max(weight, seen.get(window_start, 0))


def sweep(ledger: Ledger, window_start: float, span: int,
          windows_between: Callable[[float, float], int]) -> None:
    """Forget windows too old to support the window starting at ``window_start``."""
    for key in list(ledger):
        seen = ledger[key]
        for start in [s for s in seen if windows_between(s, window_start) > span]:
            del seen[start]
        if not seen:
            del ledger[key]


def heavy_floor(tier: str, floor_chpl: float, floor_other: float, factor: float) -> float:
    """The excess (EUR) above which a surge needs no more declarations; inf when off.

    >>> heavy_floor("1", 10_000.0, 1e6, 10.0), heavy_floor("4A", 10_000.0, 1e6, 10.0)
    (50000.0, 100000.0)
    >>> heavy_floor("none", 10_000.0, 1e6, 0.0)
    inf
    """
    floor = floor_other if tier == "none" else floor_chpl
    if factor <= 0 or floor <= 0:
        return float("inf")
    return factor * floor * (0.5 if tier in PRIORITY_TIERS else 1.0)
