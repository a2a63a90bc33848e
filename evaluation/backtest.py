"""Backtest a config change: both configs over the same records, and what the change does.

``tradewatch backtest --config new.toml [--baseline deploy/tradewatch.toml]
(FILE | --set small|full | --background real [--months A:B]) [--json F]`` runs the
baseline and the candidate config over the same declarations, each through the
worker's own record handler (:func:`streams.offline.run_offline`), and lists the
alerts and incidents the candidate **adds**, **removes** and **re-grades** (same
alert, other severity; :mod:`evaluation.alert_diff`), ranked by ``surprise``. On labelled data (a scenario set,
or the real background with its injected scenarios) it adds the scorecard of both
runs and the difference (:func:`evaluation.scorecard.score`).

How alerts are matched across the two runs: by ``alert_id``. It is a hash of the
detector's name, the series key (the declaration id for per-declaration
detectors) and the window start (:func:`streams.alerts.alert_id`), with nothing
of the config in it, so the same anomaly has the same id under both configs.
The run that did not publish an alert says why (``why``, the ``why`` column):
the alert policy turned the finding down, with the reason it counts in
``tradewatch_alerts_suppressed`` (``too_few_declarations``, ``immaterial``,
``cooldown``, ``out_of_scope``, ``feedback``, ``other_direction``,
``below_min_severity``); or no detector scored it over its threshold there
(``below_threshold``), or the detector is off in that config (``detector_off``).

Two consequences of matching by id: a detector renamed in the candidate is a different detector,
and two configs with different window grids (daily vs weekly) share no window,
so every alert shows as removed and added. Incidents match by ``incident_id``
(window start, destination, goods family), at their highest revision.

The JSON (``--json F``) has these keys::

    input       {"name", "declarations", "labelled"}
    baseline    {"config", "config_version", "alerts", "incidents", "rejected", "seconds"}
    candidate   (the same)
    match       how alerts and incidents were matched (the paragraph above, short)
    alerts      {"counts": {"added", "removed", "severity_changed", "unchanged"},
                 "added": [...], "removed": [...], "severity_changed": [...]}
    incidents   (the same shape)
    scorecard   null, or {"baseline": {...}, "candidate": {...}, "delta": {...}} over
                SCORECARD_FIGURES

Each listed alert: ``alert_id``, ``detector``, ``series_key``, ``window_start``,
``severity_before``, ``severity_after`` (``null`` where the run has no such
alert), ``surprise`` and ``score`` (the candidate's, or the baseline's for a
removed one) and ``label``: on labelled data what the scorecard made of the alert
in that run (``tp``, ``fp``, ``trap_fp``, ``tolerated``, ``probation``), else
``null``; and ``why``: for an added alert, why the baseline did not publish it, for
a removed one why the candidate did not (:func:`why_not`), ``null`` for a re-graded
one. Each incident: ``incident_id``, ``destination_country``,
``transit_country``, ``goods_family``, ``window_start``, severities, ``surprise``,
``detectors`` and ``members``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from evaluation.alert_diff import Diff, T, diff_alerts, diff_incidents
from evaluation.scorecard import RecordsWithTruth, Scorecard, score
from streams.config import Settings
from streams.events import TradeAlert, TradeIncident
from streams.offline import OfflineResult, run_offline
from streams.replay_jobs import add_jobs_option, jobs_for

__all__ = [
    "Backtest",
    "BacktestInput",
    "Diff",
    "SCORECARD_FIGURES",
    "diff_alerts",
    "diff_incidents",
    "file_input",
    "format_backtest",
    "why_not",
    "main",
    "real_background_input",
    "run_backtest",
    "scenario_set_input",
]


#: The scorecard figures compared (the delta is candidate minus baseline).
SCORECARD_FIGURES = (
    "precision",
    "precision_strict",
    "recall",
    "false_alerts_per_100k_benign",
    "high_severity_alerts_on_traps",
    "alerts",
)
MATCH = (
    "alerts by alert_id = hash(detector, series key or declaration id, window start), no config "
    "in it; incidents by incident_id = hash(window start, destination, goods family), highest "
    "revision"
)


# --------------------------------------------------------------------------------------
# Inputs: the same records, twice
# --------------------------------------------------------------------------------------


@dataclasses.dataclass
class BacktestInput:
    """Where the records come from. ``open()`` starts a fresh pass over the same records
    (a file read again, a seeded generator run again): nothing is held in memory, and
    the runner checks that both passes saw the very same bytes.

    ``total`` is the number of records if known, for the progress line
    (``estimated``: only approximately).
    """

    name: str
    open: Callable[[], RecordsWithTruth]
    labelled: bool
    total: int | None = None
    estimated: bool = False


def file_input(path: str | Path) -> BacktestInput:
    """A ``.jsonl`` or ``.csv`` file of declarations (not labelled: no scorecard)."""
    from streams.produce import count_records, read_records

    path = Path(path)
    return BacktestInput(
        name=str(path),
        open=lambda: RecordsWithTruth(str(path), read_records(path), []),
        labelled=False,
        total=count_records(path),
    )


def scenario_set_input(set_name: str, seed: int | None = None, partitions: int = 4) -> BacktestInput:
    """A labelled synthetic scenario set (``small`` or ``full``)."""
    from evaluation.scorecard import labelled_stream, nominal_size, scenario_set

    return BacktestInput(
        name=set_name,
        open=lambda: labelled_stream(set_name, seed=seed, partitions=partitions),
        labelled=True,
        total=nominal_size(scenario_set(set_name, seed, partitions)),
        estimated=True,
    )


def real_background_input(run: Any) -> BacktestInput:
    """The real background of an :class:`evaluation.real_evaluate.RealRun` (labelled
    when it has its injected scenarios). The table is loaded once for both passes."""
    from evaluation.real_evaluate import real_input

    run = dataclasses.replace(run, progress=False)  # the runner draws its own line
    source = real_input(run)
    return BacktestInput(
        name="real" if run.scenarios else "real-no-scenarios",
        open=lambda: source.open()[0],
        labelled=run.scenarios,
        total=source.expected,
        estimated=run.scenarios,
    )


# --------------------------------------------------------------------------------------
# Running both configs
# --------------------------------------------------------------------------------------


@dataclasses.dataclass
class Side:
    """One config's run over the input."""

    config: str
    settings: Settings
    result: OfflineResult
    incidents: list[TradeIncident]
    card: Scorecard | None
    declarations: int
    digest: str
    seconds: float
    #: alert_id -> the scorecard's label (tp, fp, trap_fp, tolerated, probation)
    labels: dict[str, str] = dataclasses.field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "config": _shown(self.config),
            "config_version": self.settings.config_version,
            "alerts": len(self.result.alerts),
            "incidents": len(self.incidents),
            "rejected": len(self.result.rejected),
            "seconds": round(self.seconds, 1),
        }

    def figures(self) -> dict[str, float | int | None]:
        card = self.card
        assert card is not None
        return {
            "precision": card.precision,
            "precision_strict": card.precision_strict,
            "recall": card.recall,
            "false_alerts_per_100k_benign": card.false_alerts_per_100k_benign,
            "high_severity_alerts_on_traps": card.high_severity_alerts_on_traps,
            "alerts": card.counts.get("total", 0),
        }


@dataclasses.dataclass
class Backtest:
    """Both runs and their diffs; :meth:`to_dict` is the JSON of the module docstring."""

    input: BacktestInput
    baseline: Side
    candidate: Side
    alerts: Diff[TradeAlert]
    incidents: Diff[TradeIncident]

    def scorecard(self) -> dict[str, Any] | None:
        if self.baseline.card is None or self.candidate.card is None:
            return None
        before, after = self.baseline.figures(), self.candidate.figures()
        delta = {
            k: (after[k] - before[k]) if after[k] is not None and before[k] is not None else None  # type: ignore[operator]
            for k in SCORECARD_FIGURES
        }
        return {"baseline": before, "candidate": after, "delta": delta}

    def label(self, change: str, alert: TradeAlert) -> str | None:
        """The scorecard's label of a listed alert in the run that raised it (the
        baseline's for a removed alert), ``None`` on unlabelled data."""
        side = self.baseline if change == "removed" else self.candidate
        return side.labels.get(alert.alert_id)

    def why(self, change: str, alert: TradeAlert) -> str | None:
        """Why the run without ``alert`` did not publish it (see the module docstring)."""
        if change == "added":
            return why_not(self.baseline, alert)
        if change == "removed":
            return why_not(self.candidate, alert)
        return None

    def _alert_dict(
        self, change: str, a: TradeAlert, before: str | None, after: str | None
    ) -> dict[str, Any]:
        return {
            "alert_id": a.alert_id,
            "detector": a.detector,
            "series_key": a.series.key,
            "window_start": a.window_start.isoformat(),
            "severity_before": before,
            "severity_after": after,
            "surprise": a.surprise,
            "score": a.score,
            "label": self.label(change, a),
            "why": self.why(change, a),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "input": {
                "name": self.input.name,
                "declarations": self.baseline.declarations,
                "labelled": self.input.labelled,
            },
            "baseline": self.baseline.summary(),
            "candidate": self.candidate.summary(),
            "match": MATCH,
            "alerts": _diff_dict(self.alerts, self._alert_dict),
            "incidents": _diff_dict(self.incidents, _incident_dict),
            "scorecard": self.scorecard(),
        }


def why_not(side: Side, alert: TradeAlert) -> str:
    """Why ``side``'s run did not publish ``alert`` (raised by the other run).

    >>> import datetime as dt, types
    >>> at = dt.datetime(2021, 4, 1, tzinfo=dt.UTC)
    >>> turned_down = {("volume", "hs6:DE>KG:854231", at.timestamp()): "immaterial"}
    >>> run = types.SimpleNamespace(
    ...     result=types.SimpleNamespace(suppressed=turned_down),
    ...     settings=types.SimpleNamespace(detectors={"volume": types.SimpleNamespace(enabled=True)}))
    >>> alert = types.SimpleNamespace(detector="volume", window_start=at,
    ...                               series=types.SimpleNamespace(key="hs6:DE>KG:854231"))
    >>> why_not(run, alert)
    'immaterial'
    >>> why_not(run, types.SimpleNamespace(detector="volume", window_start=at,
    ...                                    series=types.SimpleNamespace(key="hs6:PL>KG:854231")))
    'below_threshold'
    """
    reason = side.result.suppressed.get(
        (alert.detector, alert.series.key, alert.window_start.timestamp()))
    if reason is not None:
        return reason
    spec = side.settings.detectors.get(alert.detector)
    return "detector_off" if spec is None or not spec.enabled else "below_threshold"


def _counted(records: Iterable[bytes], into: dict[str, Any]) -> Iterator[bytes]:
    """Pass records through, counting them and hashing their bytes (both passes must match)."""
    digest = hashlib.blake2b(digest_size=16)
    n = 0
    for raw in records:
        n += 1
        digest.update(len(raw).to_bytes(4, "little"))
        digest.update(raw)
        yield raw
    into["count"] = n
    into["digest"] = digest.hexdigest()


def _run_side(
    label: str, config: str, settings: Settings, source: BacktestInput, total: int | None,
    estimated: bool, jobs: int = 1,
) -> Side:
    from streams.progress import progress

    labelled = source.open()
    seen: dict[str, Any] = {}
    records = progress(_counted(labelled.records, seen), label, total, estimated=estimated)
    started = time.perf_counter()
    result = run_offline(records, settings, jobs=jobs, why=True)
    seconds = time.perf_counter() - started
    card = None
    if source.labelled:
        card = score(
            result.alerts,
            labelled.truths,  # complete only now that the records are consumed
            declarations=seen["count"],
            window_seconds=labelled.window_seconds or settings.windows.grid().nominal_seconds,
            settings=settings,
            set_name=labelled.name,
            start_ts=labelled.start_ts,
            end_ts=labelled.end_ts,
        )
    labels = {}
    if card is not None:
        labels = {a.alert_id: lab for a, lab in zip(card.alerts, card.labels, strict=True)}
    return Side(config, settings, result, result.latest_incidents(), card, seen["count"],
                seen["digest"], seconds, labels)


def run_backtest(
    source: BacktestInput,
    baseline: tuple[str, Settings],
    candidate: tuple[str, Settings],
    jobs: int = 1,
) -> Backtest:
    """Run the baseline, then the candidate over the same records, and diff them.

    Each run replays the partitions in ``jobs`` processes (:mod:`streams.offline`).

    Raises ``RuntimeError`` if the two passes did not read the same records (a file
    changed between them): a diff over different inputs would be meaningless.
    """
    before = _run_side("baseline", *baseline, source, source.total, source.estimated, jobs)
    after = _run_side("candidate", *candidate, source, before.declarations, False, jobs)
    if (after.declarations, after.digest) != (before.declarations, before.digest):
        raise RuntimeError(
            f"the input changed between the two runs ({before.declarations} records, then "
            f"{after.declarations}); a backtest needs the same records twice"
        )
    return Backtest(
        source,
        before,
        after,
        diff_alerts(before.result.alerts, after.result.alerts),
        diff_incidents(before.incidents, after.incidents),
    )


# --------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------


def _shown(path: str) -> str:
    """A config path as the user would type it: relative to the working directory if inside."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return path


def _when(x: dt.datetime) -> str:
    x = x.astimezone(dt.UTC)
    return f"{x:%Y-%m-%d}" if (x.hour, x.minute) == (0, 0) else f"{x:%Y-%m-%d %H:%M}"


def _pair(before: T | None, after: T | None) -> tuple[T, str | None, str | None]:
    shown = after if after is not None else before
    assert shown is not None
    return (
        shown,
        before.severity if before is not None else None,
        after.severity if after is not None else None,
    )


def _rows(diff: Diff[T]) -> list[tuple[str, T, str | None, str | None]]:
    """(change, item, severity before, severity after), all changes ranked by surprise."""
    rows = [("added", *_pair(None, a)) for a in diff.added]
    rows += [("removed", *_pair(r, None)) for r in diff.removed]
    rows += [("severity", *_pair(b, a)) for b, a in diff.severity_changed]
    rows.sort(key=lambda r: -r[1].surprise)
    return rows  # type: ignore[return-value]


def _incident_dict(
    change: str, i: TradeIncident, before: str | None, after: str | None
) -> dict[str, Any]:
    return {
        "incident_id": i.incident_id,
        "destination_country": i.destination_country,
        "transit_country": i.transit_country,
        "goods_family": i.goods_family,
        "window_start": i.window_start.isoformat(),
        "severity_before": before,
        "severity_after": after,
        "surprise": i.surprise,
        "detectors": list(i.detectors),
        "members": len(i.members),
    }


def _diff_dict(diff: Diff[T], one: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    by_change: dict[str, list[dict[str, Any]]] = {"added": [], "removed": [], "severity_changed": []}
    for change, item, before, after in _rows(diff):
        key = "severity_changed" if change == "severity" else change
        by_change[key].append(one(change, item, before, after))
    return {"counts": diff.counts(), **by_change}


def _sev(before: str | None, after: str | None) -> str:
    return f"{before or '-':>8} -> {after or '-':<8}"


def _counts_line(what: str, before: int, after: int, diff: Diff[Any]) -> str:
    c = diff.counts()
    return (
        f"{what}: baseline {before}, candidate {after}: +{c['added']} added, "
        f"-{c['removed']} removed, {c['severity_changed']} severity changed, "
        f"{c['unchanged']} unchanged"
    )


def _fmt(x: float | int | None, signed: bool = False) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, int):
        return f"{x:+d}" if signed else f"{x:d}"
    return f"{x:+.3f}" if signed else f"{x:.3f}"


def format_backtest(bt: Backtest, limit: int | None = 20) -> str:
    """The counts, then the changed alerts and incidents ranked by surprise (the first
    ``limit`` of each; ``None``: all), then the scorecard delta when labelled."""
    b, c = bt.baseline, bt.candidate
    lines = [
        f"backtest over {bt.input.name}: {b.declarations:,} declarations "
        f"({len(b.result.rejected)} rejected)",
        f"baseline  {_shown(b.config)} (config_version {b.settings.config_version}), "
        f"{b.seconds:.0f}s",
        f"candidate {_shown(c.config)} (config_version {c.settings.config_version}), "
        f"{c.seconds:.0f}s",
        "",
        _counts_line("alerts", len(b.result.alerts), len(c.result.alerts), bt.alerts),
    ]
    labelled = bt.input.labelled
    label_head = f"{'label':<9} " if labelled else ""
    head = (
        f"{'change':<9} {'surprise':>9}  {'detector':<12} {'window':<16} {'severity':<20} "
        f"{label_head}{'why not (other run)':<21} series"
    )
    rows = _rows(bt.alerts)
    if rows:
        lines += [head, "-" * len(head)]
        for change, a, before, after in rows[:limit]:
            label = f"{bt.label(change, a) or '-':<9} " if labelled else ""
            lines.append(
                f"{change:<9} {a.surprise:>9.1f}  {a.detector:<12} {_when(a.window_start):<16} "
                f"{_sev(before, after)} {label}{bt.why(change, a) or '-':<21} {a.series.key}"
            )
        lines += _more(len(rows), limit)
    lines += ["", _counts_line("incidents", len(b.incidents), len(c.incidents), bt.incidents)]
    head = (
        f"{'change':<9} {'surprise':>9}  {'window':<16} {'place':<6} {'goods':<6} "
        f"{'severity':<20} {'alerts':>6}  detectors"
    )
    rows_i = _rows(bt.incidents)
    if rows_i:
        lines += [head, "-" * len(head)]
        for change, i, before, after in rows_i[:limit]:
            place = i.transit_country if i.transit_country not in ("", "none") else i.destination_country
            lines.append(
                f"{change:<9} {i.surprise:>9.1f}  {_when(i.window_start):<16} {place:<6} "
                f"{i.goods_family:<6} {_sev(before, after)} {len(i.members):>6}  "
                f"{','.join(i.detectors)}"
            )
        lines += _more(len(rows_i), limit)
    card = bt.scorecard()
    if card is not None:
        lines += ["", f"{'scorecard':<30} {'baseline':>9} {'candidate':>9} {'delta':>9}"]
        for k in SCORECARD_FIGURES:
            lines.append(
                f"{k.replace('_', ' '):<30} {_fmt(card['baseline'][k]):>9} "
                f"{_fmt(card['candidate'][k]):>9} {_fmt(card['delta'][k], signed=True):>9}"
            )
    return "\n".join(lines)


def _more(n: int, limit: int | None) -> list[str]:
    if limit is None or n <= limit:
        return []
    return [f"... and {n - limit} more (--limit 0 for all, --json F for the full lists)"]


# --------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """``tradewatch backtest``: print the diff; ``--json F`` writes it as JSON too."""
    import argparse
    import json
    import sys

    from evaluation.real_evaluate import add_real_arguments, real_run_from_args, with_scope
    from streams.config import DEFAULT_CONFIG_PATH, load_settings

    p = argparse.ArgumentParser(
        prog="tradewatch backtest",
        description="Run --baseline and --config over the same records offline and list the "
        "alerts and incidents the candidate adds, removes and re-grades, ranked by surprise; "
        "with the scorecard delta on labelled data.",
    )
    p.add_argument("file", nargs="?", help=".jsonl or .csv file of declarations")
    p.add_argument("--config", default=str(DEFAULT_CONFIG_PATH), help="the candidate config")
    p.add_argument("--baseline", default=str(DEFAULT_CONFIG_PATH),
                   help=f"the config to compare against (default {DEFAULT_CONFIG_PATH.name})")
    p.add_argument("--set", dest="set_name", choices=("small", "full"), default=None,
                   help="a labelled synthetic scenario set")
    p.add_argument("--seed", type=int, default=None, help="generator seed (default: the set's)")
    p.add_argument("--json", dest="json_path", metavar="F", help="write the diff as JSON here")
    p.add_argument("--limit", type=int, default=20, help="rows per table (default 20; 0: all)")
    add_real_arguments(p)
    add_jobs_option(p)
    args = p.parse_args(list(argv) if argv is not None else None)
    if sum([bool(args.file), bool(args.set_name), args.background == "real"]) != 1:
        p.error("give exactly one input: FILE, --set small|full or --background real")
    candidate = load_settings(args.config)
    baseline = load_settings(args.baseline)
    if args.background == "real":
        candidate, baseline = (with_scope(s, args.scope) for s in (candidate, baseline))
        source = real_background_input(real_run_from_args(args))
    elif args.set_name:
        source = scenario_set_input(args.set_name, seed=args.seed,
                                    partitions=baseline.topics.partitions)
    else:
        source = file_input(args.file)
    result = run_backtest(source, (args.baseline, baseline), (args.config, candidate),
                          jobs=jobs_for(args.jobs, baseline.topics.partitions))
    print(format_backtest(result, limit=args.limit or None))
    if args.json_path:
        Path(args.json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_path).write_text(json.dumps(result.to_dict(), indent=2))
        print(f"backtest JSON: {args.json_path}", file=sys.stderr)
    return 0
