"""The synthetic declaration generator: deterministic, valid, and shaped like trade data."""

from __future__ import annotations

import collections
import datetime as dt
import time

import numpy as np
import pytest

from detectors.reference import CHPL_TIERS, SANCTIONED_DESTINATIONS, TRANSIT_COUNTRIES, chpl_tier
from streams.events import decode_declaration
from evaluation.synth.generator import (
    PRODUCTS,
    StreamConfig,
    SyntheticStream,
    generate_records,
    season_factor,
    throttle,
    write_jsonl,
)
from streams.validate import ValidationLimits, validate_declaration

FOUR_WEEKS = StreamConfig(seed=11, start=dt.date(2022, 2, 7), days=28, daily_declarations=500)


@pytest.fixture(scope="module")
def four_weeks() -> list:
    return list(SyntheticStream(FOUR_WEEKS).declarations())


def test_same_seed_same_bytes_and_other_seed_differs() -> None:
    cfg = StreamConfig(seed=3, days=5, daily_declarations=200)
    a = list(generate_records(cfg))
    b = list(generate_records(cfg))
    c = list(generate_records(StreamConfig(seed=4, days=5, daily_declarations=200)))
    assert a == b
    assert a != c
    assert len(a) > 500


def test_a_stream_can_be_replayed() -> None:
    from evaluation.synth.scenarios import scenario_by_name

    stream = SyntheticStream(
        StreamConfig(seed=3, days=40, daily_declarations=100),
        [scenario_by_name("trap_data_gap_partition", onset_day=20)],
    )
    first = list(stream.records())
    n_moved = len(stream.truths[0].declaration_ids)
    assert list(stream.records()) == first
    assert len(stream.truths[0].declaration_ids) == n_moved > 0


def test_every_record_passes_validation_and_ids_are_unique() -> None:
    records = list(generate_records(StreamConfig(seed=5, days=10, daily_declarations=300)))
    limits = ValidationLimits()
    now = time.time()
    decls = [validate_declaration(r, now_ts=now, limits=limits) for r in records]
    ids = [d.declaration_id for d in decls]
    assert len(set(ids)) == len(ids)
    for d in decls:
        assert d.declared_at.utcoffset() == dt.timedelta(0)
        assert len(d.hs_code) == 8  # CN8
        assert d.customs_procedure in ("1000", "3151")
        assert d.transport_mode in (1, 2, 3, 4, 5)
        assert d.exporter_id[:2] == d.exporter_country and d.exporter_id[2:].isdigit()
        assert len(d.declaration_id) == 18 and d.declaration_id[2:4] == d.exporter_country
        assert d.net_mass_kg > 0 and d.statistical_value_eur > 0
        assert (
            d.exporter_country not in d.transit_route
            and d.destination_country not in d.transit_route
        )


def test_event_time_order_within_the_configured_days(four_weeks: list) -> None:
    times = [d.declared_ts for d in four_weeks]
    assert times == sorted(times)
    assert FOUR_WEEKS.start_ts <= times[0] and times[-1] < FOUR_WEEKS.end_ts


def test_volume_matches_the_configured_scale(four_weeks: list) -> None:
    per_day = len(four_weeks) / FOUR_WEEKS.days
    assert 0.8 * FOUR_WEEKS.daily_declarations < per_day < 1.25 * FOUR_WEEKS.daily_declarations


def test_weekday_seasonality_is_visible(four_weeks: list) -> None:
    by_weekday = collections.Counter(d.declared_at.weekday() for d in four_weeks)
    weekday = np.mean([by_weekday[i] for i in range(5)])
    assert by_weekday[5] < 0.5 * weekday
    assert by_weekday[6] < 0.35 * weekday


def test_monthly_and_holiday_seasonality() -> None:
    # December dip: Christmas week far below an ordinary November week
    assert season_factor(dt.date(2021, 12, 25)) < 0.2
    nov = sum(season_factor(dt.date(2021, 11, 8) + dt.timedelta(days=i)) for i in range(7))
    xmas = sum(season_factor(dt.date(2021, 12, 24) + dt.timedelta(days=i)) for i in range(7))
    aug = sum(season_factor(dt.date(2021, 8, 9) + dt.timedelta(days=i)) for i in range(7))
    assert xmas < 0.7 * nov and aug < 0.85 * nov
    # pre-holiday peak for consumer goods, not for chips
    assert season_factor(dt.date(2021, 11, 18), "consumer") > 1.1 * season_factor(
        dt.date(2021, 11, 18), "chips"
    )
    # averaged over a year the factors are ~1, so daily_declarations is the mean volume
    year = [season_factor(dt.date(2021, 1, 1) + dt.timedelta(days=i)) for i in range(365)]
    assert 0.93 < np.mean(year) < 1.05


def test_heavy_tails_in_values_and_exporter_activity(four_weeks: list) -> None:
    values = np.sort([d.statistical_value_eur for d in four_weeks])
    top1 = values[-len(values) // 100 :].sum() / values.sum()
    assert top1 > 0.08  # 10x the share of a flat distribution
    assert values[-1] / np.median(values) > 50
    counts = np.sort(list(collections.Counter(d.exporter_id for d in four_weeks).values()))[::-1]
    assert counts[: len(counts) // 10].sum() / counts.sum() > 0.4  # top 10 % of exporters
    assert np.sum(counts == 1) > 0.2 * len(counts)  # and a long tail of one-off exporters


def test_chpl_share_and_onward_legs_are_sane(four_weeks: list) -> None:
    chpl = np.mean([chpl_tier(d.hs_code) is not None for d in four_weeks])
    assert 0.05 < chpl < 0.2
    tiers = {chpl_tier(d.hs_code) for d in four_weeks}
    assert {"1", "2", "3A", "3B", "4A", "4B"} <= tiers
    onward = [
        d
        for d in four_weeks
        if d.exporter_country in TRANSIT_COUNTRIES
        and d.destination_country in SANCTIONED_DESTINATIONS
    ]
    assert 0.02 < len(onward) / len(four_weeks) < 0.12
    assert np.mean([chpl_tier(d.hs_code) is not None for d in onward]) < 0.06  # low ordinary levels
    destinations = {d.destination_country for d in four_weeks}
    assert TRANSIT_COUNTRIES <= destinations and {"RU", "BY"} <= destinations
    origins = {d.exporter_country for d in four_weeks}
    assert {"DE", "IT", "PL", "FR", "NL", "CN", "TR", "US"} <= origins
    assert all(p.hs6 in CHPL_TIERS for p in PRODUCTS if p.sector in ("chips",))


@pytest.mark.parametrize(
    ("hs6", "low", "high"),
    [
        ("854231", 1500, 6000),  # processors: thousands of EUR per kg
        ("848210", 10, 50),  # ball bearings
        ("090121", 3, 8),  # roasted coffee
        ("610910", 10, 30),  # T-shirts
        ("940360", 2, 8),  # wooden furniture
    ],
)
def test_unit_values_are_plausible(four_weeks: list, hs6: str, low: float, high: float) -> None:
    uv = [d.statistical_value_eur / d.net_mass_kg for d in four_weeks if d.hs_code.startswith(hs6)]
    assert len(uv) >= 20
    assert low <= float(np.median(uv)) <= high


def test_background_does_not_depend_on_scenarios() -> None:
    from evaluation.synth.scenarios import scenario_by_name

    cfg = StreamConfig(seed=9, days=40, daily_declarations=200)
    plain = set(generate_records(cfg))
    spiked = list(generate_records(cfg, [scenario_by_name("ic_spike_de_kg_ru", onset_day=20)]))
    assert plain < set(spiked)
    assert len(spiked) > len(plain)


def test_throttle_paces_records() -> None:
    records = [b"x"] * 200
    started = time.monotonic()
    assert list(throttle(records, 1000.0)) == records
    assert time.monotonic() - started >= 0.12


def test_write_jsonl_writes_records_and_truth(tmp_path) -> None:
    from evaluation.synth.scenarios import scenario_by_name

    out = tmp_path / "stream.jsonl"
    summary = write_jsonl(
        out,
        StreamConfig(days=30, daily_declarations=100),
        [scenario_by_name("ic_spike_de_kg_ru", onset_day=15)],
    )
    lines = out.read_bytes().splitlines()
    assert len(lines) == summary["records"]
    assert decode_declaration(lines[0]).schema_version == 1
    import json

    truth = json.loads((tmp_path / "stream.jsonl.truth.json").read_text())
    assert truth["scenarios"][0]["scenario"] == "ic_spike_de_kg_ru"
    assert "hs6:DE>KG:854231" in truth["scenarios"][0]["series"]
