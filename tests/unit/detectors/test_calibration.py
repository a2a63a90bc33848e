"""The shared score scale: z-to-score map, tail calibration, severity rule, robust level."""

from __future__ import annotations

import math
import random
import statistics

import pytest

from detectors.calibration import (
    SEVERITY_LEVELS,
    SURPRISE_ALARM,
    SURPRISE_CRITICAL,
    SURPRISE_HIGH,
    OnlineTailCalibrator,
    score_to_z,
    severity,
    tail_probability_to_score,
    update_robust_level,
    z_to_score,
)


def test_z_to_score_is_monotone_bounded_and_pinned_at_the_alarm_line() -> None:
    grid = [i / 10 for i in range(-100, 101)]
    scores = [z_to_score(z) for z in grid]
    assert all(a < b or a == b == 1.0 for a, b in zip(scores, scores[1:], strict=False))
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert z_to_score(3.0) == pytest.approx(0.5)
    assert z_to_score(2.0) == pytest.approx(0.1192, abs=1e-4)
    assert z_to_score(4.0) == pytest.approx(0.8808, abs=1e-4)


@pytest.mark.parametrize("z", [math.inf, -math.inf, 1e300, -1e300])
def test_z_to_score_survives_extremes(z: float) -> None:
    assert 0.0 <= z_to_score(z) <= 1.0


def test_z_to_score_treats_nan_as_no_evidence() -> None:
    assert z_to_score(math.nan) == 0.0


@pytest.mark.parametrize("z", [-2.0, 0.0, 1.5, 3.0, 4.7, 8.0])
def test_score_to_z_inverts_z_to_score(z: float) -> None:
    assert score_to_z(z_to_score(z)) == pytest.approx(z, abs=1e-6)


def test_tail_probability_three_sigma_is_the_alarm_line() -> None:
    assert tail_probability_to_score(0.0013499) == pytest.approx(0.5, abs=1e-3)
    ps = [0.5, 0.1, 0.01, 1e-3, 1e-6, 1e-20, 0.0]
    scores = [tail_probability_to_score(p) for p in ps]
    assert scores == sorted(scores)
    assert scores[-1] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("score", "tier", "expected"),
    [
        # without a surprise of its own, a score stands for the z it implies
        (0.2, "1", "low"),  # below the alarm line nothing is bumped
        (0.49, "2", "low"),
        (0.5, "3A", "medium"),  # the alarm line, z = 3
        (0.5, "1", "high"),  # tier 1/2: one level up
        (0.8, "4B", "medium"),  # z = 3.7: surprise 4.0, below "high" (5)
        (0.95, "3B", "high"),  # z = 4.5: surprise 5.4
        (0.99, "1", "critical"),  # high, bumped; never above critical
        (0.9, None, "low"),  # non-CHPL: capped at low ...
        (0.9, "", "low"),
        (0.99, None, "medium"),  # ... unless extreme (surprise 7.2)
    ],
)
def test_severity_rule_from_a_score(score: float, tier: str | None, expected: str) -> None:
    assert severity(score, tier) == expected


@pytest.mark.parametrize(
    ("surprise", "excess", "tier", "expected"),
    [
        (2.0, 5e6, "3A", "low"),  # below the alarm line: money alone is no anomaly
        (SURPRISE_ALARM, 5e6, "3A", "medium"),
        (SURPRISE_HIGH, 5e6, "3A", "high"),
        (SURPRISE_CRITICAL, 5e6, "4B", "critical"),
        (SURPRISE_HIGH, 5e6, "1", "critical"),  # tier 1: one level up
        (40.0, 5e3, "1", "medium"),  # improbable but small money: at most medium
        (40.0, 5e4, "1", "high"),  # below 100 kEUR: at most high
        (40.0, 5e4, "3B", "high"),
        (40.0, None, "2", "critical"),  # no excess (unit values): magnitude alone
        (40.0, 5e6, None, "medium"),  # non-CHPL never above medium
        (6.0, 5e6, None, "low"),
    ],
)
def test_severity_rule_from_magnitude_and_tier(
    surprise: float, excess: float | None, tier: str | None, expected: str
) -> None:
    assert severity(1.0, tier, surprise=surprise, excess_eur=excess) == expected


def test_severity_never_falls_as_the_evidence_grows() -> None:
    ranks = {s: i for i, s in enumerate(SEVERITY_LEVELS)}
    for tier in ("1", "3A", "4B", None):
        for excess in (None, 0.0, 5e3, 5e4, 5e5):
            levels = [ranks[severity(1.0, tier, surprise=s / 4, excess_eur=excess)]
                      for s in range(0, 200)]
            assert levels == sorted(levels), (tier, excess)
        by_excess = [ranks[severity(1.0, tier, surprise=30.0, excess_eur=e)]
                     for e in (0.0, 1e3, 9_999.0, 1e4, 5e4, 1e5, 1e7)]
        assert by_excess == sorted(by_excess), tier


def test_severity_rejects_unknown_tier_and_lists_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"'5'.*'3A'"):
        severity(0.7, "5")


def test_robust_level_tracks_centre_and_sigma_of_noise() -> None:
    rng = random.Random(11)
    state = (0.0, 0.0, 0.0)
    for _ in range(5000):
        state = update_robust_level(*state, rng.gauss(7.0, 0.5), 0.01, 3.0, 0.01)
    n, centre, mad = state
    assert n == 5000
    assert centre == pytest.approx(7.0, abs=0.1)
    assert math.sqrt(math.pi / 2) * mad == pytest.approx(0.5, rel=0.15)


def test_robust_level_moves_at_most_one_clipped_step_per_outlier() -> None:
    state = (0.0, 0.0, 0.0)
    for y in [1.0, 1.1, 0.9] * 20:
        state = update_robust_level(*state, y, 0.05, 3.0, 0.01)
    sigma = math.sqrt(math.pi / 2) * state[2]
    after = update_robust_level(*state, 1e6, 0.05, 3.0, 0.01)
    assert after[1] - state[1] <= 0.05 * 3.0 * sigma + 1e-12


def test_tail_calibrator_false_alarm_rate_on_fresh_data() -> None:
    rng = random.Random(5)
    cal = OnlineTailCalibrator(window=2000)
    for _ in range(2000):
        cal.update(rng.gauss(0, 1))
    fresh = [cal.score(rng.gauss(0, 1)) for _ in range(20000)]
    assert sum(s >= 0.5 for s in fresh) / len(fresh) < 0.005
    assert statistics.median(fresh) < 0.01


def test_tail_calibrator_keeps_rising_beyond_the_largest_value_seen() -> None:
    rng = random.Random(6)
    cal = OnlineTailCalibrator(window=500)
    values = [rng.random() for _ in range(500)]
    for v in values:
        cal.update(v)
    top = max(values)
    assert cal.score(top) < cal.score(top + 0.05) < cal.score(top + 0.2)
    assert cal.score(top + 0.2) > 0.9


def test_tail_calibrator_memory_is_bounded_and_cold_start_is_zero() -> None:
    cal = OnlineTailCalibrator(window=100, min_samples=50)
    assert cal.score(1e9) == 0.0
    for i in range(1000):
        cal.update(float(i))
    assert len(cal) == 100
    assert cal.tail_probability(950.0) == pytest.approx(51 / 101)  # only the last 100 count
