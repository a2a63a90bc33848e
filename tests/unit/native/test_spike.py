"""The native ``SeasonalRobustSpikeDetector`` (``native/src/spike.rs`` and its parts'
ports) leaves the same packed state, float for float, and gives the same scores as the
Python detector, on every shipped config's prototype and on the calls a close makes.

Each branch test first proves, on the Python detector's own state (or, for a branch
that leaves no trace in the state, on the lines Python ran), that its ops reach the
branch, so no test passes vacuously; then the oracle compares Python and native.
"""

from __future__ import annotations

import copy
import functools
import linecache
import math
import random
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import detectors.context_novelty
import detectors.extremity
import detectors.seasonal
from detectors.checks import sample_inputs
from detectors.context_novelty import ContextNovelty
from detectors.extremity import RecentExtremity
from detectors.spike import SeasonalRobustSpikeDetector
from streams import tradewatch_native

from .conftest import CONFIGS, DAY, Op, Oracle, close_ops, grid, prototypes

NAME = "spike"
HOUR = 3600.0
T0 = grid("day", 1)[0]


@functools.cache
def oracle(config: str) -> Oracle:
    """The oracle of ``config``'s spike detector (its packed fresh values are never changed)."""
    return Oracle(NAME, prototypes(config)[NAME])


def variant(**params: Any) -> Oracle:
    """The oracle of a spike detector with ``params`` (not from a config)."""
    return Oracle(NAME, SeasonalRobustSpikeDetector(**params))


def apply(d: Any, op: Op) -> float | None:
    if op[0] == "learn_one":
        d.learn_one({"value": op[1], "t": op[2], "count": op[3]})
        return None
    if op[0] == "learn_empty":
        d.learn_empty(list(op[1]))
        return None
    return d.score_then_learn({"value": op[1], "t": op[2], "count": op[3]}, None, op[4])[0]


def walk(o: Oracle, ops: list[Op]) -> Iterator[tuple[Op, Any]]:
    """The Python detector before each of ``ops`` (each applied once the next is asked for:
    one live detector, to be read as the walk goes), and at the end."""
    d = o.packer.build(NAME, "up", copy.deepcopy(o.fresh))
    for op in ops:
        yield op, d
        apply(d, op)
    yield ("end",), d


def lines_run(fn: Callable[[], Any], *modules: Any) -> set[str]:
    """The source lines of ``modules`` that ran in ``fn()`` (stripped)."""
    files = {m.__file__ for m in modules}
    hit: set[tuple[str, int]] = set()

    def local(frame: Any, event: str, arg: Any) -> Any:
        if event == "line":
            hit.add((frame.f_code.co_filename, frame.f_lineno))
        return local

    def trace(frame: Any, event: str, arg: Any) -> Any:
        return local if frame.f_code.co_filename in files else None

    old = sys.gettrace()
    sys.settrace(trace)
    try:
        fn()
    finally:
        sys.settrace(old)
    return {linecache.getline(f, n).strip() for f, n in hit}


def replay_python(o: Oracle, ops: list[Op]) -> None:
    o.python(o.fresh, ops)


def series(values: list[float], times: list[float], learn: bool = True) -> list[Op]:
    return [("score_then_learn", v, t, 1, learn) for v, t in zip(values, times, strict=True)]


def noisy(rng: random.Random, n: int, level: float = 1e4, sigma: float = 0.2) -> list[float]:
    return [level * math.exp(rng.gauss(0.0, sigma)) for _ in range(n)]


# -- the shipped configs --------------------------------------------------------------


@pytest.mark.parametrize("config", CONFIGS)
def test_every_shipped_spike_is_ported(config: str) -> None:
    o = oracle(config)
    assert o.spec["class"] == "SeasonalRobustSpikeDetector"
    assert tradewatch_native.unsupported(o.spec) is None


@pytest.mark.parametrize("config", CONFIGS)
def test_sample_inputs(config: str) -> None:
    """The detector's sample inputs (``detectors.checks.sample_inputs``: noise, an empty
    window, a spike, a level shift, a huge value), learned and scored, op by op."""
    o = oracle(config)
    xs = sample_inputs(o.packer.build(NAME, "up", copy.deepcopy(o.fresh)))
    o.check([("learn_one", float(x["value"]), x["t"], 1) for x in xs], every=1)
    o.check([("score_then_learn", float(x["value"]), x["t"], 1, True) for x in xs], every=1)
    # twice over (past every config's warm-up), every other one unlearned
    ops = [("score_then_learn", float(x["value"]), x["t"] + k * 30 * DAY, 1, i % 2 == 0)
           for k in range(3) for i, x in enumerate(xs)]
    o.check(ops, every=7)


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("kind", ["day", "week", "month"])
@pytest.mark.parametrize("density", [1.0, 0.3, 0.05])
def test_close_runs(config: str, kind: str, density: float) -> None:
    """Pipeline-shaped runs: quiet spells caught up with learn_empty, windows scored and
    learned (a few not learned), surges, collapses and level shifts."""
    o = oracle(config)
    for seed in range(3):
        ops = close_ops(random.Random(1000 * seed + int(density * 100)), grid(kind, 320), density)
        o.check(ops, every=50)


@pytest.mark.parametrize("config", CONFIGS)
def test_long_dense_daily_run_from_packed_state(config: str) -> None:
    """A long run checked in chunks: each chunk starts the twin from Python's packed state."""
    o = oracle(config)
    o.check(close_ops(random.Random(7), grid("day", 1500), 0.9), every=50)


# -- branches, each proved reached on the Python side -------------------------------------


def test_warmup_scores_nothing_then_scores() -> None:
    o = oracle(CONFIGS[0])
    warmup = o.spec["params"]["warmup"]
    ops = close_ops(random.Random(3), grid("day", 120), 1.0)
    warm, scored = [], []
    for op, d in walk(o, ops):
        if op[0] == "score_then_learn":
            (warm if d.baseline.count < warmup else scored).append(d.score_one(
                {"value": op[1], "t": op[2]}))
    assert warm and all(s == 0.0 for s in warm)
    assert scored and any(s > 0.0 for s in scored)
    o.check(ops, every=10)


def test_warmup_zero_scores_the_first_value() -> None:
    """warmup 0: the very first value is judged against an empty baseline (the plain
    score_one path of score_then_learn at n == 0)."""
    o = variant(warmup=0)
    ops = series(noisy(random.Random(1), 40), grid("day", 40))
    _, d = next(walk(o, ops))
    assert d.baseline.count == 0 and d.score_one({"value": ops[0][1], "t": ops[0][2]}) > 0.0
    o.check(ops, every=1)


def test_first_value_learned_by_learn_empty() -> None:
    """A series whose first windows are empty: learn_empty starts the baseline with the
    first zero, then learns the rest within (and past) the extremity grace."""
    o = oracle(CONFIGS[0])
    for n in (1, 2, 5, 11, 12, 40):
        times = grid("day", n + 30)
        ops: list[Op] = [("learn_empty", times[:n]),
                         *series(noisy(random.Random(n), 30), times[n:])]
        counts = [d.baseline.count for _, d in walk(o, ops)]
        assert counts[1] == n
        o.check(ops, every=1)


def test_learn_empty_straddles_the_grace_and_the_warmup() -> None:
    """learn_empty runs that start within the extremity grace (skipped steps) and end
    past it, and that start within the warm-up and end past it (the novelty's scoring
    starts within the run)."""
    o = oracle(CONFIGS[0])
    times = grid("day", 200)
    for n_before in (1, 4, 9, 10, 11, 25, 29):
        ops = [*series(noisy(random.Random(n_before), n_before), times[:n_before]),
               ("learn_empty", times[n_before:n_before + 60]),
               *series(noisy(random.Random(99), 40), times[n_before + 60:n_before + 100])]
        before = [d.baseline.count for op, d in walk(o, ops) if op[0] == "learn_empty"]
        assert before == [n_before]
        o.check(ops, every=1)


def test_clipping_of_residuals_changes_and_extremity_caps() -> None:
    """A spike is winsorised (the residual beyond clip spreads, the change beyond clip
    change-spreads) and its z capped at history_cap times the recent maximum."""
    o = oracle(CONFIGS[0])
    rng = random.Random(5)
    times = grid("day", 200)
    values = noisy(rng, 200, sigma=0.1)
    values[80] *= 100.0
    values[81] *= 0.01
    values[150] *= 30.0
    ops = series(values, times)
    clipped = dclipped = capped = False
    for op, d in walk(o, ops):
        if op[0] != "score_then_learn" or d.baseline.count <= 10:
            continue
        base, ext = d.baseline, d.extremity
        phase = base.phase(op[2])
        lim = base.clip * 1.25 * base._scale
        clipped |= abs(op[1] - base.expected(phase)) > lim
        dclipped |= abs(op[1] - base._prev) > base.clip * 1.25 * base._dscale
        zs = base.evidence(op[1], phase, False)
        capped |= any(zs[k] > ext.history_cap * max(ext._hist[k], ext.z_floor) for k in range(3))
    assert clipped and dclipped and capped
    o.check(ops, every=5)


def test_weekday_profile_on_daily_windows_none_on_weekly_and_monthly() -> None:
    rng = random.Random(11)
    for config in CONFIGS:
        o = oracle(config)
        day = [v * (0.3 if i % 7 in (2, 3) else 1.0) for i, v in enumerate(noisy(rng, 150))]
        ops = series(day, grid("day", 150))
        *_, (_, d) = walk(o, ops)
        assert len(d.baseline._season) == 7 and all(s != 0.0 for s in d.baseline._season)
        o.check(ops, every=25)
        for kind in ("week", "month"):
            ops = series(noisy(rng, 60), grid(kind, 60))
            *_, (_, d) = walk(o, ops)
            assert d.baseline._season == [] and d.baseline.interval > 3.5 * DAY
            o.check(ops, every=20)


def test_hourly_profile_and_daily_extremity_blocks() -> None:
    """Sub-daily windows: an hour-of-day profile (24 phases) and day-long extremity blocks;
    6-hourly ones: no profile."""
    o = oracle(CONFIGS[0])
    rng = random.Random(12)
    times = [T0 + i * HOUR for i in range(24 * 12)]
    values = [v * (1.0 + 0.5 * math.sin(i / 24 * 2 * math.pi))
              for i, v in enumerate(noisy(rng, len(times)))]
    ops = series(values, times)
    *_, (_, d) = walk(o, ops)
    assert len(d.baseline._season) == 24 and d.baseline.interval == HOUR
    assert d.extremity._block == int(times[-1] // DAY)
    o.check(ops, every=24)
    ops = series(noisy(rng, 100), [T0 + i * 6 * HOUR for i in range(100)])
    *_, (_, d) = walk(o, ops)
    assert d.baseline._season == [] and d.baseline.interval == 6 * HOUR
    o.check(ops, every=20)


def test_sampling_interval_shrinks_and_the_profile_starts_late() -> None:
    """The interval is the smallest gap seen: a series first seen 5 days apart has no
    phases, then daily windows give it its weekday profile (in learn_one, and within a
    learn_empty run)."""
    o = oracle(CONFIGS[0])
    rng = random.Random(13)
    start = [T0, T0 + 5 * DAY, T0 + 10 * DAY]
    daily = [T0 + 10 * DAY + i * DAY for i in range(1, 60)]
    ops = series(noisy(rng, 3), start) + series(noisy(rng, len(daily)), daily)
    seen = [(len(d.baseline._season), d.baseline.interval) for _, d in walk(o, ops)]
    assert seen[3] == (0, 5 * DAY) and seen[-1] == (7, DAY)
    o.check(ops, every=1)
    ops = [*series(noisy(rng, 3), start), ("learn_empty", daily[:20]),
           *series(noisy(rng, 20), daily[20:40])]
    ran = lines_run(lambda: replay_python(o, ops), detectors.seasonal)
    assert "season = self._season = [0.0] * n_phases_of(interval)" in ran
    o.check(ops, every=1)


def test_repeated_timestamps_and_extremity_blocks_by_index() -> None:
    """Windows without a positive gap leave the interval at 0: no phase, and the
    extremity blocks go by position (block_points)."""
    o = oracle(CONFIGS[0])
    ops = series(noisy(random.Random(14), 170), [T0] * 170)
    blocks = {d.extremity._block for _, d in walk(o, ops)}
    *_, (_, d) = walk(o, ops)
    assert d.baseline.interval == 0.0 and blocks >= {None, 0, 1, 2, 3}
    o.check(ops, every=10)
    ops = [*series(noisy(random.Random(15), 5), [T0] * 5), ("learn_empty", [T0] * 120),
           *series(noisy(random.Random(16), 20), [T0] * 20)]
    *_, (_, d) = walk(o, ops)
    assert d.extremity._block == (5 + 120 + 20 - 1) // 50
    o.check(ops, every=1)


def test_extremity_new_blocks_and_growing_blocks() -> None:
    o = oracle(CONFIGS[0])
    ops = close_ops(random.Random(17), grid("day", 120), 1.0)
    new = same = 0
    prev = None
    for op, d in walk(o, ops):
        blk = d.extremity._block
        if prev is not None and blk is not None:
            new += blk != prev
            same += blk == prev
        prev = blk
    assert new >= 10 and same >= 50
    o.check(ops, every=10)
    # and within learn_many (a long quiet spell crossing many weeks)
    ops = [*ops, ("learn_empty", grid("day", 60, start=ops[-1][2] + DAY))]
    ran = lines_run(lambda: replay_python(o, ops), detectors.extremity)
    assert "h0, h1, h2 = map(max, zip(*blocks))" in ran
    o.check(ops, every=10)


def test_novelty_strong_rest_and_novelty_evidence() -> None:
    """A strongly novel value resets the rest counter; once rested, a value in a new
    context gives the novelty's z, which beats the extremity's."""
    o = oracle(CONFIGS[0])
    rng = random.Random(18)
    times = grid("day", 520)
    values = []
    for i in range(520):
        level = 1e4 if (i // 10) % 2 else 3e4  # a square wave: its transitions become known
        values.append(level * math.exp(rng.gauss(0.0, 0.02)))
    values[200] = 2e4  # a bin never visited, rested since the start
    values[400] = 2.2e4  # again, after the rest
    ops = series(values, times)
    sources, resets = [], 0
    for op, d in walk(o, ops):
        if op[0] == "score_then_learn" and d.baseline.count >= 30:
            sources.append(d._judge(op[1], d.baseline.phase(op[2]))[1])
            resets += d.novelty._since == 0
    assert "novelty" in sources and "extremity" in sources and resets > 0
    o.check(ops, every=20)


def test_a_flat_series_gives_no_evidence() -> None:
    """A constant series: every z is 0 and every context known: the source is "none"
    (score 0, not z_to_score(-inf)); then a quiet spell of zeros, then the level again."""
    o = oracle(CONFIGS[0])
    times = grid("day", 200)
    ops = [*series([5e3] * 120, times[:120]), ("learn_empty", times[120:150]),
           *series([5e3] * 50, times[150:])]
    sources = [d._judge(op[1], d.baseline.phase(op[2]))[1]
               for op, d in walk(o, ops) if op[0] == "score_then_learn" and d.baseline.count >= 30]
    assert "none" in sources
    o.check(ops, every=10)


def test_novelty_learn_zeros_settles_in_one_step() -> None:
    """A long quiet spell: after a few zeros the bins, range and context stop moving and
    the rest counter is advanced in one step (the counted and the uncounted cases)."""
    o = oracle(CONFIGS[0])
    times = grid("day", 300)
    for n_before in (8, 35):
        ops = [*series(noisy(random.Random(19), n_before, sigma=0.5), times[:n_before]),
               ("learn_empty", times[n_before:n_before + 100]),
               *series(noisy(random.Random(20), 30), times[n_before + 100:n_before + 130]),
               ("learn_empty", times[n_before + 130:n_before + 132])]
        ran = lines_run(lambda ops=ops: replay_python(o, ops), detectors.context_novelty)
        assert "scored = steps - 1 - max(i + 1, scoring_from) + 1" in ran
        assert "since = 0 if 0 >= strong_at else since + scored" in ran
        o.check(ops, every=1)


def test_unlearned_and_non_finite_values() -> None:
    """A confirmed anomaly (learn False) and non-finite values leave the state as it was."""
    o = oracle(CONFIGS[0])
    times = grid("day", 80)
    values = noisy(random.Random(21), 80)
    ops: list[Op] = series(values[:50], times[:50])
    ops += [("score_then_learn", values[50] * 40, times[50], 9, False),
            ("score_then_learn", math.inf, times[51], 1, True),
            ("score_then_learn", math.nan, times[52], 1, True),
            ("learn_one", math.nan, times[53], 1),
            ("learn_one", -math.inf, times[54], 1)]
    ops += series(values[55:], times[55:])
    states = [(d.baseline.count, copy.deepcopy(o.packer.values(NAME, "up", d)))
              for _, d in walk(o, ops)]
    assert all(states[k] == states[50] for k in range(50, 56)) and states[50][0] == 50
    o.check(ops, every=1)
    o.check([("score_then_learn", math.inf, times[0], 1, True),
             ("learn_one", math.nan, times[1], 1)])


def test_negative_and_signed_zero_values() -> None:
    o = oracle(CONFIGS[0])
    times = grid("day", 120)
    values = [(-1.0) ** i * v for i, v in enumerate(noisy(random.Random(22), 120))]
    values[40] = -0.0
    values[41] = 0.0
    o.check(series(values, times), every=5)
    # a series starting at -0.0 without a profile: its level stays -0.0 only because
    # Python's expected value is `level + 0.0` (0.0), so the sign of each zero matters
    weeks = grid("week", 40)
    ops = series([-0.0] * 6 + noisy(random.Random(25), 34), weeks)
    levels = [d.baseline._level for op, d in walk(o, ops)]
    assert math.copysign(1.0, levels[3]) == -1.0
    o.check(ops, every=1)


@pytest.mark.parametrize("params", [
    {"novelty": ContextNovelty(levels=0), "extremity": RecentExtremity(alarm_ratio=2.0)},
    {"novelty": ContextNovelty(levels=4, bits=200, rest=5, trigger=0.5), "warmup": 3},
    {"extremity": RecentExtremity(history_blocks=1, block_points=7, z_floor=0.5, history_cap=1.5)},
    {"warmup": 0},
])
def test_part_parameters(params: dict[str, Any]) -> None:
    """Other parts' parameters (the detector's own unit-test variant with novelty off,
    a small novelty table that rests briefly, a one-block history)."""
    o = variant(**params)
    assert tradewatch_native.unsupported(o.spec) is None
    for kind, density in (("day", 1.0), ("day", 0.3), ("week", 0.5), ("month", 1.0)):
        o.check(close_ops(random.Random(23), grid(kind, 250), density), every=50)
    o.check(series(noisy(random.Random(24), 120), [T0] * 120), every=30)


# -- what check refuses ----------------------------------------------------------------------


def _edited(edit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    spec = copy.deepcopy(oracle(CONFIGS[0]).spec)
    edit(spec)
    return spec


@pytest.mark.parametrize(("edit", "why"), [
    (lambda s: s["params"].update(transform="log1p"), "transform"),
    (lambda s: s["params"].update(direction="up"), "direction"),
    (lambda s: s["params"].update(warmup=30.0), "warmup"),
    (lambda s: s["parts"]["extremity"]["params"].update(z_floor=2), "z_floor"),
    (lambda s: s["parts"]["extremity"]["params"].update(history_cap=5), "history_cap"),
    (lambda s: s["parts"]["novelty"]["params"].update(levels=5000), "levels"),
    (lambda s: s["parts"]["novelty"]["params"].update(rest=150.0), "rest"),
    (lambda s: s["parts"]["baseline"]["names"].append("_new"), "learned attributes"),
    (lambda s: s["names"].reverse(), "learned attributes"),
    (lambda s: s["parts"]["novelty"].update({"class": "OtherNovelty"}), "OtherNovelty"),
])
def test_check_refuses_what_is_not_ported(edit: Callable[[dict[str, Any]], None], why: str) -> None:
    reason = tradewatch_native.unsupported(_edited(edit))
    assert reason is not None and why in reason
    with pytest.raises(ValueError, match=why):
        tradewatch_native.replay(_edited(edit), oracle(CONFIGS[0]).fresh, [])


def test_check_refuses_the_detectors_own_up_variant() -> None:
    o = variant(transform="log1p", direction="up")
    assert "transform" in tradewatch_native.unsupported(o.spec)
