"""VolumeSurgeDetector: lasting surges on sparse or busy routes alert; one-off bursts do not."""

from __future__ import annotations

import random

from detectors.volume import VolumeSurgeDetector

DAY = 86_400.0


def feed(det: VolumeSurgeDetector, values: list[float], start: int = 0) -> list[float]:
    scores = []
    for i, v in enumerate(values):
        x = {"value": v, "t": DAY * (start + i)}
        scores.append(det.score_one(x))
        det.learn_one(x)
    return scores


def sparse_route(rng: random.Random, days: int, rate: float = 0.3) -> list[float]:
    """Shipments on ~30 % of days, log-normal sizes around 20k EUR."""
    return [sum(rng.lognormvariate(10, 0.8) for _ in range(int(rng.random() < rate)))
            for _ in range(days)]


def test_a_lasting_tenfold_surge_on_a_busy_route_alerts_by_its_second_window() -> None:
    rng = random.Random(1)
    det = VolumeSurgeDetector()
    feed(det, [rng.lognormvariate(11, 0.3) for _ in range(60)])
    scores = feed(det, [10 * rng.lognormvariate(11, 0.3) for _ in range(3)], start=60)
    assert max(scores[:2]) > 0.99


def test_a_one_off_burst_does_not_alert() -> None:
    rng = random.Random(2)
    det = VolumeSurgeDetector()
    feed(det, [rng.lognormvariate(11, 0.3) for _ in range(60)])
    burst = feed(det, [15 * 60_000.0], start=60)
    after = feed(det, [rng.lognormvariate(11, 0.3) for _ in range(5)], start=61)
    assert burst[0] < 0.5 and max(after) < 0.5


def test_a_quiet_route_that_starts_shipping_every_day_alerts() -> None:
    rng = random.Random(3)
    det = VolumeSurgeDetector()
    feed(det, [0.0] * 40)
    scores = feed(det, [rng.lognormvariate(10, 0.5) for _ in range(5)], start=40)
    assert max(scores) > 0.99


def test_ordinary_sparse_trade_rarely_crosses_the_alert_threshold() -> None:
    alarms = windows = 0
    for seed in range(40):
        det = VolumeSurgeDetector()
        scores = feed(det, sparse_route(random.Random(seed), 200))
        alarms += sum(s >= 0.99 for s in scores[30:])
        windows += len(scores) - 30
    assert alarms / windows < 0.002


def test_weekday_rhythm_is_learned_not_flagged() -> None:
    det = VolumeSurgeDetector()
    week = [50_000.0] * 5 + [5_000.0, 0.0]
    scores = feed(det, week * 20)
    assert max(scores[28:]) < 0.5


def test_state_is_small() -> None:
    det = VolumeSurgeDetector()
    feed(det, sparse_route(random.Random(4), 100))
    assert det.state_bytes() <= 2048


def test_a_lasting_new_level_is_learned_and_stops_alerting() -> None:
    rng = random.Random(5)
    det = VolumeSurgeDetector()
    feed(det, [0.0] * 40)
    scores = feed(det, [rng.lognormvariate(11, 0.3) for _ in range(80)], start=40)
    assert max(scores[:5]) > 0.99
    assert max(scores[-20:]) < 0.5


def lumpy_lane(rng: random.Random, months: int,
               month_factor: list[float] | None = None) -> list[float]:
    """A busy lane whose rate changes from month to month (log-normal, sigma 0.7), as
    real Comext lanes do; ~2 shipments a working day of log-normal size."""
    values = []
    for m in range(months):
        level = (month_factor[m] if month_factor else 1.0) * rng.lognormvariate(0, 0.7)
        for _ in range(30):
            weekend = (len(values) + 3) % 7 in (5, 6)  # day 0 is Thursday 1970-01-01
            n = 0 if weekend else sum(rng.random() < 0.5 for _ in range(4))
            values.append(sum(level * rng.lognormvariate(10, 0.9) for _ in range(n)))
    return values


def test_level_uncertainty_widens_the_expected_range_of_a_lumpy_lane() -> None:
    rng = random.Random(5)
    history = lumpy_lane(rng, 4)
    plain, lumpy = VolumeSurgeDetector(), VolumeSurgeDetector(level_cv=0.8)
    feed(plain, history)
    feed(lumpy, history)
    x = {"value": 60_000.0, "t": DAY * len(history)}
    assert lumpy.explain_one(x).expected_high > plain.explain_one(x).expected_high
    assert lumpy.score_one(x) <= plain.score_one(x)


def test_ordinary_month_to_month_swings_alert_less_with_level_uncertainty() -> None:
    def alerts(level_cv: float) -> int:
        count = 0
        for seed in range(10):
            det = VolumeSurgeDetector(level_cv=level_cv)
            count += sum(s > 0.5 for s in feed(det, lumpy_lane(random.Random(seed), 12)))
        return count

    assert alerts(0.8) < alerts(0.0)


def test_level_uncertainty_keeps_every_twentyfold_month_the_plain_model_finds() -> None:
    def caught(level_cv: float) -> set[int]:
        found = set()
        for seed in range(5):
            det = VolumeSurgeDetector(level_cv=level_cv)
            scores = feed(det, lumpy_lane(random.Random(seed), 7, [1.0] * 6 + [20.0]))
            if max(scores[-30:]) > 0.99:
                found.add(seed)
        return found

    plain = caught(0.0)
    assert len(plain) >= 3 and caught(0.8) == plain
