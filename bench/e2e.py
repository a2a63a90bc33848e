"""End-to-end benchmark: the worker through the real broker, against bare consume loops.

One run, one topic, the same records:

1. produce N declarations (keyed by CHPL tier or HS2 chapter, like ``tradewatch produce``) to a fresh topic;
2. read them all with a bare aiokafka consumer (the client faust is built on: our
   ceiling) and with a bare kafka-python consumer;
3. start a real worker process on that topic and time how long it takes to
   process all N (first record to last, read from its /metrics, so worker start-up
   and group join are excluded, as they are for the bare consumers), with its
   state saved as it runs (``worker``) and without (``worker-nocheckpoint``);
4. latency: a second worker on fresh topics is fed a paced stream (``--rate``/s) in
   which daily windows close every few hundred records and a spike fires every
   other day on another route (so tens of alerts, not a handful, make the quantiles); the
   event-to-alert latency (producer timestamp of the record that closed the window
   -> alert acknowledged by the broker) is read from the worker's histogram, over
   what it observed after ``--warmup`` paced records (a fresh worker joins its group
   and starts seconds behind the producer: that is its start, not its latency; the
   figures including the warm-up are reported beside).

Ratios against the ceilings are the figure to quote: the machine is shared and
absolute rates drift from run to run, but both legs see the same drift.

    python -m bench.e2e --messages 100000 --rate 2000
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import math
import random
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench.consume_ceiling import consume_aiokafka, consume_kafka_python, produce
from streams import kafka_local
from streams.config import DEFAULT_CONFIG_PATH
from streams.events import TradeDeclaration, encode
from streams.harness import RunningWorker, private_settings, running_worker
from streams.keys import record_key
from streams.produce import produce_records
from streams.topics import changelog_topic, delete_topics, ensure_topics, pipeline_topic_specs

_ORIGINS = ["DE", "IT", "PL", "FR", "NL", "CN", "US", "CZ"]
_DESTS = ["KZ", "KG", "AM", "GE", "UZ", "AE", "TR", "RU", "BY", "RS"]
_HS = ["85423190", "85423290", "85176200", "84821010", "90138000", "09011100", "94036010",
       "87089997", "61091000", "84571010", "85044084", "85414300"]


def declarations(n: int, *, seconds_per_record: float, seed: int = 11,
                 spike_every_days: int = 0) -> Iterator[bytes]:
    """``n`` valid declarations over ~640 (route, product) series in event-time order."""
    rng = random.Random(seed)
    start = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    for i in range(n):
        at = start + dt.timedelta(seconds=i * seconds_per_record)
        hs = rng.choice(_HS)
        origin, dest = rng.choice(_ORIGINS), rng.choice(_DESTS)
        value = math.exp(rng.gauss(9.5, 1.2))
        day = int(i * seconds_per_record // 86_400)
        if spike_every_days and day % spike_every_days == spike_every_days - 1 and hs == _HS[0]:
            # each spike on another route: a series' cooldown would otherwise silence
            # the next ones, and a quantile of the latency needs many alerts
            origin, dest, value = "DE", _DESTS[day // spike_every_days % len(_DESTS)], value * 20
        yield encode(TradeDeclaration(
            schema_version=1, declaration_id=f"B{i:010d}", declared_at=at,
            exporter_id=f"{origin}{rng.randrange(500):05d}", exporter_country=origin,
            consignee_id=f"{dest}{rng.randrange(500):05d}", consignee_country=dest,
            destination_country=dest, hs_code=hs, net_mass_kg=round(value / 200, 3),
            statistical_value_eur=round(value, 2), customs_procedure="1000", transport_mode=3,
        ))


def _wait_processed(worker: RunningWorker, expected: int, timeout: float) -> tuple[float, float]:
    """Poll /metrics until ``expected`` records are processed; return (first_seen, done) times."""
    deadline = time.perf_counter() + timeout
    first = None
    while time.perf_counter() < deadline:
        consumed = worker.sample("tradewatch_declarations_consumed_total")
        now = time.perf_counter()
        if consumed > 0 and first is None:
            first = now
        if consumed >= expected:
            return first or now, now
        time.sleep(0.1)
    raise TimeoutError(f"worker processed {consumed}/{expected} in {timeout}s\n{worker.log_tail()}")


def _buckets(worker: RunningWorker, name: str) -> list[tuple[float, float]]:
    """The worker's cumulative histogram buckets ``(le, count)``, in order."""
    from prometheus_client.parser import text_string_to_metric_families

    buckets: list[tuple[float, float]] = []
    for family in text_string_to_metric_families(worker.metrics_text()):
        for s in family.samples:
            if s.name == f"{name}_bucket":
                buckets.append((float(s.labels["le"]), s.value))
    return sorted(buckets)


def _histogram_quantile(worker: RunningWorker, name: str, q: float,
                        since: list[tuple[float, float]] | None = None) -> float:
    """Prometheus-style histogram_quantile over the worker's cumulative buckets (minus
    the buckets ``since``, sampled earlier: the quantile of what was observed since)."""
    buckets = _buckets(worker, name)
    if since:
        before = dict(since)
        buckets = [(le, count - before.get(le, 0.0)) for le, count in buckets]
    total = buckets[-1][1] if buckets else 0
    if not total:
        return float("nan")
    rank, prev_le, prev_count = q * total, 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if math.isinf(le):
                return prev_le
            return prev_le + (le - prev_le) * (rank - prev_count) / max(count - prev_count, 1e-9)
        prev_le, prev_count = le, count
    return prev_le


def _with_engine(toml: str, engine: str, group: str) -> str:
    """Worker config for one leg: ``worker`` (state saved) or ``worker-nocheckpoint``."""
    extra = "checkpoints = false\n" if engine.endswith("-nocheckpoint") else ""
    text = toml.replace("[worker]\n", f"[worker]\n{extra}", 1)
    return re.sub(r'consumer_group = "[^"]*"', f'consumer_group = "{group}"', text, count=1)


def run(messages: int, rate: float, latency_messages: int,
        engines: tuple[str, ...] = ("worker", "worker-nocheckpoint"),
        warmup: int = 12_000) -> dict[str, object]:
    bootstrap = kafka_local.start(timeout=120)
    base = DEFAULT_CONFIG_PATH.read_text()
    out: dict[str, object] = {"messages": messages}
    with tempfile.TemporaryDirectory() as tmp:
        settings, toml = private_settings(bootstrap, base)
        t = settings.topics
        ensure_topics(bootstrap, pipeline_topic_specs(t))
        produced = produce(bootstrap, t.declarations,
                           declarations(messages, seconds_per_record=20.0), key_of=record_key)
        aio = consume_aiokafka(bootstrap, t.declarations, produced.messages)
        kpy = consume_kafka_python(bootstrap, t.declarations, produced.messages)
        throughput: dict[str, object] = {
            "aiokafka_msgs_per_s": round(aio.msgs_per_s),
            "kafka_python_msgs_per_s": round(kpy.msgs_per_s),
        }
        for engine in engines:
            # each engine reads the same topic from the start under its own group
            engine_toml = _with_engine(toml, engine, f"{settings.kafka.consumer_group}-{engine}")
            with running_worker(engine_toml, settings, Path(tmp) / f"throughput-{engine}",
                                keep_topics=True) as worker:
                first, done = _wait_processed(worker, produced.messages, timeout=900)
            rate_ = produced.messages / max(done - first, 1e-9)
            throughput[f"pipeline_{engine}_msgs_per_s"] = round(rate_)
            throughput[f"pipeline_{engine}_over_aiokafka"] = round(rate_ / aio.msgs_per_s, 3)
            throughput[f"pipeline_{engine}_over_kafka_python"] = round(rate_ / kpy.msgs_per_s, 3)
        out["throughput"] = throughput
        groups = [f"{settings.kafka.consumer_group}-{engine}" for engine in engines]
        delete_topics(bootstrap, [t.declarations, t.dlq, t.alerts, t.incidents, t.config,
                                  *map(changelog_topic, groups)])

        settings, toml = private_settings(bootstrap, base)
        with running_worker(toml, settings, Path(tmp) / "latency") as worker:
            # 600 records per event-time day: a window closes every 600/rate seconds.
            records = iter(declarations(warmup + latency_messages, seconds_per_record=144.0,
                                        spike_every_days=2))
            name = "tradewatch_event_to_alert_latency_seconds"
            # warm-up: the worker joins its group, restores its (empty) state and starts
            # behind the producer; what it publishes meanwhile measures its start, not
            # its latency, so the quantiles are of the buckets filled after it
            produce_records(itertools.islice(records, warmup), bootstrap=bootstrap,
                            topic=settings.topics.declarations, rate=rate, progress=False)
            _wait_processed(worker, warmup, timeout=600)
            time.sleep(2.0)
            since = _buckets(worker, name)
            warm_alerts = worker.sample(f"{name}_count")
            produce_records(records, bootstrap=bootstrap, topic=settings.topics.declarations,
                            rate=rate, progress=False)
            _wait_processed(worker, warmup + latency_messages, timeout=600)
            time.sleep(2.0)
            out["latency"] = {
                "rate_per_s": rate,
                "warmup_records": warmup,
                "alerts": worker.sample(f"{name}_count") - warm_alerts,
                "p50_s": round(_histogram_quantile(worker, name, 0.5, since), 4),
                "p99_s": round(_histogram_quantile(worker, name, 0.99, since), 4),
                "including_warmup": {
                    "alerts": worker.sample(f"{name}_count"),
                    "p50_s": round(_histogram_quantile(worker, name, 0.5), 4),
                    "p99_s": round(_histogram_quantile(worker, name, 0.99), 4),
                },
            }
    # the two figures, at the top level
    if "worker" in engines:
        out["worker_over_aiokafka"] = throughput["pipeline_worker_over_aiokafka"]
    out["p99_event_to_alert_s"] = out["latency"]["p99_s"]  # type: ignore[index]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=2000.0, help="paced rate for the latency leg")
    parser.add_argument("--latency-messages", type=int, default=60_000,
                        help="paced records after the warm-up (their alerts make the quantiles)")
    parser.add_argument("--warmup", type=int, default=12_000,
                        help="paced records before the latency is measured (the worker's start)")
    parser.add_argument("--engines", default="worker,worker-nocheckpoint",
                        help="worker legs to time: worker (state saved), worker-nocheckpoint")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    result = run(args.messages, args.rate, args.latency_messages,
                 tuple(args.engines.split(",")), warmup=args.warmup)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
