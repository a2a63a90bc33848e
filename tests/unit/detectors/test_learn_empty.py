"""``learn_empty``: a quiet spell learned in one step leaves the state ``learn_one`` would."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from detectors.changepoint import LevelShiftDetector
from detectors.onset import OnsetDetector
from detectors.passthrough import PassThroughDetector
from detectors.spike import ContextNovelty, RecentExtremity, SeasonalRobustSpikeDetector
from detectors.trend import TrendDetector
from detectors.volume import VolumeSurgeDetector

DAY = 86_400.0


def _state(obj: Any) -> dict[str, Any]:
    """Every learned attribute, parts expanded."""
    out = {}
    for name, value in vars(obj).items():
        out[name] = _state(value) if hasattr(value, "__dict__") and not isinstance(value, type) else value
    return out


def _assert_close(a: Any, b: Any, path: str = "") -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            _assert_close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-9, abs=1e-12) or (math.isnan(a) and math.isnan(b)), path
    else:
        assert a == b, path


def _trained(make: Any, seed: int, days: int, gap_days: list[int]) -> tuple[Any, Any, list[float]]:
    """Two identical detectors fed a sparse random series, and the quiet days that follow."""
    rng = random.Random(seed)
    a, b = make(), make()
    for day in range(days):
        x = {"value": rng.lognormvariate(10, 1) if rng.random() < 0.4 else 0.0, "t": day * DAY}
        a.learn_one(x)
        b.learn_one(x)
    return a, b, [(days + g) * DAY for g in gap_days]


DETECTORS = {
    "volume": VolumeSurgeDetector,
    "volume_weekly_windows": lambda: VolumeSurgeDetector(weekday=True, warmup=3),
    "volume_down": lambda: VolumeSurgeDetector(direction="down"),
    "spike": SeasonalRobustSpikeDetector,
    "changepoint": LevelShiftDetector,
    "trend": lambda: TrendDetector(warmup=10, horizon=5, memory=30),
}


@pytest.mark.parametrize("kind", sorted(DETECTORS))
@pytest.mark.parametrize("days", [3, 20, 90])
@pytest.mark.parametrize("gap", [[0], list(range(7)), list(range(40)), [0, 1, 2, 4, 5, 9, 30]])
def test_learning_a_quiet_spell_at_once_equals_learning_it_window_by_window(
        kind: str, days: int, gap: list[int]) -> None:
    one_by_one, at_once, times = _trained(DETECTORS[kind], seed=days + len(gap), days=days, gap_days=gap)
    for t in times:
        one_by_one.learn_one({"value": 0.0, "t": t})
    at_once.learn_empty(times)
    _assert_close(_state(one_by_one), _state(at_once))
    after = {"value": 5e4, "t": times[-1] + DAY}
    assert at_once.score_one(after) == pytest.approx(one_by_one.score_one(after), rel=1e-9, abs=1e-12)


def test_nothing_to_learn_changes_nothing() -> None:
    one, other, _ = _trained(VolumeSurgeDetector, seed=1, days=30, gap_days=[])
    other.learn_empty([])
    _assert_close(_state(one), _state(other))


# -- the fast paths of spike and changepoint: exactly learn_one's arithmetic ----------

def _exact(a: Any, b: Any, path: str = "") -> None:
    """Equal state, float for float (NaN equal to NaN), in the same types."""
    assert type(a) is type(b), path
    if isinstance(a, dict):
        assert list(a) == list(b), path
        for k in a:
            _exact(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _exact(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b), path
    else:
        assert a == b, path


#: Detectors whose ``learn_empty`` is a tight loop, in settings that reach every branch:
#: seasonal phases of every kind, log scale, one side, short warm-ups and grace periods,
#: novelty off and on a hair trigger, change points that re-baseline during a quiet spell.
FAST = {
    "spike": SeasonalRobustSpikeDetector,
    "spike_log_up": lambda: SeasonalRobustSpikeDetector(
        transform="log1p", direction="up", warmup=5),
    "spike_no_novelty": lambda: SeasonalRobustSpikeDetector(
        novelty=ContextNovelty(levels=0), extremity=RecentExtremity(history_blocks=1)),
    "spike_touchy_novelty": lambda: SeasonalRobustSpikeDetector(
        warmup=0, novelty=ContextNovelty(levels=3, trigger=0.0, rest=4)),
    "changepoint": LevelShiftDetector,
    "changepoint_touchy": lambda: LevelShiftDetector(allowance=0.0, threshold=1.0, grace_period=2,
                                                     min_scale=0.01),
}
#: Sampling grids: hourly (hour-of-day phases), daily (weekday), weekly and monthly (none).
STEPS = [3600.0, DAY, 7 * DAY, 30 * DAY]


def _value(rng: random.Random) -> float:
    r = rng.random()
    if r < 0.35:
        return 0.0
    if r < 0.4:
        return rng.lognormvariate(16, 2)  # a spike
    if r < 0.45:
        return -rng.lognormvariate(5, 1)  # a correction
    return rng.lognormvariate(10, rng.choice([0.1, 1.0]))


@pytest.mark.parametrize("kind", sorted(FAST))
@pytest.mark.parametrize("seed", range(25))
def test_a_quiet_spell_learned_at_once_is_the_same_state_float_for_float(
        kind: str, seed: int) -> None:
    """Random histories of data and quiet spells: after every spell, state equal and the
    next scores equal (to 1e-12) whether the spell was learned at once or window by window."""
    rng = random.Random(seed * 1000 + len(kind))
    step = rng.choice(STEPS)
    one_by_one, at_once = FAST[kind](), FAST[kind]()
    t = rng.randrange(0, 1000) * step
    for _ in range(rng.randrange(1, 8)):
        for _ in range(rng.choice([0, 1, 3, 12, 40])):
            x = {"value": _value(rng), "t": t}
            one_by_one.learn_one(x)
            at_once.learn_one(x)
            t += step
        spell = []
        for _ in range(rng.choice([0, 1, 2, 5, 30, 100])):
            spell.append(t)
            t += step * rng.choice([1, 1, 1, 2])
        for s in spell:
            one_by_one.learn_one({"value": 0.0, "t": s})
        at_once.learn_empty(spell)
        _exact(_state(one_by_one), _state(at_once))
        for v in (0.0, 5e4, _value(rng)):
            after = {"value": v, "t": t}
            expected = one_by_one.score_one(after)
            assert at_once.score_one(after) == pytest.approx(expected, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("gap", [1, 3, 10, 60, 400])
def test_trend_learns_a_quiet_spell_that_starts_mid_excursion_as_window_by_window(gap: int) -> None:
    # a surge leaves the recent level above the long-run one: the first empty windows
    # still carry evidence (z, peak, holds), the later ones none
    rng = random.Random(gap)
    one_by_one, at_once = TrendDetector(), TrendDetector()
    days = [1e4 * rng.uniform(0.5, 1.5) for _ in range(200)] + [8e4] * 20
    for day, v in enumerate(days):
        x = {"value": v, "t": day * DAY, "count": 3 if v < 5e4 else 20}
        one_by_one.learn_one(x)
        at_once.learn_one(x)
    assert one_by_one._z_raw({"value": 0.0, "t": 220 * DAY}) > 0.0, "the spell starts with evidence"
    times = [(220 + g) * DAY for g in range(gap)]
    for t in times:
        one_by_one.learn_one({"value": 0.0, "t": t})
    at_once.learn_empty(times)
    assert _state(at_once) == _state(one_by_one), "the same floats, not only close ones"


# -- hub-pair detectors: a window without inflow and outflow --------------------------

#: Hub-pair detectors, in settings that reach every branch: no lag history, a long one,
#: a grace period that ends during a quiet spell, short horizons and warm-ups.
HUB_PAIR = {
    "passthrough": PassThroughDetector,
    "passthrough_no_lag": lambda: PassThroughDetector(max_lag_windows=0, grace_period=2),
    "passthrough_long_lag": lambda: PassThroughDetector(max_lag_windows=9, baseline_alpha=0.5,
                                                        clip=1.0, min_scale=0.01),
    "onset": OnsetDetector,
    "onset_short": lambda: OnsetDetector(horizon=3, warmup=2, min_value_eur=0.0),
}


def _flows(rng: random.Random) -> dict[str, Any]:
    """One window of a hub pair: either leg may be missing, zero, tiny, huge or malformed."""
    def leg() -> Any:
        r = rng.random()
        if r < 0.4:
            return 0.0
        if r < 0.45:
            return rng.choice([None, math.nan, math.inf, -1e4])
        return rng.lognormvariate(rng.choice([2, 10, 14]), rng.choice([0.1, 1.5]))
    x = {"inflow": leg(), "outflow": leg()}
    return {k: v for k, v in x.items() if rng.random() < 0.95}


def _empty(t: float) -> dict[str, Any]:
    return {"inflow": 0.0, "outflow": 0.0, "t": t}


@pytest.mark.parametrize("kind", sorted(HUB_PAIR))
@pytest.mark.parametrize("seed", range(25))
def test_a_hub_pair_learns_a_quiet_spell_at_once_float_for_float(kind: str, seed: int) -> None:
    """What ``score_passthrough`` relies on: catching a quiet pair up leaves the state that
    scoring it on zero legs window by window would, and so the same later scores."""
    rng = random.Random(seed * 7919 + len(kind))
    step = rng.choice(STEPS)
    one_by_one, at_once = HUB_PAIR[kind](), HUB_PAIR[kind]()
    t = rng.randrange(0, 1000) * step
    for _ in range(rng.randrange(1, 8)):
        for _ in range(rng.choice([0, 1, 3, 12, 40])):
            x = {**_flows(rng), "t": t}
            one_by_one.learn_one(x)
            at_once.learn_one(x)
            t += step
        spell = [t + i * step for i in range(rng.choice([0, 1, 2, 5, 30, 100, 250]))]
        t += len(spell) * step
        for s in spell:
            one_by_one.learn_one(_empty(s))
        at_once.learn_empty(spell)
        _exact(_state(one_by_one), _state(at_once))
        for x in (_empty(t), {**_flows(rng), "t": t}, {"inflow": 1e7, "outflow": 1e7, "t": t}):
            assert at_once.score_one(x) == one_by_one.score_one(x)


@pytest.mark.parametrize("kind", sorted(HUB_PAIR))
@pytest.mark.parametrize("seed", range(25))
def test_no_window_without_flows_scores_above_the_detectors_bound(kind: str, seed: int) -> None:
    """The bound that lets a close skip quiet hub pairs, after any history: surges, long
    quiet spells, malformed legs, the grace period and warm-up included."""
    rng = random.Random(seed * 104729 + len(kind))
    det = HUB_PAIR[kind]()
    bound = det.empty_score_bound
    assert bound is not None
    for i in range(rng.choice([5, 60, 300])):
        t = i * DAY
        x = {**_flows(rng), "t": t} if rng.random() < rng.choice([0.1, 0.5, 0.9]) else _empty(t)
        for empty in (_empty(t), {"t": t}, {"inflow": 5e6, "outflow": 0.0, "t": t}):
            if empty.get("inflow") and kind.startswith("passthrough"):
                continue  # an inflow alone is not an empty window
            score = det.score_one(empty)
            assert score <= bound, (i, score, bound)
        det.learn_one(x)
    assert bound == (0.0 if kind.startswith("onset") else pytest.approx(0.00247, abs=1e-5))
