"""Rollups are complete wherever their parts land: through the real broker, as offline.

The stream's chapter-85, Tier-1 and all-origins rollups sum HS6 codes that the old
HS6 keying spread over every partition; keyed by tier or chapter, each rollup meets
in one partition, so the worker on the broker sums the same totals and raises the
same alerts as the offline run.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

import pytest

from detectors.reference import chpl_tier
from streams.config import load_settings_text
from evaluation.scorecard_kafka import run_through_kafka
from streams.events import decode_declaration
from streams.keys import partition_for, record_key
from streams.offline import run_offline
from tests.factories import rollup_stream
from tests.unit.streams.test_series import ALL_SCOPE_WITH_HS2

pytestmark = pytest.mark.integration


def _comparable(alerts):  # type: ignore[no-untyped-def]
    return sorted((a.alert_id, a.detector, a.severity, a.score, a.series.key, a.window_start,
                   a.evidence.observed, tuple((i.kind, i.value, i.share) for i in a.evidence.influencers))
                  for a in alerts)


def _window_total(records: list[bytes], key: str, start: dt.datetime) -> float:
    """What a rollup should sum in the window from ``start``, straight from the records."""
    level, route, product = key.split(":")
    origin, destination = route.split(">")
    total = 0.0
    for raw in records:
        d = decode_declaration(raw)
        if not (start <= d.declared_at < start + dt.timedelta(days=1)):
            continue
        if d.destination_country != destination or origin not in ("*", d.exporter_country):
            continue
        tier = chpl_tier(d.hs_code)
        if level == "tier":
            code = f"T{tier}"
        elif level == "hs6":
            code = d.hs_code[:6]
        else:  # HS2 rollups hold the goods outside the CHPL (those roll up by tier)
            code = d.hs_code[:2] if tier is None else None
        if code == product:
            total += d.statistical_value_eur
    return total


def test_an_hs2_rollup_is_complete_across_partitions_through_the_broker(kafka_bootstrap: str) -> None:
    settings = load_settings_text(ALL_SCOPE_WITH_HS2, env={})
    records = rollup_stream(days=70, surge_day=50)
    partitions = {partition_for(record_key(r), settings.topics.partitions) for r in records}
    assert len(partitions) >= 3  # the stream spans several partitions
    offline = run_offline(records, settings).alerts
    online = run_through_kafka(records, settings)
    rollups = [a for a in online if a.series.level in ("hs2", "tier") or a.series.origin_country == "*"]
    assert {"hs2:*>KG:85", "tier:*>KG:T1"} <= {a.series.key for a in rollups}
    for a in rollups:  # the totals are whole: every part, from every origin and HS6 code
        assert a.evidence.observed == pytest.approx(_window_total(records, a.series.key, a.window_start))
    chapter_85 = {decode_declaration(r).hs_code[:6] for r in records
                  if decode_declaration(r).hs_code.startswith("85")}
    by_hs6 = defaultdict(set)
    for hs6 in chapter_85:
        by_hs6[partition_for(hs6.encode(), settings.topics.partitions)].add(hs6)
    assert len(by_hs6) >= 2  # keyed by HS6 (the old rule) these rollups would have been partials
    assert not any("@p" in a.series.key for a in online)
    assert _comparable(online) == _comparable(offline)
