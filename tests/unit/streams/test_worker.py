"""What the worker makes of each record, without a broker."""

from __future__ import annotations

import json

from prometheus_client import CollectorRegistry

from streams.config import DEFAULT_CONFIG_PATH, load_settings
from streams.events import decode_declaration
from streams.metrics import PipelineMetrics
from streams.pipeline import PartitionPipeline
from streams.worker import RecordHandler
from tests.factories import spike_stream

QUIET = load_settings(DEFAULT_CONFIG_PATH, env={}).windows.idle_timeout_seconds


class FakeClock:
    """Wall clock in 2027, after every test stream's event times."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def make_handler(clock: FakeClock | None = None) -> tuple[RecordHandler, CollectorRegistry]:
    settings = load_settings(DEFAULT_CONFIG_PATH, env={})
    registry = CollectorRegistry()
    metrics = PipelineMetrics.create(registry, detectors=list(settings.detectors))
    return RecordHandler(settings, metrics, **({"clock": clock} if clock else {})), registry


def feed(handler: RecordHandler, records: list[bytes], partition: int = 0, first: int = 0) -> list:  # type: ignore[type-arg]
    out = []
    for offset, raw in enumerate(records, start=first):
        out.extend(handler.handle(raw, key=None, topic="t", partition=partition, offset=offset))
    return out


def reasons(out: list) -> list[bytes]:  # type: ignore[type-arg]
    return [dict(o.headers)["tw-reason"] for o in out if o.kind == "dead_letter"]


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


# -- idle close: only when truly caught up -----------------------------------------------


def test_a_partition_that_waits_its_turn_is_not_idle_closed() -> None:
    """getmany drains one partition before the next: the waiting one has lag, not silence."""
    clock = FakeClock()
    handler, registry = make_handler(clock)
    records, _ = spike_stream(days=3)
    feed(handler, records[:5], partition=0)
    handler.record_highwater("t", 0, 1000)  # 995 records still to come
    clock.now += 10 * QUIET
    handler.tick()
    clock.now += 10 * QUIET
    assert handler.tick() == []
    assert handler.pipelines[0].windows.open_series > 0
    assert registry.get_sample_value("tradewatch_idle_closes_total") == 0


def test_a_caught_up_partition_is_idle_closed_after_the_quiet_period() -> None:
    clock = FakeClock()
    handler, registry = make_handler(clock)
    records, _ = spike_stream(days=3)
    feed(handler, records, partition=0)
    handler.record_highwater("t", 0, len(records))  # lag 0: caught up
    clock.now += QUIET - 1
    handler.tick()
    assert handler.pipelines[0].windows.open_series > 0
    clock.now += 1
    handler.tick()
    assert handler.pipelines[0].windows.open_series == 0
    assert registry.get_sample_value("tradewatch_idle_closes_total") == 1
    straggler = json.loads(records[-1]) | {"declaration_id": "STRAGGLER"}
    assert reasons(feed(handler, [json.dumps(straggler).encode()], first=len(records))) == [
        b"late_event"]


def test_a_partition_whose_lag_is_unknown_is_not_idle_closed() -> None:
    """The broker is down: the last highwater said lag 0, but nothing is known since.
    The worker loop reports such a partition's highwater as None."""
    clock = FakeClock()
    handler, registry = make_handler(clock)
    records, _ = spike_stream(days=3)
    feed(handler, records, partition=0)
    handler.record_highwater("t", 0, len(records))  # lag 0, then the broker goes away
    clock.now += QUIET / 2
    handler.record_highwater("t", 0, None)
    clock.now += 10 * QUIET
    handler.record_highwater("t", 0, None)
    handler.tick()
    assert handler.pipelines[0].windows.open_series > 0
    handler.record_highwater("t", 0, len(records))  # back: the quiet period starts again
    clock.now += QUIET
    handler.tick()
    assert registry.get_sample_value("tradewatch_idle_closes_total") == 1


def test_a_record_restarts_the_quiet_period() -> None:
    clock = FakeClock()
    handler, _ = make_handler(clock)
    records, _ = spike_stream(days=3)
    feed(handler, records[:5], partition=0)
    handler.record_highwater("t", 0, 5)
    clock.now += QUIET - 1
    feed(handler, records[5:6], partition=0, first=5)
    handler.record_highwater("t", 0, 6)
    clock.now += QUIET - 1
    handler.tick()
    assert handler.pipelines[0].windows.open_series > 0


def test_restored_state_is_not_idle_closed_at_start() -> None:
    """A checkpoint's open windows wait for the new process to see the partition caught up."""
    clock = FakeClock()
    handler, registry = make_handler(clock)
    records, _ = spike_stream(days=3)
    restored = PartitionPipeline(handler.settings, handler.metrics, partition=0)
    for raw in records[:5]:
        restored.process(decode_declaration(raw))
    clock.now += 1_000_000  # the checkpoint is old
    handler.restore("t", 0, restored, next_offset=5)
    handler.tick()
    handler.record_highwater("t", 0, 5)  # nothing new: caught up from now on
    clock.now += QUIET - 1
    handler.tick()
    assert restored.windows.open_series > 0
    clock.now += 1
    handler.tick()
    assert restored.windows.open_series == 0
    assert registry.get_sample_value("tradewatch_idle_closes_total") == 1


# -- bad input the pipeline catches --------------------------------------------------------


def test_a_duplicate_declaration_id_is_dead_lettered_once_and_counted_once() -> None:
    handler, registry = make_handler()
    records, _ = spike_stream(days=3)
    out = feed(handler, [records[0], records[1], records[0]])
    assert reasons(out) == [b"duplicate_declaration"]
    assert registry.get_sample_value(
        "tradewatch_declarations_rejected_total", {"reason": "duplicate_declaration"}) == 1
    (closed,) = [w for w in handler.pipelines[0].windows.flush() if not w.is_empty]
    key = "hs6:DE>KG:854231"
    assert closed.aggregates[key].count == 2


def test_two_hundred_copies_of_one_declaration_count_once() -> None:
    handler, _ = make_handler()
    records, _ = spike_stream(days=3)
    out = feed(handler, [records[0]] * 200)
    assert reasons(out) == [b"duplicate_declaration"] * 199


def test_a_record_dated_now_in_a_past_stream_delays_nothing() -> None:
    handler, registry = make_handler()
    records, _ = spike_stream(days=30)
    now_record = json.loads(records[0])
    now_record.update(declaration_id="NOW", declared_at="2026-11-27T10:00:00Z")
    middle = len(records) // 2
    stream = records[:middle] + [json.dumps(now_record).encode()] + records[middle:]
    assert reasons(feed(handler, stream)) == []
    assert registry.get_sample_value("tradewatch_watermark_outliers_total") == 1
    assert registry.get_sample_value("tradewatch_late_declarations_total") == 0
