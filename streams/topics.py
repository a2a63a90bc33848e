"""The pipeline's Kafka topics and their idempotent creation.

Topics (default names, all overridable)::

    trade.declarations      4 partitions, 7 days   the input: one JSON trade declaration per record
    trade.alerts            4 partitions, 30 days  the output: one record per detector alert
    trade.incidents         4 partitions, 90 days  one record per incident (revision)
    trade.declarations.dlq  1 partition,  30 days  records the worker could not decode or validate
    trade.config            1 partition,  compacted  published configs, one per consumer group (streams.retune),
                                                     and each group's newest state revert (streams.snapshots)
    trade.feedback          1 partition,  compacted  analyst marks on alerts, one per alert id (streams.feedback)
    <group>.state-changelog 4 partitions, compacted  each partition's detector state (streams.state_store)
    <group>.state-snapshots 1 partition,  compacted  named copies of the changelog (streams.snapshots)

Keying rule
-----------
Producers key every declaration with :func:`streams.keys.record_key`: its **CHPL
tier** (``b"T1"``) for goods on the Common High Priority List, else its **HS2
chapter** (``b"87"`` for a car). Kafka's default partitioner hashes the key, so
every route (origin -> destination) of one product, and every product of a tier
or chapter, lands on the same partition and is seen by one worker: lanes,
all-origins (transit-country) series and tier/HS4/HS2 rollups are complete there.
The pass-through detector depends on this too: it compares the legs of a product
going into and out of an intermediary country, and both legs must reach the same
worker's state. Alerts are keyed by their series key.

Why these partition counts
--------------------------
* ``declarations``: 4, so up to four workers share the stream (products are
  spread over partitions by tier or chapter). Changing the count later moves products
  between partitions and breaks per-product state, hence :func:`ensure_topics`
  refuses a topic whose partition count differs instead of "fixing" it.
* ``alerts``: same count as declarations and the same key, i.e. co-partitioned
  with the input. Alerts for one product stay in order, each worker writes to
  "its" partitions, and any later per-product stage that reads both topics
  (e.g. alert de-duplication in a stream processor) needs co-partitioned
  topics. Alert volume is tiny, so the extra partitions cost nothing.
* ``incidents``: same count as declarations, keyed by ``incident_id``, so every
  revision of an incident lands on one partition, in order. 90 days: an incident is
  what an analyst follows up, and a month-window incident needs a quarter of history
  around it. Value: :class:`streams.events.TradeIncident` JSON (schema
  ``streams/schemas/trade_incident.v1.json``, header ``tw-schema: trade_incident.v1``).
* ``dlq``: 1 partition. Bad input may have no valid HS code to key by, the
  volume is low, and one partition keeps the record of bad input in arrival
  order for audit and replay. Retention is 30 days since it is that record.

* ``config``: 1 partition, compacted, kept forever: the newest config published
  for each consumer group (key = the group's name, value a
  :class:`streams.config_topic.PublishedConfig`). A worker reads it from the start
  when it starts and follows it after (:mod:`streams.retune`); compaction keeps it
  as small as the number of groups.

* ``feedback``: 1 partition, compacted, kept forever: the newest analyst mark of
  each alert (key = the alert id, value a :class:`streams.feedback.FeedbackRecord`).
  Every worker reads it from the start and follows it; compaction keeps one record
  per marked alert, so a re-mark replaces the old one.

* ``<consumer group>.state-snapshots``: one per consumer group, 1 partition,
  compacted, 64 MiB records: each named snapshot's copy of every changelog
  partition (key ``"<name>/<p>"``, :mod:`streams.snapshots`).

* ``<consumer group>.state-changelog``: one per consumer group (two groups reading
  the same input keep separate state), as many partitions as the declarations
  topic: input partition ``p`` keeps its state in changelog partition ``p``
  (as Kafka Streams does), key ``"<input topic>:<p>"``, value a
  :mod:`streams.state_codec` envelope. Compacted, so only the newest state of
  each key is kept; ``max.message.bytes`` is 64 MiB because a partition's state
  holds megabytes of Bloom filters (the worker's producer must allow as much,
  :data:`CHANGELOG_MAX_MESSAGE_BYTES`).

Topics are created with the cluster's default replication factor (1 on the
project's local single-node broker).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from streams.config import KafkaSettings, TopicSettings

__all__ = [
    "DAY_MS",
    "TopicMismatchError",
    "TopicSpec",
    "CHANGELOG_MAX_MESSAGE_BYTES",
    "changelog_topic",
    "changelog_spec",
    "config_spec",
    "feedback_spec",
    "snapshots_topic",
    "snapshots_spec",
    "default_topic_specs",
    "incidents_spec",
    "pipeline_topic_specs",
    "delete_topics",
    "ensure_topics",
]

log = logging.getLogger(__name__)

DAY_MS = 24 * 60 * 60 * 1000

# Kafka error codes (stable protocol constants).
_NO_ERROR = 0
_UNKNOWN_TOPIC_OR_PARTITION = 3
_TOPIC_ALREADY_EXISTS = 36


class TopicMismatchError(RuntimeError):
    """An existing topic does not have the partition count its spec asks for."""


@dataclass(frozen=True)
class TopicSpec:
    """How one topic must look.

    >>> TopicSpec("t", 2, retention_ms=1000).configs()
    {'retention.ms': '1000', 'cleanup.policy': 'delete'}
    """

    name: str
    partitions: int
    retention_ms: int
    cleanup_policy: str = "delete"
    extra_config: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("topic name must not be empty")
        if self.partitions < 1:
            raise ValueError(f"topic {self.name!r}: partitions must be >= 1, got {self.partitions}")
        if self.retention_ms < -1 or self.retention_ms == 0:
            raise ValueError(f"topic {self.name!r}: retention_ms must be > 0 or -1 (forever)")

    def configs(self) -> dict[str, str]:
        """The topic-level configs sent with CreateTopics."""
        out = {"retention.ms": str(self.retention_ms), "cleanup.policy": self.cleanup_policy}
        out.update({str(k): str(v) for k, v in self.extra_config.items()})
        return out


#: Largest changelog record (one partition's compressed state), topic and producer alike.
CHANGELOG_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
#: Changelog segments roll at this size, so the log cleaner can compact them (the
#: active segment is never compacted).
_CHANGELOG_SEGMENT_BYTES = 128 * 1024 * 1024


def changelog_topic(consumer_group: str) -> str:
    """The state changelog topic of a consumer group.

    >>> changelog_topic("tradewatch-worker")
    'tradewatch-worker.state-changelog'
    """
    return f"{consumer_group}.state-changelog"


def changelog_spec(consumer_group: str, partitions: int) -> TopicSpec:
    """The compacted changelog topic, co-partitioned with the declarations topic.

    >>> changelog_spec("g", 4).configs()["cleanup.policy"]
    'compact'
    """
    return TopicSpec(
        changelog_topic(consumer_group), partitions, retention_ms=-1, cleanup_policy="compact",
        extra_config={"max.message.bytes": str(CHANGELOG_MAX_MESSAGE_BYTES),
                      "segment.bytes": str(_CHANGELOG_SEGMENT_BYTES)},
    )


def snapshots_topic(consumer_group: str) -> str:
    """The named-snapshot topic of a consumer group.

    >>> snapshots_topic("tradewatch-worker")
    'tradewatch-worker.state-snapshots'
    """
    return f"{consumer_group}.state-snapshots"


def snapshots_spec(consumer_group: str) -> TopicSpec:
    """Compacted, one partition (one order of snapshots), records as large as the changelog's.

    >>> snapshots_spec("g").configs()["cleanup.policy"], snapshots_spec("g").partitions
    ('compact', 1)
    """
    return TopicSpec(
        snapshots_topic(consumer_group), 1, retention_ms=-1, cleanup_policy="compact",
        extra_config={"max.message.bytes": str(CHANGELOG_MAX_MESSAGE_BYTES),
                      "segment.bytes": str(_CHANGELOG_SEGMENT_BYTES)},
    )


def feedback_spec(name: str = "trade.feedback") -> TopicSpec:
    """The feedback topic: one partition, compacted by alert id.

    >>> feedback_spec().configs()["cleanup.policy"], feedback_spec().partitions
    ('compact', 1)
    """
    return TopicSpec(name, 1, retention_ms=-1, cleanup_policy="compact")


def incidents_spec(name: str = "trade.incidents", partitions: int = 4) -> TopicSpec:
    """The incident topic: keyed by incident id, co-partitioned with the input, 90 days.

    >>> incidents_spec().retention_ms // DAY_MS
    90
    """
    return TopicSpec(name, partitions, retention_ms=90 * DAY_MS)


def config_spec(name: str = "trade.config") -> TopicSpec:
    """The published-config topic: one partition (one order of publication), compacted.

    >>> config_spec().configs()["cleanup.policy"], config_spec().partitions
    ('compact', 1)
    """
    return TopicSpec(name, 1, retention_ms=-1, cleanup_policy="compact")


def default_topic_specs(
    declarations: str = "trade.declarations",
    dlq: str = "trade.declarations.dlq",
    alerts: str = "trade.alerts",
    partitions: int = 4,
    consumer_group: str | None = None,
    incidents: str = "trade.incidents",
    config: str = "trade.config",
    feedback: str = "trade.feedback",
) -> list[TopicSpec]:
    """The pipeline's topics (see the module docstring for the reasoning).

    With ``consumer_group``, also that group's state changelog and snapshot topics.

    >>> [(s.name, s.partitions, s.retention_ms // DAY_MS) for s in default_topic_specs()]
    [('trade.declarations', 4, 7), ('trade.alerts', 4, 30), ('trade.incidents', 4, 90), ('trade.declarations.dlq', 1, 30), ('trade.config', 1, -1), ('trade.feedback', 1, -1)]
    >>> [s.name for s in default_topic_specs(consumer_group="tradewatch-worker")[-2:]]
    ['tradewatch-worker.state-changelog', 'tradewatch-worker.state-snapshots']
    """
    specs = [
        TopicSpec(declarations, partitions, retention_ms=7 * DAY_MS),
        TopicSpec(alerts, partitions, retention_ms=30 * DAY_MS),
        incidents_spec(incidents, partitions),
        TopicSpec(dlq, 1, retention_ms=30 * DAY_MS),
        config_spec(config),
        feedback_spec(feedback),
    ]
    if consumer_group is not None:
        specs += [changelog_spec(consumer_group, partitions), snapshots_spec(consumer_group)]
    return specs


def pipeline_topic_specs(topics: TopicSettings,
                         consumer_group: str | None = None) -> list[TopicSpec]:
    """:func:`default_topic_specs` for the configured ``[topics]``."""
    return default_topic_specs(topics.declarations, topics.dlq, topics.alerts, topics.partitions,
                               consumer_group=consumer_group, incidents=topics.incidents,
                               config=topics.config, feedback=topics.feedback)


@contextlib.contextmanager
def _admin(kafka: str | KafkaSettings, timeout_ms: int = 30_000) -> Iterator[object]:
    """An admin client for ``kafka``: a bare bootstrap address (PLAINTEXT) or the
    ``[kafka]`` settings with their security options."""
    from kafka.admin import KafkaAdminClient

    from streams.kafka_clients import as_kafka, kafka_python_kwargs

    admin = KafkaAdminClient(
        **kafka_python_kwargs(as_kafka(kafka)), client_id="tradewatch-topics",
        bootstrap_timeout_ms=timeout_ms, request_timeout_ms=timeout_ms,
    )
    try:
        yield admin
    finally:
        admin.close()


def _partition_counts(admin, names: list[str]) -> dict[str, int]:
    """{name: partition count} for the topics among ``names`` that exist."""
    if not names:
        return {}
    out: dict[str, int] = {}
    for topic in admin.describe_topics(names):
        code = topic.get("error_code", 0)
        if code == _UNKNOWN_TOPIC_OR_PARTITION:
            continue
        if code != _NO_ERROR:
            import kafka.errors as Errors

            raise Errors.for_code(code)(f"describing topic {topic.get('name')!r}")
        out[topic["name"]] = len(topic.get("partitions") or [])
    return out


def _check_partitions(spec: TopicSpec, actual: int) -> None:
    if actual != spec.partitions:
        raise TopicMismatchError(
            f"topic {spec.name!r} exists with {actual} partition(s) but {spec.partitions} are "
            f"required; per-product state is keyed by tier or chapter, so repartitioning it in place "
            f"would move products between workers. Delete and recreate the topic "
            f"(or use another name) deliberately."
        )


def ensure_topics(bootstrap: str | KafkaSettings, specs: Iterable[TopicSpec]) -> list[str]:
    """Create the topics in ``specs`` that are missing; return the names created.

    Existing topics are left as they are, but their partition count must match
    the spec, or :class:`TopicMismatchError` is raised naming the topic.
    Idempotent, and safe when another process creates the same topics at the
    same time (TopicAlreadyExists is treated as "exists", then checked).
    Returns once every created topic has a leader for each partition.
    ``bootstrap`` is an address or the ``[kafka]`` settings (security included).
    """
    import kafka.errors as Errors

    specs = list(specs)
    by_name = {s.name: s for s in specs}
    if len(by_name) != len(specs):
        raise ValueError("duplicate topic names in specs")
    with _admin(bootstrap) as admin:
        existing = _partition_counts(admin, list(by_name))
        for name, count in existing.items():
            _check_partitions(by_name[name], count)
        missing = [s for s in specs if s.name not in existing]
        if not missing:
            return []
        request = {
            s.name: {"num_partitions": s.partitions, "configs": s.configs()} for s in missing
        }
        response = admin.create_topics(request, raise_errors=False)
        created: list[str] = []
        raced: list[str] = []
        for topic in response["topics"]:
            code = topic["error_code"]
            if code == _NO_ERROR:
                created.append(topic["name"])
            elif code == _TOPIC_ALREADY_EXISTS:
                raced.append(topic["name"])
            else:
                raise Errors.for_code(code)(
                    f"creating topic {topic['name']!r}: {topic.get('error_message')}"
                )
        if raced:
            log.info("topics created concurrently by someone else: %s", raced)
            deadline = time.monotonic() + 10
            while True:
                counts = _partition_counts(admin, raced)
                if len(counts) == len(raced) or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            for name in raced:
                _check_partitions(by_name[name], counts.get(name, 0))
        if created:
            admin.wait_for_topics(created, timeout_ms=30_000)
            log.info("created topics %s", created)
        return created


def delete_topics(bootstrap: str | KafkaSettings, names: Iterable[str],
                  timeout_s: float = 30.0) -> list[str]:
    """Delete the named topics that exist (missing ones are ignored); return those deleted.

    Waits until the deleted topics are gone from the cluster's metadata, so a
    test can recreate a topic of the same name right after.
    """
    import kafka.errors as Errors

    names = list(names)
    if not names:
        return []
    with _admin(bootstrap) as admin:
        response = admin.delete_topics(names, raise_errors=False)
        deleted = []
        for topic in response["topics"]:
            code = topic["error_code"]
            if code == _NO_ERROR:
                deleted.append(topic["name"])
            elif code != _UNKNOWN_TOPIC_OR_PARTITION:
                raise Errors.for_code(code)(f"deleting topic {topic['name']!r}")
        deadline = time.monotonic() + timeout_s
        while deleted and set(deleted) & set(admin.list_topics()):
            if time.monotonic() > deadline:
                raise Errors.KafkaTimeoutError(f"topics still listed after delete: {deleted}")
            time.sleep(0.1)
        return deleted
