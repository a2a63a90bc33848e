"""Output that cannot be published is never committed past, and never lost.

Issue 8 lost the dead letter of a 1,048,300-byte record: the send failed, was logged
and counted, and the record's offset was committed anyway, so the record was neither
processed nor in the DLQ. Here the broker refuses the output: the topic is created
with a ``max.message.bytes`` smaller than what the worker must write to it.

* alerts: while the alerts topic refuses, the committed offset of the partition must
  not pass the record whose window raised the alert, and the health metric must say
  so; once the topic is fixed (``max.message.bytes`` raised) the retries get through.
* dead letters: the original bytes of an oversized record can never fit a DLQ that
  refuses them, so its dead letter is published shrunk to fit, with the original's
  size and sha256 (``streams.delivery``).

Both end with the accounting: count in = processed + dead-lettered, alerts equal to
the offline run.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

from streams.config import Settings
from streams.events import decode_declaration
from streams.harness import committed_offsets, private_settings, read_topic, running_worker
from streams.topics import TopicSpec, ensure_topics, pipeline_topic_specs
from tests.integration.faults import (
    PROCESSED_METRIC,
    PUBLISH_FAILURES_METRIC,
    FaultStream,
    assert_accounted,
    describe,
    fault_stream,
    produce,
    replay,
    fault_config,
    wait_committed,
    wait_for,
    wait_windows_flushed,
)

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.timeout(420)]

#: Smaller than the oversized record's dead letter (~70 kB), larger than any other
#: dead letter; smaller than any alert (~850 bytes) for the alerts topic.
TOO_SMALL = {"dlq": 32_768, "alerts": 400}
#: How long the output stays refused while the commit is watched.
BLOCKED_SECONDS = 8.0


def _set_max_message_bytes(bootstrap: str, topic: str, value: int) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="tw-faults")
    try:
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic,
                                            configs={"max.message.bytes": str(value)})])
    finally:
        admin.close()


def _fence(which: str, stream: FaultStream, settings: Settings,
           source: dict[tuple[int, int], bytes]) -> tuple[int, int]:
    """(partition, offset) the committed offset must not pass while ``which`` refuses.

    dlq: the oversized record itself. alerts: on the partition of the first alert the
    offline run raises, a record dated a day past that alert's window end + grace; the
    window (and its alert) must have closed by then, from records of that partition.
    """
    if which == "dlq":
        (position,) = [pos for pos, v in source.items() if v == stream.bad["oversized"]]
        return position
    first = min(replay(stream, settings).alerts,
                key=lambda a: (a.window_start, a.alert_id))
    ids = set(first.evidence.declaration_ids)
    decoded = {}
    for pos, raw in source.items():
        if raw in stream.bad.values():
            continue
        decoded[pos] = decode_declaration(raw)
    (partition,) = {p for (p, _), d in decoded.items() if d.declaration_id in ids}
    closes = (first.window_end + dt.timedelta(seconds=settings.windows.grace_seconds)
              + dt.timedelta(days=1))
    offset = min(off for (p, off), d in decoded.items() if p == partition and d.declared_at >= closes)
    return partition, offset


def test_a_dead_letter_too_large_for_the_dlq_is_published_truncated_and_accounted(
        kafka_bootstrap: str, tmp_path: Path) -> None:
    """Re-sending bytes the DLQ can never take would stall the partition for good: the
    oversized record's dead letter is published shrunk to fit, with the original's size
    and sha256, so it is still accounted for (and found in the source topic)."""
    stream = fault_stream(partitions=4)
    settings, toml = private_settings(kafka_bootstrap, fault_config(), partitions=4)
    t = settings.topics
    specs = [TopicSpec(s.name, s.partitions, s.retention_ms,
                       extra_config={"max.message.bytes": str(TOO_SMALL["dlq"])})
             if s.name == t.dlq else s
             for s in pipeline_topic_specs(t)]
    ensure_topics(kafka_bootstrap, specs)
    with running_worker(toml, settings, tmp_path / "worker") as worker:
        produce(kafka_bootstrap, t.declarations, stream)
        wait_committed(settings, [worker])
        wait_windows_flushed(settings, [worker])
        acc = assert_accounted(settings, stream, [worker])
        failures = worker.sample(PUBLISH_FAILURES_METRIC)
    oversized = stream.bad["oversized"]
    [letter] = [d for d in acc.dead if d.original_size is not None]
    assert letter.reason == "oversized" and letter.original_size == len(oversized)
    assert letter.carries(oversized) and len(letter.value) < TOO_SMALL["dlq"]
    assert failures > 0  # the refused full-size attempts are counted
    print(f"\ndead letter of {len(oversized)} bytes published as {len(letter.value)}: "
          f"{acc.summary()}")


@pytest.mark.parametrize("which", ["alerts"])
def test_output_that_cannot_be_published_holds_the_commit_until_it_can(
        kafka_bootstrap: str, tmp_path: Path, which: str) -> None:
    """An alert the alerts topic refuses is retried, never skipped: the commit waits."""
    stream = fault_stream(partitions=4)
    settings, toml = private_settings(kafka_bootstrap, fault_config(), partitions=4)
    t = settings.topics
    refused = t.dlq if which == "dlq" else t.alerts
    specs = [TopicSpec(s.name, s.partitions, s.retention_ms,
                       extra_config={"max.message.bytes": str(TOO_SMALL[which])})
             if s.name == refused else s
             for s in pipeline_topic_specs(t)]
    ensure_topics(kafka_bootstrap, specs)

    with running_worker(toml, settings, tmp_path / "worker") as worker:
        produce(kafka_bootstrap, t.declarations, stream)
        source = {(r.partition, r.offset): r.value
                  for r in read_topic(kafka_bootstrap, t.declarations, expect=len(stream))}
        partition, offset = _fence(which, stream, settings, source)

        # until the worker has read everything, or stalls on the refused output
        last: list[float] = [-1.0, time.monotonic()]

        def settled() -> bool:
            n = worker.sample(PROCESSED_METRIC)
            if n != last[0]:
                last[:] = [n, time.monotonic()]
            return n >= len(stream) or time.monotonic() - last[1] > 5.0

        wait_for(settled, "the worker to read the stream or stall", [worker], timeout=180)
        watched_until = time.monotonic() + BLOCKED_SECONDS
        while time.monotonic() < watched_until:
            committed = committed_offsets(kafka_bootstrap, settings.kafka.consumer_group,
                                          t.declarations)
            assert committed.get(partition, 0) <= offset, (
                f"{which} refuses the output, yet partition {partition} was committed to "
                f"{committed.get(partition)}, past offset {offset} (whose output is not "
                f"published); committed {committed}\n{describe([worker])}")
            time.sleep(1.0)
        failures = worker.sample(PUBLISH_FAILURES_METRIC)
        assert failures > 0, (f"{which} refused the output for {BLOCKED_SECONDS:.0f}s but "
                              f"{PUBLISH_FAILURES_METRIC} is {failures}\n{describe([worker])}")

        _set_max_message_bytes(kafka_bootstrap, refused, 4 * 1024 * 1024)
        wait_committed(settings, [worker])
        wait_windows_flushed(settings, [worker])
        acc = assert_accounted(settings, stream, [worker])
    print(f"\n{which} refused for {BLOCKED_SECONDS:.0f}s, {failures:.0f} failed sends: "
          f"{acc.summary()}")
