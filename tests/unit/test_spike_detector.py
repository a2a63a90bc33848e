"""Specification of the spike detector and of each of its parts, on known synthetic series.

Sections: the robust seasonal baseline, the recent-extremity scorer, context
novelty, then the composed detector (behaviour on trade-like series, the shared
score scale, river's contract with parts as parameters, and config tables).
"""

from __future__ import annotations

import array
import collections
import math
import pickle
import random

import pytest

from detectors.base import Detector, Explanation, Part
from detectors.calibration import Z_ALARM, z_to_score
from detectors.registry import DetectorConfigError, build
from detectors.spike import (
    ContextNovelty,
    RecentExtremity,
    RobustSeasonalBaseline,
    SeasonalRobustSpikeDetector,
)
from streams.config import ConfigError, load_settings_text

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


def learn_baseline(base, points):
    for x in points:
        base.learn(x["value"], x["t"], base.phase(x["t"]))


# -- the robust seasonal baseline -------------------------------------------------------


def test_baseline_a_spike_does_not_drag_the_level():
    base = RobustSeasonalBaseline()
    learn_baseline(base, daily_trade(120, seed=9, weekend=1.0, sigma=0.1))
    before = base.expected(base.phase(120 * DAY))
    base.learn(2e8, 120 * DAY, base.phase(120 * DAY))  # a hundredfold outlier
    after = base.expected(base.phase(121 * DAY))
    assert after == pytest.approx(before, rel=0.05)


def test_baseline_the_return_from_a_spike_is_not_a_new_change():
    base = RobustSeasonalBaseline()
    learn_baseline(base, daily_trade(120, seed=9, weekend=1.0, sigma=0.1))
    base.learn(2e8, 120 * DAY, base.phase(120 * DAY))
    z_residual, z_change, _, _, _ = base.evidence(2e6, base.phase(121 * DAY), up_only=False)
    # the change is measured from the outlier as the baseline accepted it: at most
    # `clip` spreads away, not a hundredfold
    assert z_residual < 2.0 and z_change < base.clip


def test_baseline_learns_weekday_offsets_for_daily_series():
    base = RobustSeasonalBaseline()
    learn_baseline(base, daily_trade(400, seed=3, weekend=0.2, sigma=0.1))
    saturday, tuesday = 401 * DAY, 404 * DAY
    assert (base.phase(saturday), base.phase(tuesday)) == (5, 1)
    assert base.expected(5) == pytest.approx(0.2 * 2e6, rel=0.25)
    assert base.expected(1) == pytest.approx(2e6, rel=0.25)


def test_baseline_learns_hour_of_day_offsets_for_subdaily_series():
    base = RobustSeasonalBaseline()
    rng = random.Random(4)
    for i in range(24 * 40):
        t = i * HOUR
        base.learn(50 + 30 * math.sin(2 * math.pi * (i % 24) / 24) + rng.gauss(0, 2), t, base.phase(t))
    assert base.phase(6 * HOUR) == 6
    assert base.expected(6) == pytest.approx(80.0, abs=8.0)


@pytest.mark.parametrize("step", [6 * HOUR, None])
def test_baseline_has_no_seasonality_between_hourly_and_daily_or_without_time(step):
    base = RobustSeasonalBaseline()
    for i in range(50):
        t = None if step is None else i * step
        base.learn(10.0, t, base.phase(t))
    assert base.phase(None if step is None else 50 * step) == -1


def test_baseline_up_only_counts_a_fall_as_no_evidence():
    base = RobustSeasonalBaseline()
    learn_baseline(base, daily_trade(100, seed=8, weekend=1.0))
    assert base.evidence(0.0, base.phase(100 * DAY), up_only=True)[:3] == (0.0, 0.0, 0.0)
    assert base.evidence(0.0, base.phase(100 * DAY), up_only=False)[0] > 5


@pytest.mark.parametrize(
    "params", [{"level_rate": 0.0}, {"scale_rate": 1.5}, {"clip": 0.0}, {"rel_floor": -1.0}]
)
def test_baseline_rejects_rates_outside_0_1_and_non_positive_clip(params):
    with pytest.raises(ValueError, match=next(iter(params))):
        RobustSeasonalBaseline(**params)


# -- extremity against recent history ----------------------------------------------------


def learn_days(ext, zs, days, start=0):
    for d in range(start, start + days):
        ext.learn(zs, t=d * DAY, interval=DAY, index=d)


def test_extremity_as_extreme_as_the_recent_worst_is_no_alarm():
    ext = RecentExtremity()
    learn_days(ext, (6.0, 6.0, 6.0), 21)  # a wild series: 6 sigmas is ordinary here
    assert ext.ratio((6.0, 0.0, 0.0)) == 1.0
    assert z_to_score(ext.z((6.0, 0.0, 0.0))) < 0.15


def test_extremity_alarm_ratio_times_the_recent_worst_is_the_alarm_line():
    ext = RecentExtremity(alarm_ratio=1.6)
    learn_days(ext, (5.0, 1.0, 1.0), 21)
    assert ext.z((8.0, 0.0, 0.0)) == pytest.approx(Z_ALARM)
    assert z_to_score(ext.z((8.0, 0.0, 0.0))) == pytest.approx(0.5)
    # any kind of evidence can carry it: the change, against its own recent worst (floored)
    assert ext.z((0.0, 1.6 * ext.z_floor, 0.0)) == pytest.approx(Z_ALARM)


def test_extremity_a_regular_series_is_judged_against_the_z_floor():
    ext = RecentExtremity(z_floor=2.0)
    learn_days(ext, (0.5, 0.5, 0.5), 21)
    assert ext.recent_max(0) == 2.0
    assert z_to_score(ext.z((1.5, 1.5, 1.5))) < 0.1  # ordinary noise on a quiet series


def test_extremity_forgets_what_is_older_than_history_blocks():
    ext = RecentExtremity(history_blocks=3)  # daily series: three weeks
    learn_days(ext, (10.0, 0.0, 0.0), 1)
    learn_days(ext, (1.0, 0.0, 0.0), 13, start=1)
    assert ext.recent_max(0) == 10.0  # within three weekly blocks
    learn_days(ext, (1.0, 0.0, 0.0), 14, start=14)
    assert ext.recent_max(0) == 2.0  # forgotten: back to the floor


def test_extremity_one_outlier_raises_the_recent_worst_at_most_history_cap_fold():
    ext = RecentExtremity(history_cap=5.0)
    learn_days(ext, (2.0, 0.0, 0.0), 7)
    ext.learn((1000.0, 0.0, 0.0), t=7 * DAY, interval=DAY, index=7)
    assert ext.recent_max(0) == 10.0
    # a second jump soon after, twice the alarm ratio over the capped worst, still alarms
    assert z_to_score(ext.z((32.0, 0.0, 0.0))) > 0.9


def test_extremity_without_timestamps_counts_blocks_in_points():
    ext = RecentExtremity(history_blocks=2, block_points=10)
    ext.learn((9.0, 0.0, 0.0), t=None, interval=0.0, index=0)
    for i in range(1, 20):
        ext.learn((1.0, 0.0, 0.0), t=None, interval=0.0, index=i)
    assert ext.recent_max(0) == 9.0
    ext.learn((1.0, 0.0, 0.0), t=None, interval=0.0, index=20)
    assert ext.recent_max(0) == 2.0


def test_extremity_no_evidence_is_minus_infinity():
    assert RecentExtremity().z((0.0, 0.0, 0.0)) == -math.inf


# -- context novelty ---------------------------------------------------------------------


def square_wave(n=2000):
    return [10.0 if (i // 20) % 2 else 0.0 for i in range(n)]


def test_novelty_a_known_pattern_is_not_novel_and_a_new_one_is():
    nov = ContextNovelty()
    for y in square_wave():
        nov.learn(y, scoring=True)
    assert nov.novelty(10.0) == 0.0 and nov.z(10.0) == -math.inf
    assert nov.novelty(5.0) == 1.0  # a bin never visited: all three contexts are new


def test_novelty_a_new_pattern_ranks_but_never_alarms_alone():
    nov = ContextNovelty()
    for y in square_wave():
        nov.learn(y, scoring=True)
    assert nov.z(5.0) == nov.max_z < Z_ALARM
    assert 0.4 < z_to_score(nov.z(5.0)) < 0.5


def test_novelty_rests_after_a_strong_novelty():
    nov = ContextNovelty(rest=5)
    for y in square_wave(400):
        nov.learn(y, scoring=True)
    nov.learn(5.0, scoring=True)  # strongly novel: the part rests
    assert nov.resting and nov.z(7.5) == -math.inf
    for _ in range(20):  # (the way back from the new value is new too, then rest runs out)
        nov.learn(10.0, scoring=True)
    assert not nov.resting and nov.z(2.5) > 0.0


def test_novelty_levels_zero_turns_it_off():
    nov = ContextNovelty(levels=0)
    nov.learn(1.0, scoring=True)
    assert nov.novelty(1e9) == 0.0 and nov.z(1e9) == -math.inf
    assert len(pickle.dumps(nov)) < len(pickle.dumps(ContextNovelty()))


def test_novelty_bit_table_must_hold_orders_one_and_two():
    with pytest.raises(ValueError, match="bits"):
        ContextNovelty(levels=10, bits=100)


# -- the composed detector on trade-like series ------------------------------------------


@pytest.mark.parametrize(
    "params",
    [{}, {"transform": "log1p"}, {"transform": "log1p", "direction": "up"}, {"direction": "up"}],
)
def test_tenfold_jump_scores_near_one_in_its_first_window(params):
    det = SeasonalRobustSpikeDetector(**params)
    scores = stream(det, daily_trade(150, seed=1))
    assert max(scores[det.warmup :]) < 0.5
    # a weekday of a tenfold export jump (e.g. ICs to Kyrgyzstan)
    assert det.score_one({"value": 10 * 2e6, "t": 152 * DAY}) >= 0.95


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


def test_hour_of_day_seasonality_is_not_flagged():
    det = SeasonalRobustSpikeDetector()
    rng = random.Random(4)
    pts = [
        {"value": 50 + 30 * math.sin(2 * math.pi * (i % 24) / 24) + rng.gauss(0, 2), "t": i * HOUR}
        for i in range(24 * 40)
    ]
    scores = stream(det, pts)
    assert sum(s >= 0.5 for s in scores[det.warmup :]) <= 2


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
    assert sum(s >= 0.9 for s in scores[det.warmup :]) <= 3


def test_zeros_and_empty_windows():
    # all-zero series: nothing to flag
    det = SeasonalRobustSpikeDetector()
    assert max(stream(det, [{"value": 0.0, "t": i * DAY} for i in range(100)])) == 0.0
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
    assert det.explain_one({"value": 2e6, "t": 121 * DAY}).expected == pytest.approx(2e6, rel=0.3)


def test_a_spike_does_not_poison_the_baseline_and_a_second_jump_still_alarms():
    det = SeasonalRobustSpikeDetector()
    stream(det, daily_trade(120, seed=9, weekend=1.0, sigma=0.1))
    level_before = det.explain_one({"value": 2e6, "t": 120 * DAY}).expected
    det.learn_one({"value": 2e8, "t": 120 * DAY})  # a hundredfold outlier
    level_after = det.explain_one({"value": 2e6, "t": 121 * DAY}).expected
    assert level_after == pytest.approx(level_before, rel=0.1)
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


def test_a_new_pattern_ranks_but_never_alarms_alone():
    # a square wave between two levels, then a value inside the range but in a bin
    # never visited: not extreme in z, yet a new context
    det = SeasonalRobustSpikeDetector()
    pts = [{"value": v, "t": i * 300.0} for i, v in enumerate(square_wave())]
    scores = stream(det, pts)
    assert max(scores[200:]) < 0.2  # the known pattern is not novel
    x = {"value": 5.0, "t": 2000 * 300.0}
    s = det.score_one(x)
    assert 0.4 <= s < 0.5  # ranked high by novelty, but novelty alone never alarms
    assert det.explain_one(x).details["evidence"] == "novelty"
    off = SeasonalRobustSpikeDetector(novelty=ContextNovelty(levels=0))
    stream(off, pts)
    assert off.score_one(x) < s


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


# -- the shared score scale --------------------------------------------------------------


def test_score_is_the_shared_scale_of_its_z_equivalent():
    det = SeasonalRobustSpikeDetector()
    pts = daily_trade(200, seed=14)
    for x in pts:
        ex = det.explain_one(x)
        if not ex.details.get("warming_up", True) and ex.details["evidence"] != "none":
            assert ex.score == pytest.approx(z_to_score(ex.details["z"]), abs=1e-12)
        det.learn_one(x)


def test_score_half_is_z_three_like_every_other_detector():
    det = SeasonalRobustSpikeDetector()
    stream(det, daily_trade(150, seed=15, weekend=1.0, sigma=0.1))
    # bisect the value at which the score crosses 0.5: its z-equivalent is 3
    lo, hi = 2e6, 2e8
    for _ in range(100):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if det.score_one({"value": mid, "t": 150 * DAY}) < 0.5 else (lo, mid)
    assert det.explain_one({"value": hi, "t": 150 * DAY}).details["z"] == pytest.approx(Z_ALARM)


def test_z_ranks_where_the_score_saturates():
    det = SeasonalRobustSpikeDetector()
    stream(det, daily_trade(150, seed=16, weekend=1.0, sigma=0.1))
    jumps = [{"value": k * 2e6, "t": 150 * DAY} for k in (30, 300, 3000)]
    scores = [det.score_one(x) for x in jumps]
    zs = [det.explain_one(x).details["z"] for x in jumps]
    assert scores[1] - scores[0] < 1e-6 and scores[0] > 0.9999  # all read 1.00
    assert zs[0] < zs[1] < zs[2]  # the z-equivalent still ranks them


# -- river's contract with parts as parameters ---------------------------------------------


def test_parts_are_parameters_that_clone_fresh():
    det = SeasonalRobustSpikeDetector(
        transform="log1p", direction="up", extremity=RecentExtremity(history_blocks=4)
    )
    assert isinstance(det, Detector)
    assert all(isinstance(p, Part) for p in (det.baseline, det.extremity, det.novelty))
    params = det._get_params()
    assert params["transform"] == "log1p"
    assert params["extremity"] == (RecentExtremity, RecentExtremity(history_blocks=4)._get_params())
    stream(det, daily_trade(50))
    fresh = det.clone()
    assert fresh._get_params() == params
    assert fresh.baseline.count == 0 and det.baseline.count == 50
    assert fresh.extremity is not det.extremity
    assert pickle.dumps(fresh) == pickle.dumps(SeasonalRobustSpikeDetector(**{
        "transform": "log1p", "direction": "up", "extremity": RecentExtremity(history_blocks=4)}))
    assert "history_blocks=4" in repr(det)
    assert det.learn_one({"value": 1.0, "t": 50 * DAY}) is None


@pytest.mark.parametrize(
    "params,match",
    [
        ({"transform": "sqrt"}, "transform"),
        ({"direction": "down"}, "direction"),
        ({"novelty": {"levels": 0}}, "novelty must be a ContextNovelty"),
        ({"baseline": ContextNovelty()}, "baseline must be a RobustSeasonalBaseline"),
    ],
)
def test_constructor_rejects_bad_values_and_parts_of_the_wrong_kind(params, match):
    with pytest.raises((TypeError, ValueError), match=match):
        SeasonalRobustSpikeDetector(**params)


def test_state_is_small_for_hourly_and_daily_series():
    for step, n in ((300.0, 20000), (HOUR, 5000), (DAY, 1000)):
        det = SeasonalRobustSpikeDetector()
        rng = random.Random(6)
        for i in range(n):
            det.learn_one({"value": rng.lognormvariate(10, 1), "t": i * step})
        assert det.state_bytes() <= 2048, (step, det.state_bytes())


def test_state_is_plain_data_in_small_classes_of_the_detectors_package():
    """What a data-only state codec can write: no closures, partials or foreign objects."""
    plain = (type(None), bool, int, float, str, bytearray, list, dict, collections.deque,
             array.array)

    def walk(obj, path):
        assert type(obj).__module__.startswith("detectors."), path
        for name, value in vars(obj).items():
            if isinstance(value, Part):
                walk(value, f"{path}.{name}")
            elif isinstance(value, list):
                assert all(isinstance(v, float | list) for v in value), f"{path}.{name}"
            else:
                assert isinstance(value, plain), f"{path}.{name}: {type(value).__name__}"

    det = SeasonalRobustSpikeDetector()
    stream(det, daily_trade(60))
    walk(det, "spike")


# -- config: parts as nested tables --------------------------------------------------------


def test_params_give_each_part_its_own_table():
    det = build(
        "spike",
        {"transform": "log1p", "baseline": {"level_rate": 0.1}, "novelty": {"levels": 0}},
    )
    assert det.transform == "log1p"
    assert det.baseline.level_rate == 0.1 and det.baseline.clip == 4.0
    assert det.novelty.levels == 0 and det.extremity == det.extremity  # others default
    assert det.extremity._get_params() == RecentExtremity()._get_params()


@pytest.mark.parametrize(
    "params,param",
    [
        ({"baseline": {"level_rte": 0.1}}, "baseline.level_rte"),
        ({"extremity": {"history_blocks": 0}}, "extremity.history_blocks"),
        ({"novelty": {"levels": 4, "bits": 10}}, "novelty"),
        ({"baseline": 3}, "baseline"),
    ],
)
def test_a_bad_part_parameter_names_its_dotted_path(params, param):
    with pytest.raises(DetectorConfigError) as info:
        build("spike", params)
    assert info.value.param == param


def test_a_flat_part_parameter_says_which_part_it_belongs_to():
    with pytest.raises(DetectorConfigError, match=r"write baseline = \{ clip = \.\.\. \}"):
        build("spike", {"clip": 3.0})


def test_a_config_file_with_part_tables_loads_and_a_typo_names_its_path():
    text = """
[detectors.spike]
kind = "spike"
threshold = 0.99

[detectors.spike.params]
transform = "log1p"
extremity = { alarm_ratio = 2.0 }

[detectors.spike.params.novelty]
levels = 0
"""
    settings = load_settings_text(text, env={})
    assert settings.detectors["spike"].params == {
        "transform": "log1p", "extremity": {"alarm_ratio": 2.0}, "novelty": {"levels": 0}}
    with pytest.raises(ConfigError) as info:
        load_settings_text(text.replace("alarm_ratio", "alarm_ration"), env={})
    assert info.value.path == "detectors.spike.params.extremity.alarm_ration"
    assert "alarm_ratio" in str(info.value)  # the message lists what is valid
