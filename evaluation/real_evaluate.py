"""``tradewatch evaluate --background real``: the scorecard on the real background.

Runs the real background (:mod:`evaluation.realdata`), with the labelled scenarios
of :mod:`evaluation.real_scenarios` unless ``--no-scenarios``, through the offline
pipeline and reports what an analyst would face each month:

``alerts_per_month``
    Published alerts by the calendar month (UTC) of their window start.
``incidents_per_month``
    The pipeline's own incidents (``alert.incident_id``: one window, one destination
    or transit hub, one goods family, see :mod:`streams.incidents`). Alerts without
    an incident id (from runs before incidents existed) fall back to the same key
    computed here: (window start, destination or hub, HS2 chapter or CHPL tier).
``recall``, ``high_severity_on_traps``
    From :func:`evaluation.scorecard.score` (alerts matched to ground truth by series
    key and time, or by injected declaration id); plus
    ``high_severity_incidents_on_traps``: incidents holding a trap alert whose
    highest severity is high or critical.
``top3_share``
    Share of caught evasion scenarios whose best incident ranks in the top 3 of its
    month. Incidents rank by their best alert's ranking figure: the alert's
    ``surprise`` (-log10 p of its evidence, unsaturated), else its score. Ties count against the scenario (rank = 1 + the
    number of other incidents of the month ranking at least as high), so saturated
    scores (every alert 1.00) rank nothing in the top 3 unless the month is quiet.

The settings are the config's, except ``alerts.scope``: ``all`` by default here (the
real background has no CHPL goods; with scope ``chpl`` only injected lanes could
alert), ``--scope chpl`` keeps the mission's scope.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import msgspec

from evaluation.real_scenarios import default_real_scenarios, inject
from evaluation.realdata import ExpansionConfig, RealStream, load_comext, summarize_counts
from evaluation.scorecard import RecordsWithTruth, Scorecard, evaluate
from streams.config import Settings
from streams.events import TradeAlert
from streams.replay_jobs import jobs_for

__all__ = [
    "INCIDENT_GROUPING",
    "incident_key",
    "ranking_figure",
    "real_report",
    "run_real",
    "real_input",
    "real_run_from_args",
    "with_scope",
    "RealInput",
    "RealRun",
    "parse_months",
    "add_real_arguments",
    "main_real",
]

INCIDENT_GROUPING = "the pipeline's incidents: window x destination (hub for transit flows) x goods family"
_SEV = {"low": 0, "medium": 1, "high": 2, "critical": 3}


def _month(alert: TradeAlert) -> str:
    return alert.window_start.astimezone(dt.UTC).strftime("%Y-%m")


def incident_key(alert: TradeAlert) -> Any:
    """The alert's incident id; without one, (window start, destination or hub, family).

    >>> from streams.events import AlertEvidence, AlertSeries
    >>> s = AlertSeries(key="hs6:DE>KG:854231", level="hs6", origin_country="DE",
    ...     destination_country="KG", transit_country="KG", product_code="854231", chpl_tier="1")
    >>> e = AlertEvidence(observed=1, expected=0, expected_low=0, expected_high=0, unit="EUR",
    ...     declaration_count=1, declaration_ids=[])
    >>> w = dt.datetime(2021, 4, 5, tzinfo=dt.UTC)
    >>> a = TradeAlert(alert_id="x", detector="volume", severity="high", score=1.0, threshold=0.99,
    ...     series=s, window_start=w, window_end=w, evidence=e, summary="", emitted_at=w)
    >>> incident_key(a)[1:]
    ('KG', '85')
    """
    if getattr(alert, "incident_id", None):
        return alert.incident_id
    s = alert.series
    place = s.transit_country if s.transit_country not in ("", "none") else s.destination_country
    code = s.product_code
    family = code[:2] if code[:2].isdigit() else code
    return (alert.window_start.timestamp(), place, family)


def ranking_figure(alert: TradeAlert) -> float:
    """The unsaturated ranking figure when the alert carries one, else its score."""
    if getattr(alert, "surprise", 0.0):  # 0.0: an alert from before the ranking figure
        return float(alert.surprise)
    details = alert.evidence.details
    for name in ("surprise_bits", "neg_log10_p", "ranking"):
        v = details.get(name)
        if isinstance(v, int | float):
            return float(v)
    return float(alert.score)


def real_report(
    card: Scorecard, months: Sequence[str], declarations_per_month: dict[str, int]
) -> dict[str, Any]:
    """The monthly figures, recall, trap severity and top-3 share of one run."""
    alerts = card.alerts
    per_month = Counter(_month(a) for a in alerts)
    incidents: dict[Any, list[int]] = defaultdict(list)
    for i, a in enumerate(alerts):
        incidents[incident_key(a)].append(i)
    inc_month = {k: _month(alerts[v[0]]) for k, v in incidents.items()}
    inc_rank_value = {k: max(ranking_figure(alerts[i]) for i in v) for k, v in incidents.items()}
    incidents_per_month = Counter(inc_month.values())
    by_month_values: dict[str, list[float]] = defaultdict(list)
    for k, v in inc_rank_value.items():
        by_month_values[inc_month[k]].append(v)

    def rank(k: Any) -> int:
        # pessimistic on ties: every other incident at least as high ranks above
        return sum(1 for v in by_month_values[inc_month[k]] if v >= inc_rank_value[k])

    scenario_ranks: dict[str, int | None] = {}
    for t_index, truth in enumerate(card.truths):
        if not truth.expect_alert:
            continue
        ks = {
            incident_key(alerts[i])
            for i, (lab, m) in enumerate(zip(card.labels, card.matched, strict=True))
            if lab == "tp" and t_index in m
        }
        scenario_ranks[truth.scenario] = min((rank(k) for k in ks), default=None)
    caught = [r for r in scenario_ranks.values() if r is not None]
    trap_incidents = {
        incident_key(alerts[i])
        for i, lab in enumerate(card.labels)
        if lab in ("tolerated", "trap_fp")
    }
    high_trap_incidents = sum(
        1 for k in trap_incidents if max(_SEV[alerts[i].severity] for i in incidents[k]) >= 2
    )
    n_months = len(months) or 1
    inc_counts = [incidents_per_month.get(m, 0) for m in months]
    return {
        "background": "real",
        "months": list(months),
        "declarations": card.declarations,
        "declarations_per_month": declarations_per_month,
        "alerts": len(alerts),
        "alerts_per_month": {m: per_month.get(m, 0) for m in months},
        "incident_grouping": INCIDENT_GROUPING,
        "incidents_per_month": {m: incidents_per_month.get(m, 0) for m in months},
        "incidents_mean_per_month": sum(inc_counts) / n_months,
        "incidents_max_per_month": max(inc_counts, default=0),
        "recall": card.recall,
        "high_severity_on_traps": card.high_severity_alerts_on_traps,
        "high_severity_incidents_on_traps": high_trap_incidents,
        "top3_share": (sum(1 for r in caught if r <= 3) / len(caught)) if caught else None,
        "scenario_incident_rank": scenario_ranks,
        "ranking_figure": "alert.surprise (-log10 p) if present, else score",
        "breakdown": _breakdown(alerts),
        "scorecard": card.to_dict(),
    }


def _breakdown(alerts: Sequence[TradeAlert]) -> dict[str, Any]:
    """What dominates: alerts by detector, destination, level, severity, chapter, series."""
    def top(counter: Counter[str], n: int = 15) -> dict[str, int]:
        return dict(counter.most_common(n))

    return {
        "by_detector": top(Counter(a.detector for a in alerts)),
        "by_destination": top(Counter(a.series.destination_country for a in alerts)),
        "by_origin": top(Counter(a.series.origin_country for a in alerts)),
        "by_level": top(Counter(a.series.level for a in alerts)),
        "by_severity": top(Counter(a.severity for a in alerts)),
        "by_hs2": top(Counter(a.series.product_code[:2] for a in alerts)),
        "by_score": top(Counter(f"{a.score:.2f}" for a in alerts), 8),
        "by_month_detector": {
            m: dict(c)
            for m, c in sorted(
                _group(alerts, lambda a: (_month(a), a.detector)).items()
            )
        },
        "top_series": top(Counter(a.series.key for a in alerts), 20),
    }


def _group(alerts: Iterable[TradeAlert], key: Any) -> dict[str, Counter[str]]:
    out: dict[str, Counter[str]] = defaultdict(Counter)
    for a in alerts:
        m, d = key(a)
        out[m][d] += 1
    return out


# --------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------


@dataclasses.dataclass
class RealRun:
    """What ``--background real`` runs: data, period, expansion and scenarios.

    ``progress``: a progress line on standard error when it is a terminal
    (:mod:`streams.progress`; silent in pipes either way).
    """

    realdata: str | None = None
    months: tuple[str, str] | None = None
    scale: float = 1.0
    seed: int = 20200101
    scenarios: bool = True
    progress: bool = True


@dataclasses.dataclass
class RealInput:
    """The real background of one :class:`RealRun`, ready to be streamed (again).

    ``open()`` starts a fresh pass over the same declarations (the expansion is
    seeded, so every pass yields the same records); ``expected`` is their number
    without the injected scenarios (an estimate when scenarios are injected).
    """

    run: RealRun
    table: Any  # evaluation.realdata.ComextTable
    config: ExpansionConfig
    expected: int

    def open(self, label: str = "real") -> tuple[RecordsWithTruth, RealStream]:
        from streams.progress import progress

        if self.run.scenarios:
            injected = inject(self.table, default_real_scenarios(), self.config)
            stream: RealStream = injected.stream
            records, truths = injected.records(), injected.truths
        else:
            stream = RealStream(self.table, self.config)
            records, truths = stream.records(), []
        if self.run.progress:
            records = progress(records, label, self.expected, estimated=self.run.scenarios)
        labelled = RecordsWithTruth(
            "real" if self.run.scenarios else "real-no-scenarios",
            records,
            truths,
            start_ts=stream.start_ts,
            end_ts=stream.end_ts,
        )
        return labelled, stream


def real_input(run: RealRun) -> RealInput:
    """Load the real background table once (the slow part) for one or more passes."""
    table = load_comext(run.realdata, run.months)
    config = ExpansionConfig(seed=run.seed, scale=run.scale)
    return RealInput(run, table, config, sum(summarize_counts(table, config).values()))


def run_real(run: RealRun, settings: Settings, jobs: int = 1) -> tuple[Scorecard, dict[str, Any]]:
    """Build the stream, run it offline through the pipeline (in ``jobs`` processes), score
    and report."""
    source = real_input(run)
    table, config = source.table, source.config
    labelled, stream = source.open("evaluate real")
    card = evaluate(labelled, settings, mode="offline", jobs=jobs)
    report = real_report(card, table.months, dict(stream.count_by_month))
    report["expansion"] = {
        "seed": config.seed,
        "scale": config.scale,
        "size_cap": config.size.cap,
        "realdata": str(run.realdata or "default"),
        "scope": settings.alerts.scope,
        "window_seconds": settings.windows.grid().nominal_seconds,
        "seconds": round(card.seconds, 1),
    }
    return card, report


def add_real_arguments(p: argparse.ArgumentParser) -> None:
    """The ``evaluate`` flags of the real background (``evaluation.scorecard.main`` adds them)."""
    p.add_argument("--background", choices=("synthetic", "real"), default="synthetic",
                   help="synthetic generator (default) or real EU export statistics")
    p.add_argument("--no-scenarios", action="store_true",
                   help="real background only, nothing injected")
    p.add_argument("--scale", type=float, default=1.0,
                   help="real background: multiply every lane-month's declaration count")
    p.add_argument("--months", default=None, metavar="A:B",
                   help="real background: first:last month, e.g. 2021-01:2021-06")
    p.add_argument("--realdata", default=None, metavar="PATH",
                   help="real background CSV (default $TRADEWATCH_REALDATA or ../shared/realdata)")
    p.add_argument("--scope", choices=("all", "chpl"), default="all",
                   help="real background: alerts.scope to run with (default all)")


def parse_months(text: str | None) -> tuple[str, str] | None:
    if not text:
        return None
    first, _, last = text.partition(":")
    for m in (first, last):
        try:
            dt.date.fromisoformat(m + "-01")
        except ValueError:
            raise SystemExit(f"--months: expected YYYY-MM:YYYY-MM, got {text!r}") from None
    return first, last


def with_scope(settings: Settings, scope: str) -> Settings:
    """The settings with ``alerts.scope`` replaced (the real background has no CHPL
    goods of its own, so it runs with scope ``all`` unless told otherwise)."""
    return msgspec.structs.replace(
        settings, alerts=msgspec.structs.replace(settings.alerts, scope=scope)
    )


def real_run_from_args(args: argparse.Namespace) -> RealRun:
    """The :class:`RealRun` the :func:`add_real_arguments` flags describe."""
    return RealRun(
        realdata=args.realdata,
        months=parse_months(args.months),
        scale=args.scale,
        seed=args.seed if args.seed is not None else 20200101,
        scenarios=not args.no_scenarios,
    )


def main_real(args: argparse.Namespace, settings: Settings) -> int:
    """The ``--background real`` branch of ``tradewatch evaluate``."""
    settings = with_scope(settings, args.scope)
    run = real_run_from_args(args)
    card, report = run_real(run, settings, jobs_for(args.jobs, settings.topics.partitions))
    print(format_real(report))
    if args.json_path:
        Path(args.json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_path).write_text(json.dumps(report, indent=2, default=str))
        print(f"report JSON: {args.json_path}")
    return 0


def format_real(report: dict[str, Any]) -> str:
    """Month by month: declarations, alerts, provisional incidents; then the summary."""
    lines = [f"{'month':<8} {'declarations':>12} {'alerts':>7} {'incidents':>9}"]
    for m in report["months"]:
        lines.append(
            f"{m:<8} {report['declarations_per_month'].get(m, 0):>12} "
            f"{report['alerts_per_month'][m]:>7} {report['incidents_per_month'][m]:>9}"
        )
    b = report["breakdown"]
    lines += [
        f"declarations {report['declarations']}, alerts {report['alerts']}, incidents "
        f"mean {report['incidents_mean_per_month']:.1f}/month, max "
        f"{report['incidents_max_per_month']} ({report['incident_grouping']})",
        f"recall {report['recall']}, high-severity alerts on traps "
        f"{report['high_severity_on_traps']}, top3_share {report['top3_share']}",
        "by detector: " + ", ".join(f"{k}={v}" for k, v in b["by_detector"].items()),
        "by destination: " + ", ".join(f"{k}={v}" for k, v in b["by_destination"].items()),
        "by level: " + ", ".join(f"{k}={v}" for k, v in b["by_level"].items()),
        "by severity: " + ", ".join(f"{k}={v}" for k, v in b["by_severity"].items()),
    ]
    return "\n".join(lines)
