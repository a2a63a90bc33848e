"""Three workers as on three machines, 6 partitions: one joins and one is killed
mid-stream, and the alerts are those of one offline run.

Each worker has its own data directory, so a partition that moves finds nothing
of its state on the new machine's disk: it must come from the partition's
changelog topic in Kafka. Issue 8 saw 14 of 26 alerts missing and 5 extra with two
such workers, because moved partitions started cold. The restore metric of the
workers that took partitions over must show restores from the changelog.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.harness import private_settings, start_worker
from streams.topics import delete_topics, ensure_topics, pipeline_topic_specs
from tests.integration.faults import (
    PROCESSED_METRIC,
    STATE_RESTORES_METRIC,
    assert_accounted,
    describe,
    fault_stream,
    produce,
    fault_config,
    wait_committed,
    wait_for,
    wait_windows_flushed,
    worker_settings,
)

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.timeout(480)]


def test_partitions_that_move_between_machines_resume_from_the_changelog(
        kafka_bootstrap: str, tmp_path: Path) -> None:
    stream = fault_stream(partitions=6)
    base, base_toml = private_settings(kafka_bootstrap, fault_config(), partitions=6)
    t = base.topics
    ensure_topics(kafka_bootstrap, pipeline_topic_specs(t))
    thirds = stream.parts(3)  # cut at day boundaries: see FaultStream.parts
    workers = {}

    def start(name: str):  # type: ignore[no-untyped-def]
        settings, toml = worker_settings(base_toml)
        w = start_worker(toml, settings, tmp_path / name, data_dir=tmp_path / name / "data",
                         instance_id=f"{base.kafka.consumer_group}-{name}")
        workers[name] = w
        return w

    def processed() -> float:
        return sum(w.sample(PROCESSED_METRIC) for w in workers.values() if w.alive())

    try:
        start("w1")
        start("w2")
        produce(kafka_bootstrap, t.declarations, stream, thirds[0])
        wait_committed(base, list(workers.values()))

        start("w3")  # joins: the group rebalances, partitions move to w3
        before = processed()
        produce(kafka_bootstrap, t.declarations, stream, thirds[1])
        wait_for(lambda: processed() >= before + len(thirds[1]) // 2,
                 "the three workers to be mid-stream", list(workers.values()))
        workers["w1"].kill9()  # its partitions move to w2 and w3
        produce(kafka_bootstrap, t.declarations, stream, thirds[2])
        wait_committed(base, list(workers.values()), timeout=300)
        survivors = [workers["w2"], workers["w3"]]
        wait_windows_flushed(base, survivors)

        restored = {name: {outcome: workers[name].sample(STATE_RESTORES_METRIC,
                                                         {"outcome": outcome})
                           for outcome in ("changelog", "cache", "cold", "refused")}
                    for name in ("w2", "w3")}
        acc = assert_accounted(base, stream, list(workers.values()))
        assert restored["w3"]["changelog"] > 0, (
            f"w3 took partitions over from w1/w2 but restored none from the changelog "
            f"({STATE_RESTORES_METRIC} by outcome: {restored})\n{describe(survivors)}")
        assert restored["w2"]["changelog"] + restored["w3"]["changelog"] >= 2, (
            f"w1's partitions moved, yet the changelog restores are {restored}")
        print(f"\nrestores by outcome: {restored}; {acc.summary()}")
    finally:
        for w in workers.values():
            w.stop(10)
        delete_topics(kafka_bootstrap, [t.declarations, t.dlq, t.alerts, t.incidents, t.config,
                                        t.feedback])
