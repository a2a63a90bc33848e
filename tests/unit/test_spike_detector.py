"""Specification of the seasonal robust spike detector on known synthetic series."""

from __future__ import annotations

import math
import pickle
import random

import pytest

from detectors.base import Detector, Explanation
from detectors.spike import SeasonalRobustSpikeDetector

DAY = 86400.0
HOUR = 3600.0


def stream(det, points):
    """Prequential run: score, then learn. Returns the scores."""
    out = []
    for x in points:
        s = det.score_one(x)
        assert 0.0 <= s <= 1.0 and not math.isnan(s)
        out.append(s)
        det.learn_one(x)
    return out


def daily_trade(n, seed=0, weekend=0.3, sigma=0.15, base=2e6):
    """Daily EUR values of one route x HS6 with a weekday effect and lognormal noise."""
    rng = random.Random(seed)
    pts = []
    for i in range(n):
        wd = (i + 3) % 7  # day 0 = Thursday 1970-01-01
        v = base * (weekend if wd >= 5 else 1.0) * math.exp(rng.gauss(0.0, sigma))
        pts.append({"value": v, "t": i * DAY})
    return pts


@pytest.mark.parametrize(
    "params",
    [{}, {"transform": "log1p"}, {"transform": "log1p", "direction": "up"}, {"direction": "up"}],
)
def test_tenfold_jump_scores_near_one_in_its_first_window(params):
    det = SeasonalRobustSpikeDetector(**params)
    pts = daily_trade(150, seed=1)
    scores = stream(det, pts)
    assert max(scores[det.warmup :]) < 0.5
    # a weekday of a tenfold export jump (e.g. ICs to Kyrgyzstan)
    jump = {"value": 10 * 2e6, "t": 150 * DAY + 2 * DAY}
    assert det.score_one(jump) >= 0.95


def test_tenfold_jump_on_a_weekend_day_is_judged_against_the_weekend_level():
    det = SeasonalRobustSpikeDetector()
    stream(det, daily_trade(156, seed=2))  # day 156 is a Saturday
    assert (156 + 3) % 7 == 5
    assert det.score_one({"value": 10 * 0.3 * 2e6, "t": 156 * DAY}) >= 0.95
    # a weekday-sized value on a Saturday is unusual too, but less so than tenfold
    assert det.score_one({"value": 2e6, "t": 156 * DAY}) < det.score_one(
        {"value": 6e6, "t": 156 * DAY}
    )


def test_weekday_seasonality_is_not_flagged():
    det = SeasonalRobustSpikeDetector()
    scores = stream(det, daily_trade(400, seed=3, weekend=0.2, sigma=0.1))
    assert max(scores[det.warmup :]) < 0.5
    ex = det.explain_one({"value": 0.2 * 2e6, "t": 400 * DAY + 2 * DAY})  # a Saturday
    assert ex.expected == pytest.approx(0.2 * 2e6, rel=0.25)
    ex = det.explain_one({"value": 2e6, "t": 400 * DAY + 5 * DAY})  # a Tuesday
    assert ex.expected == pytest.approx(2e6, rel=0.25)


def test_hour_of_day_seasonality_is_learned_for_subdaily_series():
    det = SeasonalRobustSpikeDetector()
    rng = random.Random(4)
    pts = [
        {"value": 50 + 30 * math.sin(2 * math.pi * (i % 24) / 24) + rng.gauss(0, 2), "t": i * HOUR}
        for i in range(24 * 40)
    ]
    scores = stream(det, pts)
    assert sum(s >= 0.5 for s in scores[det.warmup :]) <= 2
    ex = det.explain_one({"value": 80.0, "t": (24 * 40 + 6) * HOUR})  # the daily peak hour
    assert ex.expected == pytest.approx(80.0, abs=8.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_heavy_tailed_noise_false_alarm_rate_is_bounded(seed):
    rng = random.Random(seed)
    det = SeasonalRobustSpikeDetector()

    def student_t3() -> float:
        z = rng.gauss(0, 1)
        chi2 = sum(rng.gauss(0, 1) ** 2 for _ in range(3))
        return z / math.sqrt(chi2 / 3)

    pts = [{"value": 100.0 + 5.0 * student_t3(), "t": i * 300.0} for i in range(5000)]
    scores = stream(det, pts)
    alarms = sum(s >= 0.5 for s in scores[det.warmup :])
    assert alarms / (len(scores) - det.warmup) <= 0.005
    strong = sum(s >= 0.9 for s in scores[det.warmup :])
    assert strong <= 3


def test_score_and_explain_are_pure():
    det = SeasonalRobustSpikeDetector()
    stream(det, daily_trade(80, seed=5))
    before = pickle.dumps(det)
    x = {"value": 3e7, "t": 80 * DAY}
    s1 = det.score_one(x)
    det.explain_one(x)
    s2 = det.score_one(x)
    assert s1 == s2
    assert pickle.dumps(det) == before
    det.learn_one(x)
    assert pickle.dumps(det) != before


def test_state_is_small_for_hourly_and_daily_series():
    for step, n in ((300.0, 20000), (HOUR, 5000), (DAY, 1000)):
        det = SeasonalRobustSpikeDetector()
        rng = random.Random(6)
        for i in range(n):
            det.learn_one({"value": rng.lognormvariate(10, 1), "t": i * step})
        assert det.state_bytes() <= 2048, (step, det.state_bytes())


def test_zeros_and_empty_windows():
    # all-zero series: nothing to flag
    det = SeasonalRobustSpikeDetector()
    scores = stream(det, [{"value": 0.0, "t": i * DAY} for i in range(100)])
    assert max(scores) == 0.0
    # intermittent trade: mostly empty days with occasional shipments of similar size
    rng = random.Random(7)
    det = SeasonalRobustSpikeDetector(transform="log1p", direction="up")
    pts = [
        {"value": (rng.lognormvariate(13, 0.3) if rng.random() < 0.3 else 0.0), "t": i * DAY}
        for i in range(400)
    ]
    scores = stream(det, pts)
    assert sum(s >= 0.9 for s in scores[det.warmup :]) <= 4
    # a regular series with one empty window: the drop is a fall, not a spike
    det = SeasonalRobustSpikeDetector(transform="log1p", direction="up")
    stream(det, daily_trade(120, seed=8, weekend=1.0))
    assert det.score_one({"value": 0.0, "t": 120 * DAY}) == 0.0
    det.learn_one({"value": 0.0, "t": 120 * DAY})
    # ... and the baseline is not poisoned by it: the next ordinary day is ordinary
    assert det.score_one({"value": 2e6, "t": 121 * DAY}) < 0.5
    ex = det.explain_one({"value": 2e6, "t": 121 * DAY})
    assert ex.expected == pytest.approx(2e6, rel=0.3)


def test_a_spike_does_not_poison_the_baseline():
    det = SeasonalRobustSpikeDetector()
    pts = daily_trade(120, seed=9, weekend=1.0, sigma=0.1)
    stream(det, pts)
    level_before = det.explain_one({"value": 2e6, "t": 120 * DAY}).expected
    det.learn_one({"value": 2e8, "t": 120 * DAY})  # a hundredfold outlier
    level_after = det.explain_one({"value": 2e6, "t": 121 * DAY}).expected
    assert level_after == pytest.approx(level_before, rel=0.1)
    # a second jump right after is still anomalous
    assert det.score_one({"value": 2e7, "t": 121 * DAY}) >= 0.9


def test_level_shift_is_eventually_accepted():
    det = SeasonalRobustSpikeDetector()
    pts = daily_trade(100, seed=10, weekend=1.0, sigma=0.1)
    pts += [
        {"value": 10 * p["value"], "t": p["t"] + 100 * DAY}
        for p in daily_trade(150, seed=11, weekend=1.0, sigma=0.1)
    ]
    scores = stream(det, pts)
    assert scores[100] >= 0.95
    assert max(scores[200:]) < 0.5


def test_explanation_fields_are_sane():
    det = SeasonalRobustSpikeDetector()
    stream(det, daily_trade(100, seed=12, weekend=1.0, sigma=0.1))
    x = {"value": 2e7, "t": 100 * DAY}
    ex = det.explain_one(x)
    assert isinstance(ex, Explanation)
    assert ex.observed == 2e7
    assert ex.score == det.score_one(x)
    assert ex.expected_low < ex.expected < ex.expected_high < ex.observed
    assert ex.expected == pytest.approx(2e6, rel=0.2)
    assert ex.details["z_residual"] > 10
    assert not ex.details["warming_up"]
    # the range is where the score stays below 0.5
    assert det.score_one({"value": ex.expected_high * 0.98, "t": 100 * DAY}) < 0.5
    # log scale: the explanation is in the input's units too
    det = SeasonalRobustSpikeDetector(transform="log1p", direction="up")
    stream(det, daily_trade(100, seed=12, weekend=1.0, sigma=0.1))
    ex = det.explain_one(x)
    assert ex.expected == pytest.approx(2e6, rel=0.2)
    assert ex.expected_low == -math.inf and ex.expected < ex.expected_high < ex.observed


def test_warmup_scores_zero_and_explanation_before_any_data():
    det = SeasonalRobustSpikeDetector(warmup=10)
    ex = det.explain_one({"value": 1.0})
    assert ex.score == 0.0 and math.isnan(ex.expected)
    scores = stream(det, [{"value": float(v)} for v in [1, 1000, 1, 2, 1, 5000, 3, 1, 2, 1]])
    assert scores == [0.0] * 10


def test_without_timestamps_and_with_missing_values():
    det = SeasonalRobustSpikeDetector()
    rng = random.Random(13)
    scores = stream(det, [{"value": 10 + rng.gauss(0, 1)} for _ in range(300)])
    assert max(scores[det.warmup :]) < 0.9
    assert det.score_one({"value": 100.0}) > 0.99
    before = pickle.dumps(det)
    det.learn_one({"value": math.nan})
    assert det.score_one({"value": math.nan}) == 0.0
    assert pickle.dumps(det) == before


def test_river_contract_params_and_clone():
    det = SeasonalRobustSpikeDetector(transform="log1p", direction="up", history_blocks=4)
    assert isinstance(det, Detector)
    params = det._get_params()
    assert params["transform"] == "log1p" and params["history_blocks"] == 4
    stream(det, daily_trade(50))
    fresh = det.clone()
    assert fresh._get_params() == params
    assert fresh._n == 0 and det._n == 50
    assert det.learn_one({"value": 1.0, "t": 50 * DAY}) is None
    with pytest.raises(ValueError):
        SeasonalRobustSpikeDetector(transform="sqrt")


def test_context_novelty_ranks_a_new_pattern_without_alarming_alone():
    # a square wave between two levels, then a value inside the range but in a bin
    # never visited: not extreme in z, yet a new context
    det = SeasonalRobustSpikeDetector()
    pts = [{"value": 10.0 if (i // 20) % 2 else 0.0, "t": i * 300.0} for i in range(2000)]
    scores = stream(det, pts)
    assert max(scores[200:]) < 0.2  # the known pattern is not novel
    s = det.score_one({"value": 5.0, "t": 2000 * 300.0})
    assert 0.4 <= s < 0.5  # ranked high by novelty, but novelty alone never alarms
    off = SeasonalRobustSpikeDetector(context_levels=0)
    stream(off, pts)
    assert off.score_one({"value": 5.0, "t": 2000 * 300.0}) < s
    with pytest.raises(ValueError):
        SeasonalRobustSpikeDetector(context_levels=10, context_bits=100)
