"""What the worker makes of each record, without a broker."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from streams.config import DEFAULT_CONFIG_PATH, load_settings
from streams.metrics import PipelineMetrics
from streams.worker import RecordHandler
from tests.factories import spike_stream


def make_handler() -> tuple[RecordHandler, CollectorRegistry]:
    settings = load_settings(DEFAULT_CONFIG_PATH, env={})
    registry = CollectorRegistry()
    metrics = PipelineMetrics.create(registry, detectors=list(settings.detectors))
    return RecordHandler(settings, metrics), registry


def test_a_bad_record_becomes_a_dead_letter_with_provenance_headers() -> None:
    handler, registry = make_handler()
    (out,) = handler.handle(b"{oops", key=b"k", topic="trade.declarations", partition=2, offset=41)
    headers = dict(out.headers)
    assert out.kind == "dead_letter" and out.value == b"{oops" and out.key == b"k"
    assert headers["tw-reason"] == b"not_json"
    assert (headers["tw-source-topic"], headers["tw-source-partition"], headers["tw-source-offset"]) == (
        b"trade.declarations", b"2", b"41")
    assert registry.get_sample_value("tradewatch_declarations_rejected_total", {"reason": "not_json"}) == 1


def test_an_unexpected_error_dead_letters_the_record_and_the_worker_carries_on() -> None:
    handler, _ = make_handler()
    records, _ = spike_stream(days=3)

    def explode(_declaration):  # type: ignore[no-untyped-def]
        raise RuntimeError("detector bug")

    handler.pipeline(0).process = explode  # type: ignore[method-assign]
    (out,) = handler.handle(records[0], key=None, topic="t", partition=0, offset=0)
    assert dict(out.headers)["tw-reason"] == b"invalid_field"
    assert b"RuntimeError: detector bug" in dict(out.headers)["tw-detail"]
    assert handler.handle(records[1], key=None, topic="t", partition=1, offset=0) == []


def test_a_late_record_is_dead_lettered_as_late_event() -> None:
    handler, registry = make_handler()
    records, _ = spike_stream(days=10)
    for offset, raw in enumerate(records):
        handler.handle(raw, key=None, topic="t", partition=0, offset=offset)
    (out,) = handler.handle(records[0], key=None, topic="t", partition=0, offset=len(records))
    assert dict(out.headers)["tw-reason"] == b"late_event"
    assert registry.get_sample_value("tradewatch_late_declarations_total") == 1


def test_revoked_partitions_lose_their_lag_series_and_state() -> None:
    handler, registry = make_handler()
    records, _ = spike_stream(days=2)
    handler.handle(records[0], key=None, topic="t", partition=0, offset=0)
    handler.handle(records[1], key=None, topic="t", partition=1, offset=0)
    handler.record_highwater("t", 0, 10)
    handler.record_highwater("t", 1, 10)
    handler.sync_assignment({("t", 1)})
    lag = "tradewatch_consumer_lag_messages"
    assert registry.get_sample_value(lag, {"topic": "t", "partition": "0"}) is None
    assert registry.get_sample_value(lag, {"topic": "t", "partition": "1"}) == 9
    assert set(handler.pipelines) == {1}


def test_tick_publishes_the_last_event_and_processing_times() -> None:
    handler, registry = make_handler()
    records, _ = spike_stream(days=2)
    handler.handle(records[0], key=None, topic="t", partition=0, offset=0)
    handler.tick()
    assert registry.get_sample_value("tradewatch_last_event_timestamp_seconds") == 1704096000.0
    assert registry.get_sample_value("tradewatch_last_processed_timestamp_seconds") > 1.7e9
