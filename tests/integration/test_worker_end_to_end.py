"""The worker on the real broker: a spike becomes an alert, bad input becomes dead letters.

One worker process, private topics; records go in through Kafka and everything
asserted here is read back from Kafka or from the worker's /metrics.
"""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from streams.config import DEFAULT_CONFIG_PATH
from streams.events import TradeAlert, TradeIncident, example_declaration_json
from streams.harness import private_settings, read_topic, running_worker, send_all
from tests.factories import spike_stream

pytestmark = pytest.mark.integration


def _bad_records(copy_of: bytes) -> dict[str, bytes]:
    good = json.loads(example_declaration_json())

    def variant(**changes: object) -> bytes:
        record = dict(good, **changes)
        return json.dumps(record).encode()

    missing = dict(good)
    del missing["hs_code"]
    return {
        "not_json": b"{not json",
        "not_utf8": example_declaration_json().replace(b"Micro", b"\xff\xfe"),
        "missing_field": json.dumps(missing).encode(),
        "wrong_type": variant(net_mass_kg="heavy"),
        "negative_quantity": variant(statistical_value_eur=-5),
        "malformed_hs_code": variant(hs_code="85-42"),
        "unknown_country": variant(destination_country="ZZ"),
        "oversized": variant(goods_description="x" * 500) + b" " * 70_000,
        "future_timestamp": variant(declared_at="2099-01-01T00:00:00Z"),
        "value_out_of_range": variant(statistical_value_eur=1e308),
        "too_deeply_nested": b'{"a":' + b"[" * 30_000 + b"]" * 30_000 + b"}",
        "duplicate_declaration": copy_of,
    }


@pytest.fixture(scope="module")
def worker_run(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    settings, toml = private_settings(kafka_bootstrap, DEFAULT_CONFIG_PATH.read_text())
    records, key = spike_stream(days=70, spike_day=50)
    bad = _bad_records(copy_of=records[199])
    # bad records go in the middle of the stream: the worker must carry on after them
    stream = records[:200] + list(bad.values()) + records[200:]
    with running_worker(toml, settings, tmp_path_factory.mktemp("worker")) as worker:
        send_all(kafka_bootstrap, settings.topics.declarations, stream)
        alerts = read_topic(kafka_bootstrap, settings.topics.alerts, timeout=90, idle=12)
        dead = read_topic(kafka_bootstrap, settings.topics.dlq, expect=len(bad), timeout=60)
        incidents = read_topic(kafka_bootstrap, settings.topics.incidents, timeout=60, idle=3)
        metrics = {
            "consumed": worker.sample("tradewatch_declarations_consumed_total"),
            "rejected": {r: worker.sample("tradewatch_declarations_rejected_total", {"reason": r})
                         for r in bad},
            "alerts": worker.sample("tradewatch_alerts_published_total",
                                    {"detector": "spike", "transit_country": "KG", "chpl_tier": "1"}),
            "late": worker.sample("tradewatch_late_declarations_total"),
            "closes": {path: worker.sample("tradewatch_series_closes_total", {"path": path})
                       for path in ("native", "python")},
            "incidents": sum(worker.sample("tradewatch_incidents_published_total", {
                "severity": s, "transit_country": "KG", "chpl_tier": "1"})
                for s in ("low", "medium", "high", "critical")),
        }
        yield {"alerts": alerts, "incidents": incidents, "dead": dead, "bad": bad, "key": key, "metrics": metrics,
               "total": len(stream), "log": worker.log_tail()}


def test_the_spike_is_published_as_a_schema_valid_alert(worker_run) -> None:  # type: ignore[no-untyped-def]
    decoded = [msgspec.json.decode(r.value, type=TradeAlert) for r in worker_run["alerts"]]
    spikes = [a for a in decoded if a.detector == "spike" and a.series.key == worker_run["key"]]
    assert spikes, worker_run["log"]
    assert spikes[0].severity in ("high", "critical")
    assert spikes[0].evidence.observed > 5 * spikes[0].evidence.expected
    keys = {r.key for r in worker_run["alerts"]}
    assert worker_run["key"].encode() in keys  # keyed by series for per-series ordering


def test_the_alerts_are_grouped_into_incidents_on_the_incident_topic(worker_run) -> None:  # type: ignore[no-untyped-def]
    from streams.schemas import path_of

    alerts = [msgspec.json.decode(r.value, type=TradeAlert) for r in worker_run["alerts"]]
    records = worker_run["incidents"]
    assert records, worker_run["log"]
    schema = json.loads(path_of("trade_incident").read_text())
    import jsonschema

    incidents = []
    for r in records:
        jsonschema.validate(json.loads(r.value), schema)
        incident = msgspec.json.decode(r.value, type=TradeIncident)
        assert r.key == incident.incident_id.encode()
        assert dict(r.headers)["tw-schema"] == b"trade_incident.v1"
        incidents.append(incident)
    assert {m.alert_id for i in incidents for m in i.members} == {a.alert_id for a in alerts}
    assert {a.incident_id for a in alerts} == {i.incident_id for i in incidents}
    assert worker_run["metrics"]["incidents"] == len(incidents)


def test_every_kind_of_bad_input_is_dead_lettered_with_reason_and_original_bytes(worker_run) -> None:  # type: ignore[no-untyped-def]
    by_reason = {}
    for record in worker_run["dead"]:
        headers = {k: v.decode() for k, v in record.headers}
        by_reason[headers["tw-reason"]] = (record, headers)
    assert set(by_reason) == set(worker_run["bad"]), worker_run["log"]
    for reason, raw in worker_run["bad"].items():
        record, headers = by_reason[reason]
        assert record.value == raw  # the original bytes, untouched
        assert headers["tw-source-topic"].endswith(".declarations")
        assert int(headers["tw-source-offset"]) >= 0 and headers["tw-detail"]


def test_metrics_count_every_record_and_each_rejection(worker_run) -> None:  # type: ignore[no-untyped-def]
    m = worker_run["metrics"]
    assert m["consumed"] == worker_run["total"]
    assert all(v == 1.0 for v in m["rejected"].values()), m["rejected"]
    assert m["alerts"] >= 1
    assert m["late"] == 0  # no valid record is dead-lettered in an undisturbed run


def test_the_worker_closes_quiet_series_natively(worker_run) -> None:  # type: ignore[no-untyped-def]
    """Through the real broker the shipped config's windows close in native code: most
    series closes are native; new series and the ones that alerted go the Python way."""
    closes = worker_run["metrics"]["closes"]
    assert closes["native"] > 2 * closes["python"] > 0, closes


def test_offline_partitioning_matches_the_brokers(kafka_bootstrap: str, unique_topic_prefix: str) -> None:
    """The offline runner must route a record to the partition Kafka gives it, or the
    per-partition watermarks (and so the alerts) of the two modes would differ."""
    from kafka import KafkaProducer

    from streams.keys import partition_for, record_key
    from streams.topics import TopicSpec, ensure_topics

    topic = f"{unique_topic_prefix}partitioning"
    ensure_topics(kafka_bootstrap, [TopicSpec(topic, partitions=4, retention_ms=600_000)])
    records, _ = spike_stream(days=3)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    try:
        for raw in records[:20]:
            meta = producer.send(topic, key=record_key(raw), value=raw).get(timeout=30)
            assert meta.partition == partition_for(record_key(raw), 4)
    finally:
        producer.close()
