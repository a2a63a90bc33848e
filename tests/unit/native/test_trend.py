"""The native TrendDetector leaves the Python one's state, float for float, and its scores.

Every case replays the same calls on ``detectors.trend.TrendDetector`` and on its native
twin (the oracle, ``conftest.py``) for each config the close runs. Which of the Python
detector's branches a case went through is recorded by tracing the Python side
(:func:`branches`), so a case that is meant to reach a branch (warm-up, the CUSUM gate,
an excursion's peak, the holds, the winsorising, ``learn_empty``'s two paths) is shown
to reach it: a test cannot pass without exercising what it claims to.
"""

from __future__ import annotations

import linecache
import math
import random
import sys
from typing import Any

import pytest

from detectors import calibration, trend
from detectors.trend import TrendDetector
from streams import tradewatch_native

from .conftest import CONFIGS, DAY, Oracle, close_ops, grid, prototypes

NAME = "trend"
KINDS = {"deploy/tradewatch.toml": "day", "deploy/examples/month.toml": "month",
         "deploy/examples/week.toml": "week", "deploy/examples/strict.toml": "day"}


# -- what the Python side went through -------------------------------------------------

#: Statement branches, by function, a fragment of the line before and of the line itself.
LINES = {
    "learn_empty before the first declaration": ("learn_empty", "if self._n == 0", "return"),
    "an empty window before the first declaration": ("_learn", "if self._n == 0 and v == 0.0",
                                                     "return"),
    "warm-up: no score": ("_z_raw", "self._n < self.warmup", "return 0.0"),
    "no growth: no score": ("_z_raw", "if z_value <= 0.0", "return 0.0"),
    "growth gated by the declaration rate": ("_z_raw", "return 0.0", "return min(z_value"),
    "no declarations learned: no CUSUM": ("_cusum_after", "if lam <= 0", "return 0.0"),
    "no count evidence": ("_z_of_log_lr", "if s <= 0.0", "return 0.0"),
    "count evidence as a z": ("_z_of_log_lr", "return 0.0", "return max(0.0, tail_probability"),
    "deviation winsorised (learn_one)": ("_learn", "if abs(dev) > bound", "dev = math.copysign"),
    "window total winsorised": ("_learn", "if v > cap", "v = cap + LEAK"),
    "spread learned": ("_learn", "if self._n and z < HOLD_DEV_Z", "self._dev_var +="),
    "window variance learned": ("_learn", "if not held", "self._var ="),
    "learn_empty: a window through learn_one": ("learn_empty", "still above the long-run level",
                                                "self._n, self._recent"),
    "learn_empty: the tight loop": ("learn_empty", "continue", "peak = 0.0"),
    "learn_empty: no declarations learned": ("learn_empty", "if lam <= 0", "cusum = 0.0"),
    "learn_empty: warm, deviation bounded": ("learn_empty", "if n >= warmup", "spread = math.sqrt"),
    "learn_empty: deviation winsorised": ("learn_empty", "if abs(dev) > bound",
                                           "dev = math.copysign"),
}
#: Branches inside expressions, from the traced frames' values (:func:`_values_seen`).
VALUES = [
    "a new high scored", "a window below the excursion's peak not scored", "peak raised",
    "peak kept", "peak reset", "spread held (z >= HOLD_DEV_Z)",
    "window variance held (z >= HOLD_Z)",
    "rate gate binds", "value evidence binds", "tail: inv_cdf(1 - p)", "tail: -inv_cdf(p)",
    "tail: p clamped at 1e-300", "deviation winsorised upwards", "deviation winsorised downwards",
    "learn_empty: CUSUM kept", "learn_empty: CUSUM reset", "learn_empty: not yet warm",
    "a value refused (NaN, negative)",
    "a count refused (negative)",
]
ALL = sorted(LINES) + VALUES
#: With ``horizon = 1`` (the month config) an empty window's recent level is exactly 0,
#: never above the long-run one: ``learn_empty`` never goes through ``learn_one`` there.
THROUGH_LEARN_ONE = "learn_empty: a window through learn_one"


def reachable(oracle: Oracle, labels: list[str] | set[str]) -> set[str]:
    """``labels`` less those the oracle's parameters make unreachable."""
    if oracle.spec["params"]["horizon"] == 1:
        return set(labels) - {THROUGH_LEARN_ONE}
    return set(labels)


def _label(code: Any, lineno: int) -> tuple[str, str, str]:
    f = code.co_filename
    before, line = linecache.getline(f, lineno - 1), linecache.getline(f, lineno)
    return code.co_name, before.strip(), line.strip()


_TEXT: dict[tuple[Any, int], str] = {}
_WATCHED = {"_z", "learn_one", "_learn", "_z_raw", "tail_probability_to_z", "learn_empty",
            "_number"}


def _values_seen(frame: Any, event: str, arg: Any, seen: set[str]) -> None:
    """The expression-level branches, from the locals of the Python detector's frames."""
    name = frame.f_code.co_name
    if name not in _WATCHED:
        return
    key = (frame.f_code, frame.f_lineno)
    if key not in _TEXT:
        _TEXT[key] = linecache.getline(frame.f_code.co_filename, frame.f_lineno).strip()
    text, loc = _TEXT[key], frame.f_locals
    me = loc.get("self")
    if event == "line" and name == "_z" and text.startswith("return z if z > self._peak"):
        if loc["z"] > me._peak:
            seen.add("a new high scored")
        elif loc["z"] > 0:
            seen.add("a window below the excursion's peak not scored")
    elif event == "line" and name == "learn_one" and text.startswith("self._peak ="):
        z = loc["z"]
        if z >= trend.PEAK_RESET_Z:
            seen.add("peak raised" if z > me._peak else "peak kept")
        elif me._peak > 0:
            seen.add("peak reset")
    elif event == "call" and name == "_learn":
        if loc["z"] >= trend.HOLD_DEV_Z and me._n:
            seen.add("spread held (z >= HOLD_DEV_Z)")
        if loc["z"] >= trend.HOLD_Z:
            seen.add("window variance held (z >= HOLD_Z)")
    elif event == "line" and name == "_learn" and text.startswith("dev = math.copysign"):
        seen.add("deviation winsorised " + ("upwards" if loc["dev"] > 0 else "downwards"))
    elif event == "return" and name == "_z_raw" and "z_value" in loc and loc["z_value"] > 0:
        seen.add("rate gate binds" if arg < loc["z_value"] else "value evidence binds")
    elif event == "call" and name == "tail_probability_to_z":
        p = loc["p"]
        seen.add("tail: inv_cdf(1 - p)" if p > 1e-15 else "tail: -inv_cdf(p)")
        if p < 1e-300:
            seen.add("tail: p clamped at 1e-300")
    elif event == "line" and name == "learn_empty" and text.startswith("cusum = c if c > 0.0"):
        seen.add("learn_empty: CUSUM kept" if loc["c"] > 0.0 else "learn_empty: CUSUM reset")
    elif event == "line" and name == "learn_empty" and text == "if n >= warmup:":
        if loc["n"] < loc["warmup"]:
            seen.add("learn_empty: not yet warm")
    elif event == "call" and name == "_number":
        v = loc["x"].get(loc["key"])
        if isinstance(v, int | float) and not (math.isfinite(v) and v >= 0):
            seen.add("a count refused (negative)" if loc["key"] == "count"
                     else "a value refused (NaN, negative)")


def branches(oracle: Oracle, ops: list[tuple[Any, ...]],
             values: list[Any] | None = None) -> set[str]:
    """The branches of the Python detector that replaying ``ops`` went through."""
    files = {trend.__file__, calibration.__file__}
    wanted = {(f, a, b): label for label, (f, a, b) in LINES.items()}
    seen: set[str] = set()

    labels: dict[tuple[Any, int], str | None] = {}

    def local(frame: Any, event: str, arg: Any) -> Any:
        if event == "line":
            key = (frame.f_code, frame.f_lineno)
            if key not in labels:
                fn, prev, line = _label(*key)
                labels[key] = next((label for (f, a, b), label in wanted.items()
                                    if f == fn and a in prev and line.startswith(b)), None)
            if labels[key]:
                seen.add(labels[key])
        _values_seen(frame, event, arg, seen)
        return local

    stepped = {f for f, _, _ in LINES.values()} | {"_z", "learn_one", "_z_raw"}

    def call(frame: Any, event: str, arg: Any) -> Any:
        if frame.f_code.co_filename not in files:
            return None
        _values_seen(frame, event, arg, seen)
        return local if frame.f_code.co_name in stepped else None

    sys.settrace(call)
    try:
        oracle.python(oracle.fresh if values is None else values, ops)
    finally:
        sys.settrace(None)
    return seen


# -- op lists ----------------------------------------------------------------------------

def window(value: float | None, t: float, count: int | None) -> tuple[float, float, int]:
    """A window as the oracle's ops carry it. ``_number`` reads a missing or None value and
    a missing count as 0 (an empty window), as it reads NaN and 0: so a ``{"value": None}``
    input is the window ``(nan, t, 0)`` here, the same to the detector."""
    return (math.nan if value is None else value, t, 0 if count is None else count)


def unit_ops(learn: str) -> list[tuple[Any, ...]]:
    """The detector's own ``_unit_test_inputs()`` as ``learn_one`` or ``score_then_learn`` ops."""
    ops = []
    for i, x in enumerate(TrendDetector._unit_test_inputs()):
        w = window(x.get("value"), x.get("t", DAY * i), x.get("count"))
        ops.append(("learn_one", *w) if learn == "learn_one" else ("score_then_learn", *w, True))
    return ops


def story(oracle: Oracle, rng: random.Random, times: list[float]) -> list[tuple[Any, ...]]:
    """A lane's life in the detector's own window counts: quiet before its first declaration,
    a quiet spell in the warm-up, a steady stretch, a collapse (the deviation winsorised
    downwards) and a quiet spell after it, a mild rise, a surge of value and declarations
    (new highs, holds, winsorising, the CUSUM's far tail), its decay (the peak held, then
    reset), a second surge and a quiet spell that starts mid-excursion, refused inputs
    (NaN, inf, negative value and count, -0.0), and a window scored but not learned."""
    p = oracle.spec["params"]
    horizon, memory, warmup = p["horizon"], p["memory"], p["warmup"]
    it = iter(times)
    ops: list[tuple[Any, ...]] = [("learn_empty", [next(it), next(it)]),
                                  ("learn_one", 0.0, next(it), 0),
                                  ("score_then_learn", 0.0, next(it), 0, True)]

    def data(n: int, level: float, count: int, noise: float = 0.2, learn: float = 0.97) -> None:
        for _ in range(n):
            ops.append(("score_then_learn", level * rng.uniform(1 - noise, 1 + noise), next(it),
                        max(0, round(count * rng.uniform(0.7, 1.3))), rng.random() < learn))

    data(2, 1e4, 3)
    ops.append(("learn_empty", [next(it), next(it)]))  # a quiet spell during the warm-up
    data(warmup + memory, 1e4, 3)
    data(horizon + 2, 50.0, 30, learn=1.0)             # a collapse, in many small declarations
    ops.append(("learn_empty", [next(it) for _ in range(horizon + 3)]))
    data(memory, 1e4, 3)
    data(2 * horizon + 2, 1.5e4, 8)                    # a mild rise: modest count evidence
    data(memory // 2, 1e4, 3)
    data(2 * horizon + 2, 2e5, 400)                    # a surge: value x20, declarations x130
    data(horizon, 1e4, 3)                              # it ends: the recent level decays
    data(3 * horizon + 4, 1e4, 3)
    data(horizon + 1, 3e5, 80)                         # a second surge, then a quiet spell
    ops.append(("learn_empty", [next(it) for _ in range(2 * horizon + 10)]))
    data(memory // 4, 1e4, 3)
    ops += [("score_then_learn", math.nan, next(it), 3, True), ("learn_one", -5.0, next(it), -2),
            ("score_then_learn", math.inf, next(it), 2, True), ("learn_one", -0.0, next(it), 0),
            ("score_then_learn", 1e4, next(it), 3, False)]
    return ops


def countless(oracle: Oracle, rng: random.Random, times: list[float]) -> list[tuple[Any, ...]]:
    """A lane whose windows carry value but no declaration count: no CUSUM, so no score."""
    p = oracle.spec["params"]
    it = iter(times)
    ops: list[tuple[Any, ...]] = []
    for _ in range(p["warmup"] + p["horizon"] + 3):
        ops.append(("score_then_learn", 1e4 * rng.uniform(0.5, 1.5), next(it), 0, True))
    ops += [("score_then_learn", 1e6, next(it), 0, True) for _ in range(3)]
    ops.append(("learn_empty", [next(it) for _ in range(4 * p["horizon"] + 5)]))
    ops.append(("score_then_learn", 1e4, next(it), 0, True))
    return ops


# -- tests -------------------------------------------------------------------------------

@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("learn", ["learn_one", "score_then_learn"])
def test_the_detectors_own_unit_inputs(oracle_for: Any, config: str, learn: str) -> None:
    oracle = oracle_for(config, NAME)
    ops = unit_ops(learn)
    oracle.check(ops, every=7)
    seen = branches(oracle, ops)
    assert {"an empty window before the first declaration", "a value refused (NaN, negative)",
            "window variance learned", "spread learned"} <= seen


@pytest.mark.parametrize("config", CONFIGS)
def test_every_branch_is_reached_and_agrees(oracle_for: Any, config: str) -> None:
    oracle = oracle_for(config, NAME)
    times = grid(KINDS[config], 3000)
    seen: set[str] = set()
    for seed in range(2):
        for make in (story, countless):
            ops = make(oracle, random.Random(seed), times)
            oracle.check(ops, every=25)
            if seed == 0:  # tracing is slow: one seed shows the branches
                seen |= branches(oracle, ops)
    assert sorted(reachable(oracle, ALL) - seen) == []


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("density", [1.0, 0.3, 0.05])
@pytest.mark.parametrize("kind", ["day", "week", "month"])
def test_pipeline_shaped_runs(oracle_for: Any, config: str, kind: str, density: float) -> None:
    oracle = oracle_for(config, NAME)
    for seed in range(3):
        oracle.check(close_ops(random.Random(seed), grid(kind, 500), density), every=50)


@pytest.mark.parametrize("config", CONFIGS)
def test_pipeline_shaped_runs_reach_excursions_and_quiet_spells(oracle_for: Any,
                                                                config: str) -> None:
    """Not vacuous: the shaped runs above go through the excursions and both quiet-spell paths."""
    oracle = oracle_for(config, NAME)
    seen = branches(oracle, close_ops(random.Random(0), grid(KINDS[config], 500), 0.3))
    assert reachable(oracle, {"a new high scored", "peak reset", THROUGH_LEARN_ONE,
                              "learn_empty: the tight loop", "window total winsorised"}) <= seen


@pytest.mark.parametrize("config", CONFIGS)
def test_a_quiet_spell_from_a_mid_excursion_state(oracle_for: Any, config: str) -> None:
    """Packed values taken mid-excursion (not fresh): learn_empty and scores from there."""
    oracle = oracle_for(config, NAME)
    p = oracle.spec["params"]
    times = grid(KINDS[config], 1000)
    rng = random.Random(7)
    warm = [("learn_one", 1e4 * rng.uniform(0.8, 1.2), t, 3) for t in times[:p["warmup"] + 20]]
    start = p["warmup"] + 20
    surge = [("learn_one", 1e5, t, 30) for t in times[start:start + p["horizon"] + 2]]
    values, _ = oracle.python(oracle.fresh, warm + surge)
    assert values[-1] > trend.PEAK_RESET_Z  # the packed _peak: an excursion under way
    rest = times[start + p["horizon"] + 2:]
    for gap in (1, 2, p["horizon"], 3 * p["horizon"]):
        ops = [("learn_empty", rest[:gap]), ("score_then_learn", 1e5, rest[gap], 30, True)]
        oracle.check(ops, values=values, every=1)
        through = THROUGH_LEARN_ONE in branches(oracle, ops, values)
        assert through is (p["horizon"] > 1)  # horizon 1: the recent level of an empty window is 0


def test_parameters_other_than_shipped_but_ported(oracle_for: Any) -> None:
    """Any int horizon/memory/warmup and float clip/min_spread/rate_factor in range is ported."""
    for kw in ({"horizon": 7, "memory": 30, "warmup": 0, "clip": 2.5, "min_spread": 0.05,
                "rate_factor": 1.5},
               {"horizon": 2, "memory": 4, "warmup": 1, "clip": 0.5, "min_spread": 1.0,
                "rate_factor": 10.0}):
        oracle = Oracle(NAME, TrendDetector(**kw))
        assert tradewatch_native.unsupported(oracle.spec) is None
        for kind, density in (("day", 1.0), ("week", 0.3)):
            oracle.check(close_ops(random.Random(1), grid(kind, 400), density), every=40)
            oracle.check(story(oracle, random.Random(2), grid(kind, 2000)), every=40)


def test_check_accepts_the_shipped_configs_and_refuses_what_is_not_ported() -> None:
    spec = Oracle(NAME, prototypes(CONFIGS[0])[NAME]).spec
    for config in CONFIGS:
        assert tradewatch_native.unsupported(Oracle(NAME, prototypes(config)[NAME]).spec) is None

    def refused(**change: Any) -> str:
        s = {**spec, "params": {**spec["params"]}}
        for k, v in change.items():
            if k in ("names", "parts"):
                s[k] = v
            elif v is None:
                del s["params"][k]
            else:
                s["params"][k] = v
        why = tradewatch_native.unsupported(s)
        assert why, change
        return why

    assert "min_spread" in refused(min_spread=0.0)      # Python divides by a zero spread
    assert "min_spread" in refused(min_spread=0)
    assert "horizon" in refused(horizon=28.0)           # a float window count
    assert "memory" in refused(memory=55)               # less than twice the horizon
    assert "warmup" in refused(warmup=-1)
    assert "clip" in refused(clip=math.nan)
    assert "clip" in refused(clip=4)                    # an int: the shipped configs have a float
    assert "rate_factor" in refused(rate_factor=1.0)
    assert "rate_factor" in refused(rate_factor=None)
    assert "extra" in refused(extra=1)
    assert "_level" in refused(names=[n for n in spec["names"] if n != "_peak"])
    assert "_peak" in refused(names=[*spec["names"][:-1], "_peak", "_mean"])
    assert "parts" in refused(parts={"x": spec})
    other = {**spec, "class": "OtherTrendDetector"}
    assert tradewatch_native.unsupported(other)
