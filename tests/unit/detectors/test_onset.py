"""OnsetDetector: a hub that starts exporting a product to Russia is news; one that always did is not."""

from __future__ import annotations

import math
import random

import pytest
from scipy import stats

from detectors.calibration import tail_probability_to_z, z_to_score
from detectors.onset import OnsetDetector, poisson_tail
from detectors.registry import build

DAY = 86_400.0


def feed(det: OnsetDetector, outflows: list[float], start: int = 0, inflow: float = 3e4) -> list[float]:
    """Score then learn one window per outflow value; the scores."""
    scores = []
    for i, out in enumerate(outflows):
        x = {"inflow": inflow, "outflow": out, "t": DAY * (start + i)}
        scores.append(det.score_one(x))
        det.learn_one(x)
    return scores


def quiet_then(days_quiet: int, burst: list[float], det: OnsetDetector | None = None) -> list[float]:
    det = det or OnsetDetector()
    feed(det, [0.0] * days_quiet)
    return feed(det, burst, start=days_quiet)


@pytest.mark.parametrize(("mu", "k"), [(0.05, 1), (0.05, 3), (0.3, 5), (2.0, 1), (2.0, 2), (6.0, 4),
                                       (6.0, 15), (28.0, 20), (28.0, 40), (1e-3, 12)])
def test_the_poisson_tail_is_exact_in_both_regimes(mu: float, k: int) -> None:
    assert poisson_tail(mu, k) == pytest.approx(stats.poisson.sf(k - 1, mu), rel=1e-9)


def test_a_hub_that_never_exported_the_code_alarms_by_its_third_active_day_in_a_month() -> None:
    scores = quiet_then(500, [6e4, 0.0, 0.0, 5e4, 0.0, 7e4])
    active = [scores[0], scores[3], scores[5]]
    assert active[0] < 0.1 and active[1] < 0.5
    assert active[2] >= 0.88
    assert scores[1] == scores[2] == scores[4] == 0.0, "a day without exports is never scored"


def test_the_score_is_the_poisson_tail_of_the_active_windows_against_the_past_rate() -> None:
    det = OnsetDetector(horizon=28, warmup=180)
    feed(det, [0.0] * 300)
    feed(det, [4e4, 4e4], start=300)
    x = {"inflow": 0.0, "outflow": 4e4, "t": DAY * 302}
    before = 302 - 28 + 1
    mu = 28 * (0 + 1) / before
    expected = z_to_score(max(0.0, tail_probability_to_z(poisson_tail(mu, 3))))
    assert det.score_one(x) == pytest.approx(expected, rel=1e-12)
    details = det.explain_one(x).details
    assert details["active_windows"] == 3
    assert details["windows_before"] == before
    assert details["active_before"] == 0


@pytest.mark.parametrize("seed", range(10))
def test_a_hub_that_exports_the_code_most_weeks_never_alarms(seed: int) -> None:
    rng = random.Random(seed)
    outflows = [rng.lognormvariate(10, 1) if rng.random() < 0.15 else 0.0 for _ in range(900)]
    scores = feed(OnsetDetector(), outflows)
    assert max(scores) < 0.5


@pytest.mark.parametrize("seed", range(10))
def test_a_rare_exporter_resuming_weekly_is_flagged_later_than_a_first_time_one(seed: int) -> None:
    rng = random.Random(seed)
    never = OnsetDetector()
    rare = OnsetDetector()
    feed(never, [0.0] * 400)
    feed(rare, [3e4 if rng.random() < 0.01 else 0.0 for _ in range(400)])
    burst = [3e4 if d % 7 == 0 else 0.0 for d in range(28)]
    first_never = next(i for i, s in enumerate(feed(never, burst, start=400)) if s >= 0.88)
    rare_scores = feed(rare, burst, start=400)
    first_rare = next((i for i, s in enumerate(rare_scores) if s >= 0.88), math.inf)
    assert first_never <= first_rare


def test_nothing_is_scored_before_the_pair_has_a_past() -> None:
    # the window with index i has i - 27 windows before its horizon
    assert max(quiet_then(197, [6e4] * 10, OnsetDetector(horizon=28, warmup=180))) == 0.0
    assert quiet_then(197, [6e4] * 11, OnsetDetector(horizon=28, warmup=180))[-1] > 0.99


def test_an_immaterial_outflow_is_not_scored() -> None:
    assert max(quiet_then(500, [500.0] * 10, OnsetDetector(min_value_eur=10_000))) == 0.0
    assert max(quiet_then(500, [500.0] * 10, OnsetDetector(min_value_eur=1_000))) > 0.99


def test_the_explanation_reads_the_horizon_in_eur() -> None:
    det = OnsetDetector()
    feed(det, [0.0] * 500)
    feed(det, [2e4, 3e4], start=500)
    x = {"inflow": 0.0, "outflow": 5e4, "t": DAY * 502}
    e = det.explain_one(x)
    assert e.observed == pytest.approx(1e5)
    assert e.expected_low == 0.0 and 0.0 < e.expected < e.expected_high < e.observed
    assert e.score == det.score_one(x)
    assert e.details["horizon_windows"] == 28


def test_active_windows_leave_the_horizon() -> None:
    det = OnsetDetector(horizon=28)
    feed(det, [0.0] * 500)
    feed(det, [5e4, 5e4] + [0.0] * 40, start=500)
    assert det.explain_one({"outflow": 5e4, "t": DAY * 542}).details["active_windows"] == 1
    assert det.explain_one({"outflow": 5e4, "t": DAY * 542}).details["active_before"] == 2


def test_a_config_gives_the_windows_as_durations_and_rejects_bad_values() -> None:
    assert build("onset", {"horizon": 28, "warmup": 180}).warmup == 180
    for bad in ({"horizon": 0}, {"warmup": 0}, {"min_value_eur": -1.0}, {"min_value_eur": math.inf}):
        with pytest.raises(ValueError):
            OnsetDetector(**bad)
