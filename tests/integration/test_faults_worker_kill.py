"""kill -9 of a worker at three points of a batch, restarted: the alerts of an
undisturbed run, nothing lost, and no wait for the dead worker's session.

The worker kills itself (SIGKILL, no cleanup) the n-th time it reaches the point
named in ``TRADEWATCH_FAULT_INJECT`` ("<point>:<n>"):

* ``mid_batch``: half of a batch handled, nothing of it sent yet;
* ``after_send``: its alerts and dead letters delivered, offsets not committed;
* ``after_commit``: offsets committed (and state persisted).

A new worker process with the same data directory and the same static-membership
id (``TRADEWATCH_INSTANCE_ID``) takes over. Issue 8 saw one alert of 26 missing
after such a restart and 51-53 s before processing resumed; the time to resume is
printed here (speed is the benchmarks' business, not a test's).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from streams.harness import committed_offsets, end_offsets, private_settings, start_worker
from streams.topics import delete_topics, ensure_topics, pipeline_topic_specs
from tests.integration.faults import (
    FAULT_INJECT_ENV,
    PROCESSED_METRIC,
    assert_accounted,
    describe,
    fault_stream,
    produce,
    fault_config,
    wait_committed,
    wait_for,
    wait_windows_flushed,
)
pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.timeout(420)]

#: The batch at which the first worker dies: early enough that most of the stream
#: (about 8 full batches of 2,000) comes after it.
KILL_AT_BATCH = 3


@pytest.mark.parametrize("point", ["mid_batch", "after_send", "after_commit"])
def test_a_worker_killed_at_any_point_of_a_batch_and_restarted_loses_nothing(
        kafka_bootstrap: str, tmp_path: Path, point: str) -> None:
    stream = fault_stream(partitions=4)
    settings, toml = private_settings(kafka_bootstrap, fault_config(), partitions=4)
    t = settings.topics
    ensure_topics(kafka_bootstrap, pipeline_topic_specs(t))
    data_dir = tmp_path / "data"
    instance = f"{settings.kafka.consumer_group}-1"
    workers = []
    try:
        produce(kafka_bootstrap, t.declarations, stream)
        first = start_worker(toml, settings, tmp_path / "first", data_dir=data_dir,
                             instance_id=instance,
                             extra_env={FAULT_INJECT_ENV: f"{point}:{KILL_AT_BATCH}"})
        workers.append(first)

        def died_or_finished() -> bool:
            if not first.alive():
                return True
            end = end_offsets(kafka_bootstrap, t.declarations)
            done = committed_offsets(kafka_bootstrap, settings.kafka.consumer_group, t.declarations)
            return all(done.get(p, 0) >= e for p, e in end.items())

        wait_for(died_or_finished, f"the worker to die at {point}:{KILL_AT_BATCH}", workers)
        if first.alive():
            first.kill9()
            pytest.fail(f"the worker processed the whole stream without dying at "
                        f"{FAULT_INJECT_ENV}={point}:{KILL_AT_BATCH} (fault injection not "
                        f"supported?)\n{describe(workers)}")
        assert first.proc.returncode == -9, (
            f"the worker exited with {first.proc.returncode}, not by SIGKILL\n{describe(workers)}")

        restarted_at = time.monotonic()
        second = start_worker(toml, settings, tmp_path / "second", data_dir=data_dir,
                              instance_id=instance)
        workers.append(second)
        wait_for(lambda: second.sample(PROCESSED_METRIC) > 0,
                 "the restarted worker to process a record", workers, every=0.1)
        resumed_after = time.monotonic() - restarted_at
        wait_committed(settings, workers)
        wait_windows_flushed(settings, [second])
        assert second.sample(PROCESSED_METRIC) > 0
        acc = assert_accounted(settings, stream, workers)
        print(f"\nkilled at {point}:{KILL_AT_BATCH}; restart -> first record processed "
              f"{resumed_after:.1f}s (process start included); {acc.summary()}")
    finally:
        for w in workers:
            w.stop(10)
        delete_topics(kafka_bootstrap, [t.declarations, t.dlq, t.alerts, t.incidents, t.config,
                                        t.feedback])
