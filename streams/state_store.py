"""Each partition's detector state in a compacted Kafka changelog topic, restored from any machine.

A partition that moves to another worker (a rebalance, a crash, a new machine)
must resume with the state that saw its earlier records, or its detectors start
cold and miss what they should alert on. As in Kafka Streams, the state lives in
Kafka itself: the consumer group's changelog topic
(:func:`streams.topics.changelog_topic`, compacted) holds, for input partition
``p``, the newest :mod:`streams.state_codec` envelope under key
``"<topic>:<p>"`` in changelog partition ``p``. ``save`` sends it and awaits
the broker's acknowledgement (the caller commits input offsets only after
that); ``load`` reads changelog partition ``p`` to its end and decodes the
newest record for the key.

Local files under ``cache_dir`` are at most a cache: each records the changelog
offset it was saved as, and is used only when that is the newest record's
offset. A refused record (tampered, another format version, another
configuration) is logged with its reason, counted, and the partition starts
cold; nothing in it is ever executed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streams.config import Settings
from streams.kafka_clients import aiokafka_kwargs
from streams.metrics import PipelineMetrics
from streams.pipeline import PartitionPipeline
from streams.state_codec import Refusal, check_persistable, decode_envelope, encode_envelope
from streams.topics import CHANGELOG_MAX_MESSAGE_BYTES, changelog_topic

__all__ = ["PartitionStateStore", "StateStoreError", "StateTooLarge", "state_key", "producer_kwargs",
           "MAX_STATE_RECORD_BYTES"]

log = logging.getLogger(__name__)

#: Largest envelope sent: the topic's max.message.bytes less room for the record's framing.
MAX_STATE_RECORD_BYTES = CHANGELOG_MAX_MESSAGE_BYTES - 64 * 1024
#: Longest a restore may take to read its changelog partition before it gives up loudly.
LOAD_TIMEOUT_SECONDS = 120.0


class StateStoreError(RuntimeError):
    """The changelog cannot be used (missing topic, wrong partition count, unreadable)."""


class StateTooLarge(StateStoreError):
    """A partition's state does not fit in one changelog record."""


def state_key(topic: str, partition: int) -> bytes:
    """The changelog key of one input partition.

    >>> state_key("trade.declarations", 3)
    b'trade.declarations:3'
    """
    return f"{topic}:{partition}".encode()


class _CacheFile(msgspec.Struct, forbid_unknown_fields=True):
    changelog_topic: str
    changelog_offset: int
    envelope: bytes


class PartitionStateStore:
    """Save and restore partition states through the consumer group's changelog topic.

    ``producer`` is the worker's started producer (idempotent, ``acks="all"``, with
    ``max_request_size >= CHANGELOG_MAX_MESSAGE_BYTES``); the store never starts
    or stops it. ``clock`` is handed to restored pipelines and stamps saves.
    """

    def __init__(self, settings: Settings, metrics: PipelineMetrics | None,
                 producer: AIOKafkaProducer, cache_dir: Path | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        check_persistable(settings)
        self.settings = settings
        self.metrics = metrics
        self.producer = producer
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.clock = clock
        self.topic = changelog_topic(settings.kafka.consumer_group)

    # -- save --------------------------------------------------------------------------

    async def save(self, topic: str, partition: int, pipeline: PartitionPipeline,
                   next_offset: int) -> None:
        """Send the partition's state and await the broker's acknowledgement.

        Raises on any failure (the caller must not commit the input offsets then):
        :class:`StateTooLarge` when the state does not fit in a record, or the
        producer's error.
        """
        # encoded here, in the event loop: nothing else mutates the pipeline meanwhile
        raw = encode_envelope(topic, partition, pipeline, next_offset, self.settings,
                              saved_at=self.clock())
        m = self.metrics
        if len(raw) > MAX_STATE_RECORD_BYTES:
            if m:
                m.state_saves.labels(outcome="too_large").inc()
            raise StateTooLarge(
                f"state of {topic}[{partition}] is {len(raw):,} bytes compressed, over the "
                f"{MAX_STATE_RECORD_BYTES:,}-byte changelog record limit; lower the novelty "
                f"detector's capacity or the number of series (windows.idle_series)")
        try:
            sent = await self.producer.send_and_wait(
                self.topic, raw, key=state_key(topic, partition), partition=partition)
        except Exception:
            if m:
                m.state_saves.labels(outcome="failed").inc()
            raise
        if m:
            m.state_saves.labels(outcome="ok").inc()
            m.state_save_bytes.observe(len(raw))
        if self.cache_dir is not None:
            self._write_cache(topic, partition, sent.offset, raw)

    # -- load --------------------------------------------------------------------------

    async def load(self, topic: str, partition: int) -> tuple[PartitionPipeline, int] | None:
        """The partition's newest saved pipeline (bound to this process) and its next offset.

        ``None`` means cold start: nothing saved, or the saved state was refused
        (the reason is logged and counted in ``tradewatch_state_refusals_total``).
        Raises :class:`StateStoreError` when the changelog topic is unusable.
        """
        started = time.monotonic()
        newest = await self._newest(partition, state_key(topic, partition))
        m = self.metrics
        if newest is None:
            if m:
                m.state_restores.labels(outcome="cold").inc()
            log.info("no saved state for %s[%d] in %s: cold start", topic, partition, self.topic)
            return None
        offset, value = newest
        source, raw = "changelog", value
        cached = self._read_cache(topic, partition)
        if cached is not None and cached.changelog_offset == offset:
            source, raw = "cache", cached.envelope
        result = await asyncio.to_thread(
            decode_envelope, raw, topic, partition, self.settings, self.metrics, self.clock)
        if isinstance(result, Refusal) and source == "cache":
            log.warning("cached state of %s[%d] refused (%s); using the changelog record",
                        topic, partition, result)
            source = "changelog"
            result = await asyncio.to_thread(
                decode_envelope, value, topic, partition, self.settings, self.metrics, self.clock)
        if isinstance(result, Refusal):
            if m:
                m.state_restores.labels(outcome="refused").inc()
                m.state_refusals.labels(reason=result.reason).inc()
            log.warning("saved state of %s[%d] at %s@%d refused, cold start: %s",
                        topic, partition, self.topic, offset, result)
            return None
        if m:
            m.state_restores.labels(outcome=source).inc()
            m.state_restore_seconds.observe(time.monotonic() - started)
        log.info("restored %s[%d] from %s (%s@%d), resuming at offset %d",
                 topic, partition, source, self.topic, offset, result.next_offset)
        return result.pipeline, result.next_offset

    async def _newest(self, partition: int, key: bytes) -> tuple[int, bytes] | None:
        """(offset, value) of the newest record for ``key`` in changelog partition ``partition``."""
        consumer = AIOKafkaConsumer(
            **aiokafka_kwargs(self.settings.kafka),
            client_id=f"{self.settings.kafka.client_id}-state-restore",
            group_id=None, enable_auto_commit=False, isolation_level="read_committed",
            max_partition_fetch_bytes=CHANGELOG_MAX_MESSAGE_BYTES,
            fetch_max_bytes=CHANGELOG_MAX_MESSAGE_BYTES,
        )
        await consumer.start()
        try:
            partitions = await self._partitions(consumer)
            if partition not in partitions:
                raise StateStoreError(
                    f"changelog topic {self.topic!r} has no partition {partition} (it has "
                    f"{len(partitions)}); it must have as many as the declarations topic")
            tp = TopicPartition(self.topic, partition)
            consumer.assign([tp])
            begin = (await consumer.beginning_offsets([tp]))[tp]
            end = (await consumer.end_offsets([tp]))[tp]
            if end <= begin:
                return None
            # the newest record is usually this key's (one input topic per group)
            found = await self._scan(consumer, tp, end - 1, end, key)
            if found is None and end - 1 > begin:
                found = await self._scan(consumer, tp, begin, end, key)
            return found
        finally:
            await consumer.stop()

    async def _partitions(self, consumer: AIOKafkaConsumer) -> set[int]:
        # consumer.topics() fetches the same metadata but keeps only the topic names
        cluster = await consumer._client.fetch_all_metadata()
        if self.topic not in cluster.topics():
            raise StateStoreError(
                f"changelog topic {self.topic!r} does not exist; create it with "
                f"`tradewatch topics create` (compacted, one partition per input partition)")
        return set(cluster.partitions_for_topic(self.topic) or ())

    @staticmethod
    async def _scan(consumer: AIOKafkaConsumer, tp: TopicPartition, start: int, end: int,
                    key: bytes) -> tuple[int, bytes] | None:
        consumer.seek(tp, start)
        found: tuple[int, bytes] | None = None
        deadline = time.monotonic() + LOAD_TIMEOUT_SECONDS
        while await consumer.position(tp) < end:
            if time.monotonic() > deadline:
                raise StateStoreError(f"reading {tp.topic}[{tp.partition}] to offset {end} timed out")
            batch = await consumer.getmany(tp, timeout_ms=500)
            for record in batch.get(tp, []):
                if record.key == key and record.offset < end:
                    found = (record.offset, record.value) if record.value is not None else None
        return found

    # -- the local cache ---------------------------------------------------------------

    def _cache_path(self, topic: str, partition: int) -> Path:
        assert self.cache_dir is not None
        return self.cache_dir / f"{topic}-{partition}.state"

    def _write_cache(self, topic: str, partition: int, offset: int, raw: bytes) -> None:
        """Best effort: a cache that cannot be written only costs a changelog read."""
        assert self.cache_dir is not None
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            data = msgspec.msgpack.encode(_CacheFile(self.topic, offset, raw))
            fd, tmp = tempfile.mkstemp(dir=self.cache_dir, prefix=".state-")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                os.replace(tmp, self._cache_path(topic, partition))
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            log.warning("could not write the state cache of %s[%d]: %s", topic, partition, exc)

    def _read_cache(self, topic: str, partition: int) -> _CacheFile | None:
        if self.cache_dir is None:
            return None
        try:
            cached = msgspec.msgpack.decode(self._cache_path(topic, partition).read_bytes(),
                                            type=_CacheFile)
        except FileNotFoundError:
            return None
        except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.warning("ignoring the unreadable state cache of %s[%d]: %s", topic, partition, exc)
            return None
        return cached if cached.changelog_topic == self.topic else None

    async def close(self) -> None:
        """Nothing to release: restore consumers are short-lived and the producer is the caller's."""


def producer_kwargs() -> dict[str, Any]:
    """Producer settings the store relies on, for the worker's AIOKafkaProducer."""
    return {"max_request_size": CHANGELOG_MAX_MESSAGE_BYTES}
