"""Run the detection pipeline over a file, without Kafka: the analyst's fast loop.

Records are routed to partitions exactly as the producer routes them on Kafka
(murmur2 of the key from :mod:`streams.keys`, Kafka's default partitioner), and each partition gets
its own :class:`~streams.pipeline.PartitionPipeline`, so the offline run and a
worker on the real broker see the same per-partition order and raise the same
alerts (``tests/integration/test_offline_matches_online.py`` proves it).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable

from streams.config import Settings
from streams.keys import partition_for, partition_key
from streams.events import TradeAlert
from streams.metrics import PipelineMetrics
from streams.pipeline import PartitionPipeline
from streams.validate import RejectedDeclaration, ValidationLimits, validate_declaration

__all__ = ["OfflineResult", "run_offline"]


@dataclasses.dataclass
class OfflineResult:
    alerts: list[TradeAlert]
    rejected: list[tuple[int, str, str]]  # (record index, reason, detail)
    accepted: int


def run_offline(
    records: Iterable[bytes],
    settings: Settings,
    metrics: PipelineMetrics | None = None,
    now: Callable[[], float] = time.time,
) -> OfflineResult:
    """Validate, window and detect every record, then flush all windows."""
    partitions = settings.topics.partitions
    pipelines = [PartitionPipeline(settings, metrics, partition=p) for p in range(partitions)]
    limits = ValidationLimits(settings.validation.max_message_bytes,
                              settings.validation.max_future_seconds)
    alerts: list[TradeAlert] = []
    rejected: list[tuple[int, str, str]] = []
    accepted = 0
    wall = now()
    for index, raw in enumerate(records):
        try:
            declaration = validate_declaration(raw, now_ts=wall, limits=limits)
        except RejectedDeclaration as err:
            rejected.append((index, err.reason, err.detail))
            continue
        pipeline = pipelines[partition_for(partition_key(declaration.hs_code), partitions)]
        ok, new = pipeline.process(declaration)
        alerts.extend(new)
        if ok:
            accepted += 1
        else:
            rejected.append((index, "late_event", "window already closed"))
    for pipeline in pipelines:
        alerts.extend(pipeline.flush())
    if metrics is not None:
        from streams.worker import report_series

        report_series(metrics, pipelines)
    return OfflineResult(alerts, rejected, accepted)
