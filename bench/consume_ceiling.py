"""Consume ceilings: how fast can a bare consumer read the declarations topic here?

The end-to-end benchmark compares the pipeline's throughput with these numbers:
a worker cannot process declarations faster than its Kafka client can hand
them over, so the ceiling says how much of the gap is Kafka and how much is
the pipeline.

One run:

1. creates a fresh topic (4 partitions, like ``trade.declarations``),
2. produces N payloads with kafka-python (acks=1, linger, large batches),
3. reads all N with a bare aiokafka consumer (``getmany`` loop, fresh group) --
   the client faust is built on, so this is the worker's ceiling,
4. reads all N again with a bare kafka-python consumer (fresh group),
5. deletes the topic.

Rates are measured with ``time.perf_counter`` from the first record received to
the last (the group join and first fetch are reported separately as
``startup_s``), so they are steady-state read rates.

    python -m bench.consume_ceiling --messages 200000

uses ``TRADEWATCH_BOOTSTRAP_SERVERS`` or the project's local broker (started,
and stopped again, if it is not running). Import :func:`run` to use it from
another benchmark.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass

__all__ = [
    "Result",
    "consume_aiokafka",
    "consume_kafka_python",
    "default_payloads",
    "format_table",
    "produce",
    "run",
]

_COUNTRIES = ["DE", "FR", "IT", "NL", "PL", "BE", "AT", "CZ", "FI", "LT",
              "TR", "AE", "AM", "KG", "KZ", "GE", "RS", "CN", "IN", "US"]
_HS6 = ["854231", "854232", "852580", "847150", "880730", "870323", "850440",
        "851762", "901380", "847130", "271019", "300490", "392690", "731815"]
_GOODS = ["integrated circuits, processors", "memory modules", "camera modules",
          "data processing units", "aircraft parts", "passenger cars 1500-3000cc",
          "static converters", "network switches", "optical devices", "laptops"]


@dataclass(frozen=True)
class Result:
    """One leg of the benchmark."""

    client: str
    messages: int
    bytes: int
    startup_s: float  # consumer: from creating the client to its first record
    seconds: float  # produce: send through flush; consume: first record to last

    @property
    def msgs_per_s(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else float("inf")

    @property
    def mb_per_s(self) -> float:
        return self.bytes / 1e6 / self.seconds if self.seconds > 0 else float("inf")

    def as_dict(self) -> dict:
        return {**asdict(self), "msgs_per_s": self.msgs_per_s, "mb_per_s": self.mb_per_s}


def default_payloads(n: int, seed: int = 7) -> Iterator[bytes]:
    """``n`` deterministic JSON trade declarations of about 470 bytes each.

    Shaped like the declaration contract (``streams.events``; its own example is
    494 bytes); only size and shape matter for a consume ceiling.
    """
    rng = random.Random(seed)
    start = 1_767_225_600  # 2026-01-01T00:00:00Z
    for i in range(n):
        exporter_country = rng.choice(_COUNTRIES[:10])
        ts = time.gmtime(start + i * 7 + rng.randrange(7))
        doc = {
            "schema_version": 1,
            "declaration_id": f"26DE{i:014d}",
            "declared_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", ts),
            "exporter_id": f"{exporter_country}{rng.randrange(10**11):011d}",
            "exporter_country": exporter_country,
            "consignee_id": f"C-{rng.randrange(10**8):08d}",
            "consignee_country": rng.choice(_COUNTRIES[10:]),
            "destination_country": rng.choice(_COUNTRIES[10:]),
            "hs_code": rng.choice(_HS6) + f"{rng.randrange(100):02d}",
            "net_mass_kg": round(rng.lognormvariate(4, 1.5), 3),
            "statistical_value_eur": round(rng.lognormvariate(9, 1.7), 2),
            "customs_procedure": rng.choice(["1000", "3151", "1040"]),
            "transport_mode": rng.choice([1, 3, 4]),
            "transit_route": [rng.choice(_COUNTRIES[10:]) for _ in range(rng.randrange(3))],
            "goods_description": rng.choice(_GOODS),
            "supplementary_quantity": rng.randrange(1, 5000),
            "supplementary_unit": "p/st",
        }
        yield json.dumps(doc, separators=(",", ":")).encode()


def produce(
    bootstrap: str,
    topic: str,
    payloads: Iterable[bytes],
    key_of: Callable[[bytes], bytes | None] | None = None,
) -> Result:
    """Send every payload to ``topic`` (acks=1, 10 ms linger, 256 KiB batches) and flush."""
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=bootstrap, acks=1, enable_idempotence=False,  # idempotence needs acks=all
        linger_ms=10, batch_size=256 * 1024, max_request_size=4 * 1024 * 1024,
        allow_auto_create_topics=False, client_id="tradewatch-bench-producer",
    )
    n = size = 0
    try:
        t0 = time.perf_counter()
        for value in payloads:
            producer.send(topic, value=value, key=key_of(value) if key_of else None)
            n += 1
            size += len(value)
        producer.flush(timeout=300)
        seconds = time.perf_counter() - t0
    finally:
        producer.close(timeout=30)
    return Result("produce (kafka-python)", n, size, 0.0, seconds)


async def _consume_aiokafka(bootstrap: str, topic: str, expected: int, timeout_s: float) -> Result:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=f"bench-aiokafka-{uuid.uuid4().hex}",
        auto_offset_reset="earliest", enable_auto_commit=False,
        client_id="tradewatch-bench-aiokafka",
    )
    t_create = time.perf_counter()
    deadline = t_create + timeout_s
    n = size = 0
    t_first = None
    await consumer.start()
    try:
        while n < expected:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"aiokafka read {n}/{expected} records in {timeout_s}s")
            batches = await consumer.getmany(timeout_ms=1000)
            for records in batches.values():
                if t_first is None:
                    t_first = time.perf_counter()
                n += len(records)
                for r in records:
                    size += len(r.value)
        t_last = time.perf_counter()
    finally:
        await consumer.stop()
    t_first = t_first or t_last
    return Result("aiokafka getmany", n, size, t_first - t_create, t_last - t_first)


def consume_aiokafka(bootstrap: str, topic: str, expected: int, timeout_s: float = 300) -> Result:
    """Read ``expected`` records from the start of ``topic`` with a bare aiokafka consumer."""
    return asyncio.run(_consume_aiokafka(bootstrap, topic, expected, timeout_s))


def consume_kafka_python(
    bootstrap: str, topic: str, expected: int, timeout_s: float = 300
) -> Result:
    """Read ``expected`` records from the start of ``topic`` with a bare kafka-python consumer."""
    from kafka import KafkaConsumer

    t_create = time.perf_counter()
    deadline = t_create + timeout_s
    consumer = KafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=f"bench-kafka-python-{uuid.uuid4().hex}",
        auto_offset_reset="earliest", enable_auto_commit=False,
        client_id="tradewatch-bench-kafka-python",
    )
    n = size = 0
    t_first = None
    try:
        while n < expected:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"kafka-python read {n}/{expected} records in {timeout_s}s")
            batches = consumer.poll(timeout_ms=1000, max_records=10_000)
            for records in batches.values():
                if t_first is None:
                    t_first = time.perf_counter()
                n += len(records)
                for r in records:
                    size += len(r.value)
        t_last = time.perf_counter()
    finally:
        consumer.close()
    t_first = t_first or t_last
    return Result("kafka-python poll", n, size, t_first - t_create, t_last - t_first)


def run(
    bootstrap: str,
    messages: int = 200_000,
    payloads: Iterable[bytes] | None = None,
    partitions: int = 4,
    topic: str | None = None,
    keep_topic: bool = False,
    timeout_s: float = 300,
) -> dict[str, Result]:
    """Produce ``messages`` payloads to a fresh topic, then read them with both clients.

    ``payloads`` defaults to :func:`default_payloads`; at most ``messages`` of them are
    sent. Returns ``{"produce": ..., "aiokafka": ..., "kafka-python": ...}``.
    """
    from itertools import islice

    from streams.topics import TopicSpec, delete_topics, ensure_topics

    topic = topic or f"bench.consume-ceiling.{uuid.uuid4().hex[:10]}"
    ensure_topics(bootstrap, [TopicSpec(topic, partitions, retention_ms=3_600_000)])
    try:
        source = islice(payloads if payloads is not None else default_payloads(messages), messages)
        produced = produce(bootstrap, topic, source)
        results = {"produce": produced}
        results["aiokafka"] = consume_aiokafka(bootstrap, topic, produced.messages, timeout_s)
        results["kafka-python"] = consume_kafka_python(
            bootstrap, topic, produced.messages, timeout_s)
        return results
    finally:
        if not keep_topic:
            delete_topics(bootstrap, [topic])


def format_table(results: dict[str, Result]) -> str:
    rows = [("client", "messages", "MB", "startup s", "seconds", "msgs/s", "MB/s")]
    for r in results.values():
        rows.append((r.client, f"{r.messages:,}", f"{r.bytes / 1e6:.1f}", f"{r.startup_s:.2f}",
                     f"{r.seconds:.2f}", f"{r.msgs_per_s:,.0f}", f"{r.mb_per_s:.1f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for j, row in enumerate(rows):
        rest = zip(row[1:], widths[1:], strict=True)
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in rest]
        lines.append("  ".join(cells))
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.consume_ceiling", description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--bootstrap", default=None,
                        help="cluster to use (default: TRADEWATCH_BOOTSTRAP_SERVERS "
                        "or the local broker)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    args = parser.parse_args(argv)

    from streams import kafka_local

    bootstrap = args.bootstrap or kafka_local.external_bootstrap()
    started_here = False
    if bootstrap is None:
        started_here = not kafka_local.status()["running"]
        bootstrap = kafka_local.start()
    try:
        sample = next(default_payloads(1))
        print(f"bootstrap {bootstrap}, {args.messages:,} messages, {args.partitions} partitions, "
              f"~{len(sample)} byte JSON payloads", file=sys.stderr)
        results = run(bootstrap, messages=args.messages, partitions=args.partitions)
    finally:
        if started_here:
            kafka_local.stop()
    print(format_table(results))
    if args.json:
        print(json.dumps({k: v.as_dict() for k, v in results.items()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
