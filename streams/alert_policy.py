"""The alert policy of one partition: which findings become published alerts.

The third of the pipeline's three jobs (features -> scoring -> alert policy), as
river's ``ThresholdFilter`` acts on a detector's scores without being the detector:
thresholds with their per-series overrides, the series family's direction, the
evidence behind a series surge (declarations weighed for one-offs and persistence,
:mod:`streams.evidence`; and the EUR above the expected range by CHPL or not), the
scope (CHPL goods only), the cooldown per detector and series, severity (from the
ranking figures and the CHPL tier, :func:`streams.alerts.alert_severity`), the cap
after an upstream data gap, and the minimum severity published. Every finding it turns down is
counted in ``tradewatch_alerts_suppressed`` with its reason.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from detectors.base import Explanation
from detectors.calibration import SEVERITY_LEVELS
from detectors.windows import ClosedWindow
from streams.alerts import VALUE_UNIT, alert_severity, make_alert, ranking
from streams.config import Settings
from streams.config_windows import window_plan
from streams.events import Influencer, TradeAlert
from streams.evidence import Ledger, heavy_floor, passes, record, support, sweep, window_weight
from streams.feedback import FeedbackTable
from streams.metrics import PipelineMetrics
from streams.scoring import Finding

__all__ = ["AlertPolicy", "deviation"]

_SEVERITY_RANK = {s: i for i, s in enumerate(SEVERITY_LEVELS)}


def deviation(explanation: Explanation) -> str:
    """"up" or "down": the side of its expectation a finding's value lies on.

    A detector that names it (``details["direction"]``: the change-point detector's
    side of the shift) is believed; otherwise observed is compared with expected.
    """
    named = explanation.details.get("direction")
    if named in ("up", "down"):
        return str(named)
    expected = explanation.expected
    if isinstance(expected, float) and math.isnan(expected):
        return "up"
    return "down" if explanation.observed < expected else "up"


class AlertPolicy:
    """Thresholds, direction, evidence, scope, cooldown and severity rules for one partition.

    ``settings``, ``metrics``, ``clock`` and the threshold table come from the
    configuration and the process (transient for the state codec); the last alert
    per (detector, series) and the end of the catch-up period are state.
    ``feedback`` is the worker's table of analyst marks, shared by its partitions
    (transient too: it is rebuilt from the feedback topic, not checkpointed).
    """

    def __init__(self, settings: Settings, metrics: PipelineMetrics | None = None,
                 clock: Callable[[], float] = time.time,
                 feedback: FeedbackTable | None = None) -> None:
        self.rebind(settings, metrics, clock)
        self.feedback = feedback if feedback is not None else FeedbackTable()
        #: Told of every finding turned down, with the reason (an offline replay that
        #: explains a backtest sets it; transient, like the metrics).
        self.on_suppressed: Callable[[Finding, str], None] | None = None
        self._last_alert: dict[tuple[str, str], float] = {}
        #: Windows starting before this follow a data gap on this partition.
        self._catchup_until = -math.inf
        #: Recent over-threshold windows per series (:mod:`streams.evidence`).
        self._evidence: Ledger = {}
        self._swept_at = -math.inf

    def rebind(self, settings: Settings, metrics: PipelineMetrics | None,
               clock: Callable[[], float] = time.time) -> None:
        """Attach to this process's settings, metrics and clock (after a restore, too)."""
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        #: The settings' durations in windows of the grid (derived: not part of the state).
        self.plan = window_plan(settings)
        #: Without per-series overrides every series of a detector shares its threshold.
        self._thresholds = {} if settings.overrides else {
            n: (spec.threshold if spec.enabled else None) for n, spec in settings.detectors.items()}

    def threshold(self, detector: str, series_key: str) -> float | None:
        """The alert line of ``detector`` on a series, or None when it is off there."""
        if self._thresholds:
            return self._thresholds[detector]
        return self.settings.threshold_for(detector, series_key)

    def note_gap(self, window: ClosedWindow) -> None:
        """A window in which the whole partition had no declaration although such windows
        usually have some: an upstream outage."""
        self._catchup_until = self.plan.grid.shift(window.end, self.plan.catchup_windows)

    def _suppress(self, f: Finding, reason: str) -> None:
        if self.metrics:
            self.metrics.alerts_suppressed.labels(detector=f.detector, reason=reason).inc()
        if self.on_suppressed is not None:
            self.on_suppressed(f, reason)

    def _immaterial(self, f: Finding, side: str) -> bool:
        """A series surge in EUR whose excess over the expected range is below the floor
        of its goods (CHPL or not): improbable, but too little money for an analyst."""
        rules = self.settings.alerts
        if f.id_key is not None or f.meta.level == "passthrough":
            return False
        if side != "up" or f.unit != VALUE_UNIT:
            return False
        chpl = f.meta.chpl_tier != "none"
        floor = rules.min_excess_eur_chpl if chpl else rules.min_excess_eur_other
        return floor > 0 and ranking(f.explanation, f.unit)[1] < floor

    def _enough_evidence(self, f: Finding) -> bool:
        """Whether a series surge has the evidence to be published (:mod:`streams.evidence`):
        enough declarations carry its window's excess, alone or added to those of its
        series' over-threshold windows within ``alerts.persistence``; or its excess is
        heavy for its tier. Notes the window in the ledger either way."""
        rules = self.settings.alerts
        if rules.min_declarations <= 0:
            return True
        x = f.explanation
        spanned = x.details.get("declarations")
        if isinstance(spanned, int):
            # a detector that judges a span of windows (``trend``) counts that span's
            # declarations; its evidence is a run by construction
            return spanned >= rules.persistence_min_declarations
        weight = window_weight(f.count, float(x.observed), float(x.expected_high), f.top_eur,
                               rules.weigh_declarations)
        if weight <= 0:
            return False  # an empty window: the scoring may skip those (see its docstring)
        span, between = self.plan.persistence_windows, self.plan.grid.count
        key, start = f.meta.key, f.window_start
        earlier = 0
        if span > 0:
            if start - self._swept_at > span * self.plan.grid.shortest_seconds:
                sweep(self._evidence, start, span, between)
                self._swept_at = start
            earlier = support(self._evidence, key, start, span, between)
            record(self._evidence, key, start, weight)
        if passes(weight, earlier, rules.min_declarations, rules.persistence_min_declarations):
            return True
        if f.unit != VALUE_UNIT:
            return False
        heavy = heavy_floor(f.meta.chpl_tier, rules.min_excess_eur_chpl, rules.min_excess_eur_other,
                            rules.heavy_excess_factor)
        return ranking(x, f.unit)[1] >= heavy

    def decide(self, f: Finding,
               influencers: Callable[[bool], list[Influencer]] | None = None) -> TradeAlert | None:
        """The alert for finding ``f``, or None (counted with its reason).

        ``influencers(up)`` names the contributors of a rollup; it is called only for
        an alert that is published.
        """
        name, meta, window_start = f.detector, f.meta, f.window_start
        grid = self.plan.grid
        rules = self.settings.alerts
        side = deviation(f.explanation)
        if f.direction is not None and f.direction != "both" and side != f.direction:
            self._suppress(f, "other_direction")
            return None
        if f.id_key is None and meta.level != "passthrough" and side == "up" \
                and not self._enough_evidence(f):  # a collapse is seen in what is missing
            self._suppress(f, "too_few_declarations")
            return None
        if self._immaterial(f, side):
            self._suppress(f, "immaterial")
            return None
        if rules.scope == "chpl" and meta.chpl_tier == "none":
            self._suppress(f, "out_of_scope")
            return None
        if self.feedback.suppresses(name, meta.key, window_start):
            self._suppress(f, "feedback")
            return None
        cooldown_key = (name, f.id_key or meta.key)
        last = self._last_alert.get(cooldown_key)
        if f.id_key is None and last is not None and grid.count(last, window_start) <= self.plan.cooldown_windows:
            self._suppress(f, "cooldown")
            return None
        severity = alert_severity(f.explanation, meta.chpl_tier, f.unit)
        notes: dict[str, float | int | str] = {}
        if window_start < self._catchup_until:
            # a backlog arriving after an upstream outage looks like a spike everywhere
            severity, notes["after_data_gap"] = "low", 1
        if _SEVERITY_RANK[severity] < _SEVERITY_RANK[rules.min_severity]:
            self._suppress(f, "below_min_severity")
            return None
        self._last_alert[cooldown_key] = window_start
        if f.direction in ("down", "both"):
            notes["direction"] = side
        return make_alert(
            detector=name, series=meta, window_start=window_start, window_end=grid.end(window_start),
            explanation=f.explanation, threshold=f.threshold, severity=severity, unit=f.unit,
            declaration_count=f.count, declaration_ids=f.ids, emitted_at=self.clock(),
            id_key=f.id_key, notes=notes,
            influencers=influencers(side == "up") if f.rollup and influencers else None,
        )
