"""The influence tracker's per-record and per-close loops give what the plain rules give.

:class:`streams.influence.InfluenceTracker` runs on the hot path, so its Space-Saving
step and its learning of usual values are written for speed. These tests replay
random declarations (few contributors and many, ties included) through it and
through a literal transcription of the rules, and require the same contributions,
the same usual values and the same influencers. The tracker decays a series' usual
values only when it next reads or learns them (the plain rules decay every series every
window), so rollups go quiet for spells of random length, influencers are read on some
days only, and the usual values are compared on a settled copy (settling the tracker
itself would decay it eagerly).
"""

from __future__ import annotations

import copy
import random

import pytest

from streams.influence import BASELINE_RATE, CAPACITY, InfluenceTracker

_FORGET_BELOW = 1.0


class _Reference:
    """The rules as the module docstring states them, one dict operation at a time."""

    def __init__(self) -> None:
        self.open: dict[float, dict[str, list[dict[str, float]]]] = {}
        self.usual: dict[str, list[dict[str, float]]] = {}

    @staticmethod
    def _add(sums: dict[str, float], item: str, value: float) -> None:
        if item in sums:
            sums[item] += value
        elif len(sums) < CAPACITY:
            sums[item] = value
        else:  # the newcomer takes the (first) smallest one's place and count
            smallest = min(sums, key=sums.__getitem__)
            sums[item] = sums.pop(smallest) + value

    def add(self, start: float, keys: list[str], lane: str, exporter: str, consignee: str,
            value: float) -> None:
        window = self.open.setdefault(start, {})
        for key in keys:
            sums = window.setdefault(key, [{}, {}, {}])
            for part, item in zip(sums, (lane, exporter, consignee), strict=True):
                self._add(part, item, value)

    def learn(self, contributions: dict[str, list[dict[str, float]]]) -> None:
        for key in contributions.keys() | self.usual.keys():
            now = contributions.get(key) or [{}, {}, {}]
            usual = self.usual.setdefault(key, [{}, {}, {}])
            for seen, before in zip(now, usual, strict=True):
                for item in seen.keys() | before.keys():
                    mean = before.get(item, 0.0)
                    mean += BASELINE_RATE * (seen.get(item, 0.0) - mean)
                    if mean >= _FORGET_BELOW:
                        before[item] = mean
                    else:
                        before.pop(item, None)
                if len(before) > CAPACITY:
                    for item in sorted(before, key=lambda i: (before[i], i))[: len(before) - CAPACITY]:
                        del before[item]
            if not any(usual):
                del self.usual[key]


def _as_items(table: dict[str, list[dict[str, float]]]) -> dict[str, list[list[tuple[str, float]]]]:
    """Contents only: the order in which a learned contributor entered is not part of the rules."""
    return {key: [sorted(part.items()) for part in sums] for key, sums in table.items()}


@pytest.mark.parametrize("seed", range(12))
def test_same_contributions_usual_values_and_influencers_as_the_plain_rules(seed: int) -> None:
    rng = random.Random(seed)
    parties = rng.choice([5, 40, 400])  # below capacity, above it, far above it
    rollups = [f"tier:*>KG:T{i}" for i in range(6)]
    fast, plain = InfluenceTracker(), _Reference()
    for day in range(60):
        start = float(day)
        active = rng.sample(rollups, rng.randrange(0, 4))  # the others are quiet today
        for _ in range(rng.randrange(0, 120) if active else 0):
            # whole euros from a small set: equal sums (ties for the smallest) are common
            value = float(rng.choice([1, 2, 5, 50, 500]) if rng.random() < 0.7
                          else round(rng.lognormvariate(6, 2), 2))
            args = (start, rng.sample(active, rng.randrange(1, len(active) + 1)),
                    f"hs6:{rng.choice('ABCDEFGH')}>KG:854231", f"X{rng.randrange(parties)}",
                    f"C{rng.randrange(parties)}", value)
            fast.add(*args)
            plain.add(*args)
        # the contributions are identical, order of entry included (Space-Saving depends on it)
        assert {k: [list(p.items()) for p in v] for k, v in fast.open.get(start, {}).items()} == \
            {k: [list(p.items()) for p in v] for k, v in plain.open.get(start, {}).items()}
        now_fast, now_plain = fast.close(start), plain.open.pop(start, {})
        for key in rollups:
            if rng.random() < 0.3:  # an alert reads a series' influencers now and then
                for up in (True, False):
                    assert fast.influencers(key, now_fast, up) == InfluenceTracker.influencers(
                        _as_tracker(plain), key, now_plain, up)
        fast.learn(now_fast)
        plain.learn(now_plain)
        settled = copy.deepcopy(fast)
        settled.settle()
        assert _as_items(settled.usual) == _as_items(plain.usual)


def test_a_quiet_series_decays_when_read_as_it_would_have_every_window() -> None:
    fast, plain = InfluenceTracker(), _Reference()
    for tracker in (fast, plain):
        tracker.add(0.0, ["tier:*>KG:T1"], "hs6:DE>KG:854231", "DE1", "KG1", 1e6)
    fast.learn(fast.close(0.0))
    plain.learn(plain.open.pop(0.0))
    for _ in range(150):  # quiet: 1e6 * 0.05 decays below the 1 EUR floor after ~210 windows
        fast.learn({})
        plain.learn({})
    assert fast.usual["tier:*>KG:T1"][0]["hs6:DE>KG:854231"] == 5e4  # not decayed yet
    assert fast.current("tier:*>KG:T1") == plain.usual["tier:*>KG:T1"]
    for _ in range(100):
        fast.learn({})
        plain.learn({})
    assert "tier:*>KG:T1" not in plain.usual
    assert fast.current("tier:*>KG:T1") is None and "tier:*>KG:T1" not in fast.usual


def _as_tracker(plain: _Reference) -> InfluenceTracker:
    tracker = InfluenceTracker()
    tracker.usual = plain.usual
    return tracker
