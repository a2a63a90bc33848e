"""Each scenario injects exactly what its ground truth says it does."""

from __future__ import annotations

import collections
import datetime as dt

import numpy as np
import pytest

from detectors.reference import chpl_tier
from evaluation.synth.generator import StreamConfig, SyntheticStream, all_level_keys
from evaluation.synth.scenarios import (
    DataGapCatchUp,
    GroundTruth,
    NewOrdinaryPartner,
    OneOffLegitShipment,
    RouteShift,
    SeasonalPeak,
    ShellExporter,
    SlowRamp,
    SuddenSpike,
    UnitValueMisdeclaration,
    default_scenario_set,
    list_scenarios,
    partition_of,
    scenario_by_name,
    small_scenario_set,
)

CFG = StreamConfig(seed=21, start=dt.date(2022, 1, 3), days=84, daily_declarations=400)
ONSET = 42
DAY = 86_400.0


def run(*scenarios):
    stream = SyntheticStream(CFG, scenarios)
    decls = list(stream.declarations())
    return stream, decls


@pytest.fixture(scope="module")
def background() -> list:
    return run()[1]


def day_of(d) -> int:
    return int((d.declared_ts - CFG.start_ts) // DAY)


def lane(decls, origin, dest, hs6):
    return [
        d
        for d in decls
        if d.exporter_country == origin
        and d.destination_country == dest
        and d.hs_code.startswith(hs6)
    ]


def check_truth_consistent(truth: GroundTruth, decls) -> list:
    """Every injected id is in the stream, on one of the truth's series, inside its time range."""
    by_id = {d.declaration_id: d for d in decls}
    injected = [by_id[i] for i in truth.declaration_ids]
    hs6_only = all(k.startswith(("hs6:", "passthrough:")) for k in truth.series)
    assert len(injected) == len(truth.declaration_ids) > 0
    assert len(set(truth.declaration_ids)) == len(truth.declaration_ids)
    for d, ts in zip(injected, truth.declaration_ts, strict=True):
        assert d.declared_ts == ts
        assert truth.onset <= ts < truth.end
        keys = all_level_keys(d.exporter_country, d.destination_country, d.hs_code)
        assert set(keys[:1] if hs6_only else keys) <= truth.series
    ids = [d.declaration_id for d in decls]
    assert len(set(ids)) == len(ids)
    return injected


def test_sudden_spike_tenfold_then_reexports(background) -> None:
    s = SuddenSpike(name="spike", onset_day=ONSET, duration_days=21, lag_days=4)
    stream, decls = run(s)
    truth = s.ground_truth
    assert truth.expect_alert and truth.kind == "SuddenSpike"
    injected = check_truth_consistent(truth, decls)
    assert {
        "hs6:DE>KG:854231",
        "tier:DE>KG:T1",
        "hs6:KG>RU:854231",
        "passthrough:KG>RU:854231",
    } <= truth.series
    inflow = [d for d in injected if d.destination_country == "KG"]
    outflow = [d for d in injected if d.destination_country == "RU"]
    # tenfold and more: per day the injected inflow is >= 10x the lane's background
    base_days = [day_of(d) for d in lane(background, "DE", "KG", "854231")]
    base_per_day = max(len(base_days) / CFG.days, truth.details["base_per_day"])
    assert len(inflow) / 21 >= 10 * base_per_day
    assert min(day_of(d) for d in inflow) >= ONSET
    # re-exports: same firms, KG -> RU, a few days later, ~90 % of the value (x1.1 markup)
    assert outflow and all(
        d.exporter_country == "KG" and d.customs_procedure == "3151" for d in outflow
    )
    assert {d.exporter_id for d in outflow} <= {d.consignee_id for d in inflow}
    assert min(day_of(d) for d in outflow) >= ONSET + 4
    ratio = sum(d.statistical_value_eur for d in outflow) / sum(
        d.statistical_value_eur for d in inflow if day_of(d) < CFG.days - 7
    )
    assert 0.8 < ratio < 1.2
    # the background is untouched
    assert set(d.declaration_id for d in background) <= {d.declaration_id for d in decls}
    assert len(decls) == len(background) + len(injected)


def test_route_shift_moves_direct_trade_through_the_hub(background) -> None:
    s = RouteShift(name="shift", onset_day=ONSET, duration_days=35)
    stream, decls = run(s)
    injected = check_truth_consistent(s.ground_truth, decls)
    before = [d for d in lane(background, "IT", "RU", "848210") if ONSET <= day_of(d) < ONSET + 35]
    after = [d for d in lane(decls, "IT", "RU", "848210") if ONSET <= day_of(d) < ONSET + 35]
    assert len(before) >= 10
    assert len(after) <= 0.3 * len(before)  # 90 % of the direct flow is gone
    to_hub = [d for d in injected if d.destination_country == "AM"]
    onward = [d for d in injected if d.exporter_country == "AM"]
    assert len(to_hub) >= 20 and onward
    exporters_before = {d.exporter_id for d in lane(background, "IT", "RU", "848210")}
    assert {d.exporter_id for d in to_hub} & exporters_before  # the same exporters
    assert min(day_of(d) for d in onward) >= ONSET + 5
    assert "hs6:IT>RU:848210" in s.ground_truth.series  # the collapse is part of the pattern


def test_shell_exporter_is_new_and_ships_chpl_in_volume(background) -> None:
    s = ShellExporter(name="shell", onset_day=ONSET)
    stream, decls = run(s)
    injected = check_truth_consistent(s.ground_truth, decls)
    shell = s.ground_truth.details["exporter_id"]
    assert {d.exporter_id for d in injected} == {shell}
    assert shell not in {d.exporter_id for d in background}
    assert all(chpl_tier(d.hs_code) in ("1", "2") for d in injected)
    assert len(injected) >= 2 * 21  # ~3 a day on working days
    base = lane(background, "PL", "KZ", "854232") + lane(background, "PL", "KZ", "851762")
    assert len(injected) > 5 * max(len(base), 1) * 21 / CFG.days


def test_unit_value_misdeclaration_is_5_to_10_percent(background) -> None:
    s = UnitValueMisdeclaration(name="uv", onset_day=ONSET)
    stream, decls = run(s)
    injected = check_truth_consistent(s.ground_truth, decls)
    usual = np.median(
        [
            d.statistical_value_eur / d.net_mass_kg
            for d in background
            if d.hs_code.startswith("854231")
        ]
    )
    ratios = [d.statistical_value_eur / d.net_mass_kg / usual for d in injected]
    assert len(ratios) >= 15
    assert 0.02 < np.median(ratios) < 0.15
    assert max(ratios) < 0.3
    exporter = s.ground_truth.details["exporter_id"]
    assert exporter in {d.exporter_id for d in background}  # an established exporter


def test_slow_ramp_grows_over_months() -> None:
    s = SlowRamp(name="ramp", onset_day=10, ramp_days=60, hold_days=10)
    stream, decls = run(s)
    injected = check_truth_consistent(s.ground_truth, decls)
    days = [day_of(d) for d in injected]
    first, last = sum(10 <= x < 30 for x in days), sum(50 <= x < 70 for x in days)
    assert last > 2.5 * max(first, 1)


def test_seasonal_peak_is_ordinary_and_centred_on_its_date() -> None:
    s = SeasonalPeak(name="roses", year=2022, month=3, day=4)
    stream, decls = run(s)
    truth = s.ground_truth
    injected = check_truth_consistent(truth, decls)
    assert not truth.expect_alert and truth.max_severity_allowed == "low"
    assert all(chpl_tier(d.hs_code) is None for d in injected)
    peak = CFG.day_of(dt.date(2022, 3, 4))
    assert abs(np.median([day_of(d) for d in injected]) - peak) <= 3


def test_one_off_shipment_is_one_big_ordinary_declaration(background) -> None:
    s = OneOffLegitShipment(name="oneoff", onset_day=ONSET)
    stream, decls = run(s)
    [d] = check_truth_consistent(s.ground_truth, decls)
    assert chpl_tier(d.hs_code) is None
    lane_values = [x.statistical_value_eur for x in lane(background, "DE", "UZ", "870899")]
    assert d.statistical_value_eur > 30 * sum(lane_values) / CFG.days
    assert 3 <= d.statistical_value_eur / d.net_mass_kg <= 20  # a plausible unit value


def test_new_ordinary_partner_is_new_and_not_chpl(background) -> None:
    s = NewOrdinaryPartner(name="partner", onset_day=ONSET)
    stream, decls = run(s)
    injected = check_truth_consistent(s.ground_truth, decls)
    assert s.ground_truth.details["exporter_id"] not in {d.exporter_id for d in background}
    assert all(chpl_tier(d.hs_code) is None for d in injected)
    assert len(injected) > 2 * (CFG.days - ONSET) * 0.7


def test_data_gap_silences_a_partition_then_lodges_the_backlog(background) -> None:
    s = DataGapCatchUp(name="gap", onset_day=ONSET, gap_days=3, partitions=4)
    stream, decls = run(s)
    truth = s.ground_truth
    codes = s.hs6_codes()
    part = partition_of(s.anchor_hs6, 4)
    assert all(partition_of(c, 4) == part for c in codes)
    in_part = [d for d in decls if d.hs_code[:6] in codes]
    bg_part = [d for d in background if d.hs_code[:6] in codes]
    per_day = collections.Counter(day_of(d) for d in in_part)
    assert all(per_day[ONSET + i] == 0 for i in range(3))  # the whole partition is silent
    # nothing lost: the backlog is the same declarations, lodged on the catch-up day
    assert sorted(d.declaration_id for d in in_part) == sorted(d.declaration_id for d in bg_part)
    moved = set(truth.declaration_ids)
    assert moved == {d.declaration_id for d in bg_part if ONSET <= day_of(d) < ONSET + 3}
    assert all(day_of(d) == ONSET + 3 for d in in_part if d.declaration_id in moved)
    assert per_day[ONSET + 3] > 2 * np.median([per_day[d] for d in range(ONSET - 14, ONSET)])
    # other partitions are untouched
    others = [d.declaration_id for d in decls if d.hs_code[:6] not in codes]
    assert others == [d.declaration_id for d in background if d.hs_code[:6] not in codes]
    assert f"hs6:DE>RU:{s.anchor_hs6}" in truth.series
    assert all(k.startswith(("hs6:", "passthrough:")) for k in truth.series)


def test_catalogue_names_and_the_demo_scenario() -> None:
    names = list_scenarios()
    assert "ic_spike_de_kg_ru" in names
    demo = scenario_by_name("ic_spike_de_kg_ru")
    assert isinstance(demo, SuddenSpike) and demo.factor >= 10
    assert scenario_by_name("ic_spike_de_kg_ru", onset_day=5).onset_day == 5
    for name in names:
        assert scenario_by_name(name).name == name
    with pytest.raises(KeyError, match="unknown scenario"):
        scenario_by_name("nope")


def test_demo_defaults_fit_the_demo_stream() -> None:
    # ``tradewatch demo`` streams StreamConfig(days=150) with the default onset
    stream = SyntheticStream(
        StreamConfig(days=150, daily_declarations=50), [scenario_by_name("ic_spike_de_kg_ru")]
    )
    truth = stream.truths[0]
    assert stream.config.start_ts + 30 * DAY < truth.onset < stream.config.end_ts - 30 * DAY


@pytest.mark.parametrize("factory", [small_scenario_set, default_scenario_set])
def test_sets_are_consistent(factory) -> None:
    sset = factory(seed=5)
    names = [s.name for s in sset.scenarios]
    assert len(set(names)) == len(names)
    stream = SyntheticStream(sset.config, sset.scenarios)  # applies every scenario
    truths = stream.truths
    assert any(t.expect_alert for t in truths) and any(not t.expect_alert for t in truths)
    from evaluation.scorecard import PROBATION_FRACTION

    probation_end = sset.config.start_ts + PROBATION_FRACTION * (
        sset.config.end_ts - sset.config.start_ts
    )
    for t in truths:
        assert sset.config.start_ts <= t.onset < t.end <= sset.config.end_ts + DAY
        assert t.onset >= probation_end, f"{t.scenario} starts inside the unscored probation period"
    # no other scenario injects into the data-gap partition while it is silent
    gaps = [s for s in sset.scenarios if isinstance(s, DataGapCatchUp)]
    for gap in gaps:
        codes = gap.hs6_codes()
        silent = (
            stream.context.day_ts(gap.onset_day),
            stream.context.day_ts(gap.onset_day + gap.gap_days),
        )
        for effect in stream.effects:
            for d in effect.extra:
                assert not (d.hs_code[:6] in codes and silent[0] <= d.declared_ts < silent[1]), d
    # no two scenarios claim the same series at overlapping times (alerts would be
    # ambiguous), except the all-origins view of a destination, which sums every
    # lane into it: two evasion scenarios may share it (an alert there is caught
    # either way), an evasion scenario and a trap may not
    seen: dict[str, list] = {}
    for t in truths:
        for key in t.series:
            for other in seen.get(key, []):
                overlap = t.onset < other.match_until and other.onset < t.match_until
                shared = ":*>" in key and t.expect_alert and other.expect_alert
                assert shared or not overlap, f"{key}: {other.scenario} and {t.scenario} overlap in time"
            seen.setdefault(key, []).append(t)


def test_small_set_is_small() -> None:
    sset = small_scenario_set()
    assert sset.config.days <= 130
    assert sset.config.days * sset.config.daily_declarations <= 150_000
    kinds = [type(s).__name__ for s in sset.scenarios]
    assert "SuddenSpike" in kinds
    assert 1 <= sum(not s.expect_alert for s in sset.scenarios) <= 2
