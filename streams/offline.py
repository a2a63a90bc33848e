"""Run the detection pipeline over a file, without Kafka: the analyst's fast loop.

Records are routed to partitions exactly as the producer routes them on Kafka
(murmur2 of :func:`streams.keys.record_key`, Kafka's default partitioner), and
each record goes through the worker's own :class:`~streams.worker.RecordHandler`
(validation, de-duplication, windows, detectors), so the offline run and a
worker on the real broker see the same per-partition order, raise the same
alerts and dead-letter the same records for the same reasons
(``tests/integration/test_offline_matches_online.py`` proves it). Nothing in a
file can crash a replay: a record the handler cannot use is a dead letter.

The one difference is the end: a file ends, a topic does not. A replay closes
every window once the input is exhausted (held ones included); the worker closes
them once each partition is caught up and quiet (:mod:`streams.catchup`).
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Callable, Iterable

from streams.config import Settings
from streams.events import TradeAlert
from streams.keys import partition_for, record_key
from streams.metrics import PipelineMetrics
from streams.worker import RecordHandler, report_series

__all__ = ["OfflineResult", "run_offline"]

#: The source topic named in the replay's dead letters.
REPLAY_TOPIC = "replay"


@dataclasses.dataclass
class OfflineResult:
    alerts: list[TradeAlert]
    rejected: list[tuple[int, str, str]]  # (record index, reason, detail)
    accepted: int

    def rejected_by_reason(self) -> dict[str, int]:
        """Dead letters counted by reason code, most frequent first."""
        return dict(Counter(reason for _, reason, _ in self.rejected).most_common())


def run_offline(
    records: Iterable[bytes],
    settings: Settings,
    metrics: PipelineMetrics | None = None,
    now: Callable[[], float] = time.time,
) -> OfflineResult:
    """Handle every record as the worker would, then flush all windows."""
    partitions = settings.topics.partitions
    handler = RecordHandler(settings, metrics or PipelineMetrics.disabled(), clock=now,
                            log_dead_letters=False)
    offsets = [0] * partitions
    alerts: list[TradeAlert] = []
    rejected: list[tuple[int, str, str]] = []
    for index, raw in enumerate(records):
        partition = partition_for(record_key(raw), partitions)
        out = handler.handle(raw, key=None, topic=REPLAY_TOPIC, partition=partition,
                             offset=offsets[partition])
        offsets[partition] += 1
        for item in out:
            if item.alert is not None:
                alerts.append(item.alert)
            else:
                rejected.append((index, item.reason, item.detail))
    for partition in sorted(handler.pipelines):
        alerts.extend(handler.pipelines[partition].flush())
    if metrics is not None:
        report_series(metrics, handler.pipelines.values())
    return OfflineResult(alerts, rejected, accepted=sum(offsets) - len(rejected))
