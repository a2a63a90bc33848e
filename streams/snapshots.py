"""Named snapshots of a consumer group's detector state, and reverting a running group to one.

**Snapshot** (``tradewatch state snapshot NAME``): the newest record of every
partition of ``<group>.state-changelog`` (:mod:`streams.state_store`), copied as
it is into ``<group>.state-snapshots`` (compacted, key ``"NAME/<p>"``) with when
and by whom it was taken, the config the group ran then (version and hash), the
changelog offset and the input offset the state had reached. It is the state as
last *saved*: a worker saves a partition after it closes a window (at most every
``worker.state_save_interval_seconds``), so a snapshot misses at most the few
seconds before it. Names are unique: a snapshot is never overwritten.

**Revert** (``tradewatch state revert NAME``): a :class:`RevertCommand` on the
config topic (key ``"<group>/revert"``) that every **running** worker of the
group applies at its next tick, between batches under the batch lock: for each
partition it owns it decodes the snapshot's state (checked exactly as a restore
is, :func:`streams.state_codec.decode_envelope`), puts the snapshot's
**models** in place of the running ones (:func:`revert_models`: every series'
detectors, the chapter and declaration detectors) and saves the partition at
once. It keeps its **offsets**: the records since the snapshot are not read
again and their alerts are not raised again; windows being filled, de-duplication
ids, cooldowns and incidents continue as they were. Each partition is counted in
``tradewatch_state_reverts_total{outcome}``.

A worker that starts takes the commands already on the topic as done (the
workers running then applied them and saved the result to the changelog), so
a revert needs a running group: with the group stopped ``state revert`` refuses.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from typing import Literal

import msgspec

from streams.config import Settings
from streams.feedback import who
from streams.kafka_clients import kafka_python_kwargs
from streams.pipeline import PartitionPipeline
from streams.topics import CHANGELOG_MAX_MESSAGE_BYTES, changelog_topic, snapshots_topic

__all__ = ["SnapshotRecord", "RevertCommand", "SnapshotError", "revert_models", "revert_key",
           "check_name", "take_snapshot", "read_snapshots", "publish_revert", "decode_revert",
           "envelope_head"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class SnapshotError(RuntimeError):
    """A snapshot cannot be taken or reverted to (bad name, unknown name, no running group...)."""


class SnapshotRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One partition of one snapshot (msgpack on the snapshots topic, key ``"NAME/<p>"``).

    ``state`` is the changelog envelope as saved, None when the partition had no
    saved state; ``next_offset``/``saved_at`` are read from its envelope.
    """

    format: Literal["tradewatch.state-snapshot"] = "tradewatch.state-snapshot"
    format_version: Literal[1] = 1
    name: str
    partition: int
    partitions: int
    created_at: float
    created_by: str
    config_version: str
    config_hash: str
    changelog_offset: int | None
    next_offset: int | None
    saved_at: float | None
    state: bytes | None


class RevertCommand(msgspec.Struct, frozen=True, kw_only=True):
    """A request to the running workers of ``consumer_group`` (JSON on the config topic)."""

    format: Literal["tradewatch.state-revert"] = "tradewatch.state-revert"
    format_version: Literal[1] = 1
    revert_id: str
    consumer_group: str
    snapshot: str
    issued_at: float
    issued_by: str


_revert_decoder = msgspec.json.Decoder(RevertCommand)
_snapshot_decoder = msgspec.msgpack.Decoder(SnapshotRecord)


def revert_key(consumer_group: str) -> bytes:
    """The config-topic key of a group's newest revert command.

    >>> revert_key("tradewatch-worker")
    b'tradewatch-worker/revert'
    """
    return f"{consumer_group}/revert".encode()


def decode_revert(raw: bytes) -> RevertCommand:
    return _revert_decoder.decode(raw)


def check_name(name: str) -> str:
    """``name`` if it can name a snapshot (letters, digits, ``.``, ``_``, ``-``; 100 at most).

    >>> check_name("before-retune-2026-12-01")
    'before-retune-2026-12-01'
    >>> check_name("a/b")
    Traceback (most recent call last):
    ...
    streams.snapshots.SnapshotError: 'a/b' cannot name a snapshot: use letters, digits, '.', '_' and '-' (at most 100, starting with a letter or digit)
    """
    if not _NAME.match(name):
        raise SnapshotError(f"{name!r} cannot name a snapshot: use letters, digits, '.', '_' and "
                            f"'-' (at most 100, starting with a letter or digit)")
    return name


def revert_models(current: PartitionPipeline, snapshot: PartitionPipeline,
                  name: str | None = None) -> None:
    """``current`` continues with ``snapshot``'s models, keeping its own place in the stream.

    The models are the partition's :class:`~streams.scoring.Scoring`: every series'
    detectors and activity, the chapter and declaration detectors. What follows
    the stream stays: open windows and their influence contributions, de-duplication
    ids, the watermark, cooldowns, incidents, the partition's activity calendar.
    ``snapshot`` must already be bound to the running config
    (:func:`streams.state_codec.decode_envelope` does it). With ``name``, the models'
    lineage (the ``state_version`` on their alerts) becomes ``snapshot:NAME``.
    """
    current.scoring = snapshot.scoring
    if name is not None:
        current.scoring.lineage = f"snapshot:{name}"


def envelope_head(raw: bytes) -> tuple[int | None, float | None]:
    """``(next_offset, saved_at)`` of a changelog envelope (None, None if unreadable)."""
    try:
        head = msgspec.msgpack.decode(raw)
        return int(head["next_offset"]), float(head["saved_at"])
    except Exception:  # noqa: BLE001 - informative fields only
        return None, None


def _consumer(settings: Settings, suffix: str):  # type: ignore[no-untyped-def]
    from kafka import KafkaConsumer

    return KafkaConsumer(**kafka_python_kwargs(settings.kafka),
                         client_id=f"{settings.kafka.client_id}-{suffix}",
                         enable_auto_commit=False, consumer_timeout_ms=1000,
                         max_partition_fetch_bytes=CHANGELOG_MAX_MESSAGE_BYTES,
                         fetch_max_bytes=CHANGELOG_MAX_MESSAGE_BYTES)


def _read_all(settings: Settings, topic: str, suffix: str, timeout: float) -> list:  # type: ignore[type-arg]
    """Every record of every partition of ``topic``, read to the end it had when called."""
    from kafka import TopicPartition

    consumer = _consumer(settings, suffix)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not tps:
            return []
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        out = []
        deadline = time.monotonic() + timeout
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise SnapshotError(f"reading {topic} to its end timed out")
            for tp, records in consumer.poll(timeout_ms=500).items():
                out += [r for r in records if r.offset < ends[tp]]
        return out
    finally:
        consumer.close()


def read_snapshots(settings: Settings, timeout: float = 120.0) -> dict[str, dict[int, SnapshotRecord]]:
    """Every snapshot of the group: name -> partition -> record (newest per key)."""
    out: dict[str, dict[int, SnapshotRecord]] = {}
    topic = snapshots_topic(settings.kafka.consumer_group)
    for r in _read_all(settings, topic, "snapshots", timeout):
        if r.value is None:
            continue
        try:
            record = _snapshot_decoder.decode(r.value)
        except (msgspec.DecodeError, msgspec.ValidationError):
            continue
        out.setdefault(record.name, {})[record.partition] = record
    return out


def _running_config(settings: Settings) -> tuple[str, str]:
    """(version, hash) of the config the group runs: its newest published one, else the file's."""
    from streams.audit import config_hash
    from streams.config_topic import decode_published

    found = (settings.config_version, config_hash(settings))
    key = settings.kafka.consumer_group.encode()
    for r in _read_all(settings, settings.topics.config, "snapshot-config", 60.0):
        if r.key == key and r.value is not None:
            try:
                record = decode_published(r.value)
            except (msgspec.DecodeError, msgspec.ValidationError):
                continue
            found = (record.config_version, record.config_hash)
    return found


def take_snapshot(settings: Settings, name: str, timeout: float = 120.0,
                  clock: Callable[[], float] = time.time) -> list[SnapshotRecord]:
    """Copy the newest state of every partition into the snapshots topic under ``name``."""
    from kafka import KafkaProducer

    from streams.state_store import state_key
    from streams.topics import ensure_topics, snapshots_spec

    check_name(name)
    group = settings.kafka.consumer_group
    ensure_topics(settings.kafka, [snapshots_spec(group)])
    if name in read_snapshots(settings, timeout):
        raise SnapshotError(f"a snapshot named {name!r} exists; snapshots are never overwritten")
    partitions = settings.topics.partitions
    newest: dict[int, tuple[int, bytes | None]] = {}
    keys = {state_key(settings.topics.declarations, p): p for p in range(partitions)}
    for r in _read_all(settings, changelog_topic(group), "snapshot-changelog", timeout):
        p = keys.get(r.key)
        if p is not None and p == r.partition:
            newest[p] = (r.offset, r.value)
    version, hashed = _running_config(settings)
    created_at, created_by = clock(), who()
    records = []
    for p in range(partitions):
        offset, state = newest.get(p, (None, None))
        next_offset, saved_at = envelope_head(state) if state is not None else (None, None)
        records.append(SnapshotRecord(
            name=name, partition=p, partitions=partitions, created_at=created_at,
            created_by=created_by, config_version=version, config_hash=hashed,
            changelog_offset=offset if state is not None else None, next_offset=next_offset,
            saved_at=saved_at, state=state))
    producer = KafkaProducer(**kafka_python_kwargs(settings.kafka), acks="all",
                             client_id=f"{settings.kafka.client_id}-snapshot",
                             max_request_size=CHANGELOG_MAX_MESSAGE_BYTES)
    try:
        futures = [producer.send(snapshots_topic(group), key=f"{name}/{r.partition}".encode(),
                                 value=msgspec.msgpack.encode(r), partition=0) for r in records]
        for future in futures:
            future.get(timeout=timeout)
    finally:
        producer.close(timeout=timeout)
    return records


def _group_members(settings: Settings) -> int:
    """Members of the consumer group now (0: no worker runs)."""
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(**kafka_python_kwargs(settings.kafka),
                             client_id=f"{settings.kafka.client_id}-revert")
    try:
        described = admin.describe_groups([settings.kafka.consumer_group])
        return sum(len(g.get("members") or ()) for g in described.values())
    finally:
        admin.close()


def publish_revert(settings: Settings, name: str, timeout: float = 30.0,
                   clock: Callable[[], float] = time.time) -> tuple[RevertCommand, int]:
    """Ask the group's running workers to revert to snapshot ``name``; the command and offset.

    Raises :class:`SnapshotError` for an unknown snapshot, one taken with another
    partition count, or a group with no running worker.
    """
    from kafka import KafkaProducer

    snapshot = read_snapshots(settings).get(check_name(name))
    if not snapshot:
        raise SnapshotError(f"no snapshot named {name!r} (see `tradewatch state list`)")
    counts = {r.partitions for r in snapshot.values()}
    if counts != {settings.topics.partitions} or len(snapshot) != settings.topics.partitions:
        raise SnapshotError(f"snapshot {name!r} covers {sorted(counts)} partition(s), the group "
                            f"has {settings.topics.partitions}")
    if _group_members(settings) == 0:
        raise SnapshotError(
            f"no worker of group {settings.kafka.consumer_group!r} is running: a revert is "
            f"applied by running workers; start them, then revert")
    command = RevertCommand(revert_id=uuid.uuid4().hex, consumer_group=settings.kafka.consumer_group,
                            snapshot=name, issued_at=clock(), issued_by=who())
    producer = KafkaProducer(**kafka_python_kwargs(settings.kafka), acks="all",
                             client_id=f"{settings.kafka.client_id}-revert")
    try:
        future = producer.send(settings.topics.config, key=revert_key(command.consumer_group),
                               value=msgspec.json.encode(command), partition=0)
        offset = int(future.get(timeout=timeout).offset)
    finally:
        producer.close(timeout=timeout)
    return command, offset
