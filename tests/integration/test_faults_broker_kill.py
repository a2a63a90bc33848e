"""kill -9 of the broker mid-stream, restarted: the running worker recovers by itself.

The broker here is a private one (own var directory and ports, started through
``streams.kafka_local`` with ``TRADEWATCH_VAR_DIR``/``TRADEWATCH_KAFKA_PORT``), never
the shared broker the rest of the suite uses. The worker is not restarted: it must
ride out the outage, and the alert set must equal the offline run's. The recovery
time (broker answering again -> the worker processing again) is printed.

The producer pauses for the outage at a day boundary: a partition that drained its
first part may be idle-closed while the producer reconnects (it is caught up and
quiet, as designed), and that must not make the second part late. A pause mid-day
would make the outcome depend on how fast the producer comes back on a busy machine.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from streams import kafka_local
from streams.harness import private_settings, running_worker
from tests.integration.faults import (
    PROCESSED_METRIC,
    assert_accounted,
    describe,
    fault_stream,
    private_broker,
    produce,
    fault_config,
    wait_committed,
    wait_for,
    wait_windows_flushed,
)

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.timeout(480)]

#: How long the broker stays dead: longer than the clients' request timeouts' first
#: retries, shorter than anything a test should wait for.
DOWN_SECONDS = 10.0


def test_the_worker_rides_out_a_broker_kill9_and_raises_the_same_alerts(
        kafka_bootstrap: str, tmp_path: Path) -> None:
    stream = fault_stream(partitions=4)
    first, second = stream.parts(2)
    with private_broker(tmp_path / "var") as broker:
        assert kafka_local.is_answering(kafka_bootstrap), "the shared broker must be untouched"
        settings, toml = private_settings(broker.bootstrap, fault_config(), partitions=4)
        with running_worker(toml, settings, tmp_path / "worker") as worker:
            produce(broker.bootstrap, settings.topics.declarations, stream, first)
            wait_for(lambda: worker.sample(PROCESSED_METRIC) >= len(first) // 2,
                     "the worker to be mid-stream", [worker])
            broker.kill9()
            time.sleep(DOWN_SECONDS)
            broker.start()
            back_at = time.monotonic()
            before = worker.sample(PROCESSED_METRIC)
            produce(broker.bootstrap, settings.topics.declarations, stream, second)
            wait_for(lambda: worker.sample(PROCESSED_METRIC) > before,
                     "the worker to process records after the broker's restart", [worker],
                     timeout=240, every=0.2)
            recovered_after = time.monotonic() - back_at
            wait_committed(settings, [worker])
            wait_windows_flushed(settings, [worker])
            assert worker.alive(), f"the worker died with the broker\n{describe([worker])}"
            acc = assert_accounted(settings, stream, [worker])
        assert kafka_local.is_answering(kafka_bootstrap), "the shared broker must be untouched"
    print(f"\nbroker down {DOWN_SECONDS:.0f}s; broker answering -> worker processing again "
          f"{recovered_after:.1f}s (includes producing the second half); {acc.summary()}")
