"""Series families: lanes and the transit-country view, rollups complete, influencers, drops."""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict

import pytest

from detectors.reference import CHPL_TIERS
from streams.config import ConfigError, Settings, load_settings, load_settings_text
from streams.events import decode_declaration
from streams.keys import partition_for, partition_key, record_key
from streams.offline import run_offline
from streams.pipeline import PartitionPipeline
from tests.factories import START, declaration, rollup_stream

ALL_SCOPE_WITH_HS2 = """
[alerts]
scope = "all"

[[series]]
name = "hs6"
product = "hs6"

[[series]]
name = "tier"
product = "tier"

[[series]]
name = "transit_hs6"
origin = "any"
product = "hs6"

[[series]]
name = "transit_tier"
origin = "any"
product = "tier"

[[series]]
name = "hs2"
product = "hs2"

[[series]]
name = "transit_hs2"
origin = "any"
product = "hs2"
"""


def _closed_totals(settings: Settings, decls: list) -> dict[str, float]:  # type: ignore[type-arg]
    pipeline = PartitionPipeline(settings, clock=lambda: 0.0)
    for d in decls:
        pipeline.features.add(d, d.declared_ts)
    totals: dict[str, float] = defaultdict(float)
    for window in pipeline.windows.flush():
        for key, agg in window.aggregates.items():
            totals[key] += agg.value_eur
    return dict(totals)


# -- the transit-country view ------------------------------------------------------------


def test_the_transit_view_of_kg_sums_every_origin() -> None:
    decls = [declaration(declaration_id=f"D{i}", exporter_country=origin, statistical_value_eur=v,
                         declared_at=START + dt.timedelta(hours=i))
             for i, (origin, v) in enumerate((("DE", 100.0), ("LT", 250.0), ("PL", 50.0)))]
    totals = _closed_totals(Settings(), decls)
    assert totals["hs6:*>KG:854231"] == totals["tier:*>KG:T1"] == 400.0
    assert totals["hs6:DE>KG:854231"] == 100.0 and totals["hs6:LT>KG:854231"] == 250.0


def test_the_default_watches_lanes_and_the_transit_view_per_hs6_and_tier() -> None:
    names = {(s.name, s.origin, s.product) for s in Settings().series_definitions()}
    assert names == {("hs6", "each", "hs6"), ("tier", "each", "tier"),
                     ("transit_hs6", "any", "hs6"), ("transit_tier", "any", "tier")}


def test_a_chpl_code_counts_towards_hs6_and_tier_only_and_other_goods_towards_hs4_hs2() -> None:
    settings = load_settings_text(ALL_SCOPE_WITH_HS2 + '\n[[series]]\nname = "hs4"\nproduct = "hs4"\n',
                                  env={})
    chips = declaration(declaration_id="A")
    cables = declaration(declaration_id="B", hs_code="85441100")
    totals = _closed_totals(settings, [chips, cables])
    assert set(totals) == {
        "hs6:DE>KG:854231", "tier:DE>KG:T1", "hs6:*>KG:854231", "tier:*>KG:T1",
        "hs6:DE>KG:854411", "hs6:*>KG:854411", "hs2:DE>KG:85", "hs2:*>KG:85", "hs4:DE>KG:8544"}
    assert not any("@p" in k for k in totals)


# -- rollups are complete wherever their parts land ----------------------------------------


def test_every_code_of_a_tier_or_of_a_chapter_lands_on_one_partition() -> None:
    for tier in set(CHPL_TIERS.values()):
        codes = [hs6 for hs6, t in CHPL_TIERS.items() if t == tier]
        assert len({partition_for(partition_key(c), 4) for c in codes}) == 1
    chapter_85 = ["851830", "853710", "851712", "854411", "852872"]  # outside the CHPL
    assert len({partition_for(partition_key(c), 4) for c in chapter_85}) == 1
    # keyed by HS6 (the old rule) the same chapter spread over every partition
    assert len({partition_for(c.encode(), 4) for c in chapter_85}) == 4


def test_an_hs2_rollup_is_complete_in_the_partition_its_records_are_keyed_to() -> None:
    settings = load_settings_text(ALL_SCOPE_WITH_HS2, env={})
    records = rollup_stream(days=3)
    by_partition: dict[int, list] = defaultdict(list)  # type: ignore[type-arg]
    for raw in records:
        by_partition[partition_for(record_key(raw), 4)].append(decode_declaration(raw))
    assert len(by_partition) >= 3
    everything = _closed_totals(settings, [decode_declaration(r) for r in records])
    for decls in by_partition.values():
        for key, total in _closed_totals(settings, decls).items():
            assert math.isclose(total, everything[key]), key  # a partition holds all of it


# -- configuration -----------------------------------------------------------------------


def test_windows_levels_is_shorthand_for_lanes() -> None:
    settings = load_settings_text('[windows]\nlevels = ["hs6"]', env={})
    assert [(s.name, s.origin, s.product) for s in settings.series] == [("hs6", "each", "hs6")]
    assert settings.windows.levels is None  # resolved into [[series]]


def test_the_effective_series_round_trip_through_toml() -> None:
    settings = load_settings_text(ALL_SCOPE_WITH_HS2, env={})
    assert load_settings_text(settings.to_toml(), env={}) == settings


@pytest.mark.parametrize("text,path,hint", [
    ('[windows]\nlevels = ["hs6"]\n[[series]]\nname = "x"', "windows.levels", "not both"),
    ('[[series]]\nname = "a"\n[[series]]\nname = "b"\norigin = "DE"', "series[1]", "would both hold"),
    ('[[series]]\nname = "a"\n[[series]]\nname = "a"\norigin = "any"', "series[1].name", "taken"),
    ('[[series]]\nname = "c"\nproduct = "hs2"', "series[0].product", 'alerts.scope = "all"'),
    ('[[series]]\nname = "c"\norigin = "Germany"', "series[0].origin", "each|any"),
    ('[[series]]\nname = "c"\ndirection = "sideways"', "series[0].direction", "valid: up, down, both"),
])
def test_series_errors_name_the_path_and_the_fix(text: str, path: str, hint: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings_text(text, env={})
    assert info.value.path == path
    assert hint in str(info.value)


def test_one_origin_and_the_lanes_of_other_destinations_do_not_overlap() -> None:
    settings = load_settings_text(
        '[[series]]\nname = "to_kg"\ndestination = "KG"\n'
        '[[series]]\nname = "to_ru_drops"\ndestination = "RU"\nproduct = "hs6"\ndirection = "down"',
        env={})
    assert [s.direction for s in settings.series] == ["up", "down"]


# -- influencers -------------------------------------------------------------------------


def test_influencers_name_the_lane_that_carried_the_surge() -> None:
    settings = load_settings(None, env={})
    result = run_offline(rollup_stream(days=70, surge_day=50), settings)
    transit = [a for a in result.alerts if a.series.key == "tier:*>KG:T1"]
    assert transit, [a.series.key for a in result.alerts]
    lanes = [i for i in transit[0].evidence.influencers if i.kind == "lane"]
    assert lanes[0].value == "hs6:LT>KG:854232" and lanes[0].share > 0.5
    assert {i.kind for i in transit[0].evidence.influencers} == {"lane", "exporter", "consignee"}
    assert all(len([i for i in a.evidence.influencers if i.kind == k]) <= 5
               for a in result.alerts for k in ("lane", "exporter", "consignee"))
    lane_alerts = [a for a in result.alerts if a.series.key.startswith("hs6:") and "*" not in a.series.key]
    assert all(not a.evidence.influencers for a in lane_alerts)  # a lane is its own influencer


# -- drops -------------------------------------------------------------------------------


def _collapse_stream(days: int = 90, stop_day: int = 60) -> list[bytes]:
    from streams.events import encode

    out = []
    for day in range(days):
        if day >= stop_day:
            continue
        for i in range(4):
            out.append(encode(declaration(
                declaration_id=f"C{day:03d}{i}", destination_country="RU", consignee_country="RU",
                declared_at=START + dt.timedelta(days=day, hours=8 + i),
                statistical_value_eur=25_000.0 * (1 + 0.1 * ((day * 7 + i) % 5)))))
    # chips to KG (same key, same partition) keep its watermark going after the collapse
    for day in range(days):
        out.append(encode(declaration(
            declaration_id=f"K{day:03d}", declared_at=START + dt.timedelta(days=day, hours=12))))
    return sorted(out, key=lambda r: decode_declaration(r).declared_ts)


def test_a_collapse_alerts_only_where_drops_are_asked_for() -> None:
    drops = load_settings_text(
        '[[series]]\nname = "hs6"\ndestination = "RU"\ndirection = "down"\n'
        '[[series]]\nname = "other"\ndestination = "KG"', env={})
    down = [a for a in run_offline(_collapse_stream(), drops).alerts
            if a.series.key == "hs6:DE>RU:854231"]
    assert down and all(a.evidence.details["direction"] == "down" for a in down)
    assert down[0].evidence.observed < down[0].evidence.expected_low
    surges_only = load_settings_text('[[series]]\nname = "hs6"', env={})
    assert not [a for a in run_offline(_collapse_stream(), surges_only).alerts
                if a.series.key == "hs6:DE>RU:854231"]
