"""How much evidence stands behind a series surge: declarations weighed, not just counted.

A bare minimum of declarations per window (the old ``min_declarations`` rule) is wrong
both ways. It drops the sparse, high-value lanes where evasion lives: a re-routing of
chips through Kyrgyzstan may be one declaration a day, each window far over its range,
and no single window ever holds three. And it passes the commonest false surge of a
lumpy lane: three declarations, one of them a single large order that carries the
whole excess (a one-off, however improbable). So the alert policy weighs:

* **carrying declarations** (``alerts.weigh_declarations``): a window counts the
  fewest of its largest declarations whose removal brings it back into its expected
  range (``observed - top_1 - ... - top_k <= expected_high``): a surge that vanishes
  without one big order is one shipment's doing, however many small ones came along;
* **persistence**: the series' earlier windows that were over threshold too, within
  ``alerts.persistence`` (any detector, surge side), add their carrying declarations;
  such a run is published once the sum reaches ``alerts.persistence_min_declarations``,
  one more than a window alone needs (``alerts.min_declarations``), because a sparse
  lane's ordinary bursts come in pairs of windows far more often than its surges do;
* **value for its tier**: with ``alerts.heavy_excess_factor``, a surge whose excess
  reaches that multiple of its goods' materiality floor (halved for CHPL tiers 1 and 2)
  is published on thinner evidence (off in the shipped config: on the synthetic full
  set it multiplied the false alerts tenfold).

A window without declarations never has evidence for a surge (the scoring relies on it
to skip quiet series: :mod:`streams.scoring`, "Quiet series").

The ledger of recent over-threshold windows is a plain ``{series key: {window start:
weight}}`` dict, part of the alert policy's state, so the checkpoint codec stores it
as it stores the cooldowns; it keeps only windows within the persistence span.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["Ledger", "heavy_floor", "passes", "record", "support", "sweep", "window_weight"]

#: series key -> {window start: weighed declarations of that over-threshold window}.
Ledger = dict[str, dict[float, int]]
#: CHPL tiers whose materiality floor counts half for heavy sparse evidence.
PRIORITY_TIERS = frozenset({"1", "2"})


def window_weight(count: int, observed: float, expected_high: float,
                  top: tuple[float, ...] | list[float], weigh: bool = True) -> int:
    """The declarations that carry a window's excess (``top``: its largest values, largest
    first); ``count`` when even without all of ``top`` it stays over range, or unweighed.

    >>> window_weight(3, observed=100.0, expected_high=10.0, top=(34.0, 33.0, 33.0))
    3
    >>> window_weight(3, observed=100.0, expected_high=40.0, top=(70.0, 20.0, 10.0))  # one order
    1
    >>> window_weight(5, observed=100.0, expected_high=40.0, top=(30.0, 25.0, 20.0))  # 2 small
    3
    >>> window_weight(0, observed=0.0, expected_high=40.0, top=())
    0
    """
    if count <= 0:
        return 0
    if not weigh:
        return count
    rest = observed
    for k, value in enumerate(top, start=1):
        rest -= value
        if rest <= expected_high:
            return min(k, count)
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


def passes(weight: int, earlier: int, min_declarations: int, run_min_declarations: int) -> bool:
    """Whether a window of ``weight`` carrying declarations, after ``earlier`` ones in its
    series' recent over-threshold windows, has the evidence to be published.

    >>> passes(3, 0, 3, 4), passes(2, 0, 3, 4), passes(2, 1, 3, 4), passes(2, 2, 3, 4)
    (True, False, False, True)
    """
    if weight <= 0:
        return False
    return weight >= min_declarations or (earlier > 0 and weight + earlier >= run_min_declarations)
