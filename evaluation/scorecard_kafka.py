"""Run records through the real broker and a real worker process, and collect the alerts.

The Kafka mode of ``tradewatch evaluate`` and the offline-equals-online test use
this: the same settings, private topics, one worker, and every alert read back
from the alert topic once the worker has processed every record and idle-closed
its last windows.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import msgspec

from streams import kafka_local
from streams.config import Settings
from streams.events import TradeAlert
from streams.kafka_clients import check_cluster
from streams.harness import RunningWorker, private_settings, read_topic, running_worker, send_all

__all__ = ["run_through_kafka"]


def run_through_kafka(records: Iterable[bytes], settings: Settings,
                      timeout: float = 600.0) -> list[TradeAlert]:
    """Produce ``records`` to fresh topics, let one worker process them, return its alerts.

    A cluster with security settings is used as configured; otherwise the local broker
    (or TRADEWATCH_BOOTSTRAP_SERVERS).
    """
    kafka = settings.kafka
    if kafka.security_protocol == "PLAINTEXT":
        bootstrap = kafka_local.start(
            bootstrap_servers=os.environ.get("TRADEWATCH_BOOTSTRAP_SERVERS"))
        kafka = msgspec.structs.replace(kafka, bootstrap_servers=bootstrap)
    else:
        check_cluster(kafka)
    records = list(records)
    private, toml = private_settings(kafka, settings.to_toml(),
                                     partitions=settings.topics.partitions)
    with tempfile.TemporaryDirectory() as tmp, \
            running_worker(toml, private, Path(tmp)) as worker:
        send_all(private.kafka, private.topics.declarations, records)
        _wait_until_idle_closed(worker, len(records), timeout)
        raw = read_topic(private.kafka, private.topics.alerts, idle=3.0, timeout=timeout)
    decoder = msgspec.json.Decoder(TradeAlert)
    return [decoder.decode(r.value) for r in raw]


def _wait_until_idle_closed(worker: RunningWorker, expected: int, timeout: float) -> None:
    """Every record consumed, then the idle timeout and two ticks for the last windows."""
    deadline = time.monotonic() + timeout
    while worker.sample("tradewatch_declarations_consumed_total") < expected:
        if time.monotonic() > deadline:
            raise TimeoutError(f"worker did not consume {expected} records:\n{worker.log_tail()}")
        if worker.proc.poll() is not None:
            raise RuntimeError(f"worker died:\n{worker.log_tail()}")
        time.sleep(0.2)
    time.sleep(worker.settings.windows.idle_timeout_seconds + 2.5)
