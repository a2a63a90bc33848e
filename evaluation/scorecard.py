"""The scorecard: run labelled synthetic streams through the detectors and score the alerts.

``tradewatch evaluate [--set small|full] [--mode offline|kafka] [--json FILE]
[--png-dir DIR] [--config FILE]`` generates a scenario set
(:mod:`evaluation.synth.scenarios`), runs it through the pipeline (offline:
:func:`streams.offline.run_offline`; kafka: the real broker and a real worker via
``evaluation.scorecard_kafka.run_through_kafka``) and prints one row per scenario.
``--background real [--no-scenarios] [--scale K] [--months A:B] [--realdata PATH]``
runs real EU export statistics instead (:mod:`evaluation.real_evaluate`).

How every alert is classified (exactly one label each):

``tp``
    It matches an *evasion* scenario (``expect_alert=True``): its series key is one of
    the scenario's ground-truth series (any level, or the pass-through key) and its
    window starts in ``[onset, end + tolerance_days)``; or its evidence names one of
    the scenario's injected declarations. Alerts of per-declaration detectors
    (``unit_value``, ``novelty``) match by declaration id only: a per-declaration
    alert about a background declaration is a false alert even on a scenario's lane.
``tolerated``
    It matches a *trap* the same way, at a severity no higher than the trap's
    ``max_severity_allowed`` ("low"). Not counted in :attr:`Scorecard.precision`;
    counted in :attr:`Scorecard.precision_strict`.
``trap_fp``
    It matches a trap above the allowed severity: a false alert, and counted in
    ``trap_alerts_above_allowed`` (and in ``high_severity_alerts_on_traps`` when
    high or critical).
``fp``
    Anything else: background series, a scenario's series before its onset or after
    its end + tolerance. A false alert.
``probation``
    Its window starts in the first 15 % of the stream (:data:`PROBATION_FRACTION`),
    while the detectors are still learning from nothing: not scored, only counted.
    This is NAB's "probationary period" (the first 15 % of each data file is not
    scored); a deployed worker would start from detectors warmed on history. No
    scenario starts inside it.

Metrics: ``precision = tp / (tp + fp + trap_fp)``; ``precision_strict`` also counts
tolerated alerts in the denominator; ``recall`` = evasion scenarios with at least one
``tp`` alert / evasion scenarios; ``false_alerts_per_100k_benign = (fp + trap_fp) /
benign declarations x 100 000``, where benign declarations are all records except
those injected by evasion scenarios (trap declarations are benign).

Detection delay of a detected scenario, from its first matching alert: in windows,
``floor((alert window start - onset window start) / window size)`` (0 = caught in
the onset window); in declarations, how many of the scenario's injected
declarations had been lodged before the alert (before its window end for a series
alert; up to and including the flagged declaration for a per-declaration alert).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import math
import statistics
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import msgspec

from detectors.calibration import SEVERITY_LEVELS
from streams.config import Settings, load_settings
from streams.events import TradeAlert
from streams.replay_jobs import add_jobs_option, jobs_for

__all__ = [
    "RecordsWithTruth",
    "ScenarioRow",
    "Scorecard",
    "TARGETS",
    "classify_alerts",
    "evaluate",
    "score",
    "labelled_stream",
    "nominal_size",
    "scenario_set",
    "write_png",
    "format_table",
    "main",
]

_DAY = 86_400.0
#: Share of the stream at its start whose alerts are not scored (NAB's probationary period).
PROBATION_FRACTION = 0.15
_RANK = {s: i for i, s in enumerate(SEVERITY_LEVELS)}
#: What the scorecard has to show for the small set (asserted in tests/unit/test_evaluate.py).
TARGETS: dict[str, float] = {
    "recall_min": 0.95,
    "precision_min": 0.9,
    "high_severity_alerts_on_traps_max": 0,
    "median_spike_delay_windows_max": 1,
}


class _Peek(msgspec.Struct):
    """The few fields the scorecard reads from each record (cheap partial decode)."""

    declared_at: str
    exporter_country: str
    destination_country: str
    hs_code: str
    statistical_value_eur: float


_peek = msgspec.json.Decoder(_Peek)


@dataclasses.dataclass
class RecordsWithTruth:
    """Encoded declarations plus the ground truth of the scenarios injected into them.

    ``truths`` may be completed while ``records`` is iterated (a data-gap trap only
    knows which declarations it moved once they are generated), so read them after.
    """

    name: str
    records: Iterable[bytes]
    truths: Sequence[Any]  # evaluation.synth.scenarios.GroundTruth
    window_seconds: float | None = None
    #: Event-time span of the stream; with it, the first PROBATION_FRACTION is not scored.
    start_ts: float | None = None
    end_ts: float | None = None


def scenario_set(set_name: str = "small", seed: int | None = None, partitions: int = 4) -> Any:
    """The ``small`` or ``full`` :class:`~evaluation.synth.scenarios.ScenarioSet`."""
    from evaluation.synth.scenarios import default_scenario_set, small_scenario_set

    factory = {"small": small_scenario_set, "full": default_scenario_set}[set_name]
    kwargs: dict[str, Any] = {"partitions": partitions}
    if seed is not None:
        kwargs["seed"] = seed
    return factory(**kwargs)


def nominal_size(sset: Any) -> int:
    """A scenario set's nominal number of declarations (days x mean daily volume): an
    estimate, for progress lines only (weekdays, seasons and scenarios move it a little)."""
    return round(sset.config.days * sset.config.daily_declarations)


def labelled_stream(
    set_name: str = "small", seed: int | None = None, partitions: int = 4
) -> RecordsWithTruth:
    """Generate the ``small`` or ``full`` scenario set as :class:`RecordsWithTruth`."""
    sset = scenario_set(set_name, seed, partitions)
    stream = sset.stream()
    return RecordsWithTruth(
        set_name,
        stream.records(),
        stream.truths,
        start_ts=sset.config.start_ts,
        end_ts=sset.config.end_ts,
    )


# --------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------


@dataclasses.dataclass
class ScenarioRow:
    scenario: str
    kind: str
    expect_alert: bool
    detected: bool
    alerts: int
    max_severity: str | None
    detectors: list[str]
    first_alert_window: str | None
    delay_windows: int | None
    delay_declarations: int | None
    injected_declarations: int
    trap_alerts_above_allowed: int
    passed: bool
    description: str = ""
    #: Control: alerts on the same series (series-level detectors) in an equally long
    #: window just before onset, all false by definition. When ``alerts`` is not well
    #: above it, a "caught" may be the background noise landing in the window by chance.
    pre_onset_alerts: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Scorecard:
    """Per-scenario rows and the overall metrics; see the module docstring for definitions."""

    set_name: str
    mode: str
    rows: list[ScenarioRow]
    precision: float | None
    precision_strict: float | None
    recall: float | None
    false_alerts_per_100k_benign: float
    high_severity_alerts_on_traps: int
    trap_alerts_above_allowed: int
    median_spike_delay_windows: float | None
    counts: dict[str, int]
    false_alerts_by_detector: dict[str, int]
    false_alerts_by_severity: dict[str, int]
    declarations: int
    benign_declarations: int
    window_seconds: float
    seconds: float = 0.0
    rejected: int = 0
    alerts: list[TradeAlert] = dataclasses.field(default_factory=list, repr=False)
    labels: list[str] = dataclasses.field(default_factory=list, repr=False)
    matched: list[list[int]] = dataclasses.field(default_factory=list, repr=False)
    truths: list[Any] = dataclasses.field(default_factory=list, repr=False)
    daily_values: dict[str, dict[int, float]] = dataclasses.field(default_factory=dict, repr=False)
    scored_from: float = -math.inf

    def targets_met(self) -> dict[str, bool]:
        return {
            "recall": self.recall is not None and self.recall >= TARGETS["recall_min"],
            "precision": self.precision is not None and self.precision >= TARGETS["precision_min"],
            "no_high_severity_on_traps": self.high_severity_alerts_on_traps
            <= TARGETS["high_severity_alerts_on_traps_max"],
            "spike_delay": self.median_spike_delay_windows is not None
            and self.median_spike_delay_windows <= TARGETS["median_spike_delay_windows_max"],
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "set": self.set_name,
            "mode": self.mode,
            "precision": self.precision,
            "precision_strict": self.precision_strict,
            "recall": self.recall,
            "false_alerts_per_100k_benign": self.false_alerts_per_100k_benign,
            "high_severity_alerts_on_traps": self.high_severity_alerts_on_traps,
            "trap_alerts_above_allowed": self.trap_alerts_above_allowed,
            "median_spike_delay_windows": self.median_spike_delay_windows,
            "alert_counts": self.counts,
            "false_alerts_by_detector": self.false_alerts_by_detector,
            "false_alerts_by_severity": self.false_alerts_by_severity,
            "declarations": self.declarations,
            "benign_declarations": self.benign_declarations,
            "rejected": self.rejected,
            "window_seconds": self.window_seconds,
            "scored_from": (
                dt.datetime.fromtimestamp(self.scored_from, tz=dt.UTC).isoformat()
                if math.isfinite(self.scored_from)
                else None
            ),
            "seconds": round(self.seconds, 2),
            "targets": TARGETS,
            "targets_met": self.targets_met(),
            "scenarios": [r.to_dict() for r in self.rows],
        }

    def to_json(self, indent: int | None = 2) -> str:
        """The scorecard as JSON text (precision, recall, false alerts per 100k benign,
        high-severity alerts on traps, one row per scenario, ...)."""
        return json.dumps(self.to_dict(), indent=indent, default=_json_default)


def _json_default(o: Any) -> Any:
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if hasattr(o, "item"):
        return o.item()
    return str(o)


def _roles(settings: Settings | None, roles: Mapping[str, str] | None) -> dict[str, str]:
    if roles is not None:
        return dict(roles)
    if settings is None:
        return {}
    from streams.pipeline import DETECTOR_ROLES

    return {
        name: DETECTOR_ROLES.get(spec.kind, "series") for name, spec in settings.detectors.items()
    }


def _ts(x: dt.datetime) -> float:
    return x.timestamp()


def classify_alerts(
    alerts: Sequence[TradeAlert],
    truths: Sequence[Any],
    roles: Mapping[str, str],
    scored_from: float = -math.inf,
) -> tuple[list[str], list[list[int]]]:
    """Label each alert (``tp``, ``tolerated``, ``trap_fp``, ``fp``, ``probation``) and
    list the indices of the truths it matches (evasion truths for ``tp``, else traps)."""
    id_sets = [set(t.declaration_ids) for t in truths]
    labels: list[str] = []
    matched: list[list[int]] = []
    for a in alerts:
        ts = _ts(a.window_start)
        key = a.series.key
        ids = a.evidence.declaration_ids
        per_declaration = roles.get(a.detector, "series") == "declaration"
        if ts < scored_from:
            labels.append("probation")
            matched.append([])
            continue
        hits = []
        for i, t in enumerate(truths):
            if ids and not id_sets[i].isdisjoint(ids):
                hits.append(i)
            elif not per_declaration and key in t.series and t.onset <= ts < t.match_until:
                hits.append(i)
        evasion = [i for i in hits if truths[i].expect_alert]
        if evasion:
            labels.append("tp")
            matched.append(evasion)
            continue
        if hits:
            allowed = max(_RANK.get(truths[i].max_severity_allowed or "critical", 3) for i in hits)
            labels.append("tolerated" if _RANK[a.severity] <= allowed else "trap_fp")
            matched.append(hits)
            continue
        labels.append("fp")
        matched.append([])
    return labels, matched


def score(
    alerts: Sequence[TradeAlert],
    truths: Sequence[Any],
    *,
    declarations: int,
    window_seconds: float = _DAY,
    roles: Mapping[str, str] | None = None,
    settings: Settings | None = None,
    set_name: str = "",
    mode: str = "offline",
    start_ts: float | None = None,
    end_ts: float | None = None,
) -> Scorecard:
    """Score alerts against ground truths (pure arithmetic; no pipeline run).

    With ``start_ts``/``end_ts`` (the stream's event-time span), alerts in the first
    :data:`PROBATION_FRACTION` of it are labelled ``probation`` and not scored.
    """
    role_map = _roles(settings, roles)
    scored_from = -math.inf
    if start_ts is not None and end_ts is not None:
        scored_from = start_ts + PROBATION_FRACTION * (end_ts - start_ts)
    labels, matched = classify_alerts(alerts, truths, role_map, scored_from)
    counts = Counter(labels)
    rows: list[ScenarioRow] = []
    for i, t in enumerate(truths):
        mine = [a for a, m in zip(alerts, matched, strict=True) if i in m]
        ts_of = dict(zip(t.declaration_ids, t.declaration_ts, strict=True))
        first = delay_w = delay_n = None
        if mine:
            onset_w = math.floor(t.onset / window_seconds) * window_seconds

            def when(a: TradeAlert, ts_of: dict[str, float] = ts_of) -> tuple[float, float]:
                flagged = [ts_of[d] for d in a.evidence.declaration_ids if d in ts_of]
                if role_map.get(a.detector, "series") == "declaration" and flagged:
                    return _ts(a.window_start), min(flagged)
                return _ts(a.window_start), _ts(a.window_end) - 1e-6

            first_alert = min(mine, key=when)
            ws, seen_until = when(first_alert)
            first = first_alert.window_start.isoformat()
            delay_w = math.floor((ws - onset_w) / window_seconds)
            delay_n = sum(1 for x in t.declaration_ts if x <= seen_until)
        above = sum(
            1
            for a in mine
            if t.max_severity_allowed is not None
            and _RANK[a.severity] > _RANK[t.max_severity_allowed]
        )
        max_sev = max((a.severity for a in mine), key=_RANK.__getitem__) if mine else None
        detected = bool(mine)
        control_from = max(t.onset - (t.match_until - t.onset), scored_from)
        pre = sum(
            1
            for a in alerts
            if a.series.key in t.series
            and role_map.get(a.detector, "series") != "declaration"
            and control_from <= _ts(a.window_start) < t.onset
        )
        rows.append(
            ScenarioRow(
                scenario=t.scenario,
                kind=t.kind,
                expect_alert=t.expect_alert,
                detected=detected,
                alerts=len(mine),
                max_severity=max_sev,
                detectors=sorted({a.detector for a in mine}),
                first_alert_window=first,
                delay_windows=delay_w,
                delay_declarations=delay_n,
                injected_declarations=len(t.declaration_ids),
                trap_alerts_above_allowed=above,
                passed=detected if t.expect_alert else above == 0,
                description=t.description,
                pre_onset_alerts=pre,
            )
        )
    tp, fp, trap_fp, tolerated = (counts.get(k, 0) for k in ("tp", "fp", "trap_fp", "tolerated"))
    precision = tp / (tp + fp + trap_fp) if tp + fp + trap_fp else None
    strict = tp / (tp + fp + trap_fp + tolerated) if tp + fp + trap_fp + tolerated else None
    evasion = [r for r in rows if r.expect_alert]
    recall = sum(r.detected for r in evasion) / len(evasion) if evasion else None
    injected = sum(len(t.declaration_ids) for t in truths if t.expect_alert)
    benign = max(declarations - injected, 0)
    trap_alerts = [
        a for a, lab in zip(alerts, labels, strict=True) if lab in ("tolerated", "trap_fp")
    ]
    high_on_traps = sum(1 for a in trap_alerts if _RANK[a.severity] >= _RANK["high"])
    spikes = [r for r in rows if r.kind == "SuddenSpike"]
    spike_delay = (
        statistics.median(
            r.delay_windows if r.delay_windows is not None else math.inf for r in spikes
        )
        if spikes
        else None
    )
    false = [a for a, lab in zip(alerts, labels, strict=True) if lab in ("fp", "trap_fp")]
    return Scorecard(
        set_name=set_name,
        mode=mode,
        rows=rows,
        precision=precision,
        precision_strict=strict,
        recall=recall,
        false_alerts_per_100k_benign=(fp + trap_fp) / benign * 1e5 if benign else 0.0,
        high_severity_alerts_on_traps=high_on_traps,
        trap_alerts_above_allowed=counts.get("trap_fp", 0),
        median_spike_delay_windows=spike_delay,
        counts={k: counts.get(k, 0) for k in ("tp", "fp", "trap_fp", "tolerated", "probation")}
        | {"total": len(alerts)},
        false_alerts_by_detector=dict(sorted(Counter(a.detector for a in false).items())),
        false_alerts_by_severity={
            s: sum(1 for a in false if a.severity == s) for s in SEVERITY_LEVELS
        },
        declarations=declarations,
        benign_declarations=benign,
        window_seconds=window_seconds,
        alerts=list(alerts),
        labels=labels,
        matched=matched,
        truths=list(truths),
        scored_from=scored_from,
    )


# --------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------


class _Tap:
    """Counts records and sums daily values of the series to plot, as they stream by."""

    def __init__(self, plot_keys: set[str]) -> None:
        self.plot_keys = plot_keys
        self.count = 0
        self.daily: dict[str, dict[int, float]] = {k: {} for k in plot_keys}

    def __call__(self, records: Iterable[bytes]) -> Iterator[bytes]:
        keys = self.plot_keys
        daily = self.daily
        epoch = dt.date(1970, 1, 1)
        for raw in records:
            self.count += 1
            if keys:
                try:
                    p = _peek.decode(raw)
                except msgspec.DecodeError:
                    yield raw
                    continue
                key = f"hs6:{p.exporter_country}>{p.destination_country}:{p.hs_code[:6]}"
                if key in keys:
                    day = (dt.date.fromisoformat(p.declared_at[:10]) - epoch).days
                    series = daily[key]
                    series[day] = series.get(day, 0.0) + p.statistical_value_eur
            yield raw


def evaluate(
    records_with_truth: RecordsWithTruth,
    settings: Settings,
    mode: Literal["offline", "kafka"] = "offline",
    feedback: Any = None,
    jobs: int = 1,
) -> Scorecard:
    """Run the records through the pipeline (offline or through Kafka) and score them.

    ``feedback`` (a :class:`streams.feedback.FeedbackTable`, offline only) holds
    analyst marks the run follows from its first record. ``jobs``: processes an
    offline run replays the partitions in (:mod:`streams.offline`; same result).
    """
    if feedback is not None and mode != "offline":
        raise ValueError("feedback is replayed offline only")
    truths = records_with_truth.truths
    plot_keys = {k for t in truths for k in getattr(t, "plot_series", ())}
    tap = _Tap(plot_keys)
    started = time.perf_counter()
    rejected = 0
    if mode == "offline":
        from streams.offline import run_offline

        result = run_offline(tap(records_with_truth.records), settings, feedback=feedback,
                             jobs=jobs)
        alerts = result.alerts
        rejected = len(result.rejected)
    elif mode == "kafka":
        from evaluation.scorecard_kafka import run_through_kafka

        records = list(tap(records_with_truth.records))
        alerts = run_through_kafka(records, settings)
    else:
        raise ValueError(f"mode must be 'offline' or 'kafka', got {mode!r}")
    elapsed = time.perf_counter() - started
    card = score(
        alerts,
        truths,
        declarations=tap.count,
        window_seconds=records_with_truth.window_seconds or settings.windows.grid().nominal_seconds,
        settings=settings,
        set_name=records_with_truth.name,
        mode=mode,
        start_ts=records_with_truth.start_ts,
        end_ts=records_with_truth.end_ts,
    )
    card.seconds = elapsed
    card.rejected = rejected
    card.daily_values = tap.daily
    return card


# --------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------


def _fmt(x: float | None, spec: str = ".3f") -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float) and math.isinf(x):
        return "never"
    return format(x, spec)


def _day(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC).date().isoformat() if math.isfinite(ts) else "-"


def format_table(card: Scorecard) -> str:
    """A readable table: one row per scenario, then the overall metrics and targets."""
    head = (
        f"{'scenario':<36} {'kind':<24} {'expect':<6} {'result':<8} {'alerts':>6} "
        f"{'max sev':<8} {'delay(w)':>8} {'delay(n)':>8} {'inj':>5} {'pre':>5}  detectors"
    )
    lines = [
        f"scorecard: set={card.set_name} mode={card.mode} declarations={card.declarations} "
        f"alerts={card.counts.get('total', 0)} ({card.seconds:.1f}s)",
        "delay(w): windows from onset to the first matching alert; delay(n): injected "
        "declarations lodged by then; inj: injected; pre: control, false alerts on the same "
        "series in as long a window before onset",
        head,
        "-" * len(head),
    ]
    for r in card.rows:
        result = (
            ("caught" if r.detected else "MISSED")
            if r.expect_alert
            else ("quiet" if not r.alerts else ("ok-low" if r.passed else "NOISY"))
        )
        expect = "alert" if r.expect_alert else "quiet"
        lines.append(
            f"{r.scenario:<36} {r.kind:<24} {expect:<6} {result:<8} "
            f"{r.alerts:>6} {r.max_severity or '-':<8} {_fmt(r.delay_windows, 'd'):>8} "
            f"{_fmt(r.delay_declarations, 'd'):>8} {r.injected_declarations:>5} "
            f"{r.pre_onset_alerts:>5}  {','.join(r.detectors)}"
        )
    met = {k: "OK" if v else "FAIL" for k, v in card.targets_met().items()}
    c = card.counts
    lines += [
        "-" * len(head),
        f"precision                      {_fmt(card.precision)}  "
        f"(target >= {TARGETS['precision_min']}; strict, counting tolerated low trap alerts: "
        f"{_fmt(card.precision_strict)})  {met['precision']}",
        f"recall                         {_fmt(card.recall)}  "
        f"(target >= {TARGETS['recall_min']})  {met['recall']}",
        f"false alerts per 100k benign   {card.false_alerts_per_100k_benign:.1f}  "
        f"({c.get('fp', 0) + c.get('trap_fp', 0)} false of {c.get('total', 0)} alerts, "
        f"{card.benign_declarations} benign declarations)",
        f"high-severity alerts on traps  {card.high_severity_alerts_on_traps}  (target 0)  "
        f"{met['no_high_severity_on_traps']}",
        f"median sudden-spike delay      {_fmt(card.median_spike_delay_windows, 'g')} windows "
        f"(target <= {TARGETS['median_spike_delay_windows_max']})  {met['spike_delay']}",
        f"alerts: tp={c.get('tp', 0)} fp={c.get('fp', 0)} trap_fp={c.get('trap_fp', 0)} "
        f"tolerated={c.get('tolerated', 0)} probation={c.get('probation', 0)} "
        f"(not scored: windows before {_day(card.scored_from)}); false by detector: "
        + ", ".join(f"{k}={v}" for k, v in card.false_alerts_by_detector.items())
        + "; by severity: "
        + ", ".join(f"{k}={v}" for k, v in card.false_alerts_by_severity.items()),
    ]
    if card.rejected:
        lines.append(f"rejected records: {card.rejected}")
    return "\n".join(lines)


def write_png(scorecard: Scorecard, scenario: str | Any, out_dir: str | Path) -> Path:
    """One PNG for a scenario: its series' daily value (EUR), the detectors' expected
    range at each alert on that series, alert markers by severity, onset and end lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    name = scenario if isinstance(scenario, str) else scenario.scenario
    truth = next(t for t in scorecard.truths if t.scenario == name)
    row = next(r for r in scorecard.rows if r.scenario == name)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    keys = list(truth.plot_series) or sorted(truth.series)[:1]
    all_days = sorted({d for k in scorecard.daily_values for d in scorecard.daily_values[k]})
    if all_days:
        first_day, last_day = all_days[0], all_days[-1]
    else:
        first_day = int(truth.onset // _DAY) - 30
        last_day = int(truth.end // _DAY) + 30
    lo = max(first_day, int(truth.onset // _DAY) - 60)
    hi = min(last_day, int(truth.match_until // _DAY) + 14)
    days = list(range(lo, hi + 1))
    dates = [dt.date(1970, 1, 1) + dt.timedelta(days=d) for d in days]
    fig, ax = plt.subplots(figsize=(11, 4.2), dpi=100)
    colours = ["tab:blue", "tab:orange", "tab:green"]
    for key, colour in zip(keys, colours, strict=False):
        values = scorecard.daily_values.get(key, {})
        ax.plot(dates, [values.get(d, 0.0) for d in days], color=colour, lw=1.2, label=key)
    sev_colour = {"low": "#999999", "medium": "#e6a700", "high": "#e0440e", "critical": "#8b0000"}
    index = scorecard.truths.index(truth)
    ymax = max([1.0] + [v for k in keys for v in scorecard.daily_values.get(k, {}).values()])
    seen_labels: set[str] = set()
    band = False
    for a, lab, m in zip(scorecard.alerts, scorecard.labels, scorecard.matched, strict=True):
        ours = index in m
        if not ours and not (lab == "fp" and a.series.key in keys):
            continue
        day = a.window_start.astimezone(dt.UTC).date()
        if not lo <= (day - dt.date(1970, 1, 1)).days <= hi:
            continue
        on_plot = a.series.key in keys and a.evidence.unit == "EUR"
        if on_plot:
            ax.vlines(
                day,
                max(a.evidence.expected_low, 0.0),
                a.evidence.expected_high,
                color="tab:gray",
                alpha=0.45,
                lw=6,
            )
            band = True
        y = a.evidence.observed if on_plot else ymax * 1.6
        tag = f"{a.severity} alert" if ours else "false alert (this series)"
        label = tag if tag not in seen_labels else None
        seen_labels.add(tag)
        if ours:
            ax.scatter(
                [day], [y], marker="v", s=50, color=sev_colour[a.severity], zorder=5, label=label
            )
        else:
            ax.scatter(
                [day],
                [y],
                marker="v",
                s=50,
                facecolors="none",
                edgecolors=sev_colour[a.severity],
                zorder=5,
                label=label,
            )
    if band:
        ax.plot([], [], color="tab:gray", alpha=0.45, lw=6, label="expected range at alert")
    ax.set_yscale("symlog", linthresh=1000.0)
    onset = dt.datetime.fromtimestamp(truth.onset, tz=dt.UTC).date()
    end = dt.datetime.fromtimestamp(truth.end, tz=dt.UTC).date()
    ax.axvline(onset, color="black", ls="--", lw=1, label="onset")
    ax.axvline(end, color="black", ls=":", lw=1, label="end")
    status = (
        ("caught" if row.detected else "MISSED")
        if row.expect_alert
        else (
            "trap: quiet"
            if not row.alerts
            else f"trap: {row.alerts} alerts, max {row.max_severity}"
        )
    )
    ax.set_title(f"{name} ({truth.kind}): {status}", fontsize=10)
    ax.set_ylabel("EUR per day (symlog)")
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    fig.tight_layout()
    path = out / f"{name}.png"
    fig.savefig(path)
    plt.close(fig)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """``tradewatch evaluate``: print the scorecard; with ``--check``, exit 1 on a missed target."""
    p = argparse.ArgumentParser(prog="tradewatch evaluate", description=__doc__.split("\n")[0])
    p.add_argument("--set", dest="set_name", choices=("small", "full"), default="small")
    p.add_argument("--mode", choices=("offline", "kafka"), default="offline")
    p.add_argument("--json", dest="json_path", help="write the scorecard JSON here")
    p.add_argument("--png-dir", help="write one PNG per scenario here")
    p.add_argument("--config", help="tradewatch TOML (default deploy/tradewatch.toml)")
    p.add_argument("--seed", type=int, default=None, help="generator seed (default: the set's)")
    p.add_argument("--check", action="store_true", help="exit 1 if a target is not met")
    p.add_argument("--feedback", help="JSON-lines analyst marks: show precision before/after")
    p.add_argument("--write-feedback", help="first write the marks of an analyst who worked the "
                   "alerts of the first part of the scored period to this file, then use them")
    p.add_argument("--mark-until", type=float, default=0.5,
                   help="with --write-feedback: the fraction of the scored period marked (0.5)")
    from evaluation.real_evaluate import add_real_arguments, main_real

    add_real_arguments(p)
    add_jobs_option(p)
    args = p.parse_args(list(argv) if argv is not None else None)
    settings = load_settings(args.config)
    if args.background == "real":
        return main_real(args, settings)
    from streams.progress import progress

    sset = scenario_set(args.set_name, seed=args.seed, partitions=settings.topics.partitions)
    labelled = labelled_stream(args.set_name, seed=args.seed, partitions=settings.topics.partitions)
    labelled.records = progress(labelled.records, f"evaluate {args.set_name}",
                                nominal_size(sset), estimated=True)
    card = evaluate(labelled, settings, mode=args.mode,
                    jobs=jobs_for(args.jobs, settings.topics.partitions))
    if args.feedback or args.write_feedback:
        card = _with_feedback(args, settings, card)
    else:
        print(format_table(card))
    if args.json_path:
        Path(args.json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_path).write_text(card.to_json())
        print(f"scorecard JSON: {args.json_path}")
    if args.png_dir:
        for row in card.rows:
            write_png(card, row.scenario, args.png_dir)
        print(f"PNGs: {args.png_dir}/<scenario>.png ({len(card.rows)})")
    if args.check and not all(card.targets_met().values()):
        return 1
    return 0


def _with_feedback(args: argparse.Namespace, settings: Settings, before: Scorecard) -> Scorecard:
    """Run the set again following analyst marks; print its table and the before/after."""
    from evaluation.feedback_effect import effect, format_effect, simulated_marks
    from streams.feedback import FeedbackTable, encode_feedback, read_feedback_file

    if args.write_feedback:
        spans = [a.window_start.timestamp() for a, lab in zip(before.alerts, before.labels,
                                                                strict=True) if lab != "probation"]
        start, end = (min(spans), max(spans)) if spans else (0.0, 0.0)
        marks = simulated_marks(before.alerts, before.labels,
                                until_ts=start + args.mark_until * (end - start))
        Path(args.write_feedback).parent.mkdir(parents=True, exist_ok=True)
        Path(args.write_feedback).write_bytes(b"".join(encode_feedback(m) + b"\n" for m in marks))
        table = FeedbackTable(marks)
        print(f"feedback file: {args.write_feedback} ({len(marks)} marks)")
    else:
        table = read_feedback_file(args.feedback)
    labelled = labelled_stream(args.set_name, seed=args.seed, partitions=settings.topics.partitions)
    after = evaluate(labelled, settings, mode="offline", feedback=table,
                     jobs=jobs_for(args.jobs, settings.topics.partitions))
    print(format_table(after))
    print(format_effect(effect(before, after, list(table))))
    return after


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
