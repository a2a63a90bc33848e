"""Hot-path benchmark: records/s of the worker's per-record work on one core, in process.

Each leg handles the same pre-encoded declarations (about 640 route x product series,
daily windows closing as event time advances, all five detectors on):

* ``json.loads``          - the floor any JSON pipeline pays (baseline);
* ``decode+validate``     - msgspec decode and the semantic checks;
* ``window detectors only`` - validate -> window -> spike/change-point/pass-through
  at window close, metrics on (the per-declaration detectors switched off);
* ``handler, no metrics`` - validate -> window -> all detectors -> alert, metrics disabled;
* ``handler``             - the same with Prometheus instrumentation on.

Legs alternate over several rounds and the median is reported, with each leg's
ratio to the ``json.loads`` baseline and the metrics overhead (instrumented over
uninstrumented) from the same rounds.

    python -m bench.hot_path --records 100000 --rounds 3 [--json]

``--json`` prints the figures as JSON instead of the table:
``every_detector_records_per_s`` (the ``handler`` leg), ``decode_validate_records_per_s``,
each leg's median records/s and ratio to ``json.loads``, and the metrics overhead.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import msgspec
from prometheus_client import CollectorRegistry

from bench.e2e import declarations
from streams.config import DEFAULT_CONFIG_PATH, load_settings
from streams.metrics import PipelineMetrics
from streams.keys import partition_for, record_key
from streams.validate import ValidationLimits, validate_declaration
from streams.worker import RecordHandler


Records = list[tuple[bytes, int]]  # (raw, partition): Kafka gives the worker the partition


def _leg_json(records: Records) -> None:
    for raw, _ in records:
        json.loads(raw)


def _leg_validate(records: Records) -> None:
    limits = ValidationLimits()
    now = time.time()
    for raw, _ in records:
        validate_declaration(raw, now_ts=now, limits=limits)


def _leg_handler(metrics_on: bool, per_declaration: bool = True) -> Callable[[Records], None]:
    settings = load_settings(DEFAULT_CONFIG_PATH, env={})
    if not per_declaration:
        detectors = {n: s for n, s in settings.detectors.items()
                     if s.kind not in ("unit_value", "novelty")}
        settings = msgspec.structs.replace(settings, detectors=detectors)

    def run(records: list[bytes]) -> None:
        metrics = (PipelineMetrics.create(CollectorRegistry(), detectors=list(settings.detectors))
                   if metrics_on else PipelineMetrics.disabled())
        handler = RecordHandler(settings, metrics)
        for offset, (raw, partition) in enumerate(records):
            handler.handle(raw, key=None, topic="bench", offset=offset, partition=partition)
        handler.tick()
    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    parts = load_settings(DEFAULT_CONFIG_PATH, env={}).topics.partitions
    records = [(raw, partition_for(record_key(raw), parts))
               for raw in declarations(args.records, seconds_per_record=20.0)]
    legs: dict[str, Callable[[Records], None]] = {
        "json.loads (baseline)": _leg_json,
        "decode+validate": _leg_validate,
        "window detectors only": _leg_handler(True, per_declaration=False),
        "handler, no metrics": _leg_handler(False),
        "handler": _leg_handler(True),
    }
    rates: dict[str, list[float]] = {name: [] for name in legs}
    overhead: list[float] = []
    for _ in range(args.rounds):
        seconds = {}
        for name, leg in legs.items():
            t0 = time.perf_counter()
            leg(records)
            seconds[name] = time.perf_counter() - t0
            rates[name].append(len(records) / seconds[name])
        overhead.append(seconds["handler"] / seconds["handler, no metrics"])
    base = statistics.median(rates["json.loads (baseline)"])
    if args.json:
        medians = {name: statistics.median(values) for name, values in rates.items()}
        print(json.dumps({
            "records": len(records),
            "rounds": args.rounds,
            "every_detector_records_per_s": round(medians["handler"]),
            "decode_validate_records_per_s": round(medians["decode+validate"]),
            "legs": {name: {"records_per_s": round(rate), "vs_json_loads": round(rate / base, 4)}
                     for name, rate in medians.items()},
            "metrics_overhead": round(statistics.median(overhead), 4),
        }, indent=2))
        return 0
    print(f"{len(records)} records, {args.rounds} rounds, median records/s on one core")
    print(f"{'leg':<24}{'records/s':>12}{'vs json.loads':>15}")
    for name, values in rates.items():
        rate = statistics.median(values)
        print(f"{name:<24}{rate:>12,.0f}{rate / base:>15.3f}")
    print(f"metrics overhead (instrumented / uninstrumented time): "
          f"median {statistics.median(overhead):.3f}, min {min(overhead):.3f}, max {max(overhead):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
