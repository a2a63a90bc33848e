"""The published-config topic: ``tradewatch config publish`` writes it, every worker follows it.

One compacted topic (``[topics] config``, default ``trade.config``, one
partition, :func:`streams.topics.config_spec`) holds, per consumer group (the
record key), the newest :class:`PublishedConfig`: the TOML text as the analyst
wrote it, with its label and hash. The text travels, not the effective settings:
each worker validates it again with its own code and environment
(:func:`streams.retune.candidate_settings`), so a worker never runs settings it
did not check itself.

:func:`publish` validates before it sends: a file that fails ``config check``
never reaches the topic. :class:`ConfigFollower` is the worker's separate consumer
on the topic: no consumer group, it reads from the beginning to the end at start
(:meth:`ConfigFollower.start` returns the newest config for its group) and then
follows (:meth:`ConfigFollower.poll`).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Literal

import msgspec
from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.audit import config_hash
from streams.config import Settings, load_settings
from streams.kafka_clients import aiokafka_kwargs, kafka_python_kwargs

__all__ = ["PublishedConfig", "publish", "decode_published", "ConfigFollower", "FORMAT_NAME"]

log = logging.getLogger(__name__)

FORMAT_NAME = "tradewatch.config"
#: How long a worker's start waits to read the config topic to its end.
START_TIMEOUT_SECONDS = 60.0


class PublishedConfig(msgspec.Struct, frozen=True, kw_only=True):
    """One record of the config topic (JSON). ``toml`` is the file as published."""

    format: Literal["tradewatch.config"] = FORMAT_NAME
    format_version: Literal[1] = 1
    consumer_group: str
    config_version: str
    #: :func:`streams.audit.config_hash` as the publisher computed it (informative:
    #: workers compute their own from the text).
    config_hash: str
    published_at: float
    #: The file's name, for the log; never its directory.
    source: str
    toml: str


_decoder = msgspec.json.Decoder(PublishedConfig)


def decode_published(raw: bytes | None) -> PublishedConfig:
    """Decode a config-topic record; raises ``msgspec.DecodeError``/``ValidationError``."""
    if raw is None:
        raise msgspec.DecodeError("a tombstone, not a config")
    return _decoder.decode(raw)


def publish(path: str | Path, timeout: float = 30.0) -> tuple[Settings, PublishedConfig, int]:
    """Validate the config file at ``path`` and write it to its config topic.

    Raises :class:`streams.config.ConfigError` (naming the bad key) before anything
    is sent. The topic is the file's ``[topics] config``, the key its consumer
    group, the cluster its ``[kafka]`` (environment overrides applied). Returns
    the settings, the record and its offset.
    """
    from kafka import KafkaProducer

    from streams.topics import config_spec, ensure_topics

    path = Path(path)
    settings = load_settings(path)  # raises ConfigError: nothing is sent
    from streams.state_codec import check_persistable

    if settings.worker.checkpoints:
        check_persistable(settings)
    record = PublishedConfig(
        consumer_group=settings.kafka.consumer_group, config_version=settings.config_version,
        config_hash=config_hash(settings), published_at=time.time(), source=path.name,
        toml=path.read_text(encoding="utf-8"))
    ensure_topics(settings.kafka, [config_spec(settings.topics.config)])
    producer = KafkaProducer(**kafka_python_kwargs(settings.kafka),
                             client_id=f"{settings.kafka.client_id}-config-publish", acks="all")
    try:
        future = producer.send(settings.topics.config, key=record.consumer_group.encode(),
                               value=msgspec.json.encode(record), partition=0)
        offset = future.get(timeout=timeout).offset
    finally:
        producer.close(timeout=timeout)
    return settings, record, offset


class ConfigFollower:
    """A worker's reader of its group's records on the config topic (no consumer group)."""

    def __init__(self, settings: Settings) -> None:
        self.topic = settings.topics.config
        self.key = settings.kafka.consumer_group.encode()
        self._tp = TopicPartition(self.topic, 0)
        self._consumer = AIOKafkaConsumer(
            **aiokafka_kwargs(settings.kafka), client_id=f"{settings.kafka.client_id}-config",
            group_id=None, enable_auto_commit=False, auto_offset_reset="earliest")

    async def start(self) -> bytes | None:
        """Start reading; the newest record for this group up to the topic's current end."""
        await self._consumer.start()
        self._consumer.assign([self._tp])
        await self._consumer.seek_to_beginning(self._tp)
        end = (await self._consumer.end_offsets([self._tp]))[self._tp]
        newest: bytes | None = None
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while await self._consumer.position(self._tp) < end:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {self.topic} to offset {end} timed out")
            newest = self._newest(await self._consumer.getmany(self._tp, timeout_ms=500), newest)
        return newest

    async def poll(self) -> bytes | None:
        """The newest record for this group published since the last call, if any."""
        return self._newest(await self._consumer.getmany(self._tp, timeout_ms=0), None)

    def _newest(self, batch: dict[TopicPartition, list], newest: bytes | None) -> bytes | None:  # type: ignore[type-arg]
        for record in batch.get(self._tp, []):
            if record.key == self.key and record.value is not None:
                newest = record.value
        return newest

    async def stop(self) -> None:
        await self._consumer.stop()
