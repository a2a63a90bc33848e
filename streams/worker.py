"""What the worker does with each record, free of faust so it is tested without a broker.

:class:`RecordHandler` turns one consumed record into outgoing messages: alerts
for ``trade.alerts``, incidents for ``trade.incidents`` (the alerts of a window
that has closed, grouped by destination and goods family, :mod:`streams.incidents`)
and, for anything it cannot use, a dead letter for ``trade.declarations.dlq``. It
never raises on input: an unexpected exception while processing a record
dead-letters that record with reason ``invalid_field``
and the exception text, and the worker carries on (faust agents that raise die
silently, faust-streaming/faust#175). ``tradewatch replay`` runs the same
handler (:mod:`streams.offline`), so a file replayed offline dead-letters exactly
what the worker dead-letters.

Windows still open when a partition's input pauses are closed by :meth:`RecordHandler.tick`
once the partition is caught up and quiet (:mod:`streams.catchup`), never earlier.

A live retune (:meth:`RecordHandler.retune`, :mod:`streams.retune`) switches each
partition at its next window boundary: right after the output of the next window
it closes, or at once if it has no open window. Alerts and incidents carry the
audit stamp of the config they were judged under (:mod:`streams.audit`).

A dead letter keeps the **original bytes** as its value and its key, so it can be
replayed as-is once fixed; the headers say why and where it came from:

========================  ===============================================
``tw-reason``             one of :data:`streams.validate.REJECT_REASONS`
``tw-detail``             human-readable detail, with the JSON path
``tw-source-topic``       topic the record was read from
``tw-source-partition``   its partition
``tw-source-offset``      its offset
``tw-dead-lettered-at``   ISO 8601 UTC time it was dead-lettered
========================  ===============================================
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterable

from streams.alerts import utc
from streams.catchup import CatchUp
from streams.config import Settings
from streams.events import TradeAlert, TradeIncident, encode
from streams.feedback import FeedbackTable
from streams.metrics import PipelineMetrics
from streams.pipeline import TIMING_SAMPLE, PartitionPipeline
from streams.scoring import Finding
from streams.validate import RejectedDeclaration, ValidationLimits, validate_declaration

__all__ = ["Outgoing", "RecordHandler", "dead_letter_headers", "report_series",
           "ALERT_SCHEMA_HEADER", "INCIDENT_SCHEMA_HEADER"]

#: ``tw-schema`` header values: which published JSON Schema the value follows.
ALERT_SCHEMA_HEADER = b"trade_alert.v1"
INCIDENT_SCHEMA_HEADER = b"trade_incident.v1"

#: Detail of the reasons the pipeline (not validation) rejects a declaration for.
_PIPELINE_REJECTS = {
    "duplicate_declaration": "its declaration_id was already accepted on this partition",
    "late_event": "its event-time window had closed",
}

#: State bytes are estimated by pickling a sample of series: cheap, but not per tick.
STATE_SAMPLE_SECONDS = 10.0


def report_series(metrics: PipelineMetrics, pipelines: Iterable[PartitionPipeline]) -> None:
    """Set the active-series gauge to the total over this worker's partitions."""
    totals: dict[str, int] = {}
    for pipeline in pipelines:
        for level, count in pipeline.series_counts().items():
            totals[level] = totals.get(level, 0) + count
    for level, count in totals.items():
        metrics.active_series.labels(level=level).set(count)

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class Outgoing:
    """A message to publish: an alert, an incident or a dead letter."""

    kind: str  # "alert" | "incident" | "dead_letter"
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]
    alert: TradeAlert | None = None
    incident: TradeIncident | None = None
    arrival: float = 0.0
    #: Dead letters: the reason code and detail (also in the headers).
    reason: str = ""
    detail: str = ""


def dead_letter_headers(
    reason: str, detail: str, topic: str, partition: int, offset: int, now: float
) -> list[tuple[str, bytes]]:
    return [
        ("tw-reason", reason.encode()),
        ("tw-detail", detail[:1000].encode("utf-8", "replace")),
        ("tw-source-topic", topic.encode()),
        ("tw-source-partition", str(partition).encode()),
        ("tw-source-offset", str(offset).encode()),
        ("tw-dead-lettered-at", utc(now).isoformat().encode()),
    ]


class RecordHandler:
    """Validate -> window -> detect -> alert, per partition, with metrics beside.

    ``log_dead_letters=False`` keeps the per-record warning out of an offline replay,
    which reports dead letters by reason instead.
    """

    def __init__(
        self,
        settings: Settings,
        metrics: PipelineMetrics,
        clock: Callable[[], float] = time.time,
        *,
        log_dead_letters: bool = True,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        self.log_dead_letters = log_dead_letters
        self.limits = ValidationLimits.from_settings(settings.validation)
        self.pipelines: dict[int, PartitionPipeline] = {}
        self._positions: dict[tuple[str, int], int] = {}
        self._catch_up = CatchUp(settings.windows.idle_timeout_seconds)
        self._last_state_sample = 0.0
        self._handled = 0
        self._last_event_ts = 0.0
        self._last_processed_at = 0.0
        #: Analyst marks (:mod:`streams.feedback`), shared by every partition's pipeline.
        self.feedback = FeedbackTable()
        #: Told of every finding the alert policy turns down, with the reason: set
        #: before the first record (an offline replay that explains a backtest does).
        self.on_suppressed: Callable[[Finding, str], None] | None = None

    def retune(self, settings: Settings) -> None:
        """Adopt ``settings`` (already checked by :func:`streams.retune.check_live`).

        New partitions start with them at once, and so do partitions without an
        open window; every other partition keeps judging its open windows under the
        config they opened under and switches right after its next window closes
        (:meth:`_adopt`), keeping its state. The same call serves an offline replay
        (:func:`streams.offline.run_offline` with ``retunes``).
        """
        self.settings = settings
        self.limits = ValidationLimits.from_settings(settings.validation)
        for pipeline in self.pipelines.values():
            if not pipeline.has_open_windows:
                self._adopt(pipeline)
        self.metrics.config_pending_partitions.set(self.pending_partitions())

    def pending_partitions(self) -> int:
        """Partitions still judging under an earlier config than :attr:`settings`."""
        return sum(1 for p in self.pipelines.values() if p.settings is not self.settings)

    def _adopt(self, pipeline: PartitionPipeline) -> None:
        if pipeline.settings is self.settings:
            return
        fresh = pipeline.reconfigure(self.settings)
        log.info("partition %d now judges under config %s%s", pipeline.partition,
                 pipeline.audit.label(),
                 f" (detectors started fresh: {', '.join(fresh)})" if fresh else "")
        self.metrics.config_pending_partitions.set(self.pending_partitions())

    def pipeline(self, partition: int) -> PartitionPipeline:
        pipeline = self.pipelines.get(partition)
        if pipeline is None:
            pipeline = self.pipelines[partition] = PartitionPipeline(
                self.settings, self.metrics, clock=self.clock, partition=partition)
            pipeline.feedback = self.feedback
            pipeline.policy.on_suppressed = self.on_suppressed
        return pipeline

    def handle(
        self, raw: bytes | None, *, key: bytes | None, topic: str, partition: int,
        offset: int, timestamp: float | None = None,
    ) -> list[Outgoing]:
        started = time.perf_counter()
        now = self.clock()
        m = self.metrics
        m.declarations_consumed.inc()
        self._positions[(topic, partition)] = offset + 1
        self._catch_up.record((topic, partition), now)
        raw = raw or b""
        try:
            declaration = validate_declaration(raw, now_ts=now, limits=self.limits)
            pipeline = self.pipeline(partition)
            closed_before = pipeline.windows_closed
            rejected, alerts = pipeline.process(declaration)
        except RejectedDeclaration as err:
            return [self._dead_letter(raw, key, err.reason, err.detail, topic, partition, offset, now)]
        except Exception as err:  # noqa: BLE001 - never crash on input; dead-letter it
            log.exception("unexpected error on %s[%d]@%d", topic, partition, offset)
            detail = f"{type(err).__name__}: {err}"[:1000]
            return [self._dead_letter(raw, key, "invalid_field", detail, topic, partition, offset, now)]
        if rejected is not None:
            if rejected == "late_event":
                m.late_declarations.inc()
            return [self._dead_letter(raw, key, rejected, _PIPELINE_REJECTS[rejected],
                                      topic, partition, offset, now)]
        # gauges are published once per tick (1 s), not per record: see tick()
        self._last_event_ts = pipeline.last_event_ts
        self._last_processed_at = now
        self._handled += 1
        if self._handled % TIMING_SAMPLE == 0:  # sampled: an observation costs ~1 us
            m.record_processing.observe(time.perf_counter() - started)
        # latency is measured from the producer's timestamp of the record that closed the window
        closed = pipeline.windows_closed != closed_before
        if not alerts and not closed:
            return []
        return self._alerts_out(pipeline, alerts, timestamp or now, now, closed=closed)

    def tick(self) -> list[Outgoing]:
        """Idle-close the windows of caught-up, quiet partitions; publish gauges; sample state."""
        now = self.clock()
        out: list[Outgoing] = []
        for tp in self._catch_up.due(now):
            pipeline = self.pipelines.get(tp[1])
            if pipeline is None:
                continue
            closed_before = pipeline.windows_closed
            alerts = pipeline.close_idle()
            if pipeline.windows_closed > closed_before:
                self.metrics.idle_closes.inc()
                log.info("idle close of %s[%d]: caught up and quiet for %.0f s", tp[0], tp[1],
                         self._catch_up.quiet_seconds)
            arrival = self._catch_up.last_record(tp) or now
            out.extend(self._alerts_out(pipeline, alerts, arrival, now,
                                        closed=pipeline.windows_closed > closed_before))
        if self._last_processed_at:
            self.metrics.last_event_timestamp.set(self._last_event_ts)
            self.metrics.last_processed_timestamp.set(self._last_processed_at)
        if self.pipelines:
            self.metrics.watermark_timestamp.set(
                max(p.windows.watermark for p in self.pipelines.values()))
        report_series(self.metrics, self.pipelines.values())
        if now - self._last_state_sample > STATE_SAMPLE_SECONDS:
            self._last_state_sample = now
            self.sample_state_bytes()
        return out

    def flush(self) -> list[Outgoing]:
        """Close every window of every partition (end of a replay): their alerts and incidents."""
        now = self.clock()
        out: list[Outgoing] = []
        for partition in sorted(self.pipelines):
            out.extend(self.flush_partition(partition, now))
        return out

    def flush_partition(self, partition: int, now: float) -> list[Outgoing]:
        """Close every window of one partition (:meth:`flush`, one partition at a time)."""
        pipeline = self.pipelines[partition]
        return self._alerts_out(pipeline, pipeline.flush(), now, now, closed=True)

    def sample_state_bytes(self) -> None:
        totals: dict[str, float] = {}
        for pipeline in self.pipelines.values():
            for name, size in pipeline.state_bytes_by_detector().items():
                totals[name] = totals.get(name, 0.0) + size
        for name, size in totals.items():
            self.metrics.detector_state_bytes.labels(detector=name).set(size)

    def position(self, topic: str, partition: int) -> int | None:
        """Offset of the next record of a partition this handler has not seen."""
        return self._positions.get((topic, partition))

    def restore(self, topic: str, partition: int, pipeline: PartitionPipeline,
                next_offset: int) -> None:
        """Adopt a pipeline restored from a checkpoint that ends before ``next_offset``.

        Its windows are not idle-closed before the partition has been caught up
        and quiet for the idle timeout in this process.
        """
        pipeline.clock = self.clock
        pipeline.feedback = self.feedback
        pipeline.policy.on_suppressed = self.on_suppressed
        self.pipelines[partition] = pipeline
        self._positions[(topic, partition)] = next_offset
        self._catch_up.restart((topic, partition), self.clock())

    def forget(self, topic: str, partition: int) -> None:
        """Drop a partition's pipeline and position (it is being restored or started cold)."""
        self.pipelines.pop(partition, None)
        self._positions.pop((topic, partition), None)

    def sync_assignment(self, assigned: set[tuple[str, int]]) -> None:
        """Forget partitions this worker no longer owns: their lag series and their state.

        A revoked partition's lag would otherwise stay frozen above zero and page
        "no events processed"; its state belongs to whichever worker owns it now.
        """
        for topic, partition in list(self._positions):
            if (topic, partition) not in assigned:
                del self._positions[(topic, partition)]
                self.pipelines.pop(partition, None)
                self._catch_up.forget((topic, partition))
                self.metrics.consumer_lag.remove(topic, str(partition))

    def record_highwater(self, topic: str, partition: int, highwater: int | None) -> None:
        """Sample a partition's lag; ``None`` = unknown (no fetch yet, or none lately)."""
        if highwater is None:
            self._catch_up.unknown((topic, partition))
            return
        position = self._positions.get((topic, partition), 0)
        lag = max(0, highwater - position)
        self.metrics.consumer_lag.labels(topic=topic, partition=str(partition)).set(lag)
        self._catch_up.lag((topic, partition), lag, self.clock())

    def after_publish(self, out: list[Outgoing], now: float) -> None:
        """Count what was published and how long after its triggering record arrived."""
        m = self.metrics
        for item in out:
            if item.incident is not None:
                i = item.incident
                m.incidents_published.labels(severity=i.severity, transit_country=i.transit_country,
                                             chpl_tier=i.chpl_tier).inc()
                continue
            if item.alert is None:
                continue
            a = item.alert
            m.alerts_published.labels(
                detector=a.detector, severity=a.severity,
                transit_country=a.series.transit_country, chpl_tier=a.series.chpl_tier).inc()
            m.event_to_alert_latency.observe(max(0.0, now - item.arrival))
            m.board.record(series=a.series.key, detector=a.detector, severity=a.severity,
                           transit_country=a.series.transit_country,
                           chpl_tier=a.series.chpl_tier, score=a.score, at=now,
                           surprise=a.surprise)

    def _alerts_out(self, pipeline: PartitionPipeline, alerts: list[TradeAlert], arrival: float,
                    now: float, *, closed: bool) -> list[Outgoing]:
        """The alerts, then the incidents of every window that has now closed.

        Per-declaration alerts of an open window are held by the partition's
        grouper until the window closes, so an incident is published once, with
        the window's series alerts and per-declaration alerts together.
        """
        out = [Outgoing("alert", a.series.key.encode(), encode(a),
                        [("tw-schema", ALERT_SCHEMA_HEADER)], alert=a, arrival=arrival)
               for a in alerts]
        grouper = pipeline.incidents
        if alerts:
            grouper.add(alerts)
        if closed and grouper.has_pending:
            stamp = pipeline.audit.incident
            out += [Outgoing("incident", i.incident_id.encode(), encode(i),
                             [("tw-schema", INCIDENT_SCHEMA_HEADER)], incident=i, arrival=arrival)
                    for i in map(stamp, grouper.close(pipeline.windows.is_late, now=now))]
        if closed:
            self._adopt(pipeline)  # a retune waits for this window boundary
        return out

    def _dead_letter(self, raw: bytes, key: bytes | None, reason: str, detail: str, topic: str,
                     partition: int, offset: int, now: float) -> Outgoing:
        self.metrics.declarations_rejected.labels(reason=reason).inc()
        if self.log_dead_letters:
            log.warning("dead-letter %s[%d]@%d: %s: %s", topic, partition, offset, reason,
                        detail[:200])
        return Outgoing("dead_letter", key, raw,
                        dead_letter_headers(reason, detail, topic, partition, offset, now),
                        reason=reason, detail=detail)
