"""Influencers of a rollup alert: which lanes, exporters and consignees carried it.

A rollup series (all origins into one destination, a CHPL tier, an HS4/HS2 group)
sums many parts; its alert is only actionable once it names the parts that moved.
Per open window and rollup series this keeps, for each kind of contributor, the
value each contributed; per series, each contributor's usual value per window (an
exponentially weighted mean). A contributor's *excess* is how far this window's
value is beyond its usual one, in the alert's direction; its ``share`` is its part
of the summed excess of its kind. Top :data:`TOP` per kind go into the alert.

Memory is bounded like the largest-declarations evidence of a window aggregate:
at most :data:`CAPACITY` contributors per kind, window and series, kept by the
Space-Saving rule (a newcomer replaces the smallest and inherits its sum), which
keeps every contributor worth more than 1/CAPACITY of the total. Plain dicts and
lists only, so the state codec writes it without an allowlist entry of its own.

>>> t = InfluenceTracker()
>>> for day in range(60):  # DE ships 100 EUR of chips to KG a day
...     t.add(float(day), ["tier:*>KG:T1"], "hs6:DE>KG:854231", "DE1", "KG1", 100.0)
...     t.learn(t.close(float(day)))
>>> t.add(60.0, ["tier:*>KG:T1"], "hs6:DE>KG:854231", "DE1", "KG1", 100.0)
>>> t.add(60.0, ["tier:*>KG:T1"], "hs6:LT>KG:854231", "LT9", "KG1", 5000.0)
>>> now = t.close(60.0)
>>> [(i.kind, i.value, i.share) for i in t.influencers("tier:*>KG:T1", now, up=True)][:3]
[('lane', 'hs6:LT>KG:854231', 0.9991), ('lane', 'hs6:DE>KG:854231', 0.0009), ('exporter', 'LT9', 0.9991)]
"""

from __future__ import annotations

from collections.abc import Sequence

from streams.events import Influencer

__all__ = ["KINDS", "CAPACITY", "TOP", "BASELINE_RATE", "InfluenceTracker"]

#: The kinds of contributor, in the order their sums are kept.
KINDS: tuple[str, ...] = ("lane", "exporter", "consignee")
#: Contributors kept per kind, window and series.
CAPACITY = 16
#: Influencers of each kind named in an alert.
TOP = 5
#: Weight of the newest window in a contributor's usual value (about a 20-window memory).
BASELINE_RATE = 0.05
#: Usual values below this many EUR per window are forgotten.
_FORGET_BELOW = 1.0

#: Per kind (in KINDS order): contributor -> EUR.
Sums = list[dict[str, float]]


def _replace_smallest(sums: dict[str, float], item: str, value: float) -> None:
    """Space-Saving: the newcomer takes the smallest one's place and count.

    The smallest is the first one in dict order, as ``min(sums, key=sums.__getitem__)``
    would pick (the sums are finite: validation rejects non-finite values), found
    about twice as fast.
    """
    smallest = min(sums.values())
    for key, v in sums.items():
        if v == smallest:
            break
    del sums[key]
    sums[item] = smallest + value


class InfluenceTracker:
    """Contributions per open window and rollup series, and each contributor's usual value."""

    def __init__(self) -> None:
        #: window start -> rollup series key -> sums per kind.
        self.open: dict[float, dict[str, Sums]] = {}
        #: rollup series key -> usual value per window, per kind, as of ``learned_at[key]``.
        self.usual: dict[str, Sums] = {}
        #: Windows learned (calls of :meth:`learn`).
        self.learned = 0
        #: rollup series key -> windows learned when its usual values were last brought up
        #: to date: the windows after it had no contribution of that series (lazy decay).
        self.learned_at: dict[str, int] = {}

    def add(self, window_start: float, keys: Sequence[str], lane: str, exporter: str,
            consignee: str, value: float) -> None:
        """Count one declaration's value towards the rollups ``keys`` of its window."""
        window = self.open.get(window_start)
        if window is None:
            window = self.open[window_start] = {}
        items = (lane, exporter, consignee)
        for key in keys:
            sums = window.get(key)
            if sums is None:
                sums = window[key] = [{}, {}, {}]
            for part, item in zip(sums, items):  # per kind, Space-Saving
                found = part.get(item)
                if found is not None:
                    part[item] = found + value
                elif len(part) < CAPACITY:
                    part[item] = value
                else:
                    _replace_smallest(part, item, value)

    def close(self, window_start: float) -> dict[str, Sums]:
        """The contributions of a closed window (and forget them here)."""
        return self.open.pop(window_start, {})

    def influencers(self, key: str, contributions: dict[str, Sums], up: bool) -> list[Influencer]:
        """Top contributors of each kind to what ``key`` moved in this window, before :meth:`learn`."""
        now = contributions.get(key) or [{}, {}, {}]
        usual = self.current(key) or [{}, {}, {}]
        out: list[Influencer] = []
        for kind, seen, before in zip(KINDS, now, usual, strict=True):
            moved = {}
            for item in seen.keys() | before.keys():
                delta = seen.get(item, 0.0) - before.get(item, 0.0)
                delta = delta if up else -delta
                if delta > 0:
                    moved[item] = delta
            total = sum(moved.values())
            if total <= 0:
                continue
            top = sorted(moved.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP]
            out += [Influencer(kind=kind, value=item, share=round(v / total, 4))  # type: ignore[arg-type]
                    for item, v in top]
        return out

    def current(self, key: str) -> Sums | None:
        """``key``'s usual values as of the last :meth:`learn` (None when it has none).

        A series without a contribution in a window only decays there, so its decay is
        left until its values are next read or learned (see :meth:`learn`): this applies
        the windows it missed first.
        """
        usual = self.usual.get(key)
        if usual is None:
            return None
        missed = self.learned - self.learned_at.get(key, self.learned)
        if missed:
            self.learned_at[key] = self.learned
            _decay(usual, missed)
            if not any(usual):
                del self.usual[key], self.learned_at[key]
                return None
        return usual

    def learn(self, contributions: dict[str, Sums]) -> None:
        """Move every rollup's usual values towards this closed window's (absent ones to 0).

        Per kind, the known contributors decay towards this window's value, then the
        newcomers enter (a newcomer's mean is ``BASELINE_RATE * value``, the same float
        as the update from 0). Only the order in which newcomers enter differs from a
        loop over the union of both, and nothing reads that order.

        Costs the series that contributed to this window, not every series with usual
        values: a series without a contribution would only decay towards 0, and it does
        so, window by window with the same floats, when it is next read or learned
        (:meth:`current`). Contributors decay independently and a decay never adds one,
        so the delayed steps give the same values as steps taken every window.
        """
        usual_of = self.usual
        learned_at = self.learned_at
        rate, floor = BASELINE_RATE, _FORGET_BELOW
        for key, now in contributions.items():
            usual = self.current(key)
            if usual is None:
                usual = usual_of[key] = [{}, {}, {}]
            learned_at[key] = self.learned + 1
            for kind in range(3):
                seen = now[kind]
                before = usual[kind]
                get = seen.get
                after = {}
                for item, mean in before.items():
                    mean += rate * (get(item, 0.0) - mean)
                    if mean >= floor:
                        after[item] = mean
                for item, value in seen.items():
                    if item not in before:
                        mean = rate * value
                        if mean >= floor:
                            after[item] = mean
                if len(after) > CAPACITY:
                    for item in sorted(after, key=lambda i: (after[i], i))[: len(after) - CAPACITY]:
                        del after[item]
                usual[kind] = after
            if not any(usual):
                del usual_of[key], learned_at[key]
        self.learned += 1

    def settle(self) -> None:
        """Bring every series' usual values up to date now (before reading ``usual`` directly)."""
        for key in list(self.usual):
            self.current(key)

    def forget(self, keys: list[str]) -> None:
        """Drop the usual values of series that are no longer watched."""
        for key in keys:
            self.usual.pop(key, None)
            self.learned_at.pop(key, None)


def _decay(usual: Sums, windows: int) -> None:
    """``windows`` steps of :meth:`InfluenceTracker.learn` without a contribution, in place:
    each usual value decays towards 0 (the same float operations) and is forgotten below
    the floor."""
    rate, floor = BASELINE_RATE, _FORGET_BELOW
    for kind in range(3):
        after = {}
        for item, mean in usual[kind].items():
            for _ in range(windows):
                mean += rate * (0.0 - mean)
                if not mean >= floor:
                    break
            else:
                after[item] = mean
        usual[kind] = after
