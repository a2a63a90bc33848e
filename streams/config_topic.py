"""The published-config topic: ``tradewatch config publish`` writes it, every worker follows it.

One compacted topic (``[topics] config``, default ``trade.config``, one
partition, :func:`streams.topics.config_spec`) holds, per consumer group (the
record key), the newest :class:`PublishedConfig`: the TOML text as the analyst
wrote it, with its label and hash. The text travels, not the effective settings:
each worker validates it again with its own code and environment
(:func:`streams.retune.candidate_settings`), so a worker never runs settings it
did not check itself.

:func:`publish` validates before it sends: a file that fails ``config check``
never reaches the topic. A worker follows the topic with a
:class:`~streams.follow.TopicFollower` (no consumer group: from the beginning to
the end at start, then what is new) and takes its group's newest config with
:func:`newest_config`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import msgspec

from streams.audit import config_hash
from streams.config import Settings, load_settings
from streams.kafka_clients import kafka_python_kwargs

__all__ = ["PublishedConfig", "publish", "decode_published", "newest_config", "FORMAT_NAME"]

log = logging.getLogger(__name__)

FORMAT_NAME = "tradewatch.config"


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


def newest_config(records: Iterable[Any], consumer_group: str) -> bytes | None:
    """The newest config published for ``consumer_group`` among config-topic records.

    The worker reads the topic with one :class:`streams.follow.TopicFollower` and
    finds here its group's config, and its group's state reverts beside it
    (:func:`streams.snapshots.revert_key`).
    """
    key = consumer_group.encode()
    newest: bytes | None = None
    for record in records:
        if record.key == key and record.value is not None:
            newest = record.value
    return newest
