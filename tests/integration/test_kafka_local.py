"""The project's local broker, for real: lifecycle calls and a produce/consume round trip."""

from __future__ import annotations

import os
import uuid

import pytest
from kafka import KafkaConsumer, KafkaProducer

from streams import kafka_local
from streams.topics import TopicSpec, ensure_topics

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def test_start_is_idempotent(kafka_bootstrap: str) -> None:
    before = kafka_local.status()
    assert kafka_local.start(timeout=30) == kafka_bootstrap
    after = kafka_local.status()
    assert after["answering"] is True
    if before["mode"] == "local":
        assert before["pid"] is not None
        assert after["pid"] == before["pid"], "a second start must reuse the running broker"


def test_status_reports_answering(kafka_bootstrap: str) -> None:
    info = kafka_local.status()
    assert info["bootstrap"] == kafka_bootstrap
    assert info["answering"] is True
    if info["mode"] == "local":
        assert info["running"] is True
        assert info["jars_ready"] is True
        assert kafka_bootstrap.startswith("127.0.0.1:")
    assert kafka_local.cli(["status"]) == 0


def test_existing_cluster_is_used_not_started(
    kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = kafka_local.status()
    monkeypatch.setenv("TRADEWATCH_BOOTSTRAP_SERVERS", kafka_bootstrap)
    assert kafka_local.start(timeout=30) == kafka_bootstrap
    info = kafka_local.status()
    assert info["mode"] == "external" and info["answering"] is True
    assert kafka_local.stop() is False, "stop must never touch an external cluster"
    monkeypatch.delenv("TRADEWATCH_BOOTSTRAP_SERVERS")
    if before["mode"] == "local":
        assert kafka_local.status()["pid"] == before["pid"]


def test_produce_consume_round_trip(kafka_bootstrap: str, unique_topic_prefix: str) -> None:
    topic = unique_topic_prefix + "roundtrip"
    ensure_topics(kafka_bootstrap, [TopicSpec(topic, 4, retention_ms=3_600_000)])
    hs_codes = [b"870323", b"850440", b"271019", b"300490", b"854231"]
    sent = []
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", linger_ms=5)
    try:
        for i in range(200):
            key = hs_codes[i % len(hs_codes)]
            value = f'{{"seq": {i}, "hs_code": "{key.decode()}"}}'.encode()
            producer.send(topic, key=key, value=value).get(timeout=30)
            sent.append((key, value))
    finally:
        producer.close(timeout=10)

    consumer = KafkaConsumer(
        topic, bootstrap_servers=kafka_bootstrap, group_id=f"tw-test-{uuid.uuid4().hex}",
        auto_offset_reset="earliest", enable_auto_commit=False,
    )
    got = []
    try:
        for _ in range(120):
            for records in consumer.poll(timeout_ms=500).values():
                got.extend(records)
            if len(got) >= len(sent):
                break
    finally:
        consumer.close()

    assert sorted((r.key, r.value) for r in got) == sorted(sent)
    # the keying rule: one HS code -> one partition
    partitions_by_key: dict[bytes, set[int]] = {}
    for r in got:
        partitions_by_key.setdefault(r.key, set()).add(r.partition)
    assert all(len(p) == 1 for p in partitions_by_key.values()), partitions_by_key
    # order is kept within a key
    for key in hs_codes:
        seqs = [int(r.value.split(b":")[1].split(b",")[0]) for r in got if r.key == key]
        assert seqs == sorted(seqs)


def test_consume_ceiling_bench_reads_everything_with_both_clients(kafka_bootstrap: str) -> None:
    """The benchmark's consumers (aiokafka, as faust uses, and kafka-python) see every record.

    Counts only: no timing is asserted.
    """
    from bench.consume_ceiling import run

    results = run(kafka_bootstrap, messages=3000, partitions=4)
    assert results["produce"].messages == 3000
    for name in ("aiokafka", "kafka-python"):
        assert results[name].messages == 3000, name
        assert results[name].bytes == results["produce"].bytes, name


def test_var_dir_is_the_broker_home() -> None:
    expected = os.environ.get("TRADEWATCH_VAR_DIR")
    home = kafka_local.home_dir()
    if expected:
        assert str(home).startswith(os.path.realpath(os.path.expanduser(expected)))
    else:
        assert home == kafka_local.PROJECT_ROOT / "var" / "kafka"
