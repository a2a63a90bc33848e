"""The detection core: a tenfold spike on a route raises one explained alert; noise does not."""

from __future__ import annotations

import json

from prometheus_client import CollectorRegistry

from streams.config import DEFAULT_CONFIG_PATH, load_settings
from streams.events import TradeAlert
from streams.metrics import PipelineMetrics
from streams.keys import record_key
from streams.offline import run_offline
from tests.factories import spike_stream


def _settings():  # type: ignore[no-untyped-def]
    return load_settings(DEFAULT_CONFIG_PATH, env={})


def _alerts_on(alerts: list[TradeAlert], key: str, detector: str = "spike") -> list[TradeAlert]:
    return [a for a in alerts if a.series.key == key and a.detector == detector]


def test_a_tenfold_spike_raises_a_spike_alert_in_its_first_window() -> None:
    records, key = spike_stream(days=70, spike_day=50)
    result = run_offline(records, _settings())
    spikes = _alerts_on(result.alerts, key)
    assert spikes, [a.summary for a in result.alerts]
    first = spikes[0]
    assert first.window_start.day == 20 and first.window_start.month == 2  # 2024-01-01 + 50 days
    assert first.evidence.observed > 5 * first.evidence.expected
    assert first.evidence.expected_low <= first.evidence.expected <= first.evidence.expected_high
    assert first.severity in ("high", "critical")  # tier-1 chips
    assert first.series.transit_country == "KG" and first.series.chpl_tier == "1"
    assert first.evidence.declaration_ids and first.evidence.declaration_count >= 3


def test_the_steady_series_raises_no_spike_alert() -> None:
    records, _ = spike_stream(days=70, spike_day=50)
    result = run_offline(records, _settings())
    assert not _alerts_on(result.alerts, "hs6:FR>KZ:090111")


def test_the_same_input_gives_the_same_alert_ids() -> None:
    records, _ = spike_stream(days=60, spike_day=45)
    first = {a.alert_id for a in run_offline(records, _settings()).alerts}
    second = {a.alert_id for a in run_offline(records, _settings()).alerts}
    assert first and first == second


def test_metrics_count_consumed_windows_and_alerts() -> None:
    records, _ = spike_stream(days=60, spike_day=45)
    registry = CollectorRegistry()
    settings = _settings()
    metrics = PipelineMetrics.create(registry, detectors=list(settings.detectors))
    result = run_offline(records, settings, metrics)
    assert registry.get_sample_value("tradewatch_windows_closed_total", {"level": "hs6"}) > 0
    assert registry.get_sample_value("tradewatch_active_series", {"level": "hs6"}) >= 1
    assert result.accepted == len(records)


def test_records_are_keyed_by_chpl_tier_else_hs2_chapter() -> None:
    records, _ = spike_stream(days=2)
    assert record_key(records[0]) == b"T1"  # 8542.31: Tier-1 integrated circuits
    assert record_key(records[-1]) == b"09"  # coffee, chapter 09
    assert record_key(b"not json") == b""
    assert record_key(b'{"hs_code": 8542}') == b""


def test_a_tier_series_is_complete_in_one_partition() -> None:
    """Every CHPL code of a tier shares the tier's key, so no partition holds a part of it."""
    from detectors.reference import CHPL_TIERS
    from streams.keys import partition_for, partition_key

    for tier in set(CHPL_TIERS.values()):
        codes = [hs6 for hs6, t in CHPL_TIERS.items() if t == tier]
        assert len({partition_for(partition_key(c), 4) for c in codes}) == 1


# -- replay: what the worker dead-letters, and never a crash ------------------------------


def _bad_lines() -> list[bytes]:
    records, _ = spike_stream(days=2)
    good = json.loads(records[0])
    return [
        b'{"a":' + b"[" * 30_000 + b"]" * 30_000 + b"}",  # 60 kB, too deep for the decoder
        b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}",  # 200 kB: over max_message_bytes
        good_json(good, statistical_value_eur=1e308),
        b"{not json",
        records[0],  # a second copy of the first record
    ]


def good_json(record: dict, **changes: object) -> bytes:  # type: ignore[type-arg]
    return json.dumps(record | {"declaration_id": "BAD"} | changes).encode()


def test_replay_survives_a_100k_deep_nested_line_and_reports_it() -> None:
    records, _ = spike_stream(days=2)
    stream = records[:1] + _bad_lines() + records[1:]
    result = run_offline(stream, _settings())
    assert result.rejected_by_reason() == {
        "too_deeply_nested": 1, "oversized": 1, "value_out_of_range": 1, "not_json": 1,
        "duplicate_declaration": 1}
    assert result.accepted == len(records)


def test_replay_dead_letters_exactly_what_the_worker_dead_letters() -> None:
    from streams.keys import partition_for, record_key
    from streams.metrics import PipelineMetrics
    from streams.worker import RecordHandler

    records, _ = spike_stream(days=20)
    stream = records[:50] + _bad_lines() + records[50:] + records[:3]  # + 3 late duplicates
    settings = _settings()
    handler = RecordHandler(settings, PipelineMetrics.disabled(), log_dead_letters=False)
    worker = []
    for index, raw in enumerate(stream):
        partition = partition_for(record_key(raw), settings.topics.partitions)
        for out in handler.handle(raw, key=None, topic="t", partition=partition, offset=index):
            if out.kind == "dead_letter":
                worker.append((index, out.reason))
    replay = [(index, reason) for index, reason, _ in run_offline(stream, settings).rejected]
    assert replay == worker and len(worker) == 8


def test_the_duplicate_set_holds_only_the_dedup_horizon() -> None:
    """Ids are forgotten once the watermark is a horizon past them: memory stays bounded."""
    from streams.worker import RecordHandler

    settings = _settings()
    records, _ = spike_stream(days=40)
    handler = RecordHandler(settings, PipelineMetrics.disabled())
    for offset, raw in enumerate(records):
        handler.handle(raw, key=None, topic="t", partition=0, offset=offset)
    per_day = len(records) / 40
    horizon_days = settings.validation.dedup_horizon_seconds / 86_400
    assert 0 < len(handler.pipelines[0].seen) <= (horizon_days + 1) * per_day
