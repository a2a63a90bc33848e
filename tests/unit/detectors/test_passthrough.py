"""PassThroughDetector: an inflow surge followed by an outflow surge of the same code."""

from __future__ import annotations

import random

import pytest

from detectors.passthrough import PassThroughDetector

MONTH = 2.6e6
SEEDS = range(20)


def run(
    inflow_mult: dict[int, float],
    outflow_mult: dict[int, float],
    seed: int,
    n: int = 40,
    sigma: float = 0.4,
    det: PassThroughDetector | None = None,
) -> tuple[list[float], PassThroughDetector]:
    """Monthly legs around 100k EUR in and 20k EUR out, multiplied in the given months."""
    rng = random.Random(seed)
    det = det or PassThroughDetector()
    scores = []
    for i in range(n):
        x = {
            "inflow": 1e5 * inflow_mult.get(i, 1.0) * rng.lognormvariate(0, sigma),
            "outflow": 2e4 * outflow_mult.get(i, 1.0) * rng.lognormvariate(0, sigma),
            "t": MONTH * i,
        }
        scores.append(det.score_one(x))
        det.learn_one(x)
    return scores, det


SURGE_IN = {30: 10.0, 31: 10.0, 32: 8.0}
SURGE_OUT_NEXT = {31: 10.0, 32: 10.0}


@pytest.mark.parametrize("seed", SEEDS)
def test_inflow_surge_followed_by_outflow_surge_scores_high(seed: int) -> None:
    scores, _ = run(SURGE_IN, SURGE_OUT_NEXT, seed)
    assert max(scores[:30]) < 0.5
    assert max(scores[31:33]) > 0.7


@pytest.mark.parametrize("seed", SEEDS)
def test_inflow_surge_alone_scores_low(seed: int) -> None:
    scores, _ = run(SURGE_IN, {}, seed)
    assert max(scores[30:36]) < 0.5


@pytest.mark.parametrize("seed", SEEDS)
def test_outflow_surge_alone_scores_low(seed: int) -> None:
    scores, _ = run({}, SURGE_OUT_NEXT, seed)
    assert max(scores[30:36]) < 0.5


def test_the_joint_pattern_scores_above_either_leg_alone_on_every_seed() -> None:
    for seed in SEEDS:
        both = max(run(SURGE_IN, SURGE_OUT_NEXT, seed)[0][30:36])
        inflow = max(run(SURGE_IN, {}, seed)[0][30:36])
        outflow = max(run({}, SURGE_OUT_NEXT, seed)[0][30:36])
        assert both > max(inflow, outflow) + 0.3


@pytest.mark.parametrize("seed", SEEDS)
def test_same_window_pass_through_counts_as_lag_zero(seed: int) -> None:
    scores, det = run({30: 10.0}, {30: 10.0}, seed, n=30)
    x = {"inflow": 1e6, "outflow": 2e5, "t": MONTH * 30}
    assert det.score_one(x) > 0.7
    assert det.explain_one(x).details["lag_windows"] == 0


def test_outflow_before_inflow_is_not_pass_through() -> None:
    for seed in SEEDS:
        scores, _ = run({31: 10.0}, {30: 10.0}, seed)
        assert max(scores[29:34]) < 0.5


def test_outflow_later_than_max_lag_is_not_matched() -> None:
    for seed in SEEDS:
        within, _ = run({30: 10.0}, {33: 10.0}, seed, det=PassThroughDetector(max_lag_windows=3))
        too_late, _ = run({30: 10.0}, {35: 10.0}, seed, det=PassThroughDetector(max_lag_windows=3))
        assert within[33] > 0.5
        assert max(too_late[34:38]) < 0.5


def test_explanation_carries_both_legs_and_the_lag() -> None:
    _, det = run({30: 10.0}, {}, seed=1, n=31)
    x = {"inflow": 1.2e5, "outflow": 9e5, "t": MONTH * 31}
    e = det.explain_one(x)
    assert e.score == pytest.approx(det.score_one(x)) and e.score > 0.7
    d = e.details
    assert d["lag_windows"] == 1
    assert d["inflow_observed"] > 5e5  # last month's surge, not this month's
    assert d["inflow_expected"] == pytest.approx(1e5, rel=0.5)
    assert d["outflow_observed"] == 9e5 == e.observed
    assert (
        d["outflow_expected"] == pytest.approx(2e4, rel=0.5) and e.expected == d["outflow_expected"]
    )
    assert d["pass_through_ratio"] == pytest.approx(9e5 / d["inflow_observed"])
    assert d["inflow_z"] > 3 and d["outflow_z"] > 3
    assert e.expected_low < e.expected < e.expected_high < 9e5


def test_zero_baselines_then_onset_of_both_legs() -> None:
    det = PassThroughDetector()
    for i in range(12):
        det.learn_one({"inflow": 0.0, "outflow": 0.0, "t": MONTH * i})
    det.learn_one({"inflow": 3e5, "outflow": 0.0, "t": MONTH * 12})
    x = {"inflow": 2e5, "outflow": 2.5e5, "t": MONTH * 13}
    assert det.score_one(x) > 0.9
    assert det.explain_one(x).details["pass_through_ratio"] is not None


def test_grace_period_scores_zero() -> None:
    det = PassThroughDetector(grace_period=6)
    for i in range(6):
        assert det.score_one({"inflow": 1e9, "outflow": 1e9, "t": MONTH * i}) == 0.0
        det.learn_one({"inflow": 1e5, "outflow": 1e4, "t": MONTH * i})
    assert det.score_one({"inflow": 1e9, "outflow": 1e9, "t": MONTH * 6}) > 0.9


def test_state_stays_under_two_kilobytes() -> None:
    _, det = run(
        SURGE_IN, SURGE_OUT_NEXT, seed=0, n=2000, det=PassThroughDetector(max_lag_windows=6)
    )
    assert det.state_bytes() <= 2048


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"max_lag_windows": -1}, "max_lag_windows"),
        ({"baseline_alpha": 0.0}, "baseline_alpha"),
        ({"grace_period": 1}, "grace_period"),
        ({"clip": 0.0}, "clip"),
        ({"min_scale": 0.0}, "min_scale"),
    ],
)
def test_constructor_rejects_bad_values_naming_the_parameter(params: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        PassThroughDetector(**params)
