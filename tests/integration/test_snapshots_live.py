"""Snapshots on the real broker: ``tradewatch state revert`` puts a running worker back on the
models of a named snapshot, and it goes on from its current offsets.

The stream is :func:`tests.factories.one_day_spikes_stream` (DE->KG chips spike on days 45
and 60). The worker processes days 0-39, ``tradewatch state snapshot before-spike`` copies
its saved state, days 40-52 are processed (the models learn the day-45 spike), ``tradewatch
state revert before-spike`` is published, then days 53-65. After the revert:

* the changelog holds the snapshot's models for every partition (the detector state is
  byte for byte the snapshot's);
* the alerts of days 52-64 are those of an offline run whose models are swapped for the
  snapshot's at the same point, with the same scores; without the swap they differ.
"""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
from pathlib import Path

import pytest

from streams.config import Settings
from streams.events import TradeAlert, decode_declaration
from streams.harness import private_settings, read_topic, running_worker
from streams.keys import partition_for, record_key
from streams.metrics import PipelineMetrics
from streams.snapshots import SnapshotRecord, read_snapshots, revert_models
from streams.state_codec import RestoredState, decode_envelope, encode_object
from streams.topics import changelog_topic
from streams.worker import RecordHandler
from tests.factories import START, one_day_spikes_stream
from tests.integration.faults import read_alerts, shipped_config, wait_committed, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.analyst, pytest.mark.timeout(300)]

#: No window may idle-close between the last record before the revert and the first after:
#: the offline run closes it on the next record, after its swap.
IDLE_SECONDS = 45
SNAPSHOT_DAY, REVERT_DAY, LAST_DAY = 40, 53, 65


def _config() -> str:
    return re.sub(r"^idle_timeout_seconds = \d+", f"idle_timeout_seconds = {IDLE_SECONDS}",
                  shipped_config(), count=1, flags=re.M)


def _index(records: list[bytes], day: int) -> int:
    return next(i for i, raw in enumerate(records)
                if decode_declaration(raw).declared_at >= START + dt.timedelta(days=day))


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streams.cli", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=120)


def _produce(settings: Settings, records: list[bytes]) -> None:
    from streams.produce import produce_records

    produce_records(records, bootstrap=settings.kafka, topic=settings.topics.declarations,
                    progress=False)


def _decode(settings: Settings, raw: bytes, partition: int) -> RestoredState:
    restored = decode_envelope(raw, settings.topics.declarations, partition, settings)
    assert isinstance(restored, RestoredState), restored
    return restored


def _changelog(settings: Settings) -> dict[int, bytes]:
    newest: dict[int, bytes] = {}
    for r in read_topic(settings.kafka, changelog_topic(settings.kafka.consumer_group), idle=1.0):
        newest[r.partition] = r.value
    return newest


def _offline_after(settings: Settings, records: list[bytes], split: int,
                   snapshot: dict[int, SnapshotRecord] | None) -> list[TradeAlert]:
    """The alerts raised by ``records[split:]`` (no final flush), the models swapped for the
    snapshot's just before them when ``snapshot`` is given, as the worker's revert does."""
    topic, partitions = settings.topics.declarations, settings.topics.partitions
    handler = RecordHandler(settings, PipelineMetrics.disabled(), log_dead_letters=False)
    offsets = [0] * partitions
    alerts: list[TradeAlert] = []
    for index, raw in enumerate(records):
        if index == split and snapshot is not None:
            for partition, pipeline in handler.pipelines.items():
                state = snapshot[partition].state
                assert state is not None
                revert_models(pipeline, _decode(settings, state, partition).pipeline,
                              "before-spike")
        partition = partition_for(record_key(raw), partitions)
        out = handler.handle(raw, key=None, topic=topic, partition=partition,
                             offset=offsets[partition])
        offsets[partition] += 1
        if index >= split:
            alerts += [item.alert for item in out if item.alert is not None]
    return alerts


def _figures(alerts: list[TradeAlert]) -> list[tuple[str, float, float]]:
    last = START + dt.timedelta(days=LAST_DAY)
    return sorted((a.alert_id, a.score, a.surprise) for a in alerts if a.window_start < last)


def test_a_revert_puts_a_running_worker_back_on_the_snapshot_models(
        kafka_bootstrap: str, tmp_path: Path) -> None:
    records = one_day_spikes_stream()
    at_snapshot, at_revert = _index(records, SNAPSHOT_DAY), _index(records, REVERT_DAY)
    settings, toml = private_settings(kafka_bootstrap, _config(), partitions=2)
    config = tmp_path / "worker.toml"
    config.write_text(toml)
    with running_worker(toml, settings, tmp_path / "worker") as worker:
        busy = {partition_for(record_key(raw), 2) for raw in records}
        _produce(settings, records[:at_snapshot])
        wait_committed(settings, [worker])
        # the state of every busy partition is saved (at most state_save_interval later)
        wait_for(lambda: set(_changelog(settings)) >= busy, "the first saved states", [worker])
        taken = _cli(config, "state", "snapshot", "before-spike")
        assert taken.returncode == 0, taken.stderr
        assert f"{len(busy)} of 2 partition(s) with state" in taken.stderr
        assert _cli(config, "state", "snapshot", "before-spike").returncode == 1, \
            "a snapshot is never overwritten"
        listed = _cli(config, "state", "list")
        assert listed.stdout.startswith("before-spike "), listed.stdout

        _produce(settings, records[at_snapshot:at_revert])
        wait_committed(settings, [worker])
        reverted = _cli(config, "state", "revert", "before-spike")
        assert reverted.returncode == 0, reverted.stderr
        wait_for(lambda: worker.sample("tradewatch_state_reverts_total",
                                       {"outcome": "applied"}) == len(busy),
                 "the worker to apply the revert", [worker], timeout=60)
        assert worker.sample("tradewatch_state_reverts_total", {"outcome": "refused"}) == 0
        snapshot = read_snapshots(settings)["before-spike"]
        saved = _changelog(settings)
        for partition in busy:
            state = snapshot[partition].state
            assert state is not None
            expected = _decode(settings, state, partition).pipeline.scoring
            expected.lineage = "snapshot:before-spike"  # the one thing a revert adds
            now = _decode(settings, saved[partition], partition)
            assert encode_object(now.pipeline.scoring) == encode_object(expected)
            # ... and it goes on from where it was, not from the snapshot's offsets
            assert now.next_offset > (snapshot[partition].next_offset or 0)

        _produce(settings, records[at_revert:])
        wait_committed(settings, [worker])
        alerts = read_alerts(kafka_bootstrap, settings.topics.alerts)

    last_before = START + dt.timedelta(days=REVERT_DAY - 1)
    after = [a for a in alerts if a.window_start >= last_before]
    expected = _offline_after(settings, records, at_revert, snapshot)
    assert _figures(after) == _figures(expected)
    assert _figures(expected) != _figures(_offline_after(settings, records, at_revert, None)), \
        "the revert must change the scores of this stream, or the test proves nothing"
    assert [a for a in after if a.detector == "spike"], "the day-60 spike alerts"
    # the alerts say which models scored them, so explain can tell a replay cannot match
    assert sorted((a.alert_id, a.state_version) for a in after) == sorted(
        (a.alert_id, a.state_version) for a in expected)
    assert all(a.state_version.startswith("snapshot:before-spike+")
               for a in after if a.detector == "spike"), [a.state_version for a in after]
