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

**Partitions in parallel.** A partition's pipeline sees only its own records, as a
worker that owns several partitions keeps one pipeline each: so ``jobs > 1`` hands
the partitions to that many processes (partition ``p`` to process ``p % jobs``),
streams each its records in file order, and merges what they publish back into
the order a single process gives (by the index of the record that triggered it;
the end-of-input flush last, partition by partition). The result is the same,
alert for alert and byte for byte (``tests/unit/streams/test_offline_parallel.py``);
two years of real-shaped trade are replayed about ``jobs`` times faster on as many
cores. Records reach the processes through bounded queues, so the reader (and a
progress line on it) runs at the speed of the slowest process, and memory holds
a few batches, not the file.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import queue
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from streams.config import Settings
from streams.events import TradeAlert, TradeIncident
from streams.feedback import FeedbackTable
from streams.keys import partition_for, record_key
from streams.metrics import PipelineMetrics
from streams.scoring import Finding
from streams.worker import RecordHandler, report_series

__all__ = ["OfflineResult", "run_offline"]

#: The source topic named in the replay's dead letters.
REPLAY_TOPIC = "replay"


#: A finding the alert policy turned down: (detector, series key, window start).
Suppressed = tuple[str, str, float]


def _recorder(into: dict[Suppressed, str]) -> Callable[[Finding, str], None]:
    def record(f: Finding, reason: str) -> None:
        into[(f.detector, f.meta.key, f.window_start)] = reason
    return record


def _replay_handler(settings: Settings, metrics: PipelineMetrics | None,
                    now: Callable[[], float], feedback: FeedbackTable | None,
                    why: bool) -> tuple[RecordHandler, dict[Suppressed, str]]:
    """The worker's record handler as a replay uses it, and where ``why`` records land."""
    handler = RecordHandler(settings, metrics or PipelineMetrics.disabled(), clock=now,
                            log_dead_letters=False)
    if feedback is not None:
        handler.feedback = feedback
    suppressed: dict[Suppressed, str] = {}
    if why:
        handler.on_suppressed = _recorder(suppressed)
    return handler, suppressed


@dataclasses.dataclass
class OfflineResult:
    alerts: list[TradeAlert]
    rejected: list[tuple[int, str, str]]  # (record index, reason, detail)
    accepted: int
    #: Incidents in publication order; a revised incident appears again with the same
    #: id and a higher revision (:meth:`latest_incidents` keeps the last of each).
    incidents: list[TradeIncident] = dataclasses.field(default_factory=list)
    #: With ``why=True``: (detector, series key, window start) -> the reason the alert
    #: policy turned that finding down (the ``reason`` of ``tradewatch_alerts_suppressed``).
    suppressed: dict[Suppressed, str] = dataclasses.field(default_factory=dict)

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
    jobs: int = 1,
    why: bool = False,
) -> OfflineResult:
    """Handle every record as the worker would, then flush all windows.

    The result holds the alerts and incidents the worker would publish, in order.
    ``retunes`` maps a record index to a config published just before that record
    (a live retune, :meth:`streams.worker.RecordHandler.retune`): each partition
    switches at its next window boundary, as a worker does. ``feedback`` holds the
    analyst marks a worker would follow (:mod:`streams.feedback`), in force from
    the first record. ``jobs > 1`` runs the partitions in that many processes
    (module docstring); ``metrics`` are then not filled, so giving them keeps one.
    ``why`` records each finding the alert policy turned down and its reason in
    :attr:`OfflineResult.suppressed` (what ``backtest`` says of an alert one config
    raised and the other did not).
    """
    jobs = min(jobs, settings.topics.partitions)
    if jobs > 1 and metrics is None:
        return _run_parallel(records, settings, now, retunes or {}, feedback, jobs, why)
    partitions = settings.topics.partitions
    handler, suppressed = _replay_handler(settings, metrics, now, feedback, why)
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
                         incidents=incidents, suppressed=suppressed)


# -- partitions in parallel ------------------------------------------------------------

#: Records sent to a process at a time.
_BATCH = 2000
#: Batches queued per process: the reader waits beyond this (memory stays bounded).
_QUEUED_BATCHES = 4
#: How often a blocked reader or collector checks that the processes are alive.
_ALIVE_CHECK_SECONDS = 1.0

#: An output's place in a single process's order: (record index, 0, n) for what a
#: record triggered; (records, partition, n) for the end-of-input flush.
_Order = tuple[int, int, int]


def _run_parallel(records: Iterable[bytes], settings: Settings, now: Callable[[], float],
                  retunes: Mapping[int, Settings], feedback: FeedbackTable | None,
                  jobs: int, why: bool) -> OfflineResult:
    partitions = settings.topics.partitions
    context = multiprocessing.get_context("fork")  # the children inherit settings and clock
    inboxes = [context.Queue(maxsize=_QUEUED_BATCHES) for _ in range(jobs)]
    results = context.Queue()
    processes = [context.Process(target=_serve_partitions, daemon=True,
                                 args=(inboxes[j], results, settings, now, retunes, feedback,
                                       why))
                 for j in range(jobs)]
    for process in processes:
        process.start()
    try:
        batches: list[list[tuple[int, int, bytes]]] = [[] for _ in range(jobs)]
        total = 0
        for index, raw in enumerate(records):
            partition = partition_for(record_key(raw), partitions)
            batch = batches[partition % jobs]
            batch.append((index, partition, raw))
            if len(batch) >= _BATCH:
                _put(inboxes[partition % jobs], batch, processes)
                batches[partition % jobs] = []
            total = index + 1
        for j, batch in enumerate(batches):
            if batch:
                _put(inboxes[j], batch, processes)
            _put(inboxes[j], total, processes)  # the end: flush
        parts = [_collect(results, processes) for _ in range(jobs)]
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
            process.join()
    return _merge(parts, total)


def _put(inbox: Any, item: Any, processes: list[Any]) -> None:
    while True:
        try:
            inbox.put(item, timeout=_ALIVE_CHECK_SECONDS)
            return
        except queue.Full:
            _check_alive(processes)


def _collect(results: Any, processes: list[Any]) -> dict[str, Any]:
    while True:
        try:
            part = results.get(timeout=_ALIVE_CHECK_SECONDS)
        except queue.Empty:
            _check_alive(processes)
            continue
        if "error" in part:
            raise RuntimeError(f"a replay process failed:\n{part['error']}")
        return part


def _check_alive(processes: list[Any]) -> None:
    for process in processes:
        if not process.is_alive() and process.exitcode not in (0, None):
            raise RuntimeError(f"a replay process died (exit code {process.exitcode})")


def _serve_partitions(inbox: Any, results: Any, settings: Settings, now: Callable[[], float],
                      retunes: Mapping[int, Settings], feedback: FeedbackTable | None,
                      why: bool) -> None:
    """One process: handle the records of its partitions as :func:`run_offline` would."""
    try:
        results.put(_handle_partitions(inbox, settings, now, retunes, feedback, why))
    except BaseException:  # noqa: BLE001 - reported to the parent, which raises it
        results.put({"error": traceback.format_exc()})


def _handle_partitions(inbox: Any, settings: Settings, now: Callable[[], float],
                       retunes: Mapping[int, Settings], feedback: FeedbackTable | None,
                       why: bool) -> dict[str, Any]:
    handler, suppressed = _replay_handler(settings, None, now, feedback, why)
    pending = sorted(retunes.items())
    offsets: dict[int, int] = {}
    alerts: list[tuple[_Order, TradeAlert]] = []
    incidents: list[tuple[_Order, TradeIncident]] = []
    rejected: list[tuple[int, str, str]] = []

    def keep(out: list[Any], order: tuple[int, int]) -> None:
        for n, item in enumerate(out):
            if item.alert is not None:
                alerts.append(((*order, n), item.alert))
            elif item.incident is not None:
                incidents.append(((*order, n), item.incident))
            else:
                rejected.append((order[0], item.reason, item.detail))

    while True:
        batch = inbox.get()
        if isinstance(batch, int):  # the end, with the number of records read
            total = batch
            break
        for index, partition, raw in batch:
            # a retune published before this record: these partitions saw nothing since
            while pending and pending[0][0] <= index:
                handler.retune(pending.pop(0)[1])
            offset = offsets.get(partition, 0)
            keep(handler.handle(raw, key=None, topic=REPLAY_TOPIC, partition=partition,
                                offset=offset), (index, 0))
            offsets[partition] = offset + 1
    while pending and pending[0][0] < total:
        handler.retune(pending.pop(0)[1])
    at = handler.clock()
    for partition in sorted(handler.pipelines):
        keep(handler.flush_partition(partition, at), (total, partition))
    return {"alerts": alerts, "incidents": incidents, "rejected": rejected,
            "handled": sum(offsets.values()), "suppressed": suppressed}


def _merge(parts: list[dict[str, Any]], total: int) -> OfflineResult:
    alerts = sorted((item for part in parts for item in part["alerts"]), key=lambda x: x[0])
    incidents = sorted((item for part in parts for item in part["incidents"]), key=lambda x: x[0])
    rejected = sorted(item for part in parts for item in part["rejected"])
    handled = sum(part["handled"] for part in parts)
    suppressed = {key: reason for part in parts for key, reason in part["suppressed"].items()}
    return OfflineResult([a for _, a in alerts], rejected, accepted=handled - len(rejected),
                         incidents=[i for _, i in incidents], suppressed=suppressed)
