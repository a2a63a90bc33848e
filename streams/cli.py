"""The ``tradewatch`` command.

=====================================  ==================================================
``tradewatch demo``                    local Kafka + worker + generated stream with a spike
``tradewatch worker``                  run a stream worker (serves /metrics)
``tradewatch kafka start|stop|status``  the project's local single-node broker
``tradewatch topics create``           create the pipeline's topics
``tradewatch produce FILE|--generate``  send declarations to Kafka
``tradewatch alerts tail``             print alerts (``--sort surprise`` ranks them)
``tradewatch incidents tail``          print incidents, one line each (same flags)
``tradewatch replay FILE``             run the detectors over a file, no Kafka
``tradewatch evaluate``                scorecard over labelled scenarios
``tradewatch backtest``                two configs over the same records: alerts added/removed
``tradewatch config check [FILE]``     validate a config and print the effective values
``tradewatch config publish FILE``     validate a config and publish it: workers retune live
``tradewatch alerts mark ID --false-positive|--confirmed``  analyst feedback, followed by workers
``tradewatch state snapshot|list|revert``  named copies of the detector state; revert a running group
``tradewatch explain ID FILE``         replay a file and print one alert's evidence
=====================================  ==================================================

Every command that talks to Kafka first checks that the cluster answers and
accepts the configured login (:func:`streams.kafka_clients.check_cluster`): an
unreachable or refusing cluster is one line naming the address and the cause,
exit status 1, never a traceback or a credential.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import msgspec

from streams.config import DEFAULT_CONFIG_PATH, ConfigError, Settings, load_settings
from streams.redact import mask_credentials

__all__ = ["main"]

#: Commands that parse their own arguments (tools outside the runtime, imported lazily).
PASS_ON = ("evaluate", "backtest")
#: How long a command waits for the cluster before it gives up with one line.
CHECK_TIMEOUT_S = 10.0


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.config)


def _connected_settings(args: argparse.Namespace) -> Settings:
    """The settings, once the cluster they name answers (else KafkaUnreachable)."""
    from streams.kafka_clients import check_cluster

    settings = _settings(args)
    check_cluster(settings.kafka, timeout=CHECK_TIMEOUT_S)
    return settings


def cmd_config(args: argparse.Namespace) -> int:
    return cmd_config_publish(args) if args.action == "publish" else cmd_config_check(args)


def cmd_config_publish(args: argparse.Namespace) -> int:
    """Validate FILE as ``config check`` does, then write it to the config topic."""
    from streams.config_topic import publish
    from streams.kafka_clients import check_cluster

    if not args.file:
        raise ConfigError("", "config publish needs the FILE to publish")
    settings = load_settings(args.file)  # a bad file stops here: nothing is sent
    check_cluster(settings.kafka, timeout=CHECK_TIMEOUT_S)
    settings, record, offset = publish(args.file)
    print(f"published {args.file} as config {record.config_version}@{record.config_hash} to "
          f"{settings.topics.config} (group {record.consumer_group}, offset {offset}); each "
          f"worker switches at its next window boundary, or rejects it: see "
          f"tradewatch_config_rejected_total and the worker log", file=sys.stderr)
    return 0


def cmd_config_check(args: argparse.Namespace) -> int:
    settings = load_settings(args.file or args.config)
    print(msgspec.json.format(msgspec.json.encode(settings.to_dict()), indent=2).decode())
    print(_kafka_login(settings), file=sys.stderr)
    print(_native_close(settings), file=sys.stderr)
    print(f"OK: {args.file or args.config}", file=sys.stderr)
    return 0


def _native_close(settings: Settings) -> str:
    """Whether this config's windows close in native code, and why not (a parameter the
    native detectors do not port makes every close Python, about ten times slower)."""
    from streams.scoring import Scoring

    reason = Scoring(settings).native_reason
    if reason is None:
        return "native close: on"
    return f"native close: off, windows close in Python (~10x slower per series): {reason}"


def _kafka_login(settings: Settings) -> str:
    """How the clients will log in, and whether the password can be read (never what it is)."""
    from streams.kafka_clients import read_secret

    kafka = settings.kafka
    line = f"kafka: {kafka.security_protocol} to {mask_credentials(kafka.bootstrap_servers)}"
    if kafka.security_protocol.startswith("SASL_"):
        source = (f"environment variable {kafka.sasl_password_env}" if kafka.sasl_password_env
                  else f"file {kafka.sasl_password_file}")
        try:
            read_secret(kafka, "sasl_password")
            found = "found"
        except ConfigError:
            found = "NOT FOUND: commands that connect will stop"
        line += (f" as {kafka.sasl_username!r} ({kafka.sasl_mechanism}); "
                 f"password from {source} ({found})")
    return line


def cmd_kafka(args: argparse.Namespace) -> int:
    from streams import kafka_local

    return kafka_local.cli([args.action, *(["--secure"] if args.secure else [])])


def cmd_topics(args: argparse.Namespace) -> int:
    from streams.topics import ensure_topics, pipeline_topic_specs

    settings = _connected_settings(args)
    t = settings.topics
    created = ensure_topics(settings.kafka, pipeline_topic_specs(
        t, consumer_group=settings.kafka.consumer_group))
    print(f"created: {', '.join(created) or 'nothing (all topics exist)'}")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    import faust

    from streams.app import create_app

    settings = _connected_settings(args)
    app = create_app(settings)
    worker = faust.Worker(app, loglevel=args.loglevel, quiet=True)
    worker.execute_from_commandline()
    return 0


def _generated(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from evaluation.synth.generator import StreamConfig, generate_records
    from evaluation.synth.scenarios import scenario_by_name

    scenarios = [scenario_by_name(n) for n in args.scenario]
    config = StreamConfig(seed=args.seed, days=args.days)
    return generate_records(config, scenarios)


def cmd_produce(args: argparse.Namespace) -> int:
    from streams.produce import produce_records, read_records

    settings = _connected_settings(args)
    records = _generated(args) if args.generate else read_records(Path(args.file))
    sent = produce_records(records, bootstrap=settings.kafka,
                           topic=args.topic or settings.topics.declarations,
                           rate=args.rate, limit=args.limit, progress=not args.quiet)
    print(f"sent {sent} records", file=sys.stderr)
    return 0


def _tail_filter(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from streams.tail import AlertFilter

    return AlertFilter(min_severity=args.min_severity, detectors=frozenset(args.detector),
                       destinations=frozenset(c.upper() for c in args.destination))


def cmd_analyst(args: argparse.Namespace) -> int:
    """``alerts mark``, ``state ...`` and ``explain`` (:mod:`streams.analyst_cli`)."""
    from streams import analyst_cli

    if args.analyst == "explain":
        return analyst_cli.cmd_explain(args, _settings(args))
    if args.analyst == "state":
        return analyst_cli.cmd_state(args, _connected_settings(args))
    return analyst_cli.cmd_mark(args, _connected_settings(args))


def cmd_alerts_tail(args: argparse.Namespace) -> int:
    from streams.tail import tail, tail_incidents

    if getattr(args, "action", "tail") == "mark":
        args.analyst = "mark"
        return cmd_analyst(args)
    settings = _connected_settings(args)
    incidents = args.incidents or args.command == "incidents"
    show = tail_incidents if incidents else tail
    topic = settings.topics.incidents if incidents else settings.topics.alerts
    try:
        show(settings.kafka, topic, from_beginning=args.from_beginning, as_json=args.json,
             timeout_s=args.timeout, sort=args.sort, where=_tail_filter(args))
    except KeyboardInterrupt:
        pass
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from streams.offline import run_offline
    from streams.replay_jobs import jobs_for
    from streams.produce import read_records
    from streams.tail import format_alert, format_incident

    from streams.produce import count_records
    from streams.progress import progress

    settings = _settings(args)
    path = Path(args.file)
    result = run_offline(progress(read_records(path), "replay", count_records(path)), settings,
                         jobs=jobs_for(args.jobs, settings.topics.partitions))
    for alert in result.alerts:
        print(msgspec.json.encode(alert).decode() if args.json else format_alert(alert))
    incidents = result.latest_incidents()
    if not args.json:
        for incident in incidents:
            print(format_incident(incident))
    reasons: dict[str, int] = {}
    for _, reason, _ in result.rejected:
        reasons[reason] = reasons.get(reason, 0) + 1
    print(f"{result.accepted} accepted, {len(result.rejected)} rejected {reasons or ''}, "
          f"{len(result.alerts)} alerts, {len(incidents)} incidents", file=sys.stderr)
    return 0


def cmd_evaluate(args: argparse.Namespace, rest: list[str]) -> int:
    from evaluation.scorecard import main as evaluate_main

    return evaluate_main(rest)


def cmd_backtest(args: argparse.Namespace, rest: list[str]) -> int:
    from evaluation.backtest import main as backtest_main

    return backtest_main(rest)


def cmd_demo(args: argparse.Namespace) -> int:
    from streams.demo import run_demo

    return run_demo(_settings(args), days=args.days, rate=args.rate, duration=args.duration,
                    config_path=args.config)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tradewatch", description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=str(DEFAULT_CONFIG_PATH),
                        help=f"config file (default {DEFAULT_CONFIG_PATH.name})")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="local Kafka, a worker, a generated stream with a spike")
    p.add_argument("--days", type=int, default=150)
    p.add_argument("--rate", type=float, default=None, help="declarations/s (default: max)")
    p.add_argument("--duration", type=float, default=None, help="stop after N seconds")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("worker", help="run a stream worker")
    p.add_argument("--loglevel", default="warning")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("kafka", help="the local broker")
    p.add_argument("action", choices=["start", "stop", "status", "fetch"])
    p.add_argument("--secure", action="store_true",
                   help="the secure local broker (SASL_SSL, generated certificates, port 9094)")
    p.set_defaults(func=cmd_kafka)

    p = sub.add_parser("topics", help="topic management")
    p.add_argument("action", choices=["create"])
    p.set_defaults(func=cmd_topics)

    p = sub.add_parser("produce", help="send declarations to Kafka")
    p.add_argument("file", nargs="?", help=".jsonl or .csv file")
    p.add_argument("--generate", action="store_true", help="use the built-in generator")
    p.add_argument("--scenario", action="append", default=[], help="scenario name (repeatable)")
    p.add_argument("--days", type=int, default=150)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--rate", type=float, default=None, help="records/s (default: max)")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--topic", default=None)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_produce)

    for name, what in (("alerts", "alert"), ("incidents", "incident")):
        p = sub.add_parser(name, help=f"the {what} topic")
        p.add_argument("action", choices=["tail", "mark"] if name == "alerts" else ["tail"])
        if name == "alerts":
            from streams.analyst_cli import add_mark_arguments

            add_mark_arguments(p)
        p.add_argument("--from-beginning", action="store_true")
        p.add_argument("--json", action="store_true", help=f"raw JSON, one {what} per line")
        p.add_argument("--timeout", type=float, default=None,
                       help="stop after N idle seconds (ranked listings: default 5)")
        p.add_argument("--sort", choices=["time", "surprise", "excess"], default="time",
                       help="time: as they arrive; surprise/excess: read until idle, largest first")
        p.add_argument("--min-severity", choices=["low", "medium", "high", "critical"],
                       default="low")
        p.add_argument("--detector", action="append", default=[],
                       help="only this detector (repeatable)")
        p.add_argument("--destination", action="append", default=[],
                       help="only this destination country, e.g. KG (repeatable)")
        p.add_argument("--incidents", action="store_true", default=name == "incidents",
                       help="the incident topic instead" if name == "alerts" else argparse.SUPPRESS)
        p.set_defaults(func=cmd_alerts_tail)

    p = sub.add_parser("replay", help="run the detectors over a file without Kafka")
    p.add_argument("file")
    p.add_argument("--json", action="store_true")
    from streams.replay_jobs import add_jobs_option

    add_jobs_option(p)
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("evaluate", help="scorecard over labelled scenarios", add_help=False)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("backtest", help="two configs over the same records: what changes",
                       add_help=False)
    p.set_defaults(func=cmd_backtest)

    from streams.analyst_cli import add_explain_parser, add_state_parser

    add_state_parser(sub)
    add_explain_parser(sub)
    for name in ("state", "explain"):
        sub.choices[name].set_defaults(func=cmd_analyst)

    p = sub.add_parser("config", help="configuration")
    p.add_argument("action", choices=["check", "publish"])
    p.add_argument("file", nargs="?")
    p.set_defaults(func=cmd_config)
    for subparser in sub.choices.values():
        if subparser.add_help:  # `evaluate`, `backtest` pass their arguments on, --config too
            subparser.add_argument("--config", default=argparse.SUPPRESS,
                                   help="config file (also accepted before the command)")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if rest and args.command not in PASS_ON:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        if args.command in PASS_ON:
            return int(args.func(args, ["--config", args.config, *rest]))
        if args.command == "produce" and not (args.file or args.generate):
            parser.error("produce needs a FILE or --generate")
        return int(args.func(args))
    except ConfigError as err:
        print(f"tradewatch: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # noqa: BLE001 - Kafka failures are one line, others re-raise
        message = _kafka_failure(err)
        if message is None:
            raise
        print(f"tradewatch: {message}", file=sys.stderr)
        return 1


def _kafka_failure(err: Exception) -> str | None:
    """One line for a Kafka failure (unreachable, refused, timed out), None for other errors."""
    from aiokafka.errors import KafkaError as AIOKafkaError
    from kafka.errors import KafkaError

    from streams.kafka_clients import KafkaUnreachable

    if isinstance(err, KafkaUnreachable):
        return str(err)
    if isinstance(err, KafkaError | AIOKafkaError):
        return mask_credentials(f"Kafka error: {type(err).__name__}: {err}".splitlines()[0])
    return None


if __name__ == "__main__":
    sys.exit(main())
