"""The native ``volume`` (``VolumeSurgeDetector``) leaves the Python detector's state, float
for float, and gives its scores, on the calls a quiet series' close makes.

Every config's prototype is replayed on its own unit-test inputs and on pipeline-shaped
runs (quiet spells learned with ``learn_empty``, windows scored with ``score_then_learn``)
on daily, weekly and calendar-month grids; a trace of the same runs on the Python side
proves each branch of the detector was reached, so no case passes by never getting there.
"""

from __future__ import annotations

import copy
import math
import random
from collections import Counter
from typing import Any

import pytest

from detectors.volume import TAIL_KNEE_Z, VolumeSurgeDetector, _poisson_z, _score_of, _value
from streams import tradewatch_native

from .conftest import CONFIGS, DAY, Oracle, close_ops, grid, prototypes

Op = tuple[Any, ...]


def _op(kind: str, x: dict[str, Any], learn: bool = True) -> Op:
    """An op of window ``x``: a missing value or time is NaN (``_value`` reads None and NaN
    alike as 0, and a time that is not a finite number as no time)."""
    value = x.get("value")
    t = x.get("t")
    value = math.nan if value is None else value
    t = math.nan if t is None else t
    return ("learn_one", value, t, 1) if kind == "learn_one" else ("score_then_learn", value, t, 1, learn)


def trace(prototype: VolumeSurgeDetector, ops: list[Op]) -> Counter[str]:
    """Which branches of the Python detector ``ops`` reach (replayed on a copy)."""
    d = copy.deepcopy(prototype)
    seen: Counter[str] = Counter()
    for op in ops:
        if op[0] == "learn_empty":
            times = op[1]
            one_by_one = len(times) if d.span <= 2 else min(len(times), max(0, d.warmup - d._n))
            seen["empty: one by one"] += one_by_one > 0
            closed = len(times) > one_by_one
            seen["empty: closed form"] += closed
            mean_before = d._mean
            d.learn_empty(list(times))
            if closed:
                profiled = mean_before > 0 and d._interval <= 3.5 * DAY
                seen["empty: closed form, weekday profile"] += profiled
                seen["empty: closed form, no profile"] += not profiled
            continue
        x = {"value": op[1], "t": op[2], "count": op[3]}
        warm = d._n >= d.warmup
        if not warm:
            seen["warm-up window"] += 1
        elif op[0] == "score_then_learn":
            mean, spread = d._expected(x)
            raw = _value(x)
            seen["winsorised"] += raw > mean + d.clip * spread
            z_now = d._z_now(x)
            sustained = min(z_now, d._z_prev)
            seen["sustained surge"] += sustained > 0
            window = [*d._recent[-(d.span - 1):], raw]
            active = sum(1 for v in window if v > 0)
            z_active = _poisson_z(active, len(window) * d._active)
            seen["poisson over several active windows"] += active >= 2 and z_active > 0
            spread_1 = max(math.sqrt(max(d._var, 0.0)), d.min_spread * d._mean, 1e-9)
            z_total = (sum(window) - len(window) * d._mean) / d._total_spread(len(window), d._mean, spread_1)
            z = d._z(x)
            seen["run evidence beats the sustained surge"] += z > max(0.0, sustained)
            if z > max(0.0, sustained) and z_total < z_active:
                seen["the run's total decides"] += 1
                seen["the run's total decides, summed in an order that matters"] += sum(window) != sum(window[::-1])
            seen["beyond the tail knee"] += z > TAIL_KNEE_Z
            seen["weekday factor != 1"] += d._factor(x) != 1.0
        if op[0] == "learn_one":
            d.learn_one(x)
        else:
            seen["not learned"] += not op[4]
            d.score_then_learn(x, None, op[4])
    seen["weekday profile learned"] += d._dow != [1.0] * 7
    return seen


def _runs(kind: str, seed: int, n: int = 200) -> list[list[Op]]:
    """Pipeline-shaped runs on grid ``kind``: dense, sparse and very sparse."""
    times = grid(kind, n)
    return [close_ops(random.Random(seed * 100 + i), times, density) for i, density in enumerate([1.0, 0.3, 0.05])]


def test_every_config_is_ported(oracle_for: Any) -> None:
    for config in CONFIGS:
        assert tradewatch_native.unsupported(oracle_for(config, "volume").spec) is None, config


@pytest.mark.parametrize("config", CONFIGS)
def test_unit_test_inputs(oracle_for: Any, config: str) -> None:
    o = oracle_for(config, "volume")
    inputs = VolumeSurgeDetector._unit_test_inputs()
    learned = [_op("learn_one", x) for x in inputs]
    scored = [_op("score_then_learn", x, learn=i % 5 != 4) for i, x in enumerate(inputs)]
    mixed = [_op("learn_one" if i % 2 else "score_then_learn", x) for i, x in enumerate(inputs)]
    o.check(learned, every=4)
    o.check(scored, every=4)
    o.check(learned + scored + mixed, every=9)
    seen = trace(prototypes(config)["volume"], learned + scored)
    assert seen["warm-up window"] and seen["winsorised"] and seen["not learned"], seen


@pytest.mark.parametrize("config", CONFIGS)
def test_pipeline_runs_on_day_week_and_month_grids(oracle_for: Any, config: str) -> None:
    """Dense and sparse close runs, several seeds, checked every 50 ops; the same runs reach
    every branch of the detector (traced on the Python side)."""
    o = oracle_for(config, "volume")
    seen: Counter[str] = Counter()
    for kind in ("day", "week", "month"):
        for seed in range(2):
            for ops in _runs(kind, seed):
                o.check(ops, every=50)
                seen += trace(prototypes(config)["volume"], ops)
    for branch in ("warm-up window", "winsorised", "sustained surge", "poisson over several active windows",
                   "run evidence beats the sustained surge", "beyond the tail knee", "weekday factor != 1",
                   "not learned", "empty: one by one", "empty: closed form", "empty: closed form, weekday profile",
                   "empty: closed form, no profile", "weekday profile learned"):
        assert seen[branch] > 0, (branch, seen)


def test_quiet_start_and_short_spans() -> None:
    """A detector without warm-up whose first call is ``learn_empty`` (no previous time, a
    zero mean: no weekday profile), spans of 1 and 2 (quiet windows learned one by one;
    span 2 keeps every total, as Python's ``[-0:]`` does) and the longest span ported."""
    times = grid("day", 120)
    for params in ({"warmup": 0}, {"warmup": 0, "span": 2}, {"span": 1, "warmup": 3}, {"span": 2}, {"span": 30},
                   {"span": 3, "rate": 0.2, "clip": 2, "min_spread": 0}):
        o = Oracle("volume", VolumeSurgeDetector(**params))
        rng = random.Random(len(str(params)))
        ops: list[Op] = [("learn_empty", times[:10])]
        ops += close_ops(rng, times[10:], 0.4)
        o.check(ops, every=25)
        seen = trace(o.packer.build("volume", "up", o.fresh), ops)
        assert seen["empty: one by one" if o.spec["params"]["span"] <= 2 else "empty: closed form"], (params, seen)
        if params.get("span") == 2:
            want, _ = o.python(o.fresh, ops)
            assert len(want[4]) > 2  # _recent grew: the [-0:] slice


def test_odd_times_and_values(oracle_for: Any) -> None:
    """Times far from now (before 1970, past 2**53 days: the weekday of an exact int),
    repeated and going back, missing; values negative, NaN, infinite, zero, -0.0, and
    so large that the spread (then the mean) overflows."""
    o = oracle_for("deploy/tradewatch.toml", "volume")
    base = [("score_then_learn", 1e4 * (1 + i % 3), 1.6e9 + i * DAY, 1, True) for i in range(20)]
    odd = [1e20, 1e300, -1e18, -86_400.0 * 12_345.5, 1.6e9 + 20 * DAY, 1.6e9 + 20 * DAY, 1.6e9, math.nan,
           math.inf, -math.inf, 2.0 ** 60 + 3 * DAY, -(2.0 ** 70)]
    ops = list(base)
    for i, t in enumerate(odd):
        ops.append(("learn_one", 5e3 * i, t, 1))
        ops.append(("score_then_learn", 2e4, t, 2, i % 2 == 0))
    ops += [("score_then_learn", v, 1.7e9 + i * DAY, 1, True)
            for i, v in enumerate([-1.0, math.nan, math.inf, -math.inf, 0.0, -0.0, 3e3])]
    ops += [("learn_empty", [1.7e9 + (10 + i) * DAY for i in range(5)])]
    o.check(ops, every=3)
    values = [1e200, 1e300] + [1.7e308] * 7 + [5.0, 3e4, 2e4, 0.0, 7e4]
    huge = base + [("score_then_learn", v, 1.8e9 + i * DAY, 1, True) for i, v in enumerate(values)]
    huge += [("learn_empty", [1.8e9 + (20 + i) * DAY for i in range(3)]), ("score_then_learn", 1.0, 1.9e9, 1, True)]
    o.check(huge, every=1)
    want, _ = o.python(o.fresh, huge[:len(base) + 9])
    assert not math.isfinite(want[5]), want  # the mean overflowed: hypot's inf and NaN paths ran
    # a sparse lane overflowed: the run's total is NaN, and min/max keep it as the builtins do
    sparse = [("score_then_learn", 1e4 if i % 5 == 0 else 0.0, 1.6e9 + i * DAY, 1, True) for i in range(40)]
    sparse += [("score_then_learn", 1.7e308, 1.6e9 + (40 + i) * DAY, 1, True) for i in range(6)]
    o.check(sparse, every=1)
    _, scores = o.python(o.fresh, sparse)
    assert scores[-1] == _score_of(0.0), scores  # a NaN total: no run evidence


def test_sparse_lane_that_starts_shipping_most_days(oracle_for: Any) -> None:
    """Spells of one active day in four and of nine in ten: the run's total (a sum of
    several non-zero windows, where the order of the additions shows) decides the score."""
    seen: Counter[str] = Counter()
    for config in CONFIGS:
        o = oracle_for(config, "volume")
        for seed in range(2):
            rng = random.Random(seed)
            ops: list[Op] = []
            for i, t in enumerate(grid("day", 300)):
                active = rng.random() < (0.25 if (i // 40) % 2 == 0 else 0.9)
                ops.append(("score_then_learn", 1e4 * math.exp(rng.gauss(0.0, 0.6)) if active else 0.0, t, 1, True))
            o.check(ops, every=50)
            seen += trace(prototypes(config)["volume"], ops)
    assert seen["the run's total decides, summed in an order that matters"] > 0, seen


def test_score_to_the_far_tail(oracle_for: Any) -> None:
    """A lane that jumps a hundredfold for weeks: scores past the knee (the Pareto tail),
    winsorised learning with the leak, then a return to quiet learned in one step."""
    for config in CONFIGS:
        o = oracle_for(config, "volume")
        times = grid("day", 200)
        ops: list[Op] = [("score_then_learn", 1e4, t, 2, True) for t in times[:60]]
        ops += [("score_then_learn", 1e6, t, 40, True) for t in times[60:90]]
        ops += [("learn_empty", times[90:190])] + [("score_then_learn", 1e4, t, 2, True) for t in times[190:]]
        o.check(ops, every=10)
        _, scores = o.python(o.fresh, ops)
        assert max(scores) > _score_of(TAIL_KNEE_Z), config


@pytest.mark.parametrize(("param", "value", "why"), [
    ("direction", "down", "direction"), ("direction", "both", "direction"), ("level_cv", 0.5, "level_cv"),
    ("persistence", False, "persistence"), ("weekday", False, "weekday"), ("span", 0, "span"),
    ("span", 31, "span"), ("span", 5.0, "span"), ("warmup", 14.0, "warmup"), ("hypot", 1, "parameters"),
])
def test_unported_parameters_are_refused(oracle_for: Any, param: str, value: Any, why: str) -> None:
    spec = oracle_for("deploy/tradewatch.toml", "volume").spec
    changed = {**spec, "params": {**spec["params"], param: value}}
    reason = tradewatch_native.unsupported(changed)
    assert reason is not None and why in reason, reason
    with pytest.raises(ValueError, match=why):
        tradewatch_native.replay(changed, oracle_for("deploy/tradewatch.toml", "volume").fresh, [])


def test_another_layout_is_refused(oracle_for: Any) -> None:
    spec = oracle_for("deploy/tradewatch.toml", "volume").spec
    renamed = {**spec, "names": [*spec["names"][:-1], "_gap"]}
    assert "learned attributes" in tradewatch_native.unsupported(renamed)
    fewer = {**spec, "params": {k: v for k, v in spec["params"].items() if k != "clip"}}
    assert "parameters" in tradewatch_native.unsupported(fewer)
