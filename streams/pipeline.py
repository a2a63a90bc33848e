"""The detection core for one partition: window -> detect -> alert, with no Kafka in sight.

The faust worker runs one :class:`PartitionPipeline` per assigned partition and
the offline evaluator runs the same class over a file, so both produce the same
alerts. Per partition, because the event-time watermark is per partition: a
partition that lags behind must not make another's events late.

What runs where:

* per declaration (hot path): de-duplication by declaration id
  (:mod:`streams.dedup`), window aggregation at every configured level, the
  unit-value detector of the declaration's HS chapter, and the novelty detector;
* per closed window and series: the spike and change-point detectors on the
  series' statistical value (zero when the series had no declaration);
* per closed window and (transit country, HS6): the pass-through detector on the
  inflow into the hub and the outflow from it to Russia/Belarus.

A window in which the whole partition had no declaration is a data gap (an
outage upstream, not zero trade) when windows like it usually have records
(:class:`detectors.activity.PartitionActivity`): detectors neither score nor
learn on it. An ordinary quiet window (a Sunday on a working-day partition) is
zero trade, learned as such. Window boundaries and every count of windows come
from the configured grid (:mod:`streams.config_windows`).
"""

from __future__ import annotations

import dataclasses
import math
import pickle
import time
from collections.abc import Callable
from typing import Any

from detectors.activity import PartitionActivity
from detectors.base import Detector
from detectors.calendar import DAY
from detectors.calibration import SEVERITY_LEVELS
from detectors.calibration import severity as severity_of
from detectors.reference import SANCTIONED_DESTINATIONS, TRANSIT_COUNTRIES, chpl_tier
from detectors.registry import build
from detectors.windows import ClosedWindow, SeriesAggregate, TumblingWindows
from streams.alerts import make_alert, transit_country_of
from streams.config import Settings
from streams.config_windows import window_plan
from streams.dedup import SeenIds
from streams.events import AlertSeries, TradeAlert, TradeDeclaration
from streams.metrics import PipelineMetrics

__all__ = ["PartitionPipeline", "DETECTOR_ROLES", "series_keys"]

#: Which input each detector kind consumes.
DETECTOR_ROLES: dict[str, str] = {
    "spike": "series",
    "volume": "series",
    "changepoint": "series",
    "passthrough": "passthrough",
    "unit_value": "declaration",
    "novelty": "declaration",
}
#: Detector time is observed on one call in this many: a histogram observation costs
#: about as much as a per-declaration detector, and a sample estimates the same quantiles.
TIMING_SAMPLE = 16
#: A series first seen after the partition has run for a while starts with up to this
#: much history of empty windows learned: zero volume is what the partition observed
#: for it (30 daily windows, 4 weekly, 1 monthly).
PREWARM_HISTORY = 30 * DAY
#: Memory of a series' activity share (the newest window weighs 1/20 on daily windows),
#: never fewer than 3 windows: a share needs a few windows to mean anything.
ACTIVITY_MEMORY = 20 * DAY
_SEVERITY_RANK = {s: i for i, s in enumerate(SEVERITY_LEVELS)}


def series_keys(d: TradeDeclaration, levels: tuple[str, ...], partition: int = 0) -> list[str]:
    """The series a declaration counts towards: ``level:origin>destination:product``.

    HS6 and tier series are complete in one partition (see :mod:`streams.keys`);
    an HS4 or HS2 heading can mix CHPL and other codes, which are keyed apart, so
    those rollups are per-partition partials and say so: ``hs4:DE>KG:8542@p0``.

    >>> from streams.events import decode_declaration, example_declaration_json
    >>> series_keys(decode_declaration(example_declaration_json()), ("hs6", "hs4", "tier"))
    ['hs6:DE>KG:854231', 'hs4:DE>KG:8542@p0', 'tier:DE>KG:T1']
    """
    route = f"{d.exporter_country}>{d.destination_country}"
    keys = []
    for level in levels:
        if level == "hs6":
            keys.append(f"hs6:{route}:{d.hs_code[:6]}")
        elif level == "hs4":
            keys.append(f"hs4:{route}:{d.hs_code[:4]}@p{partition}")
        elif level == "hs2":
            keys.append(f"hs2:{route}:{d.hs_code[:2]}@p{partition}")
        else:
            tier = chpl_tier(d.hs_code)
            if tier is not None:
                keys.append(f"tier:{route}:T{tier}")
    return keys


def _series_meta(key: str) -> AlertSeries:
    level, route, product = key.split(":")
    origin, destination = route.split(">")
    if level == "tier":
        tier = product[1:]
    elif level in ("hs6", "passthrough"):
        tier = chpl_tier(product) or "none"
    else:
        tier = "none"
    return AlertSeries(
        key=key, level=level,  # type: ignore[arg-type]
        origin_country=origin, destination_country=destination,
        transit_country=transit_country_of(origin, destination),
        product_code=product, chpl_tier=tier,
    )


@dataclasses.dataclass(slots=True)
class _SeriesState:
    meta: AlertSeries
    detectors: dict[str, Detector]
    last_window: float
    #: Exponentially weighted share of recent windows with at least one declaration.
    activity: float = 0.0


class PartitionPipeline:
    """Windows, detectors and alert rules for the series of one partition.

    ``clock`` is the wall clock (alert timestamps); tests inject one. When the
    open windows are idle-closed is the worker's decision (:mod:`streams.catchup`).
    """

    def __init__(
        self,
        settings: Settings,
        metrics: PipelineMetrics | None = None,
        clock: Callable[[], float] = time.time,
        partition: int = 0,
    ) -> None:
        self.partition = partition
        w, plan = settings.windows, window_plan(settings)
        self.windows = TumblingWindows(
            grid=plan.grid, grace=w.grace_seconds, max_empty_windows=plan.max_empty_windows,
            top_k=w.top_k, max_lead=w.max_watermark_lead_seconds,
            confirmations=w.watermark_confirmations,
        )
        #: Which empty windows are outages, learned per weekday (holiday, ...) of the grid.
        self.activity = PartitionActivity()
        #: Declaration ids accepted recently: part of the state, checkpointed with it.
        self.seen = SeenIds(settings.validation.dedup_horizon_seconds)
        self.rebind(settings, metrics, clock)
        self._prototypes: dict[str, dict[str, Detector]] = {role: {} for role in set(DETECTOR_ROLES.values())}
        for name, spec in settings.detectors.items():
            if spec.enabled:
                role = DETECTOR_ROLES.get(spec.kind, "series")
                self._prototypes[role][name] = build(spec.kind, spec.params)
        #: Untrained detectors, pickled once: unpickling is ~10x faster than river's
        #: ``clone()`` (which inspects the signature), and new series appear on the hot path.
        self._pristine = {name: pickle.dumps(d, protocol=pickle.HIGHEST_PROTOCOL)
                          for role in self._prototypes.values() for name, d in role.items()}
        self._series: dict[str, _SeriesState] = {}
        self._passthrough: dict[str, _SeriesState] = {}
        self._chapter_detectors: dict[tuple[str, str], Detector] = {}
        self._global_detectors = {
            n: self._fresh(n) for n in self._prototypes["declaration"]
            if settings.detectors[n].kind != "unit_value"
        }
        self._last_alert: dict[tuple[str, str], float] = {}
        #: Without per-series overrides every series of a detector shares its threshold.
        self._thresholds = {} if settings.overrides else {
            n: (spec.threshold if spec.enabled else None) for n, spec in settings.detectors.items()}
        self._calls = 0
        #: Windows closed so far (gaps included): the worker checkpoints when it grows.
        self.windows_closed = 0
        #: Windows with declarations this partition has closed (gaps excluded).
        self._windows_seen = 0
        self._min_activity = {n: spec.min_series_activity for n, spec in settings.detectors.items()
                              if spec.min_series_activity > 0}
        #: Windows starting before this follow a data gap on this partition.
        self._catchup_until = -math.inf
        #: Event time of the last accepted declaration (the worker's gauge reads it).
        self.last_event_ts = 0.0

    # -- checkpointing (streams.checkpoint) -------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        """Everything but the process-bound parts: metrics and their labelled children."""
        state = self.__dict__.copy()
        state["metrics"] = None
        state["_timers"] = {}
        return state

    def rebind(self, settings: Settings, metrics: PipelineMetrics | None,
               clock: Callable[[], float] = time.time) -> None:
        """Attach a restored pipeline to this process's settings, metrics and clock."""
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        #: The settings' durations in windows of the grid (derived: not part of the state).
        self.plan = window_plan(settings)
        grid = self.plan.grid
        self._prewarm_windows = grid.windows_in(PREWARM_HISTORY)
        self._activity_rate = 1.0 / max(3, grid.windows_in(ACTIVITY_MEMORY))
        self._timers = {n: metrics.detector_processing.labels(detector=n)
                        for n in settings.detectors} if metrics else {}

    def _fresh(self, name: str) -> Detector:
        """A new, untrained detector configured as ``name``."""
        return pickle.loads(self._pristine[name])  # noqa: S301 - our own bytes, never input

    # -- per declaration -------------------------------------------------------------

    def process(self, d: TradeDeclaration) -> tuple[str | None, list[TradeAlert]]:
        """Window one declaration and run the per-declaration detectors.

        Returns ``(rejected, alerts)``: ``rejected`` is None for an accepted
        declaration, else the reason the caller dead-letters it for:
        ``duplicate_declaration`` (its id was accepted before) or ``late_event``
        (its window had closed).
        """
        ts = d.declared_at.timestamp()
        if d.declaration_id in self.seen:
            return "duplicate_declaration", []
        windows = self.windows
        ahead = windows.is_ahead(ts)
        keys = series_keys(d, self.settings.windows.levels, self.partition)
        if not windows.add(ts, keys, d.statistical_value_eur, d.net_mass_kg, d.declaration_id):
            return "late_event", []
        if ahead and self.metrics:
            self.metrics.watermark_outliers.inc()
        self.seen.add(d.declaration_id, ts)
        self.seen.expire(windows.watermark)
        self.last_event_ts = ts
        alerts = self._declaration_alerts(d, ts)
        closed = self.windows.advance()
        if closed:
            alerts.extend(self._close(closed))
        return None, alerts

    def _declaration_alerts(self, d: TradeDeclaration, ts: float) -> list[TradeAlert]:
        detectors = self._prototypes["declaration"]
        if not detectors:
            return []
        hs = d.hs_code
        route = f"{d.exporter_country}>{d.destination_country}"
        key = f"hs6:{route}:{hs[:6]}"
        alerts = []
        for name in detectors:
            if name in self._global_detectors:
                detector = self._global_detectors[name]
                x: dict[str, Any] = {"exporter_id": d.exporter_id, "consignee_id": d.consignee_id,
                                     "route": route, "chpl_tier": chpl_tier(hs) or "",
                                     "value_eur": d.statistical_value_eur}
                unit = "EUR"
            else:  # unit value: one detector per HS chapter
                detector = self._chapter_detectors.get((name, hs[:2]))
                if detector is None:
                    detector = self._chapter_detectors[(name, hs[:2])] = self._fresh(name)
                x = {"value_eur": d.statistical_value_eur, "net_mass_kg": d.net_mass_kg,
                     "hs6": hs[:6]}
                unit = "EUR/kg"
            alert = self._score_and_learn(
                name, detector, x, key, None, self.windows.window_start(ts), unit,
                count=1, ids=[d.declaration_id], id_key=f"decl:{d.declaration_id}",
            )
            if alert is not None:
                alerts.append(alert)
        return alerts

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
            if self.activity.close(grid.phase(window.start), active=not window.is_empty):
                if self.metrics:
                    self.metrics.data_gap_windows.inc()
                self._catchup_until = grid.shift(window.end, self.plan.catchup_windows)
                continue
            alerts.extend(self._close_series(window))
            alerts.extend(self._close_passthrough(window))
            self._evict(window.start)
        return alerts

    def _close_series(self, window: ClosedWindow) -> list[TradeAlert]:
        protos = self._prototypes["series"]
        grid = self.windows.grid
        history = min(self._windows_seen, self._prewarm_windows)
        for key in window.aggregates:
            if key not in self._series:
                detectors = {n: self._fresh(n) for n in protos}
                # the partition was live and this series had no declaration: its
                # history is zeros, and a new route shipping every day is news
                for i in range(history, 0, -1):
                    zero = {"value": 0.0, "t": grid.shift(window.start, -i)}
                    for detector in detectors.values():
                        detector.learn_one(zero)
                self._series[key] = _SeriesState(_series_meta(key), detectors, window.start)
        alerts = []
        empty = SeriesAggregate()
        min_activity = self._min_activity
        for key, state in self._series.items():
            agg = window.aggregates.get(key, empty)
            if agg.count:
                state.last_window = window.start
            x = {"value": agg.value_eur, "t": window.start}
            for name, detector in state.detectors.items():
                if state.activity < min_activity.get(name, 0.0):
                    detector.learn_one(x)  # too sparse to judge yet: learn only
                    continue
                alert = self._score_and_learn(
                    name, detector, x, key, state.meta, window.start, "EUR",
                    count=agg.count, ids=agg.top_declarations(),
                )
                if alert is not None:
                    alerts.append(alert)
            state.activity += self._activity_rate * ((1.0 if agg.count else 0.0) - state.activity)
        self._windows_seen += 1
        if self.metrics:
            for level in self.settings.windows.levels:
                self.metrics.windows_closed.labels(level=level).inc()
        return alerts

    def _close_passthrough(self, window: ClosedWindow) -> list[TradeAlert]:
        protos = self._prototypes["passthrough"]
        if not protos:
            return []
        flows: dict[str, list[float]] = {}
        for key, agg in window.aggregates.items():
            if not key.startswith("hs6:"):
                continue
            _, route, hs6 = key.split(":")
            origin, destination = route.split(">")
            if destination in TRANSIT_COUNTRIES:
                flows.setdefault(f"passthrough:{destination}>RU:{hs6}", [0.0, 0.0])[0] += agg.value_eur
            if origin in TRANSIT_COUNTRIES and destination in SANCTIONED_DESTINATIONS:
                flows.setdefault(f"passthrough:{origin}>RU:{hs6}", [0.0, 0.0])[1] += agg.value_eur
        for key in flows:
            if key not in self._passthrough:
                self._passthrough[key] = _SeriesState(
                    _series_meta(key), {n: self._fresh(n) for n in protos}, window.start)
        alerts = []
        for key, state in self._passthrough.items():
            inflow, outflow = flows.get(key, (0.0, 0.0))
            if inflow or outflow:
                state.last_window = window.start
            x = {"inflow": inflow, "outflow": outflow, "t": window.start}
            for name, detector in state.detectors.items():
                alert = self._score_and_learn(name, detector, x, key, state.meta, window.start,
                                              "EUR", count=0, ids=[])
                if alert is not None:
                    alerts.append(alert)
        if self.metrics:
            self.metrics.windows_closed.labels(level="passthrough").inc()
        return alerts

    def _score_and_learn(
        self, name: str, detector: Detector, x: dict[str, Any], key: str,
        meta: AlertSeries | None, window_start: float, unit: str, *, count: int, ids: list[str],
        id_key: str | None = None,
    ) -> TradeAlert | None:
        """Score, explain if over threshold, learn; time one call in ``TIMING_SAMPLE``."""
        self._calls += 1
        timed = self.metrics is not None and self._calls % TIMING_SAMPLE == 0
        started = time.perf_counter() if timed else 0.0
        score = detector.score_one(x)
        threshold = self._thresholds[name] if self._thresholds else self.settings.threshold_for(name, key)
        explanation = detector.explain_one(x) if threshold is not None and score >= threshold else None
        detector.learn_one(x)
        if timed:
            self._timers[name].observe(time.perf_counter() - started)
        if explanation is None or threshold is None:
            return None
        meta = meta or _series_meta(key)
        return self._maybe_alert(name, meta, window_start, explanation, threshold, unit, count, ids, id_key)

    def _maybe_alert(self, name, meta, window_start, explanation, threshold, unit, count, ids, id_key):  # type: ignore[no-untyped-def]
        grid = self.windows.grid
        rules = self.settings.alerts
        if id_key is None and meta.level != "passthrough" and count < rules.min_declarations:
            if self.metrics:
                self.metrics.alerts_suppressed.labels(detector=name, reason="too_few_declarations").inc()
            return None
        if rules.scope == "chpl" and meta.chpl_tier == "none":
            if self.metrics:
                self.metrics.alerts_suppressed.labels(detector=name, reason="out_of_scope").inc()
            return None
        cooldown_key = (name, id_key or meta.key)
        last = self._last_alert.get(cooldown_key)
        if id_key is None and last is not None and grid.count(last, window_start) <= self.plan.cooldown_windows:
            if self.metrics:
                self.metrics.alerts_suppressed.labels(detector=name, reason="cooldown").inc()
            return None
        severity = severity_of(explanation.score, meta.chpl_tier if meta.chpl_tier != "none" else "")
        notes: dict[str, float | int | str] = {}
        if window_start < self._catchup_until:
            # a backlog arriving after an upstream outage looks like a spike everywhere
            severity, notes["after_data_gap"] = "low", 1
        if _SEVERITY_RANK[severity] < _SEVERITY_RANK[rules.min_severity]:
            if self.metrics:
                self.metrics.alerts_suppressed.labels(detector=name, reason="below_min_severity").inc()
            return None
        self._last_alert[cooldown_key] = window_start
        return make_alert(
            detector=name, series=meta, window_start=window_start, window_end=grid.end(window_start),
            explanation=explanation, threshold=threshold, severity=severity, unit=unit,
            declaration_count=count, declaration_ids=ids, emitted_at=self.clock(), id_key=id_key,
            notes=notes,
        )

    # -- housekeeping ----------------------------------------------------------------

    def _evict(self, window_start: float) -> None:
        horizon = self.windows.grid.shift(window_start, -self.plan.idle_series_windows)
        for table in (self._series, self._passthrough):
            stale = [k for k, s in table.items() if s.last_window < horizon]
            for k in stale:
                del table[k]

    def series_counts(self) -> dict[str, int]:
        """Series with detector state, by level (``passthrough`` for the hub pairs)."""
        counts = dict.fromkeys(self.settings.windows.levels, 0)
        for key in self._series:
            level = key.split(":", 1)[0]
            counts[level] = counts.get(level, 0) + 1
        counts["passthrough"] = len(self._passthrough)
        return counts

    def state_bytes_by_detector(self, sample: int = 50) -> dict[str, float]:
        """Estimated total state bytes per detector, from a sample of series (pickling is slow)."""
        totals: dict[str, float] = {}
        for table in (self._series, self._passthrough):
            states = list(table.values())
            if not states:
                continue
            picked = states[:: max(1, len(states) // sample)]
            for name in picked[0].detectors:
                mean = sum(s.detectors[name].state_bytes() for s in picked) / len(picked)
                totals[name] = totals.get(name, 0.0) + mean * len(states)
        for (name, _), detector in self._chapter_detectors.items():
            totals[name] = totals.get(name, 0.0) + detector.state_bytes()
        for name, detector in self._global_detectors.items():
            totals[name] = totals.get(name, 0.0) + detector.state_bytes()
        return totals
