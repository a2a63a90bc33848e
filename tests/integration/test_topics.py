"""streams.topics against the real broker."""

from __future__ import annotations

import threading

import pytest
from kafka.admin import ConfigResource, KafkaAdminClient

from streams.topics import (
    DAY_MS,
    TopicMismatchError,
    TopicSpec,
    default_topic_specs,
    delete_topics,
    ensure_topics,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def _describe(bootstrap: str, names: list[str]) -> tuple[dict[str, int], dict[str, dict]]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        partitions = {t["name"]: len(t["partitions"]) for t in admin.describe_topics(names)}
        configs = admin.describe_configs([ConfigResource("TOPIC", n) for n in names])["topic"]
    finally:
        admin.close()
    return partitions, configs


def test_ensure_topics_creates_with_partitions_and_config(
    kafka_bootstrap: str, unique_topic_prefix: str
) -> None:
    p = unique_topic_prefix
    specs = default_topic_specs(
        declarations=p + "declarations", dlq=p + "declarations.dlq", alerts=p + "alerts",
        incidents=p + "incidents", config=p + "config", feedback=p + "feedback",
    )
    created = ensure_topics(kafka_bootstrap, specs)
    assert sorted(created) == sorted(s.name for s in specs)

    partitions, configs = _describe(kafka_bootstrap, [s.name for s in specs])
    assert partitions == {p + "declarations": 4, p + "alerts": 4, p + "incidents": 4,
                          p + "declarations.dlq": 1, p + "config": 1, p + "feedback": 1}
    assert configs[p + "declarations"]["retention.ms"]["value"] == str(7 * DAY_MS)
    assert configs[p + "alerts"]["retention.ms"]["value"] == str(30 * DAY_MS)
    assert configs[p + "incidents"]["retention.ms"]["value"] == str(90 * DAY_MS)
    assert configs[p + "declarations.dlq"]["retention.ms"]["value"] == str(30 * DAY_MS)
    assert configs[p + "config"]["cleanup.policy"]["value"] == "compact"
    assert configs[p + "feedback"]["cleanup.policy"]["value"] == "compact"

    assert ensure_topics(kafka_bootstrap, specs) == [], "second call must create nothing"


def test_extra_config_and_cleanup_policy(kafka_bootstrap: str, unique_topic_prefix: str) -> None:
    spec = TopicSpec(
        unique_topic_prefix + "compacted", 2, retention_ms=3_600_000, cleanup_policy="compact",
        extra_config={"max.message.bytes": "200000"},
    )
    assert ensure_topics(kafka_bootstrap, [spec]) == [spec.name]
    partitions, configs = _describe(kafka_bootstrap, [spec.name])
    assert partitions == {spec.name: 2}
    cfg = configs[spec.name]
    assert cfg["cleanup.policy"]["value"] == "compact"
    assert cfg["max.message.bytes"]["value"] == "200000"
    assert cfg["retention.ms"]["value"] == "3600000"


def test_partition_mismatch_raises_naming_the_topic(
    kafka_bootstrap: str, unique_topic_prefix: str
) -> None:
    name = unique_topic_prefix + "declarations"
    ensure_topics(kafka_bootstrap, [TopicSpec(name, 4, retention_ms=DAY_MS)])
    with pytest.raises(TopicMismatchError, match=name):
        ensure_topics(kafka_bootstrap, [TopicSpec(name, 2, retention_ms=DAY_MS)])
    # nothing was changed by the refused call
    partitions, _ = _describe(kafka_bootstrap, [name])
    assert partitions == {name: 4}


def test_only_missing_topics_are_created(kafka_bootstrap: str, unique_topic_prefix: str) -> None:
    a = TopicSpec(unique_topic_prefix + "a", 1, retention_ms=DAY_MS)
    b = TopicSpec(unique_topic_prefix + "b", 3, retention_ms=DAY_MS)
    assert ensure_topics(kafka_bootstrap, [a]) == [a.name]
    assert ensure_topics(kafka_bootstrap, [a, b]) == [b.name]


def test_concurrent_ensure_topics_race(kafka_bootstrap: str, unique_topic_prefix: str) -> None:
    specs = [TopicSpec(f"{unique_topic_prefix}race-{i}", 2, retention_ms=DAY_MS) for i in range(3)]
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            results.append(ensure_topics(kafka_bootstrap, specs))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    created = [name for r in results for name in r]
    assert sorted(created) == sorted(s.name for s in specs), "each topic created exactly once"


def test_delete_topics(kafka_bootstrap: str, unique_topic_prefix: str) -> None:
    spec = TopicSpec(unique_topic_prefix + "gone", 1, retention_ms=DAY_MS)
    ensure_topics(kafka_bootstrap, [spec])
    missing = unique_topic_prefix + "never-existed"
    assert delete_topics(kafka_bootstrap, [spec.name, missing]) == [spec.name]
    assert ensure_topics(kafka_bootstrap, [spec]) == [spec.name], "recreate right after delete"
