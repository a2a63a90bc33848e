"""Parallel replay: records/s of an offline replay in one process and in N, same run.

``python -m bench.replay_jobs [--months 2020-03:2020-04] [--jobs 2] [--json]`` expands
the real background of those months (``evaluation.realdata``, every product in
scope), then replays it through ``streams.offline.run_offline`` with ``jobs=1`` and
with ``jobs=N``, alternating, and reports each one's records/s, the speed-up (the
figure to quote: both legs see the same machine) and whether both raised the same
alerts in the same order. The speed-up is bounded by the cores free while it runs
and by how evenly the records spread over the partitions (``partition_shares``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter
from typing import Any

import msgspec

from streams.config import DEFAULT_CONFIG_PATH, load_settings
from streams.keys import partition_for, record_key
from streams.offline import run_offline


def run(months: str, jobs: int, rounds: int) -> dict[str, Any]:
    from evaluation.realdata import ExpansionConfig, RealStream, load_comext

    first, last = months.split(":")
    records = list(RealStream(load_comext(None, (first, last)),
                              ExpansionConfig(seed=20200101)).records())
    settings = load_settings(DEFAULT_CONFIG_PATH)
    settings = msgspec.structs.replace(
        settings, alerts=msgspec.structs.replace(settings.alerts, scope="all"))
    partitions = settings.topics.partitions
    shares = Counter(partition_for(record_key(r), partitions) for r in records)
    clock = time.time()  # one wall clock for every leg: alerts carry the time they were made
    seconds: dict[int, list[float]] = {1: [], jobs: []}
    alerts: dict[int, list[bytes]] = {}
    for _ in range(rounds):
        for n in (1, jobs):
            started = time.perf_counter()
            result = run_offline(records, settings, now=lambda: clock, jobs=n)
            seconds[n].append(time.perf_counter() - started)
            alerts[n] = [msgspec.json.encode(a) for a in result.alerts]
    one, many = statistics.median(seconds[1]), statistics.median(seconds[jobs])
    return {
        "months": months,
        "records": len(records),
        "jobs": jobs,
        "rounds": rounds,
        "one_process_records_per_s": round(len(records) / one),
        "jobs_records_per_s": round(len(records) / many),
        "speedup": round(one / many, 3),
        "same_alerts": alerts[1] == alerts[jobs],
        "alerts": len(alerts[1]),
        "partition_shares": {str(p): round(c / len(records), 3) for p, c in sorted(shares.items())},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--months", default="2020-03:2020-04", metavar="A:B")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    result = run(args.months, args.jobs, args.rounds)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print("  ".join(f"{k}={v}" for k, v in result.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
