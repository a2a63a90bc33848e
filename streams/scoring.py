"""Scoring for one partition: the detectors of every series, scored before they learn.

The second of the pipeline's three jobs (features -> scoring -> alert policy), as
river keeps a detector apart from the ``ThresholdFilter`` that acts on its scores:
this module owns the detectors (created per series from pristine prototypes,
pre-warmed with the partition's history of empty windows, scored then learned,
judged only once active enough) and hands every score at or over its threshold
to the alert policy as a :class:`Finding`. Whether a finding is published is
:mod:`streams.alert_policy`'s decision, never this module's.

What runs where:

* per declaration: the unit-value detector of the declaration's HS chapter, and
  the novelty detector (one for the partition);
* per closed window and series: the spike, volume and change-point detectors on
  the series' statistical value (zero when the series had no declaration);
  see "Quiet series" below for when a zero is learned;
* per closed window and (transit country, HS6) with a flow: the pass-through and
  onset detectors on the inflow into the hub and the outflow from it to Russia/Belarus
  (see "Quiet hub pairs" below).

**Direction.** A family's ``direction`` (``[[series]]``) reaches the detectors that
judge one side only (:data:`ONE_SIDED_KINDS`, as their ``direction`` parameter);
two-sided detectors score both ways and the alert policy keeps the side asked for.

**Quiet series.** Closing a window costs the series that had data in it, not every
series ever seen: a series without a declaration in a closed window is not touched.
When it has data again, the empty windows it missed are learned first, in one step
(:meth:`detectors.base.Detector.learn_empty`, in closed form where a detector's
update allows it) and its activity share decays in closed form. This skips only the
*scoring* of empty windows, and that is safe where no finding of an empty window can
become an alert: in a family with ``direction = "up"`` the alert policy turns down a
finding below expectation (``other_direction``) and one above it without evidence
(``too_few_declarations``: :mod:`streams.evidence`; an empty window never has any).
Families watching drops (``"down"``, ``"both"``), and every family when
``min_declarations = 0``, keep being scored every window (:attr:`Scoring.lazy_close`
turns the whole behaviour off: the eager reference the tests compare against).

**Quiet hub pairs.** Likewise a closed window scores the hub pairs with a flow in it
(inflow or outflow), not every pair: a pair without either learns its empty windows
when it next has one (:meth:`detectors.base.Detector.learn_empty`). Here the reason
is the score itself: a pass-through or onset detector cannot score an empty window
above its :attr:`~detectors.base.Detector.empty_score_bound` (0.0025 and 0), so no
finding is lost while every threshold of it is above that bound. A configuration
with a threshold at or below it (or a detector without a bound) scores every pair
every window, as does ``lazy_close = False``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import itertools
import pickle
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import msgspec

from detectors.base import Detector, Explanation
from detectors.calendar import DAY
from detectors.registry import build
from detectors.windows import ClosedWindow, SeriesAggregate
from streams.config import Settings
from streams.config_windows import window_plan
from streams.events import AlertSeries, TradeDeclaration
from streams.metrics import PipelineMetrics
from streams.native_close import NativeClose
from streams.packing import DetectorPacker, NotPackable
from streams.series import DeclarationKeys, SeriesCatalog, SeriesFamily, series_meta

__all__ = ["DETECTOR_ROLES", "ONE_SIDED_KINDS", "Finding", "Scoring", "TIMING_SAMPLE"]

#: Which input each detector kind consumes.
DETECTOR_ROLES: dict[str, str] = {
    "spike": "series",
    "volume": "series",
    "changepoint": "series",
    "trend": "series",
    "passthrough": "passthrough",
    "onset": "passthrough",
    "unit_value": "declaration",
    "novelty": "declaration",
}
#: Series detector kinds that score one side only: they take the family's direction.
ONE_SIDED_KINDS = frozenset({"volume"})
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

#: ``threshold(detector, series key)``: the alert line, or None when the detector is off there.
ThresholdOf = Callable[[str, str], "float | None"]


@dataclasses.dataclass(frozen=True, slots=True)
class Finding:
    """A score at or over its threshold, explained: what the alert policy decides on."""

    detector: str
    meta: AlertSeries
    #: The series family's direction; None for pass-through and per-declaration findings.
    direction: str | None
    #: The family sums several lanes or products: the alert names influencers.
    rollup: bool
    window_start: float
    explanation: Explanation
    threshold: float
    unit: str
    count: int
    ids: list[str]
    #: Replaces the series key in the alert id (per-declaration findings).
    id_key: str | None = None
    #: The values (EUR) of the window's largest declarations, largest first (series
    #: findings): how many shipments carry the excess (:mod:`streams.evidence`).
    top_eur: tuple[float, ...] = ()


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """No automatic garbage collection inside the block (then as it was).

    A close makes the touched series live: tens of thousands of small detector objects
    that all survive it, and no reference cycles. Left on, the collector would run a
    few hundred times during a close, scanning those survivors again and again (with a
    million series a close spent more time there than in the detectors); paused, the
    objects are counted once, at the first collection after the close.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _spec_signatures(settings: Settings) -> dict[str, str]:
    """Enabled detector name -> the kind and parameters its state depends on (canonical JSON)."""
    return {name: msgspec.json.encode([spec.kind, spec.params], order="sorted").decode()
            for name, spec in settings.detectors.items() if spec.enabled}


@dataclasses.dataclass(slots=True)
class _SeriesState:
    meta: AlertSeries
    detectors: dict[str, Detector]
    last_window: float
    #: Exponentially weighted share of recent windows with at least one declaration.
    activity: float = 0.0
    #: The configured family (``[[series]]`` name); "passthrough" for hub pairs.
    family: str = ""
    #: Scored windows of the partition this series has learned (``Scoring._windows_seen``
    #: when it was last brought up to date): the ones after it are its missed empty windows.
    learned: int = 0
    #: Creation order in the partition: findings keep the order of a scan of every series.
    seq: int = 0


class Scoring:
    """The detectors of one partition's series, chapters and declarations.

    ``settings``, ``catalog``, ``metrics`` and the prototypes come from the current
    configuration and process (transient for the state codec); the detectors'
    learned state and the series table are what a checkpoint keeps.
    """

    #: Leave series without data in a closed window untouched until they have data again
    #: (module docstring, "Quiet series"). False scores every series every window: the
    #: reference behaviour, for tests and ``bench.scale`` (set it on the class).
    lazy_close: bool = True
    #: Close quiet series with data in native code where it applies (:mod:`streams.native_close`).
    native_close: bool = True

    def __init__(self, settings: Settings, metrics: PipelineMetrics | None = None,
                 catalog: SeriesCatalog | None = None) -> None:
        self.catalog = catalog or SeriesCatalog.from_settings(settings)
        self.rebind(settings, metrics)
        self._build_prototypes(settings)
        #: Live series: the ones touched at the last close, and those scored every window.
        self._series: dict[str, _SeriesState] = {}
        #: Quiet series of the lazily closed families, packed (:mod:`streams.packing`):
        #: family -> key -> blob of ``[last_window, activity, learned, seq, detectors]``.
        self._packed: dict[str, dict[str, bytes]] = {}
        self._passthrough: dict[str, _SeriesState] = {}
        #: Window start -> keys of the series whose last data was in that window, so
        #: evict() costs the series evicted (derived: rebuilt after a restore).
        self._by_last: dict[float, dict[str, None]] | None = None
        self._chapter_detectors: dict[tuple[str, str], Detector] = {}
        self._global_detectors = {
            n: self._fresh(n) for n in self._prototypes["declaration"]
            if settings.detectors[n].kind != "unit_value"
        }
        self._calls = 0
        #: Windows with declarations this partition has closed (gaps excluded).
        self._windows_seen = 0
        #: Starts of the most recent scored windows, oldest first: the last one is scored
        #: window number ``_windows_seen - 1``. Kept back to the idle-series horizon, which
        #: covers the empty windows any live series may still have to learn.
        self._scored: list[float] = []
        #: Series created so far (their ``seq``).
        self._created = 0
        #: Where these models come from: ``cold`` (learned on this partition's stream
        #: from nothing) or ``snapshot:NAME`` (swapped in by a state revert).
        self.lineage = "cold"
        #: Detector name -> signature of the spec (kind, parameters) its state was
        #: learned under: part of the state, so a restore or a retune keeps exactly
        #: the detectors whose signature is unchanged (:meth:`reconfigure`).
        self._built_from = _spec_signatures(settings)

    def _build_prototypes(self, settings: Settings) -> None:
        """The enabled detectors' untrained prototypes (per role), from the settings."""
        self._prototypes: dict[str, dict[str, Detector]] = {role: {} for role in set(DETECTOR_ROLES.values())}
        for name, spec in settings.detectors.items():
            if spec.enabled:
                role = DETECTOR_ROLES.get(spec.kind, "series")
                self._prototypes[role][name] = build(spec.kind, spec.params)
        #: Untrained detectors, pickled once: unpickling is ~10x faster than river's
        #: ``clone()`` (which inspects the signature), and new series appear on the hot path.
        self._pristine = {(name, "up"): pickle.dumps(d, protocol=pickle.HIGHEST_PROTOCOL)
                          for role in self._prototypes.values() for name, d in role.items()}
        for direction in {f.direction for f in self.catalog.families} - {"up"}:
            for name in self._prototypes["series"]:
                spec = settings.detectors[name]
                if spec.kind in ONE_SIDED_KINDS:
                    d = build(spec.kind, {**spec.params, "direction": direction})
                    self._pristine[(name, direction)] = pickle.dumps(d, protocol=pickle.HIGHEST_PROTOCOL)
        self._min_activity = {n: spec.min_series_activity for n, spec in settings.detectors.items()
                              if spec.min_series_activity > 0}
        series_protos = {key: pickle.loads(raw)  # noqa: S301 - our own bytes
                         for key, raw in self._pristine.items() if key[0] in self._prototypes["series"]}
        self._packer = DetectorPacker(series_protos)
        #: Learned values of an untrained detector, packed (a detector started fresh).
        self._fresh_packed = {key: self._packer.values(key[0], key[1], d)
                              for key, d in series_protos.items()}
        self._build_native()

    def reconfigure(self, settings: Settings, metrics: PipelineMetrics | None) -> list[str]:
        """Adopt ``settings`` (same series families), keeping every detector's learned state
        whose kind and parameters are unchanged; return the detectors started fresh.

        A detector added, re-enabled or given other parameters starts untrained on
        every series (its old state answered another question); one removed or
        disabled is dropped. Thresholds and ``min_series_activity`` are read from
        the settings when used, so they change nothing here. Used by a live retune
        and after a restore (the saved state may predate the running config).
        """
        self.rebind(settings, metrics)
        self._build_prototypes(settings)
        wanted = _spec_signatures(settings)
        kept = {n for n, sig in wanted.items() if self._built_from.get(n) == sig}
        families = {f.name: f for f in self.catalog.families}

        def carry(old: dict[str, Detector], names: dict[str, Detector], direction: str = "up") -> dict[str, Detector]:
            return {n: old[n] if n in kept and n in old else self._fresh(n, direction) for n in names}

        for state in self._series.values():
            state.detectors = carry(state.detectors, self._prototypes["series"],
                                    families[state.family].direction)
        for family, table in self._packed.items():
            direction = families[family].direction
            fresh = {n: self._fresh_packed.get((n, direction)) or self._fresh_packed[(n, "up")]
                     for n in self._prototypes["series"]}
            for key, blob in table.items():
                table[key] = self._packer.edit(blob, kept, fresh)
        for state in self._passthrough.values():
            state.detectors = carry(state.detectors, self._prototypes["passthrough"])
        self._global_detectors = carry(self._global_detectors, {
            n: d for n, d in self._prototypes["declaration"].items()
            if settings.detectors[n].kind != "unit_value"})
        self._chapter_detectors = {k: d for k, d in self._chapter_detectors.items()
                                   if k[0] in kept and k[0] in self._prototypes["declaration"]}
        self._built_from = wanted
        return sorted(set(wanted) - kept)

    def rebind(self, settings: Settings, metrics: PipelineMetrics | None) -> None:
        """Attach to this process's settings and metrics (after a restore, too)."""
        self.settings = settings
        self.metrics = metrics
        #: The settings' durations in windows of the grid (derived: not part of the state).
        self.plan = window_plan(settings)
        grid = self.plan.grid
        self._prewarm_windows = grid.windows_in(PREWARM_HISTORY)
        self._activity_rate = 1.0 / max(3, grid.windows_in(ACTIVITY_MEMORY))
        self._timers = {n: metrics.detector_processing.labels(detector=n)
                        for n in settings.detectors} if metrics else {}
        families = self.catalog.families
        if not self.lazy_close or settings.alerts.min_declarations < 1:
            self._eager_families = frozenset(f.name for f in families)
        else:  # an empty window's findings can be published: see "Quiet series" above
            self._eager_families = frozenset(f.name for f in families if f.direction != "up")
        #: Keys of the series scored every window (derived from the table when needed).
        self._eager_keys: dict[str, None] | None = None
        #: Live series of lazily closed families: packed at the next close without data.
        self._live_lazy: dict[str, None] | None = None
        if hasattr(self, "_packer"):  # after a restore or a settings change (not while built)
            self._build_native()

    def __getstate__(self) -> dict[str, Any]:
        """Picklable (a deep copy too): the native closer is rebuilt, not copied."""
        state = self.__dict__.copy()
        state["_native"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if "_packer" in state:
            self._build_native()

    def _build_native(self) -> None:
        """The native closer of quiet series, where it applies (:mod:`streams.native_close`)."""
        self._native: NativeClose | None = None
        #: Why quiet series are not closed natively (None when they are).
        self.native_reason: str | None = "off (Scoring.native_close or Scoring.lazy_close is False)"
        if self.native_close and self.lazy_close:
            self._native, self.native_reason = NativeClose.build(
                self._packer, list(self._prototypes["series"]), self._min_activity, self._activity_rate)

    def _fresh(self, name: str, direction: str = "up") -> Detector:
        """A new, untrained detector configured as ``name`` (for a family of ``direction``)."""
        raw = self._pristine.get((name, direction)) or self._pristine[(name, "up")]
        return pickle.loads(raw)  # noqa: S301 - our own bytes, never input

    @property
    def declaration_detectors(self) -> bool:
        """Whether any per-declaration detector is configured."""
        return bool(self._prototypes["declaration"])

    @property
    def has_passthrough(self) -> bool:
        """Whether any pass-through detector is configured."""
        return bool(self._prototypes["passthrough"])

    # -- per declaration -------------------------------------------------------------

    def score_declaration(self, d: TradeDeclaration, window_start: float,
                          threshold: ThresholdOf, keys: DeclarationKeys | None = None) -> list[Finding]:
        """Score and learn ``d`` with the per-declaration detectors.

        ``keys``: the catalog's :meth:`~streams.series.SeriesCatalog.declaration_keys`
        of ``d`` when the caller has them already.
        """
        if keys is None:
            keys = self.catalog.declaration_keys(d)
        key = keys.lane
        value = d.statistical_value_eur
        hs = d.hs_code
        findings: list[Finding] = []
        x_global: dict[str, Any] | None = None
        x_chapter: dict[str, Any] | None = None
        global_detectors = self._global_detectors
        for name in self._prototypes["declaration"]:
            detector = global_detectors.get(name)
            per_chapter = detector is None
            if per_chapter:  # unit value: one detector per HS chapter
                detector = self._chapter_detectors.get((name, hs[:2]))
                if detector is None:
                    detector = self._chapter_detectors[(name, hs[:2])] = self._fresh(name)
                if x_chapter is None:
                    x_chapter = {"value_eur": value, "net_mass_kg": d.net_mass_kg, "hs6": hs[:6]}
                x = x_chapter
            else:
                if x_global is None:
                    x_global = {"exporter_id": d.exporter_id, "consignee_id": d.consignee_id,
                                "route": keys.route, "chpl_tier": keys.chpl_tier,
                                "value_eur": value}
                x = x_global
            line = threshold(name, key)
            explanation = self._score_and_learn(name, detector, x, line)
            if explanation is not None and line is not None:
                findings.append(Finding(
                    name, series_meta(key), None, False, window_start, explanation, line,
                    "EUR/kg" if per_chapter else "EUR",
                    count=1, ids=[d.declaration_id], id_key=f"decl:{d.declaration_id}"))
        return findings

    # -- per closed window -----------------------------------------------------------

    def score_series(self, window: ClosedWindow, threshold: ThresholdOf,
                     unlearned: frozenset[str] = frozenset()) -> list[Finding]:
        """Score and learn the window total of every series that had data in ``window``.

        Series without data are scored too (on zero) in the families that watch drops;
        the others learn their empty windows when they next have data (module docstring).
        The series in ``unlearned`` (confirmed anomalies, :mod:`streams.feedback`) are
        scored but their detectors do not learn this window's value.
        """
        with _gc_paused():
            return self._score_series(window, threshold, unlearned)

    def _score_series(self, window: ClosedWindow, threshold: ThresholdOf,
                      unlearned: frozenset[str]) -> list[Finding]:
        index = self._windows_seen
        self._scored.append(window.start)
        series = self._series
        new = [key for key in window.aggregates if key not in series and self._packed_table(key) is None]
        if new:
            self._create(new, window.start, index)
        if self._eager_keys is None:
            self._unpack_eager()
            self._eager_keys = {k: None for k, s in series.items()
                                if s.family in self._eager_families}
        if not self._packed and len(self._eager_keys) == len(series):
            touched: list[tuple[str, _SeriesState]] = list(series.items())
        else:
            keys = set(window.aggregates).union(self._eager_keys)
            if self._native is not None and self._packed:
                closed = self._close_native(window, threshold, unlearned, index)
                keys -= closed
                if self.metrics is not None:
                    self.metrics.series_closes.labels(path="native").inc(len(closed))
            for key in keys:
                if key not in series:
                    self._unpack(key)
            touched = sorted(((k, series[k]) for k in keys), key=lambda item: item[1].seq)
        findings: list[Finding] = []
        empty = SeriesAggregate()
        families = {f.name: f for f in self.catalog.families}
        by_last = self._by_last
        for key, state in touched:
            if state.learned < index:
                self._catch_up(state, index)
            agg = window.aggregates.get(key, empty)
            before = state.last_window
            self._score_window(key, state, agg, window.start, families[state.family],
                               threshold, findings, learn=key not in unlearned)
            state.learned = index + 1
            if by_last is not None and state.last_window != before:
                bucket = by_last.get(before)
                if bucket is not None:
                    bucket.pop(key, None)
                by_last.setdefault(state.last_window, {})[key] = None
        self._windows_seen = index + 1
        self._pack_quiet(window.aggregates)
        if self.metrics is not None:
            self.metrics.series_closes.labels(path="python").inc(len(touched))
        return findings

    def _close_native(self, window: ClosedWindow, threshold: ThresholdOf, unlearned: frozenset[str],
                      index: int) -> set[str]:
        """Close the packed series with data in ``window`` natively; the keys it closed.

        The others (a score reached its line, a family watching drops, a total that is not
        a float) are left packed as they were, for the Python path (module docstring of
        :mod:`streams.native_close`). The series closed stay packed.
        """
        aggregates = window.aggregates
        native = self._native
        assert native is not None
        base = index - len(self._scored) + 1
        by_last = self._by_last
        closed: set[str] = set()
        for family, table in self._packed.items():
            if family in self._eager_families or self._direction_of(family) != "up":
                continue
            keys = [k for k in aggregates if k in table and type(aggregates[k].value_eur) is float]
            if not keys:
                continue
            aggs = [aggregates[k] for k in keys]
            results = native.close([table[k] for k in keys], self._scored, base, index, window.start,
                                   [a.value_eur for a in aggs], [a.count for a in aggs],
                                   [k not in unlearned for k in keys], threshold, keys)
            for key, result in zip(keys, results, strict=True):
                if result is None:
                    continue
                table[key], before, after = result
                closed.add(key)
                if by_last is not None and after != before:
                    bucket = by_last.get(before)
                    if bucket is not None:
                        bucket.pop(key, None)
                    by_last.setdefault(after, {})[key] = None
        return closed

    # -- live and packed series ------------------------------------------------------

    def _packed_table(self, key: str) -> dict[str, bytes] | None:
        """The family table holding ``key`` packed, or None when it is not packed."""
        for table in self._packed.values():
            if key in table:
                return table
        return None

    def _pack_quiet(self, touched: dict[str, Any]) -> None:
        """Pack the live series of lazily closed families that had no data in this window.

        Costs the series touched at this close and the last one, not every series:
        ``_live_lazy`` holds exactly the live series that may need packing. Where the
        native close applies, the series touched are packed too (new series, and those
        closed on the Python path because they alerted), so the next close takes them
        natively: a series with data every window would otherwise stay on the Python path.
        """
        live = self._live_lazy
        if live is None:
            live = self._live_lazy = {k: None for k, s in self._series.items()
                                      if s.family not in self._eager_families}
        for key in [k for k in live if k not in touched]:
            del live[key]
            self._pack(key)
        eager = self._eager_keys or {}
        series = self._series
        pack_touched = self._native is not None
        for key in touched:
            if key not in eager and key in series:
                if pack_touched:
                    live.pop(key, None)
                    self._pack(key)
                else:
                    live[key] = None

    def _pack(self, key: str) -> None:
        """Replace the live series ``key`` by its packed form (it stays live if not packable)."""
        state = self._series[key]
        direction = self._direction_of(state.family)
        try:
            blob = self._packer.pack([state.last_window, state.activity, state.learned, state.seq],
                                     state.detectors, direction)
        except NotPackable:
            return
        del self._series[key]
        self._packed.setdefault(state.family, {})[key] = blob

    def _unpack(self, key: str) -> _SeriesState:
        """Make the packed series ``key`` live again (exactly as it was packed)."""
        family = next(f for f, table in self._packed.items() if key in table)
        blob = self._packed[family].pop(key)
        (last_window, activity, learned, seq), detectors = self._packer.unpack(
            blob, self._direction_of(family))
        state = self._series[key] = _SeriesState(series_meta(key), detectors, last_window, activity,
                                                 family, learned, seq)
        if self._live_lazy is not None and family not in self._eager_families:
            self._live_lazy[key] = None
        return state

    def _unpack_all(self, families: Iterable[str] | None = None) -> None:
        for family in list(self._packed) if families is None else list(families):
            for key in list(self._packed.get(family, ())):
                self._unpack(key)
            self._packed.pop(family, None)

    def _unpack_eager(self) -> None:
        """Series of families now scored every window are live (after a settings change)."""
        eager = [f for f in self._packed if f in self._eager_families]
        if eager:
            self._unpack_all(eager)

    def _direction_of(self, family: str) -> str:
        for f in self.catalog.families:
            if f.name == family:
                return f.direction
        return "up"

    def _create(self, keys: list[str], start: float, index: int) -> None:
        """New series at their first window with data, pre-warmed with the partition's history.

        The pre-warmed detectors depend only on the family's direction (every new series
        of a close has the same history of empty windows): they are learned once per
        direction and copied (packed and unpacked) to every new series of that direction.
        Where the native close applies, the copies after the first are born packed (the
        header the Python series would be packed with, the same detectors' body), and the
        native close scores them like any packed series with data.
        """
        grid = self.plan.grid
        history = min(self._windows_seen, self._prewarm_windows)
        warmed: dict[str, bytes | None] = {}
        #: The pre-warmed detectors' packed body per direction, for series born packed.
        bodies: dict[str, list[Any]] = {}
        for key in keys:
            family = self.catalog.family_of(key)
            direction = family.direction
            detectors: dict[str, Detector] | None = None
            blob = warmed.get(direction)
            if blob is not None and self._native is not None and family.name not in self._eager_families:
                # born packed, as the last close would have left it: the native close scores it
                body = bodies.get(direction)
                if body is None:
                    body = bodies[direction] = self._packer.tree(blob)[-1]
                self._packed.setdefault(family.name, {})[key] = self._packer.blob(
                    [start, 0.0, index, self._created, body])
                self._created += 1
                if self._by_last is not None:
                    self._by_last.setdefault(start, {})[key] = None
                continue
            if blob is not None:
                detectors = self._packer.unpack(blob, direction)[1]
            else:
                detectors = {n: self._fresh(n, direction) for n in self._prototypes["series"]}
                # the partition was live and this series had no declaration: its
                # history is zeros, and a new route shipping every day is news
                for i in range(history, 0, -1):
                    zero = {"value": 0.0, "t": grid.shift(start, -i)}
                    for detector in detectors.values():
                        detector.learn_one(zero)
                if direction not in warmed:
                    try:
                        warmed[direction] = self._packer.pack([], detectors, direction)
                    except NotPackable:
                        warmed[direction] = None
            self._series[key] = _SeriesState(series_meta(key), detectors, start, family=family.name,
                                             learned=index, seq=self._created)
            self._created += 1
            if self._eager_keys is not None and family.name in self._eager_families:
                self._eager_keys[key] = None
            if self._by_last is not None:
                self._by_last.setdefault(start, {})[key] = None

    def state_version(self) -> str:
        """``LINEAGE+N``: the models' origin and the windows they have scored since.

        Stamped on every alert, so an analyst can tell whether an offline replay of
        the same records can reproduce it (``cold+N`` from the start of the stream)
        or needs the models of a snapshot (``snapshot:NAME+N``).
        """
        return f"{self.lineage}+{self._windows_seen}"

    def settle(self) -> None:
        """Let every quiet series learn the empty windows it still owes, now.

        Closing a window leaves quiet series alone (they learn their empty windows
        when they next have data), so between closes a quiet series' detectors are
        behind the partition. Their alerts do not depend on when they catch up; call
        this before reading detector state directly (tests, explanations, a snapshot
        meant for inspection). Packed quiet series become live (until the next close).
        """
        self._unpack_all()
        for state in itertools.chain(self._series.values(), self._passthrough.values()):
            if state.learned < self._windows_seen:
                self._catch_up(state, self._windows_seen, last=self._windows_seen - 1)

    def _catch_up(self, state: _SeriesState, index: int, last: int | None = None) -> None:
        """Learn the empty windows ``state`` missed, scored windows ``state.learned .. index - 1``.

        ``last`` is the number of the newest window in ``_scored``: the one being scored
        (``_windows_seen``, the default) while a window closes, or the one before it.
        """
        last = self._windows_seen if last is None else last
        base = last - len(self._scored) + 1
        if state.learned < base:
            raise RuntimeError(  # the trim in evict() keeps every window a live series needs
                f"series {state.meta.key} missed windows no longer kept ({state.learned} < {base})")
        missed = self._scored[state.learned - base:index - base]
        for detector in state.detectors.values():
            detector.learn_empty(missed)
        state.activity *= (1.0 - self._activity_rate) ** len(missed)
        state.learned = index

    def _score_window(self, key: str, state: _SeriesState, agg: SeriesAggregate, start: float,
                      family: SeriesFamily, threshold: ThresholdOf, findings: list[Finding], *,
                      learn: bool = True) -> None:
        """Score then learn one series' window total; findings over threshold go to ``findings``."""
        if agg.count:
            state.last_window = start
        x = {"value": agg.value_eur, "t": start, "count": agg.count}
        min_activity = self._min_activity
        activity = state.activity
        timed = self.metrics is not None
        for name, detector in state.detectors.items():
            if name in min_activity and activity < min_activity[name]:
                if learn:
                    detector.learn_one(x)  # too sparse to judge yet: learn only
                continue
            line = threshold(name, key)
            if timed:
                explanation = self._score_and_learn(name, detector, x, line, learn)
            else:  # no timer to feed: the call itself (this runs per touched series and detector)
                explanation = detector.score_then_learn(x, line, learn)[1]
            if explanation is not None and line is not None:
                findings.append(Finding(
                    name, state.meta, family.direction, family.is_rollup, start,
                    explanation, line, "EUR", count=agg.count, ids=agg.top_declarations(),
                    top_eur=tuple(sorted((v for v, _ in agg.top), reverse=True))))
        state.activity += self._activity_rate * ((1.0 if agg.count else 0.0) - state.activity)

    def score_passthrough(self, window: ClosedWindow, flows: dict[str, list[float]],
                          threshold: ThresholdOf) -> list[Finding]:
        """Score and learn the hub pairs' inflow and outflow in this window, after
        :meth:`score_series` of the same window (it numbers the window).

        The pairs with a flow in ``flows``; every pair when :meth:`passthrough_lazy`
        says an empty window could reach a threshold (module docstring, "Quiet hub pairs").
        """
        protos = self._prototypes["passthrough"]
        if not protos:
            return []
        if not self._scored or self._scored[-1] != window.start:
            raise RuntimeError(f"window {window.start} was not scored as series first")
        index = self._windows_seen - 1
        pairs = self._passthrough
        for key in flows:
            if key not in pairs:
                pairs[key] = _SeriesState(
                    series_meta(key), {n: self._fresh(n) for n in protos}, window.start,
                    family="passthrough", learned=index, seq=self._created)
                self._created += 1
        if self.passthrough_lazy():
            touched: Iterable[tuple[str, _SeriesState]] = sorted(
                ((k, pairs[k]) for k in flows), key=lambda item: item[1].seq)
        else:
            touched = pairs.items()
        findings: list[Finding] = []
        for key, state in touched:
            if state.learned < index:
                self._catch_up(state, index, last=index)
            inflow, outflow = flows.get(key, (0.0, 0.0))
            if inflow or outflow:
                state.last_window = window.start
            x = {"inflow": inflow, "outflow": outflow, "t": window.start}
            for name, detector in state.detectors.items():
                line = threshold(name, key)
                explanation = self._score_and_learn(name, detector, x, line)
                if explanation is not None and line is not None:
                    findings.append(Finding(name, state.meta, None, False, window.start,
                                            explanation, line, "EUR", count=0, ids=[]))
            state.learned = index + 1
        return findings

    def passthrough_lazy(self) -> bool:
        """Whether hub pairs without a flow in a window may be left unscored: every
        pass-through detector bounds an empty window's score below every threshold the
        settings give it (overrides included), and ``lazy_close`` is on."""
        if not self.lazy_close:
            return False
        settings = self.settings
        for name, detector in self._prototypes["passthrough"].items():
            bound = detector.empty_score_bound
            lines = [settings.detectors[name].threshold] + [
                o.threshold for o in settings.overrides
                if o.detector == name and o.threshold is not None]
            if bound is None or min(lines) <= bound:
                return False
        return True

    def _score_and_learn(self, name: str, detector: Detector, x: dict[str, Any],
                         threshold: float | None, learn: bool = True) -> Explanation | None:
        """Score, explain if over threshold, learn (unless told not to); time one call in
        ``TIMING_SAMPLE``."""
        self._calls += 1
        timed = self.metrics is not None and self._calls % TIMING_SAMPLE == 0
        started = time.perf_counter() if timed else 0.0
        _, explanation = detector.score_then_learn(x, threshold, learn)
        if timed:
            self._timers[name].observe(time.perf_counter() - started)
        return explanation

    # -- housekeeping ----------------------------------------------------------------

    def evict(self, window_start: float) -> list[str]:
        """Forget series without an event for ``windows.idle_series``; their keys.

        Costs the series evicted (an index of series by the window of their last data),
        not a scan of every series; the index is rebuilt once after a restore.
        """
        horizon = self.plan.grid.shift(window_start, -self.plan.idle_series_windows)
        by_last = self._by_last
        if by_last is None:
            by_last = self._by_last = {}
            for key, state in self._series.items():
                by_last.setdefault(state.last_window, {})[key] = None
            for table in self._packed.values():
                for key, blob in table.items():
                    by_last.setdefault(self._packer.header(blob)[0], {})[key] = None
        evicted = []
        for start in [t for t in by_last if t < horizon]:
            for key in by_last.pop(start):
                if self._series.pop(key, None) is None:
                    table = self._packed_table(key)
                    if table is not None:
                        del table[key]
                evicted.append(key)
        stale = [k for k, s in self._passthrough.items() if s.last_window < horizon]
        for k in stale:
            del self._passthrough[k]
        if self._eager_keys is not None:
            for k in evicted:
                self._eager_keys.pop(k, None)
        if self._live_lazy is not None:
            for k in evicted:
                self._live_lazy.pop(k, None)
        evicted += stale
        # a live series had data at or after the horizon and learned every window up to
        # it: the empty windows it may still have to learn all start after the horizon
        scored = self._scored
        drop = 0
        while drop < len(scored) and scored[drop] < horizon:
            drop += 1
        if drop:
            del scored[:drop]
        return evicted

    def series_counts(self) -> dict[str, int]:
        """Series with detector state, by family (``passthrough`` for the hub pairs)."""
        counts = dict.fromkeys(self.catalog.names, 0)
        for state in self._series.values():
            counts[state.family] = counts.get(state.family, 0) + 1
        for family, table in self._packed.items():
            counts[family] = counts.get(family, 0) + len(table)
        counts["passthrough"] = len(self._passthrough)
        return counts

    def state_bytes_by_detector(self, sample: int = 50) -> dict[str, float]:
        """Estimated total state bytes per detector, from a sample of series (pickling is slow).

        A live series counts its detectors pickled, a packed one its packed bytes.
        """
        totals: dict[str, float] = {}
        for blobs in self._packed.values():
            if not blobs:
                continue
            picked = list(itertools.islice(blobs.values(), 0, None, max(1, len(blobs) // sample)))
            sizes = [self._packer.detector_bytes(b) for b in picked]
            for name in sizes[0]:
                mean = sum(size.get(name, 0) for size in sizes) / len(sizes)
                totals[name] = totals.get(name, 0.0) + mean * len(blobs)
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
