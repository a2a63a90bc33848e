"""Soak benchmark: one worker under a steady load for minutes; is anything lost, does
lag stay bounded, does memory grow?

A worker process on private topics (shipped config, deploy/tradewatch.toml) is fed
``--rate`` declarations a second for ``--minutes`` (the ~640-series generator of
``bench.e2e``, a day of event time every ``--seconds-per-day`` of wall clock so that
windows close and idle series are evicted as in production; one record in
``--bad-every`` is malformed JSON, so the dead-letter path is exercised too). Every
``--sample-seconds`` it records the worker's consumer lag (``/metrics``
``tradewatch_consumer_lag_messages``), its RSS (``/proc/<pid>/status`` VmRSS), and
the processed and dead-lettered counts. At the end it waits for the worker to drain
and prints a table and a JSON summary: max lag, lag at the end, RSS at the start (after
warm-up) and end with the growth in %, and count in against processed + dead-lettered
(the group's committed offsets and the DLQ topic, read from Kafka).

It asserts nothing (numbers depend on the machine); the issue's target is lag bounded,
RSS growth < 10 %, nothing lost, at R = half the worker's measured maximum::

    python -m bench.soak --find-max                 # the worker's max throughput, ~1 min
    python -m bench.soak --minutes 10 --rate 1500 --json

The broker is ``TRADEWATCH_BOOTSTRAP_SERVERS`` or the project's local one (started if
needed, as ``tradewatch kafka start`` does).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from bench.e2e import declarations
from streams import kafka_local
from streams.config import DEFAULT_CONFIG_PATH
from streams.harness import (
    RunningWorker,
    committed_offsets,
    end_offsets,
    private_settings,
    read_topic,
    running_worker,
)
from streams.produce import produce_records
from streams.topics import ensure_topics, pipeline_topic_specs

LAG = "tradewatch_consumer_lag_messages"
CONSUMED = "tradewatch_declarations_consumed_total"
REJECTED = "tradewatch_declarations_rejected_total"
BAD_RECORD = b'{"schema_version": 1, "declaration_id": "SOAK-BAD", '


def stream(n: int, rate: float, seconds_per_day: float, bad_every: int) -> Iterator[bytes]:
    """``n`` records: valid declarations, every ``bad_every``-th one malformed JSON."""
    seconds_per_record = 86_400.0 / (rate * seconds_per_day)
    valid = declarations(n, seconds_per_record=seconds_per_record, spike_every_days=7)
    for i, raw in enumerate(valid, start=1):
        yield BAD_RECORD if bad_every and i % bad_every == 0 else raw


def _sums(worker: RunningWorker, names: tuple[str, ...]) -> dict[str, float]:
    """One scrape of /metrics, summed per sample name (all labels)."""
    from prometheus_client.parser import text_string_to_metric_families

    out = dict.fromkeys(names, 0.0)
    for family in text_string_to_metric_families(worker.metrics_text()):
        for s in family.samples:
            if s.name in out:
                out[s.name] += float(s.value)
    return out


def sample(worker: RunningWorker, produced: int, t0: float) -> dict[str, float]:
    m = _sums(worker, (LAG, CONSUMED, REJECTED))
    return {
        "t": round(time.monotonic() - t0, 1),
        "produced": produced,
        "lag": m[LAG],
        "rss_mb": round(worker.rss_bytes() / 2**20, 1),
        "consumed": m[CONSUMED],
        "dead_lettered": m[REJECTED],
    }


def soak(bootstrap: str, minutes: float, rate: float, sample_seconds: float = 5.0,
         seconds_per_day: float = 10.0, bad_every: int = 1000,
         quiet: bool = False) -> dict[str, object]:
    total = int(minutes * 60 * rate)
    settings, toml = private_settings(bootstrap, DEFAULT_CONFIG_PATH.read_text())
    t = settings.topics
    samples: list[dict[str, float]] = []
    produced = [0]
    errors: list[BaseException] = []

    def counting(records: Iterator[bytes]) -> Iterator[bytes]:
        for raw in records:
            produced[0] += 1
            yield raw

    def feed() -> None:
        try:
            produce_records(counting(stream(total, rate, seconds_per_day, bad_every)),
                            bootstrap=bootstrap, topic=t.declarations, rate=rate, progress=False)
        except BaseException as err:  # noqa: BLE001 - reported by the main thread
            errors.append(err)

    with tempfile.TemporaryDirectory() as tmp, running_worker(toml, settings, Path(tmp)) as worker:
        t0 = time.monotonic()
        producer = threading.Thread(target=feed, name="soak-producer", daemon=True)
        producer.start()
        while producer.is_alive():
            samples.append(sample(worker, produced[0], t0))
            if not quiet:
                s = samples[-1]
                print(f"  {s['t']:7.1f}s  in {s['produced']:>9,.0f}  lag {s['lag']:>8,.0f}  "
                      f"rss {s['rss_mb']:7.1f} MB  consumed {s['consumed']:>9,.0f}  "
                      f"dead {s['dead_lettered']:>6,.0f}", file=sys.stderr, flush=True)
            producer.join(sample_seconds)
        if errors:
            raise errors[0]
        drain_deadline = time.monotonic() + 120
        while worker.sample(CONSUMED) < total and time.monotonic() < drain_deadline:
            time.sleep(1.0)
        time.sleep(3.0)  # a commit and a tick after the last record
        samples.append(sample(worker, produced[0], t0))
        end = end_offsets(bootstrap, t.declarations)
        committed = committed_offsets(bootstrap, settings.kafka.consumer_group, t.declarations)
        dlq = len(read_topic(bootstrap, t.dlq, idle=3.0))
        worker_alive = worker.alive()

    warm = next((s for s in samples if s["t"] >= min(60.0, minutes * 60 * 0.1)), samples[0])
    last = samples[-1]
    consumed, dead = last["consumed"], last["dead_lettered"]
    return {
        "minutes": minutes, "rate": rate, "records_in": total,
        "lag_max": max(s["lag"] for s in samples),
        "lag_end": last["lag"],
        "rss_first_mb": samples[0]["rss_mb"],
        "rss_start_mb": warm["rss_mb"], "rss_start_at_s": warm["t"],
        "rss_end_mb": last["rss_mb"],
        "rss_growth_pct": round(100.0 * (last["rss_mb"] - warm["rss_mb"]) / warm["rss_mb"], 1)
        if warm["rss_mb"] else None,
        "consumed": consumed,
        "processed": consumed - dead,
        "dead_lettered": dead,
        "dlq_records": dlq,
        "expected_dead": total // bad_every if bad_every else 0,
        "committed": sum(committed.get(p, 0) for p in end),
        "log_end": sum(end.values()),
        "lost": total - (consumed - dead) - dlq,
        "worker_alive": worker_alive,
        "samples": samples,
    }


def find_max(bootstrap: str, messages: int = 60_000) -> dict[str, object]:
    """The worker's throughput on a backlog: first to last record processed, from /metrics."""
    settings, toml = private_settings(bootstrap, DEFAULT_CONFIG_PATH.read_text())
    t = settings.topics
    ensure_topics(bootstrap, pipeline_topic_specs(t))
    produce_records(declarations(messages, seconds_per_record=86_400.0 / 2000),
                    bootstrap=bootstrap, topic=t.declarations, progress=False)
    with tempfile.TemporaryDirectory() as tmp, running_worker(toml, settings, Path(tmp)) as worker:
        first = None
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            n = worker.sample(CONSUMED)
            if n > 0 and first is None:
                first = (time.perf_counter(), n)
            if n >= messages:
                break
            time.sleep(0.1)
        done = time.perf_counter()
    if first is None:
        raise TimeoutError("the worker processed nothing")
    rate = (messages - first[1]) / max(done - first[0], 1e-9)
    return {"messages": messages, "max_rate": round(rate), "suggested_rate": round(rate / 2)}


def _table(result: dict[str, object]) -> str:
    rows = [(k, v) for k, v in result.items() if k != "samples"]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=1000.0, help="records per second")
    parser.add_argument("--sample-seconds", type=float, default=5.0)
    parser.add_argument("--seconds-per-day", type=float, default=10.0,
                        help="wall-clock seconds per day of event time")
    parser.add_argument("--bad-every", type=int, default=1000,
                        help="one malformed record in this many (0: none)")
    parser.add_argument("--find-max", action="store_true",
                        help="measure the worker's max throughput on a backlog instead")
    parser.add_argument("--max-messages", type=int, default=60_000)
    parser.add_argument("--json", action="store_true", help="print the JSON summary too")
    args = parser.parse_args(argv)
    bootstrap = kafka_local.start(bootstrap_servers=os.environ.get("TRADEWATCH_BOOTSTRAP_SERVERS"))
    if args.find_max:
        result = find_max(bootstrap, args.max_messages)
    else:
        result = soak(bootstrap, args.minutes, args.rate, args.sample_seconds,
                      args.seconds_per_day, args.bad_every)
    print(_table(result))
    if args.json:
        print(json.dumps(result if args.find_max else
                         {k: v for k, v in result.items() if k != "samples"}
                         | {"samples": result["samples"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
