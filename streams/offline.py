"""Run the detection pipeline over a file, without Kafka: the analyst's fast loop.

Records are routed to partitions exactly as the producer routes them on Kafka
(murmur2 of :func:`streams.keys.record_key`, Kafka's default partitioner), and
each record goes through the worker's own :class:`~streams.worker.RecordHandler`
(validation, de-duplication, windows, detectors), so the offline run and a
worker on the real broker see the same per-partition order, raise the same
alerts and incidents and dead-letter the same records for the same reasons
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
from collections.abc import Callable, Iterable, Mapping

from streams.config import Settings
from streams.events import TradeAlert, TradeIncident
from streams.feedback import FeedbackTable
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
    #: Incidents in publication order; a revised incident appears again with the same
    #: id and a higher revision (:meth:`latest_incidents` keeps the last of each).
    incidents: list[TradeIncident] = dataclasses.field(default_factory=list)

    def latest_incidents(self) -> list[TradeIncident]:
        """The highest revision of each incident, oldest window first."""
        latest: dict[str, TradeIncident] = {}
        for incident in self.incidents:
            known = latest.get(incident.incident_id)
            if known is None or incident.revision > known.revision:
                latest[incident.incident_id] = incident
        return sorted(latest.values(), key=lambda i: (i.window_start, -i.surprise, i.incident_id))

    def rejected_by_reason(self) -> dict[str, int]:
        """Dead letters counted by reason code, most frequent first."""
        return dict(Counter(reason for _, reason, _ in self.rejected).most_common())


def run_offline(
    records: Iterable[bytes],
    settings: Settings,
    metrics: PipelineMetrics | None = None,
    now: Callable[[], float] = time.time,
    retunes: Mapping[int, Settings] | None = None,
    feedback: FeedbackTable | None = None,
) -> OfflineResult:
    """Handle every record as the worker would, then flush all windows.

    The result holds the alerts and incidents the worker would publish, in order.
    ``retunes`` maps a record index to a config published just before that record
    (a live retune, :meth:`streams.worker.RecordHandler.retune`): each partition
    switches at its next window boundary, as a worker does. ``feedback`` holds the
    analyst marks a worker would follow (:mod:`streams.feedback`), in force from
    the first record.
    """
    partitions = settings.topics.partitions
    handler = RecordHandler(settings, metrics or PipelineMetrics.disabled(), clock=now,
                            log_dead_letters=False)
    if feedback is not None:
        handler.feedback = feedback
    offsets = [0] * partitions
    alerts: list[TradeAlert] = []
    incidents: list[TradeIncident] = []
    rejected: list[tuple[int, str, str]] = []
    for index, raw in enumerate(records):
        if retunes and index in retunes:
            handler.retune(retunes[index])
        partition = partition_for(record_key(raw), partitions)
        out = handler.handle(raw, key=None, topic=REPLAY_TOPIC, partition=partition,
                             offset=offsets[partition])
        offsets[partition] += 1
        for item in out:
            if item.alert is not None:
                alerts.append(item.alert)
            elif item.incident is not None:
                incidents.append(item.incident)
            else:
                rejected.append((index, item.reason, item.detail))
    for item in handler.flush():
        if item.alert is not None:
            alerts.append(item.alert)
        elif item.incident is not None:
            incidents.append(item.incident)
    if metrics is not None:
        report_series(metrics, handler.pipelines.values())
    return OfflineResult(alerts, rejected, accepted=sum(offsets) - len(rejected),
                         incidents=incidents)
