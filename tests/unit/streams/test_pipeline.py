"""The detection core: a tenfold spike on a route raises one explained alert; noise does not."""

from __future__ import annotations

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


def test_records_are_keyed_by_chpl_tier_else_hs6_code() -> None:
    records, _ = spike_stream(days=2)
    assert record_key(records[0]) == b"T1"  # 8542.31: Tier-1 integrated circuits
    assert record_key(records[-1]) == b"090111"  # coffee
    assert record_key(b"not json") == b""
    assert record_key(b'{"hs_code": 8542}') == b""


def test_a_tier_series_is_complete_in_one_partition() -> None:
    """Every CHPL code of a tier shares the tier's key, so no partition holds a part of it."""
    from detectors.reference import CHPL_TIERS
    from streams.keys import partition_for, partition_key

    for tier in set(CHPL_TIERS.values()):
        codes = [hs6 for hs6, t in CHPL_TIERS.items() if t == tier]
        assert len({partition_for(partition_key(c), 4) for c in codes}) == 1
