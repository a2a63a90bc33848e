"""Producer tooling: replay a JSONL/CSV file, or generated declarations, into Kafka.

Records are keyed as :mod:`streams.keys` says (CHPL tier, else HS2 chapter), so every
series is complete in one partition and per-product order is kept.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from kafka import KafkaProducer
from tqdm import tqdm

from streams.config import KafkaSettings
from streams.kafka_clients import as_kafka, kafka_python_kwargs
from streams.keys import record_key

__all__ = ["count_records", "read_records", "produce_records", "make_producer"]

_NUMERIC = {"net_mass_kg", "statistical_value_eur", "supplementary_quantity"}


def read_records(path: Path) -> Iterator[bytes]:
    """Yield raw declaration records from a ``.jsonl`` file (one per line) or a ``.csv``.

    JSONL lines are passed through byte for byte, so malformed input reaches the
    worker (and its dead-letter topic) exactly as it is. CSV rows are converted to
    JSON: numeric columns become numbers, ``transit_route`` is split on ``|``.
    """
    if path.suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                yield _csv_row_to_json(row)
        return
    with path.open("rb") as fh:
        for line in fh:
            line = line.rstrip(b"\r\n")
            if line:
                yield line


def count_records(path: Path) -> int:
    """How many records :func:`read_records` yields from ``path``, for progress lines.

    JSONL: the non-empty lines (exact). CSV: the non-empty lines after the header
    (exact unless a quoted field spans lines).
    """
    with path.open("rb") as fh:
        lines = sum(1 for line in fh if line.rstrip(b"\r\n"))
    return max(lines - 1, 0) if path.suffix == ".csv" else lines


def _csv_row_to_json(row: dict[str, str]) -> bytes:
    out: dict[str, object] = {}
    for key, value in row.items():
        if value == "":
            continue
        if key in _NUMERIC:
            out[key] = float(value)
        elif key in ("schema_version", "transport_mode"):
            out[key] = int(value)
        elif key == "transit_route":
            out[key] = [c for c in value.split("|") if c]
        else:
            out[key] = value
    return json.dumps(out, separators=(",", ":")).encode()


def make_producer(bootstrap: str | KafkaSettings,
                  client_id: str = "tradewatch-producer") -> KafkaProducer:
    """A producer for an address or for the ``[kafka]`` settings (security included)."""
    return KafkaProducer(
        **kafka_python_kwargs(as_kafka(bootstrap)), client_id=client_id, acks=1,
        linger_ms=10, batch_size=256 * 1024, max_request_size=4 * 1024 * 1024,
    )


def produce_records(
    records: Iterable[bytes],
    *,
    bootstrap: str | KafkaSettings,
    topic: str,
    rate: float | None = None,
    limit: int | None = None,
    progress: bool = True,
    total: int | None = None,
) -> int:
    """Send records to ``topic`` at ``rate`` per second (None: as fast as possible)."""
    producer = make_producer(bootstrap)
    sent = 0
    started = time.monotonic()
    bar = tqdm(total=limit or total, unit="decl", disable=not progress, file=sys.stderr)
    try:
        for raw in records:
            if limit is not None and sent >= limit:
                break
            producer.send(topic, key=record_key(raw) or None, value=raw)
            sent += 1
            if rate:
                ahead = sent / rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
            if sent % 1000 == 0:
                bar.update(1000)
        bar.update(sent % 1000)
        producer.flush()
    finally:
        bar.close()
        producer.close()
    return sent

