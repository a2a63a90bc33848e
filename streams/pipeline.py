"""The detection core for one partition: features -> scoring -> alert policy, no Kafka in sight.

The faust worker runs one :class:`PartitionPipeline` per assigned partition and
the offline evaluator runs the same class over a file, so both produce the same
alerts. Per partition, because the event-time watermark is per partition: a
partition that lags behind must not make another's events late.

This class is the façade over three parts with one job each:

* :mod:`streams.features`: which series a declaration counts towards (the
  configured families of :mod:`streams.series`), window aggregation, influence
  contributions of the rollups, pass-through flows;
* :mod:`streams.scoring`: the detectors per series, chapter and declaration,
  scored before they learn; scores over threshold become findings;
* :mod:`streams.alert_policy`: thresholds and overrides, direction, scope,
  cooldown, severity, the cap after a data gap: findings become alerts.

De-duplication by declaration id (:mod:`streams.dedup`) happens here, before
anything counts. A window in which the whole partition had no declaration is a
data gap (an outage upstream, not zero trade) when windows like it usually have
records (:class:`detectors.activity.PartitionActivity`): detectors neither score
nor learn on it. An ordinary quiet window (a Sunday on a working-day partition)
is zero trade, learned as such. Window boundaries and every count of windows
come from the configured grid (:mod:`streams.config_windows`).

Every alert leaves stamped with the pipeline's :class:`~streams.audit.AuditStamp`
(config version and hash, CHPL list version). Analyst feedback
(:mod:`streams.feedback`) reaches both later jobs: a confirmed anomaly's window is
scored but not learned, a false positive's detector and series are silenced. :meth:`PartitionPipeline.reconfigure`
adopts a new config without losing state (a live retune, :mod:`streams.retune`);
*when* it is called (at a window boundary) is the record handler's decision.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import msgspec

from detectors.activity import PartitionActivity
from detectors.windows import ClosedWindow, TumblingWindows
from streams.alert_policy import AlertPolicy
from streams.audit import AuditStamp
from streams.config import Settings
from streams.dedup import SeenIds
from streams.events import TradeAlert, TradeDeclaration
from streams.features import Features, passthrough_flows
from streams.feedback import FeedbackTable
from streams.incidents import IncidentGrouper
from streams.metrics import PipelineMetrics
from streams.scoring import DETECTOR_ROLES, TIMING_SAMPLE, Finding, Scoring
from streams.series import SeriesCatalog

__all__ = ["PartitionPipeline", "DETECTOR_ROLES", "TIMING_SAMPLE"]


class PartitionPipeline:
    """Windows, detectors and alert rules for the series of one partition.

    ``clock`` is the wall clock (alert timestamps); tests inject one. When the
    open windows are idle-closed is the worker's decision (:mod:`streams.catchup`).
    The worker and the state codec rely on ``windows``, ``seen``, ``windows_closed``,
    ``last_event_ts`` and ``incidents``.
    """

    def __init__(
        self,
        settings: Settings,
        metrics: PipelineMetrics | None = None,
        clock: Callable[[], float] = time.time,
        partition: int = 0,
    ) -> None:
        self.partition = partition
        catalog = SeriesCatalog.from_settings(settings)
        self.features = Features(settings, catalog)
        self.scoring = Scoring(settings, metrics, catalog)
        self.policy = AlertPolicy(settings, metrics, clock)
        #: Which empty windows are outages, learned per weekday (holiday, ...) of the grid.
        self.activity = PartitionActivity()
        #: Declaration ids accepted recently: part of the state, checkpointed with it.
        self.seen = SeenIds(settings.validation.dedup_horizon_seconds)
        self.settings = settings
        self.metrics = metrics
        #: What this pipeline's alerts are judged with (derived from the settings).
        self.audit = AuditStamp.of(settings)
        #: Windows closed so far (gaps included): the worker checkpoints when it grows.
        self.windows_closed = 0
        #: Event time of the last accepted declaration (the worker's gauge reads it).
        self.last_event_ts = 0.0
        #: This partition's alerts grouped into incidents; fed by the worker's record
        #: handler, kept here so that it is checkpointed with the windows it follows.
        self.incidents = IncidentGrouper()

    @property
    def windows(self) -> TumblingWindows:
        """The partition's event-time windows (held by its features)."""
        return self.features.windows

    @property
    def feedback(self) -> FeedbackTable:
        """The analyst marks this partition obeys (the worker's table, :mod:`streams.feedback`)."""
        return self.policy.feedback

    @feedback.setter
    def feedback(self, table: FeedbackTable) -> None:
        self.policy.feedback = table

    @property
    def clock(self) -> Callable[[], float]:
        return self.policy.clock

    @clock.setter
    def clock(self, clock: Callable[[], float]) -> None:
        self.policy.clock = clock

    def rebind(self, settings: Settings, metrics: PipelineMetrics | None,
               clock: Callable[[], float] = time.time) -> list[str]:
        """Attach a restored pipeline to this process's settings, metrics and clock.

        The state may have been saved under another config of the same window grid
        and series families: detectors whose kind or parameters differ start fresh,
        the rest keep what they learned (:meth:`streams.scoring.Scoring.reconfigure`).
        Returns the detectors started fresh.
        """
        self.settings = settings
        self.metrics = metrics
        self.audit = AuditStamp.of(settings)
        fresh = self.scoring.reconfigure(settings, metrics)
        self.policy.rebind(settings, metrics, clock)
        return fresh

    def reconfigure(self, settings: Settings) -> list[str]:
        """Adopt a new config (a live retune) keeping the state; the detectors started fresh.

        ``settings`` must differ from the current ones only where
        :func:`streams.retune.check_live` allows: the windows and series it holds
        stay as they are. The open windows are then judged under the new config.
        """
        return self.rebind(settings, self.metrics, self.clock)

    @property
    def has_open_windows(self) -> bool:
        """Whether any window of this partition is open (a retune waits for its close)."""
        return self.windows.open_windows > 0

    # -- per declaration -------------------------------------------------------------

    def process(self, d: TradeDeclaration) -> tuple[str | None, list[TradeAlert]]:
        """Window one declaration and run the per-declaration detectors.

        Returns ``(rejected, alerts)``: ``rejected`` is None for an accepted
        declaration, else the reason the caller dead-letters it for:
        ``duplicate_declaration`` (its id was accepted before) or ``late_event``
        (its window had closed).
        """
        ts = d.declared_at.timestamp()
        seen = self.seen
        if d.declaration_id in seen:
            return "duplicate_declaration", []
        features = self.features
        windows = features.windows
        ahead = windows.is_ahead(ts)
        keys = features.catalog.declaration_keys(d)
        if not features.add(d, ts, keys):
            return "late_event", []
        if ahead and self.metrics:
            self.metrics.watermark_outliers.inc()
        seen.add(d.declaration_id, ts)
        seen.expire(windows.watermark)
        self.last_event_ts = ts
        alerts: list[TradeAlert] = []
        scoring = self.scoring
        if scoring.declaration_detectors:
            findings = scoring.score_declaration(d, windows.window_start(ts), self.policy.threshold,
                                                 keys)
            if findings:
                alerts = self._decide(findings)
        closed = windows.advance()
        if closed:
            alerts.extend(self._close(closed))
        return None, alerts

    # -- per closed window -----------------------------------------------------------

    def close_idle(self) -> list[TradeAlert]:
        """Close the open windows now (the partition is caught up and quiet), held ones excepted."""
        return self._close(self.windows.close_idle())

    def flush(self) -> list[TradeAlert]:
        """Close every open window (end of a replay)."""
        return self._close(self.windows.flush())

    def _close(self, closed: list[ClosedWindow]) -> list[TradeAlert]:
        alerts: list[TradeAlert] = []
        grid = self.windows.grid
        self.windows_closed += len(closed)
        for window in closed:
            contributions = self.features.influence.close(window.start)
            if self.activity.close(grid.phase(window.start), active=not window.is_empty):
                if self.metrics:
                    self.metrics.data_gap_windows.inc()
                self.policy.note_gap(window)
                continue
            threshold = self.policy.threshold
            findings = self.scoring.score_series(window, threshold,
                                                 self.policy.feedback.unlearned(window.start))
            if self.metrics:
                for family in self.scoring.catalog.names:
                    self.metrics.windows_closed.labels(level=family).inc()
            alerts.extend(self._decide(findings, contributions))
            flows = passthrough_flows(window)
            findings = self.scoring.score_passthrough(window, flows, threshold)
            if self.metrics and self.scoring.has_passthrough:
                self.metrics.windows_closed.labels(level="passthrough").inc()
            alerts.extend(self._decide(findings))
            self.features.influence.learn(contributions)
            self.features.influence.forget(self.scoring.evict(window.start))
        return alerts

    def _decide(self, findings: list[Finding], contributions: dict | None = None) -> list[TradeAlert]:  # type: ignore[type-arg]
        influence = self.features.influence
        alerts = []
        for f in findings:
            def influencers(up: bool, key: str = f.meta.key) -> list:  # type: ignore[type-arg]
                return influence.influencers(key, contributions or {}, up)
            alert = self.policy.decide(f, influencers)
            if alert is not None:
                alerts.append(msgspec.structs.replace(
                    self.audit.alert(alert), state_version=self.scoring.state_version()))
        return alerts

    # -- housekeeping ----------------------------------------------------------------

    def series_counts(self) -> dict[str, int]:
        """Series with detector state, by family (``passthrough`` for the hub pairs)."""
        return self.scoring.series_counts()

    def state_bytes_by_detector(self, sample: int = 50) -> dict[str, float]:
        """Estimated total state bytes per detector, from a sample of series (pickling is slow)."""
        return self.scoring.state_bytes_by_detector(sample)
