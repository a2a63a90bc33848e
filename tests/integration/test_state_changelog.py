"""Partition state through the real broker's changelog topic: it moves, and only data comes back.

A state saved by one store is restored by another with an empty cache directory
(another machine) and raises the same alerts onward; a tampered record, an
envelope of an older format version and a crafted pickle are refused (the
partition starts cold, the metrics say why) and never executed; a local cache
file that does not match the changelog is ignored.
"""

from __future__ import annotations

import asyncio
import os
import pickle
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry

from streams import state_store
from streams.config import DEFAULT_CONFIG_PATH, Settings, load_settings
from streams.kafka_clients import aiokafka_kwargs
from streams.keys import partition_for, partition_key
from streams.metrics import PipelineMetrics
from streams.pipeline import PartitionPipeline
from streams.state_codec import FORMAT_VERSION, _digest, _Envelope
from streams.state_store import PartitionStateStore, StateStoreError, StateTooLarge, state_key
from streams.topics import changelog_spec, ensure_topics
from streams.validate import ValidationLimits, validate_declaration
from tests.factories import spike_stream

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

TOPIC = "trade.declarations"
PARTITION = 0  # the spiking chips of spike_stream


def _clock() -> float:
    return 1_700_000_000.0


def _declarations(settings: Settings) -> list[Any]:
    records, _ = spike_stream(days=70, spike_day=45)
    limits = ValidationLimits(65_536, 86_400.0)
    out = []
    for raw in records:
        d = validate_declaration(raw, now_ts=2e9, limits=limits)
        if partition_for(partition_key(d.hs_code), settings.topics.partitions) == PARTITION:
            out.append(d)
    assert out, "pick a partition that has records"
    return out


def _feed(pipeline: PartitionPipeline, declarations: list[Any]) -> list[Any]:
    alerts = []
    for d in declarations:
        alerts += pipeline.process(d)[1]
    return alerts


class _Env:
    def __init__(self, bootstrap: str, prefix: str) -> None:
        base = load_settings(DEFAULT_CONFIG_PATH, env={})
        kafka = msgspec.structs.replace(base.kafka, bootstrap_servers=bootstrap,
                                        consumer_group=f"{prefix}group")
        self.settings = msgspec.structs.replace(base, kafka=kafka)
        self.registry = CollectorRegistry()
        self.metrics = PipelineMetrics.create(self.registry, detectors=list(base.detectors))

    def sample(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0

    def run(self, body: Callable[[AIOKafkaProducer], Awaitable[None]]) -> None:
        async def main() -> None:
            producer = AIOKafkaProducer(**aiokafka_kwargs(self.settings.kafka), acks="all",
                                        enable_idempotence=True, **state_store.producer_kwargs())
            await producer.start()
            try:
                await body(producer)
            finally:
                await producer.stop()

        asyncio.run(main())

    def store(self, producer: AIOKafkaProducer, cache: Path | None) -> PartitionStateStore:
        return PartitionStateStore(self.settings, self.metrics, producer, cache, clock=_clock)


@pytest.fixture
def env(kafka_bootstrap: str, unique_topic_prefix: str) -> _Env:
    e = _Env(kafka_bootstrap, unique_topic_prefix)
    spec = changelog_spec(e.settings.kafka.consumer_group, e.settings.topics.partitions)
    ensure_topics(kafka_bootstrap, [spec])
    return e


def test_a_state_saved_on_one_machine_is_restored_on_another(env: _Env, tmp_path: Path) -> None:
    declarations = _declarations(env.settings)
    cut = len(declarations) // 2

    async def body(producer: AIOKafkaProducer) -> None:
        original = PartitionPipeline(env.settings, clock=_clock, partition=PARTITION)
        _feed(original, declarations[:cut])
        await env.store(producer, tmp_path / "machine-a").save(TOPIC, PARTITION, original, cut)
        assert env.sample("tradewatch_state_saves_total", outcome="ok") == 1
        assert env.sample("tradewatch_state_save_bytes_count") == 1

        loaded = await env.store(producer, tmp_path / "machine-b").load(TOPIC, PARTITION)
        assert loaded is not None
        restored, next_offset = loaded
        assert next_offset == cut
        assert env.sample("tradewatch_state_restores_total", outcome="changelog") == 1
        assert restored.metrics is env.metrics and restored.clock is _clock
        expected = _feed(original, declarations[cut:]) + original.flush()
        assert expected, "the second half must raise alerts for this to prove anything"
        assert _feed(restored, declarations[cut:]) + restored.flush() == expected

        # the saving machine's own cache matches the changelog's newest record
        again = await env.store(producer, tmp_path / "machine-a").load(TOPIC, PARTITION)
        assert again is not None and again[1] == cut
        assert env.sample("tradewatch_state_restores_total", outcome="cache") == 1

    env.run(body)


def test_a_cache_file_behind_the_changelog_is_ignored(env: _Env, tmp_path: Path) -> None:
    declarations = _declarations(env.settings)

    async def body(producer: AIOKafkaProducer) -> None:
        pipeline = PartitionPipeline(env.settings, clock=_clock, partition=PARTITION)
        _feed(pipeline, declarations[:50])
        await env.store(producer, tmp_path / "a").save(TOPIC, PARTITION, pipeline, 50)
        _feed(pipeline, declarations[50:100])
        await env.store(producer, tmp_path / "b").save(TOPIC, PARTITION, pipeline, 100)
        loaded = await env.store(producer, tmp_path / "a").load(TOPIC, PARTITION)
        assert loaded is not None and loaded[1] == 100
        assert env.sample("tradewatch_state_restores_total", outcome="changelog") == 1
        assert env.sample("tradewatch_state_restores_total", outcome="cache") == 0

    env.run(body)


async def _send_raw(env: _Env, producer: AIOKafkaProducer, value: bytes) -> int:
    sent = await producer.send_and_wait(env.settings.kafka.consumer_group + ".state-changelog",
                                        value, key=state_key(TOPIC, PARTITION), partition=PARTITION)
    return int(sent.offset)


def test_tampered_and_older_records_are_refused_and_the_partition_starts_cold(
        env: _Env, tmp_path: Path) -> None:
    async def body(producer: AIOKafkaProducer) -> None:
        store = env.store(producer, tmp_path / "cache")
        pipeline = PartitionPipeline(env.settings, clock=_clock, partition=PARTITION)
        _feed(pipeline, _declarations(env.settings)[:100])
        await store.save(TOPIC, PARTITION, pipeline, 100)
        good = (tmp_path / "cache" / f"{TOPIC}-{PARTITION}.state").read_bytes()
        fields = msgspec.msgpack.decode(msgspec.msgpack.decode(good)["envelope"])

        tampered = dict(fields)
        payload = bytearray(tampered["payload"])
        payload[len(payload) // 3] ^= 0x55
        tampered["payload"] = bytes(payload)
        await _send_raw(env, producer, msgspec.msgpack.encode(tampered))
        assert await store.load(TOPIC, PARTITION) is None
        assert env.sample("tradewatch_state_refusals_total", reason="digest") == 1

        older = msgspec.convert(dict(fields, format_version=FORMAT_VERSION - 1), _Envelope)
        older.sha256 = _digest(older)
        await _send_raw(env, producer, msgspec.msgpack.encode(older))
        assert await store.load(TOPIC, PARTITION) is None
        assert env.sample("tradewatch_state_refusals_total", reason="format_version") == 1
        assert env.sample("tradewatch_state_restores_total", outcome="refused") == 2
        assert env.sample("tradewatch_state_restores_total", outcome="changelog") == 0

    env.run(body)


def test_a_crafted_pickle_is_refused_and_never_runs(env: _Env, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return os.system, (f"touch {marker}",)

    crafted = pickle.dumps({"version": 1, "pipeline": Exploit()})

    async def body(producer: AIOKafkaProducer) -> None:
        store = env.store(producer, tmp_path / "cache")
        offset = await _send_raw(env, producer, crafted)
        assert await store.load(TOPIC, PARTITION) is None
        # and as a local cache file claiming the changelog's newest offset
        pipeline = PartitionPipeline(env.settings, clock=_clock, partition=PARTITION)
        await store.save(TOPIC, PARTITION, pipeline, 7)
        cache = tmp_path / "cache" / f"{TOPIC}-{PARTITION}.state"
        newest = msgspec.msgpack.decode(cache.read_bytes())["changelog_offset"]
        assert newest > offset
        cache.write_bytes(msgspec.msgpack.encode(
            {"changelog_topic": store.topic, "changelog_offset": newest, "envelope": crafted}))
        loaded = await store.load(TOPIC, PARTITION)  # the cache is refused: the changelog wins
        assert loaded is not None and loaded[1] == 7
        assert env.sample("tradewatch_state_restores_total", outcome="changelog") == 1
        assert env.sample("tradewatch_state_refusals_total", reason="malformed") == 1

    env.run(body)
    assert not marker.exists()


def test_a_state_too_large_for_a_record_fails_loudly(env: _Env, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state_store, "MAX_STATE_RECORD_BYTES", 1_000)

    async def body(producer: AIOKafkaProducer) -> None:
        pipeline = PartitionPipeline(env.settings, clock=_clock, partition=PARTITION)
        with pytest.raises(StateTooLarge, match="changelog record limit"):
            await env.store(producer, None).save(TOPIC, PARTITION, pipeline, 1)
        assert env.sample("tradewatch_state_saves_total", outcome="too_large") == 1
        assert await env.store(producer, None).load(TOPIC, PARTITION) is None  # nothing was sent
        assert env.sample("tradewatch_state_restores_total", outcome="cold") == 1

    env.run(body)


def test_a_missing_changelog_topic_is_a_clear_error(env: _Env) -> None:
    env.settings = msgspec.structs.replace(env.settings, kafka=msgspec.structs.replace(
        env.settings.kafka, consumer_group=env.settings.kafka.consumer_group + "-none"))

    async def body(producer: AIOKafkaProducer) -> None:
        with pytest.raises(StateStoreError, match="topics create"):
            await env.store(producer, None).load(TOPIC, PARTITION)

    env.run(body)
