"""The native LevelShiftDetector (``changepoint``) leaves the Python detector's state and scores.

Every case replays the same calls on ``detectors.changepoint.LevelShiftDetector`` and on
its native twin (``native/src/changepoint.rs``) and compares the packed values (type and
float bits) and the scores. The branches (grace period, clipped residuals, excursion
runs started and extended, the hold, re-baselining up and down, the clipped baseline
update, the exponential weight) are each shown reached, in ``learn_one`` /
``score_then_learn`` and in ``learn_empty``'s own loop, by a trace of the Python
reference on the same ops, so no case passes vacuously.
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Callable
from typing import Any

import pytest

from detectors.changepoint import LevelShiftDetector
from streams import tradewatch_native

from .conftest import CONFIGS, DAY, Op, Oracle, close_ops, grid, prototypes, same

NAME = "changepoint"


@pytest.fixture()
def oracle(oracle_for: Callable[[str, str], Oracle]) -> Callable[[str], Oracle]:
    return lambda config: oracle_for(config, NAME)


def trace(o: Oracle, ops: list[Op], values: list[Any] | None = None) -> set[str]:
    """The branches the Python reference takes on ``ops``: each window is classified
    before it is learned (with ``learn_one``, which ``learn_empty`` matches), tagged
    ``learn`` (learn_one, score_then_learn) or ``empty`` (a window of ``learn_empty``)."""
    d: LevelShiftDetector = o.packer.build(o.name, "up", o.fresh if values is None else values)
    seen: set[str] = set()

    def window(value: float, t: float, where: str, learn: bool = True) -> None:
        y = d._log_value({"value": value})
        if d._n < d.grace_period:
            seen.add(f"{where}:grace")
            if d._n + 1.0 <= 1.0:
                seen.add(f"{where}:first")
        else:
            sigma = d._sigma()
            raw = (y - d._centre) / sigma
            z, up, down = d._step(y)
            if abs(raw) > d.clip:
                seen.add(f"{where}:clipped")
            for side, s, run in (("up", up, d._run_up), ("down", down, d._run_down)):
                if s > 0:
                    seen.add(f"{where}:run_{'start' if run[1] == 0 else 'extend'}")
                elif run[1]:
                    seen.add(f"{where}:run_end")
            top = max(up, down)
            if top >= d.threshold:
                seen.add(f"{where}:alarm_{'up' if up >= down else 'down'}")
            elif top >= 0.5 * d.threshold:
                seen.add(f"{where}:hold")
            else:
                seen.add(f"{where}:update")
                if abs(y - d._centre) > d.clip * sigma:
                    seen.add(f"{where}:update_clipped")
                seen.add(f"{where}:weight_{'alpha' if d.baseline_alpha > 1.0 / (d._n + 1.0) else 'mean'}")
        if learn:
            d.learn_one({"value": value, "t": t})
        else:
            seen.add(f"{where}:unlearned")

    for op in ops:
        if op[0] == "learn_empty":
            for t in op[1]:
                window(0.0, t, "empty")
        else:
            window(op[1], op[2], "learn", op[0] == "learn_one" or op[4])
    return seen


def shift_ops(rng: random.Random, start: float = 1.6e9, step: float = DAY) -> list[Op]:
    """A steady series, a one-window spike, a 5x shift (alarm up, after a hold), a
    collapse to zero learned as quiet windows (hold and alarm down inside
    ``learn_empty``), then data again."""
    ops: list[Op] = []
    t = start
    levels = [1e5] * 40 + [1e6] + [1e5] * 5 + [5e5] * 8
    for i, level in enumerate(levels):
        value = level * rng.lognormvariate(0, 0.2)
        ops.append(("score_then_learn", value, t, 3, i != 20))
        t += step
    ops.append(("learn_empty", [t + i * step for i in range(30)]))
    t += 30 * step
    for _ in range(15):
        ops.append(("score_then_learn", 2e5 * rng.lognormvariate(0, 0.3), t, 2, True))
        t += step
    return ops


def unit_ops(kind: str) -> list[Op]:
    """``_unit_test_inputs()`` as ops. The window tuple holds floats: ``value`` None reads
    as 0.0 (``float(None or 0.0)``) and a missing or None ``t`` as NaN, as the
    detector reads them (checked against the raw dicts in the test)."""
    ops: list[Op] = []
    for x in LevelShiftDetector._unit_test_inputs():
        value = 0.0 if x.get("value") is None else float(x["value"])
        t = math.nan if x.get("t") is None else float(x["t"])
        ops.append(("learn_one", value, t, 0) if kind == "learn_one" else ("score_then_learn", value, t, 0, True))
    return ops


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("kind", ["learn_one", "score_then_learn"])
def test_unit_test_inputs_match_python(oracle: Callable[[str], Oracle], config: str, kind: str) -> None:
    o = oracle(config)
    ops = unit_ops(kind) * 3  # three passes: past the grace period, the malformed windows scored
    o.check(ops, every=1)
    # The float tuples are what the detector reads from the raw dicts: same state.
    raw = o.packer.build(NAME, "up", o.fresh)
    for x in LevelShiftDetector._unit_test_inputs() * 3:
        raw.learn_one(dict(x))
    assert same(o.packer.values(NAME, "up", raw), o.python(o.fresh, unit_ops("learn_one") * 3)[0]) is None
    seen = trace(o, ops)
    assert {"learn:first", "learn:grace", "learn:update", "learn:clipped", "learn:run_start"} <= seen, seen


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("kind", ["day", "week", "month"])
@pytest.mark.parametrize("density", [1.0, 0.3, 0.05])
def test_pipeline_shaped_runs_match_python(oracle: Callable[[str], Oracle], config: str, kind: str,
                                           density: float) -> None:
    o = oracle(config)
    n = {"day": 500, "week": 260, "month": 150}[kind]
    if density == 0.05:
        n *= 3
    seen: set[str] = set()
    for seed in range(3):
        rng = random.Random(f"{config} {kind} {density} {seed}")
        ops = close_ops(rng, grid(kind, n), density)
        o.check(ops, every=50)
        seen |= trace(o, ops)
    # Warm-up (by data or by quiet windows), then the CUSUM and the baseline both ways.
    assert {"learn:grace", "empty:grace"} & seen and {"learn:run_start", "empty:run_start"} & seen, seen
    assert "learn:update" in seen, seen
    if density < 1.0:
        assert {"empty:update", "empty:run_start"} <= seen, seen


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("seed", range(4))
def test_shift_spike_and_collapse_reach_every_branch(oracle: Callable[[str], Oracle], config: str,
                                                      seed: int) -> None:
    o = oracle(config)
    ops = shift_ops(random.Random(seed))
    o.check(ops, every=7)
    seen = trace(o, ops)
    want = {"learn:first", "learn:grace", "learn:update", "learn:update_clipped", "learn:clipped",
            "learn:weight_mean", "learn:weight_alpha", "learn:run_start", "learn:run_extend", "learn:run_end",
            "learn:hold", "learn:alarm_up", "learn:unlearned",
            "empty:update", "empty:clipped", "empty:run_start", "empty:run_extend", "empty:hold",
            "empty:alarm_down", "empty:grace"}
    assert want <= seen, want - seen
    want_values, _ = o.python(o.fresh, ops)
    assert want_values[8] >= 2  # n_alarms: the shift up and the collapse


@pytest.mark.parametrize("config", CONFIGS)
def test_learn_empty_from_fresh_and_in_grace(oracle: Callable[[str], Oracle], config: str) -> None:
    """Quiet windows from a fresh detector (the n <= 1 step, a zero centre), through the
    grace period and past it, in one call and in pieces; empty windows with NaN times."""
    o = oracle(config)
    times = [1.6e9 + i * DAY for i in range(40)]
    o.check([("learn_empty", times)])
    o.check([("learn_empty", times[:3]), ("learn_empty", times[3:5]), ("learn_empty", times[5:])], every=1)
    o.check([("learn_empty", [])])
    o.check([("learn_one", 1e4, 0.0, 1), ("learn_empty", [math.nan, 5.0]), ("learn_one", 1e4, 9.0, 1)] * 6)
    assert {"empty:first", "empty:grace", "empty:update"} <= trace(o, [("learn_empty", times)])


@pytest.mark.parametrize("config", CONFIGS)
def test_an_int_count_n_keeps_its_type(oracle: Callable[[str], Oracle], config: str) -> None:
    """``_n`` as an int (Python keeps it through the grace check, the score and a hold; any
    baseline update makes it a float, as ``n += 1.0`` does)."""
    o = oracle(config)
    ops = shift_ops(random.Random(7))
    # Past the grace period, in the shift: the next windows hold, alarm, update.
    values, _ = o.python(o.fresh, ops[:48])
    values[0] = int(values[0])
    assert type(values[0]) is int
    for tail in (ops[48:49], ops[48:52], [("learn_empty", [9e9])], [("score_then_learn", 1e3, 9e9, 1, False)]):
        o.check(tail, values=values, every=1)
    # In the grace period too.
    young, _ = o.python(o.fresh, ops[:3])
    young[0] = int(young[0])
    o.check(ops[3:12], values=young, every=1)
    o.check([("learn_empty", [1.0, 2.0, 3.0])], values=young)
    # A hold keeps the int: show one happens on an int _n.
    hold_values = None
    for cut in range(41, 54):
        v, _ = o.python(o.fresh, ops[:cut])
        d = o.packer.build(NAME, "up", v)
        _, up, down = d._step(d._log_value({"value": ops[cut][1]}))
        if 0.5 * d.threshold <= max(up, down) < d.threshold:
            hold_values, hold_op = v, ops[cut]
            break
    assert hold_values is not None
    hold_values[0] = int(hold_values[0])
    after, _ = o.python(hold_values, [hold_op])
    assert type(after[0]) is int
    o.check([hold_op], values=hold_values)


def test_scores_match_on_values_at_the_edges(oracle: Callable[[str], Oracle]) -> None:
    """Zero, negative, NaN, infinite, tiny and huge values, NaN times, scored with and
    without learning."""
    o = oracle(CONFIGS[0])
    edge = [0.0, -0.0, -5.0, math.nan, math.inf, -math.inf, 1e-300, 5e-324, 1e308, 1.0, 1e4]
    rng = random.Random(3)
    ops: list[Op] = []
    for i in range(120):
        v = rng.choice(edge) if rng.random() < 0.5 else 1e4 * rng.lognormvariate(0, 1.0)
        t = math.nan if rng.random() < 0.05 else 1.6e9 + i * DAY
        ops.append(("score_then_learn", v, t, 1, rng.random() < 0.8) if rng.random() < 0.7 else ("learn_one", v, t, 1))
        if rng.random() < 0.1:
            ops.append(("learn_empty", [t + 1.0, t + 2.0]))
    o.check(ops, every=5)


def _spec(**params: Any) -> dict[str, Any]:
    spec = copy.deepcopy(Oracle(NAME, prototypes(CONFIGS[0])[NAME]).spec)
    spec["params"].update(params)
    return spec


def test_check_accepts_the_shipped_configs_and_refuses_what_is_not_ported() -> None:
    for config in CONFIGS:
        spec = Oracle(NAME, prototypes(config)[NAME]).spec
        assert tradewatch_native.unsupported(spec) is None, config
    # An int clip (min/max would put an int z into _prev), an int threshold or allowance.
    assert "clip" in tradewatch_native.unsupported(_spec(clip=4))
    assert "threshold" in tradewatch_native.unsupported(_spec(threshold=5))
    assert "allowance" in tradewatch_native.unsupported(_spec(allowance=0))
    # A grace period that is not an int.
    assert "grace_period" in tradewatch_native.unsupported(_spec(grace_period=8.0))
    # A parameter the port does not know, a changed layout.
    assert "direction" in tradewatch_native.unsupported(_spec(direction="up"))
    spec = _spec()
    spec["names"] = [*spec["names"], "_extra"]
    assert "learned attributes" in tradewatch_native.unsupported(spec)
    # Outside the constructor's ranges.
    assert tradewatch_native.unsupported(_spec(clip=0.1)) is not None
    assert tradewatch_native.unsupported(_spec(grace_period=1)) is not None
    with pytest.raises(ValueError):
        tradewatch_native.replay(_spec(clip=4), Oracle(NAME, prototypes(CONFIGS[0])[NAME]).fresh, [])
