"""Nothing lost in an undisturbed run: the same records give the same alerts whatever the
order in which Kafka delivers the partitions, and one outlier touches one record.

Issue 8 found valid records dead-lettered as ``late_event`` in runs nobody disturbed
(one partition's fetch drained while the others sat idle past the idle timeout) and
a single declaration dated "now" in a 2022 stream dead-lettering the 4,024 records
after it. Each run here uses the shipped config (deploy/tradewatch.toml), private
topics and one worker, and ends with the full accounting of ``faults.assert_accounted``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.harness import private_settings, running_worker
from streams.topics import ensure_topics, pipeline_topic_specs
from tests.integration.faults import (
    assert_accounted,
    fault_stream,
    produce,
    produce_partition_by_partition,
    shipped_config,
    wait_committed,
    wait_windows_flushed,
)

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.timeout(420)]


def test_a_backlog_of_four_partitions_is_processed_as_replay_does(
        kafka_bootstrap: str, tmp_path: Path) -> None:
    """Everything produced before the worker starts: it meets a backlog on every
    partition and fetches them in whatever order the client likes."""
    stream = fault_stream(partitions=4)
    settings, toml = private_settings(kafka_bootstrap, shipped_config(), partitions=4)
    t = settings.topics
    ensure_topics(kafka_bootstrap, pipeline_topic_specs(t))
    produce(kafka_bootstrap, t.declarations, stream)
    with running_worker(toml, settings, tmp_path / "worker") as worker:
        wait_committed(settings, [worker])
        wait_windows_flushed(settings, [worker])
        acc = assert_accounted(settings, stream, [worker])
    print(f"\nbacklog run: {acc.summary()}")


def test_partitions_produced_one_after_another_in_shuffled_order_give_the_same_alerts(
        kafka_bootstrap: str, tmp_path: Path) -> None:
    """Each partition's records all arrive before the next partition's (order shuffled):
    a partition waits, idle, while another is fed, then gets its whole stream."""
    stream = fault_stream(partitions=4)
    settings, toml = private_settings(kafka_bootstrap, shipped_config(), partitions=4)
    with running_worker(toml, settings, tmp_path / "worker") as worker:
        order = produce_partition_by_partition(kafka_bootstrap, settings.topics.declarations,
                                               stream, seed=8)
        wait_committed(settings, [worker])
        wait_windows_flushed(settings, [worker])
        acc = assert_accounted(settings, stream, [worker])
    print(f"\npartition order {order}: {acc.summary()}")


def test_one_declaration_dated_far_ahead_affects_at_most_itself(
        kafka_bootstrap: str, tmp_path: Path) -> None:
    """A valid declaration dated now (years ahead of its 2022 neighbours, but within
    the future bound of the worker's clock) in the middle of its partition: it may be
    dead-lettered or held, but it must not move the watermark and make the records
    after it late. The alerts are those of replaying the same records."""
    stream = fault_stream(partitions=4, far_ahead=True)
    settings, toml = private_settings(kafka_bootstrap, shipped_config(), partitions=4)
    with running_worker(toml, settings, tmp_path / "worker") as worker:
        produce(kafka_bootstrap, settings.topics.declarations, stream)
        wait_committed(settings, [worker])
        wait_windows_flushed(settings, [worker])
        acc = assert_accounted(settings, stream, [worker])
    outlier_dead = [d for d in acc.dead if d.value in stream.may_dead_letter]
    print(f"\nfar-ahead record {'dead-lettered' if outlier_dead else 'held'}: {acc.summary()}")
