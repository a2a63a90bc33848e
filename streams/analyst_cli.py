"""The analyst's commands: ``alerts mark``, ``state snapshot|list|revert`` and ``explain``.

Kept apart from :mod:`streams.cli` (which parses the command line and dispatches
here) so that each command is a small function that says what it prints.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

import msgspec

from streams.config import ConfigError, Settings
from streams.events import TradeAlert
from streams.feedback import DEFAULT_SUPPRESS_FOR, FeedbackRecord, make_record
from streams.replay_jobs import add_jobs_option, jobs_for

__all__ = ["cmd_mark", "cmd_state", "cmd_explain", "format_evidence", "mark_record",
           "compare_published",
           "add_mark_arguments", "add_state_parser", "add_explain_parser"]


def _iso(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _date_arg(text: str) -> float:
    """``2024-02-15`` or ``2024-02-15T00:00:00Z`` -> epoch seconds (UTC when no zone)."""
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError("--window", f"{text!r} is not a date (use e.g. 2024-02-15)") from None
    return (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).timestamp()


# -- alerts mark ---------------------------------------------------------------------------


def add_mark_arguments(p: argparse.ArgumentParser) -> None:
    """``alerts mark``'s arguments (the ``alerts`` parser is shared with ``alerts tail``)."""
    p.add_argument("alert_id", nargs="?", help="mark: the alert's alert_id")
    verdict = p.add_mutually_exclusive_group()
    verdict.add_argument("--false-positive", dest="verdict", action="store_const",
                         const="false_positive", help="mark: silence this detector on this series")
    verdict.add_argument("--confirmed", dest="verdict", action="store_const", const="confirmed",
                         help="mark: a real anomaly, kept out of what the detectors learn")
    p.add_argument("--note", default="", help="mark: free text kept with the mark")
    p.add_argument("--for", dest="suppress_for", default=DEFAULT_SUPPRESS_FOR,
                   help=f"mark: how long a false positive silences (default {DEFAULT_SUPPRESS_FOR})")
    p.add_argument("--series", default=None, help="mark: the series key, when the alert is "
                   "no longer on the alerts topic (with --detector and --window)")
    p.add_argument("--window", default=None, help="mark: the window's start date, with --series")


def mark_record(settings: Settings, alert: TradeAlert | None, args: argparse.Namespace) -> FeedbackRecord:
    """The record ``alerts mark`` sends, from the alert found or the flags given."""
    if alert is not None:
        series, detector = alert.series.key, alert.detector
        start, end = alert.window_start.timestamp(), alert.window_end.timestamp()
    else:
        from streams.config_windows import window_plan

        detector = args.detector[-1] if args.detector else None
        if not (args.series and detector and args.window):
            raise ConfigError("alerts mark", f"alert {args.alert_id} is not on "
                              f"{settings.topics.alerts}; give --series, --detector and "
                              f"--window to mark it anyway")
        if detector not in settings.detectors:
            raise ConfigError("--detector", f"no detector named {detector!r} "
                              f"(configured: {', '.join(settings.detectors)})")
        series, start = args.series, _date_arg(args.window)
        end = window_plan(settings).grid.end(start)
    try:
        return make_record(alert_id=args.alert_id, series_key=series, detector=detector,
                           window_start=start, window_end=end, verdict=args.verdict,
                           note=args.note, suppress_for=args.suppress_for)
    except ValueError as err:
        raise ConfigError("--for", str(err)) from None


def cmd_mark(args: argparse.Namespace, settings: Settings) -> int:
    from streams.feedback_topic import find_alert, publish_feedback

    if not args.alert_id or not args.verdict:
        raise ConfigError("alerts mark", "usage: alerts mark ALERT_ID --false-positive|--confirmed "
                          "[--note TEXT] [--for 30d]")
    alert = None if args.series else find_alert(settings, args.alert_id)
    record = mark_record(settings, alert, args)
    offset = publish_feedback(settings, record)
    effect = (f"{record.detector} alerts on {record.series_key} are suppressed for windows "
              f"after {_iso(record.window_start)} until {_iso(record.until)}"
              if record.verdict == "false_positive" else
              f"the value of {record.series_key} in the window of {_iso(record.window_start)} "
              f"is kept out of what its detectors learn where not learned yet")
    print(f"marked {record.alert_id} {record.verdict} (by {record.marked_by}) on "
          f"{settings.topics.feedback} at offset {offset}: {effect}", file=sys.stderr)
    return 0


# -- state snapshot | list | revert --------------------------------------------------------


def add_state_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("state", help="named snapshots of the detector state; revert to one")
    p.add_argument("action", choices=["snapshot", "list", "revert"])
    p.add_argument("name", nargs="?", help="the snapshot's name (snapshot, revert)")
    p.add_argument("--json", action="store_true", help="list: one JSON object per snapshot")
    p.set_defaults(func=None, analyst="state")


def cmd_state(args: argparse.Namespace, settings: Settings) -> int:
    from streams.snapshots import SnapshotError, publish_revert, read_snapshots, take_snapshot

    group = settings.kafka.consumer_group
    try:
        if args.action == "list":
            return _print_snapshots(read_snapshots(settings), args.json)
        if not args.name:
            raise SnapshotError(f"state {args.action} needs a NAME")
        if args.action == "snapshot":
            records = take_snapshot(settings, args.name)
            with_state = [r for r in records if r.state is not None]
            first = records[0]
            print(f"snapshot {args.name!r} of group {group}: {len(with_state)} of {len(records)} "
                  f"partition(s) with state, config {first.config_version}@{first.config_hash}, "
                  f"input offsets {_offsets(records)}", file=sys.stderr)
            return 0
        command, offset = publish_revert(settings, args.name)
        print(f"published revert {command.revert_id} of group {group} to snapshot {args.name!r} "
              f"({settings.topics.config} offset {offset}); every running worker applies it at its "
              f"next tick and keeps its offsets: see tradewatch_state_reverts_total and the "
              f"worker log", file=sys.stderr)
        return 0
    except SnapshotError as err:
        print(f"tradewatch: {err}", file=sys.stderr)
        return 1


def _offsets(records: list) -> str:  # type: ignore[type-arg]
    return " ".join(f"{r.partition}:{'-' if r.next_offset is None else r.next_offset}"
                    for r in sorted(records, key=lambda r: r.partition))


def _print_snapshots(snapshots: dict, as_json: bool) -> int:  # type: ignore[type-arg]
    rows = sorted(snapshots.items(), key=lambda item: min(r.created_at for r in item[1].values()))
    for name, by_partition in rows:
        records = list(by_partition.values())
        first = records[0]
        summary = {"name": name, "created_at": _iso(first.created_at), "created_by": first.created_by,
                   "config_version": first.config_version, "config_hash": first.config_hash,
                   "partitions": first.partitions,
                   "with_state": sum(1 for r in records if r.state is not None),
                   "next_offsets": {str(r.partition): r.next_offset for r in records},
                   "bytes": sum(len(r.state or b"") for r in records)}
        if as_json:
            print(msgspec.json.encode(summary).decode())
        else:
            print(f"{name:<28} {summary['created_at']}  by {first.created_by:<10} config "
                  f"{first.config_version}@{first.config_hash[:8]}  {summary['with_state']}/"
                  f"{first.partitions} partitions  offsets {_offsets(records)}  "
                  f"{summary['bytes'] / 1024:.0f} KiB")
    if not rows and not as_json:
        print("no snapshots", file=sys.stderr)
    return 0


# -- explain -------------------------------------------------------------------------------


def add_explain_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("explain", help="replay a file offline and print one alert's evidence")
    p.add_argument("alert_id")
    p.add_argument("file", help="the declarations (.jsonl or .csv) the alert was raised on")
    p.add_argument("--feedback", default=None, help="JSON-lines feedback the worker followed")
    p.add_argument("--json", action="store_true", help="the replayed alert as JSON")
    p.add_argument("--offline", action="store_true",
                   help="do not compare with the published alert on the alerts topic")
    add_jobs_option(p)
    p.set_defaults(func=None, analyst="explain")


def format_evidence(alert: TradeAlert, given_id: str) -> str:
    """The evidence of a replayed alert, one fact a line, as ``tradewatch explain`` prints it."""
    e = alert.evidence
    s = alert.series
    lines = [
        f"alert      {alert.alert_id}  ({'matches' if alert.alert_id.startswith(given_id.lower()) else 'DIFFERS from'} "
        f"the given id {given_id})",
        f"series     {s.key}  ({s.level}, {s.origin_country} -> {s.destination_country}, product "
        f"{s.product_code}, CHPL tier {s.chpl_tier}, transit {s.transit_country})",
        f"window     {alert.window_start:%Y-%m-%d %H:%M} .. {alert.window_end:%Y-%m-%d %H:%M} UTC",
        f"detector   {alert.detector}: score {alert.score:.6f} (threshold {alert.threshold}), "
        f"severity {alert.severity}",
        f"value      {e.observed:,.2f} {e.unit} vs expected {e.expected:,.2f} "
        f"(range {e.expected_low:,.2f} .. {e.expected_high:,.2f})",
        f"surprise   {alert.surprise}  (-log10 p: one in 10^{alert.surprise:.1f})",
        f"excess     {alert.excess_eur:,.2f} EUR above the expected range",
        f"config     {alert.config_version}@{alert.config_hash}, CHPL {alert.chpl_version}",
        f"models     {alert.state_version or '-'}",
        f"incident   {alert.incident_id}",
    ]
    if e.influencers:
        lines.append("influencers " + ", ".join(f"{i.kind} {i.value} {i.share:.0%}"
                                                for i in e.influencers))
    lines.append(f"declarations {e.declaration_count}, largest: {', '.join(e.declaration_ids) or '-'}")
    if e.details:
        lines.append("details    " + ", ".join(f"{k}={v}" for k, v in sorted(e.details.items())))
    return "\n".join(lines)


def compare_published(replayed: TradeAlert, published: TradeAlert | None) -> str:
    """One line: whether the published alert carries the replayed evidence.

    The id only names detector, series and window; the score, surprise and config
    hash say whether the alert was judged from the same state: a revert, feedback
    or a restart from older state changes the models without changing the id. The
    published alert's ``state_version`` names its models: ``snapshot:NAME+N`` says
    a replay from the start cannot reproduce it, and which snapshot would.
    """
    if published is None:
        return "published: not on the alerts topic (expired, or raised under another config)"
    differs = [f"{name} {getattr(published, name)} vs replayed {getattr(replayed, name)}"
               for name in ("score", "surprise", "config_hash")
               if getattr(published, name) != getattr(replayed, name)]
    if not differs:
        return "published: the same evidence (score, surprise, config hash)"
    published_models = published.state_version.partition("+")[0]
    if published_models.startswith("snapshot:"):
        why = (f"scored by the models of {published_models.replace(':', ' ', 1)} "
               f"({published.state_version}), which a replay from the start does not have")
    else:
        why = "other models: feedback not given with --feedback, a restart from older state, " \
              "or another config"
    return "published: DIFFERS, " + "; ".join(differs) + f" ({why})"


def _published(settings: Settings, alert_id: str) -> tuple[bool, TradeAlert | None]:
    """(looked up, the alert) from the alerts topic; not looked up when the cluster is away."""
    from streams.feedback_topic import find_alert
    from streams.kafka_clients import check_cluster

    try:
        check_cluster(settings.kafka, timeout=5.0)
        return True, find_alert(settings, alert_id)
    except Exception:  # noqa: BLE001 - explain works offline; the comparison is a bonus
        return False, None


def cmd_explain(args: argparse.Namespace, settings: Settings) -> int:
    from streams.feedback import read_feedback_file
    from streams.offline import run_offline
    from streams.produce import read_records

    feedback = read_feedback_file(args.feedback) if args.feedback else None
    result = run_offline(read_records(Path(args.file)), settings, feedback=feedback,
                         jobs=jobs_for(args.jobs, settings.topics.partitions))
    # a unique prefix will do, as the listings print ids shortened
    found = [a for a in result.alerts if a.alert_id.startswith(args.alert_id.lower())]
    if len({a.alert_id for a in found}) > 1:
        print(f"tradewatch: {args.alert_id} is the prefix of {len({a.alert_id for a in found})} "
              f"alerts' ids; give more of it", file=sys.stderr)
        return 1
    if not found:
        print(f"tradewatch: alert {args.alert_id} is not reproduced: replaying {args.file} under "
              f"config {settings.config_version}@{_hash(settings)} raised {len(result.alerts)} "
              f"alerts, none with this id (another config, another file, or feedback?)",
              file=sys.stderr)
        return 1
    alert = found[-1]
    print(msgspec.json.encode(alert).decode() if args.json else format_evidence(alert, args.alert_id))
    if not args.offline:
        looked_up, published = _published(settings, alert.alert_id)
        print(compare_published(alert, published) if looked_up else
              f"published: not compared ({settings.kafka.bootstrap_servers} does not answer)",
              file=sys.stderr)
    print(f"replayed {args.file} under config {settings.config_version}@"
          f"{_hash(settings)} ({result.accepted} records accepted, {len(result.alerts)} alerts)",
          file=sys.stderr)
    return 0


def _hash(settings: Settings) -> str:
    from streams.audit import config_hash

    return config_hash(settings)
