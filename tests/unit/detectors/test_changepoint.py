"""LevelShiftDetector: sustained shifts alarm within a few windows, one-off spikes do not."""

from __future__ import annotations

import math
import random

import pytest

from detectors.changepoint import LevelShiftDetector

DAY = 86400.0
SEEDS = range(20)


def run(
    levels: list[float], sigma: float, seed: int, det: LevelShiftDetector | None = None
) -> tuple[list[float], LevelShiftDetector]:
    """Score-then-learn a log-normal series around ``levels``; return the scores."""
    rng = random.Random(seed)
    det = det or LevelShiftDetector()
    scores = []
    for i, level in enumerate(levels):
        x = {"value": level * rng.lognormvariate(0.0, sigma) if level else 0.0, "t": DAY * i}
        scores.append(det.score_one(x))
        det.learn_one(x)
    return scores, det


def first_alarm(scores: list[float], start: int) -> int | None:
    """Windows from ``start`` to the first score >= 0.5, counting ``start`` as 1."""
    for i, s in enumerate(scores[start:], start=1):
        if s >= 0.5:
            return i
    return None


@pytest.mark.parametrize("seed", SEEDS)
def test_sustained_fivefold_shift_alarms_within_three_windows(seed: int) -> None:
    scores, det = run([1e5] * 60 + [5e5] * 20, sigma=0.3, seed=seed)
    assert max(scores[:60]) < 0.5
    delay = first_alarm(scores, 60)
    assert delay is not None and delay <= 3
    assert det.n_alarms == 1


def test_noisier_series_alarms_within_three_to_four_windows_on_a_fivefold_shift() -> None:
    delays = [first_alarm(run([1e5] * 60 + [5e5] * 20, 0.5, seed)[0], 60) for seed in SEEDS]
    assert all(d is not None and d <= 5 for d in delays), delays
    assert sum(d <= 4 for d in delays) >= 0.75 * len(delays), delays  # type: ignore[operator]


@pytest.mark.parametrize("seed", SEEDS)
def test_one_off_tenfold_spike_scores_low(seed: int) -> None:
    scores, det = run([1e5] * 60 + [1e6] + [1e5] * 15, sigma=0.3, seed=seed)
    assert scores[60] < 0.3  # the spike counts only as far as the window before agrees
    assert max(scores[60:]) < 0.3
    assert det.n_alarms == 0


def test_a_spike_of_any_size_alone_cannot_alarm() -> None:
    det = LevelShiftDetector()
    for i in range(30):
        det.learn_one({"value": 1000.0 * (1 + 0.05 * (i % 3)), "t": DAY * i})
    assert det.score_one({"value": 1e15, "t": DAY * 30}) < 0.1


@pytest.mark.parametrize("seed", SEEDS)
def test_re_baselines_after_the_alarm_instead_of_alarming_forever(seed: int) -> None:
    scores, det = run([1e5] * 60 + [5e5] * 40, sigma=0.3, seed=seed)
    delay = first_alarm(scores, 60)
    assert delay is not None
    assert max(scores[60 + delay :]) < 0.5
    assert det.n_alarms == 1
    assert math.expm1(det._centre) == pytest.approx(5e5, rel=0.5)


@pytest.mark.parametrize("seed", SEEDS)
def test_sustained_drop_alarms_too(seed: int) -> None:
    scores, det = run([1e5] * 60 + [2e4] * 10, sigma=0.3, seed=seed)
    delay = first_alarm(scores, 60)
    assert delay is not None and delay <= 3
    assert det.explain_one({"value": 2e4, "t": 0.0}).details["direction"] in {"up", "down"}


def test_zero_to_positive_onset_alarms_but_a_single_declaration_does_not() -> None:
    onset, _ = run([0.0] * 30 + [2e4] * 5, sigma=0.3, seed=1)
    assert first_alarm(onset, 30) == 3
    single, det = run([0.0] * 30 + [2e4] + [0.0] * 10, sigma=0.3, seed=1)
    assert max(single) < 0.5 and det.n_alarms == 0


def test_grace_period_scores_zero() -> None:
    det = LevelShiftDetector(grace_period=8)
    for i in range(8):
        assert det.score_one({"value": 1e9 * i, "t": DAY * i}) == 0.0
        det.learn_one({"value": 100.0, "t": DAY * i})
    assert det.score_one({"value": 1e9, "t": DAY * 8}) > 0.0


def test_missing_t_and_bad_values_are_tolerated() -> None:
    det = LevelShiftDetector()
    for v in [100.0, None, -5.0, math.nan, math.inf, 0.0] * 5:
        x = {"value": v}
        assert 0.0 <= det.score_one(x) <= 1.0
        det.learn_one(x)


def test_explanation_reports_the_shift_against_the_old_baseline() -> None:
    _, det = run([1e5] * 60 + [5e5] * 2, sigma=0.2, seed=3)
    x = {"value": 5e5, "t": DAY * 62}
    e = det.explain_one(x)
    assert e.score == pytest.approx(det.score_one(x))
    assert e.score >= 0.5
    assert e.expected == pytest.approx(1e5, rel=0.3)
    assert e.expected_low < e.expected < e.expected_high < 5e5
    d = e.details
    assert d["direction"] == "up"
    # The CUSUM's change-point estimate (last time the sum was 0) may run a few
    # windows early under noise, never late.
    assert d["windows_in_shift"] >= 3
    assert DAY * 55 <= d["shift_start_t"] <= DAY * 60
    assert d["ratio_to_baseline"] == pytest.approx(5.0, rel=0.5)


def test_explanation_of_an_ordinary_window_has_no_shift() -> None:
    _, det = run([1e5] * 60, sigma=0.01, seed=3)
    d = det.explain_one({"value": 1e5, "t": DAY * 60}).details
    assert d["windows_in_shift"] == 0 and d["shift_start_t"] is None


def test_state_stays_under_two_kilobytes() -> None:
    _, det = run([1e5] * 500 + [5e5] * 500, sigma=0.4, seed=0)
    assert det.state_bytes() <= 2048


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"clip": 0.2}, "clip"),
        ({"threshold": 0.0}, "threshold"),
        ({"baseline_alpha": 0.0}, "baseline_alpha"),
        ({"grace_period": 1}, "grace_period"),
        ({"min_scale": 0.0}, "min_scale"),
        ({"allowance": -1.0}, "allowance"),
    ],
)
def test_constructor_rejects_bad_values_naming_the_parameter(params: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        LevelShiftDetector(**params)
