"""``tradewatch alerts tail``: print alerts as they arrive, readable by a person."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from typing import TextIO

import msgspec
from kafka import KafkaConsumer

from streams.config import KafkaSettings
from streams.events import TradeAlert
from streams.kafka_clients import as_kafka, kafka_python_kwargs

__all__ = ["format_alert", "iter_alerts"]

_alert_decoder = msgspec.json.Decoder(TradeAlert)
_BADGE = {"low": "LOW ", "medium": "MED ", "high": "HIGH", "critical": "CRIT"}


def format_alert(alert: TradeAlert) -> str:
    """One alert as two lines: severity, detector and summary, then the evidence ids.

    >>> from streams.events import AlertEvidence, AlertSeries
    >>> import datetime as dt
    >>> t = dt.datetime(2024, 3, 4, tzinfo=dt.UTC)
    >>> a = TradeAlert(alert_id="ab"*16, detector="spike", severity="high", score=0.97,
    ...     threshold=0.9, series=AlertSeries("hs6:DE>KG:854231", "hs6", "DE", "KG", "KG",
    ...     "854231", "1"), window_start=t, window_end=t, evidence=AlertEvidence(
    ...     9e5, 8e4, 2e4, 2e5, "EUR", 31, ["24DE1"]), summary="spike: DE->KG", emitted_at=t)
    >>> print(format_alert(a))
    [HIGH] 2024-03-04 spike      0.97  spike: DE->KG
           31 declarations, e.g. 24DE1  (alert_id abababababababababababababababab)
    """
    ids = ", ".join(alert.evidence.declaration_ids[:3])
    return (
        f"[{_BADGE[alert.severity]}] {alert.window_start:%Y-%m-%d} {alert.detector:<10} "
        f"{alert.score:.2f}  {alert.summary}\n"
        f"       {alert.evidence.declaration_count} declarations, e.g. {ids}  "
        f"(alert_id {alert.alert_id})"
    )


def iter_alerts(
    bootstrap: str | KafkaSettings, topic: str, from_beginning: bool = False,
    timeout_s: float | None = None,
) -> Iterator[tuple[bytes, TradeAlert | None]]:
    """Yield (raw bytes, decoded alert or None if it does not decode) from the alert topic.

    ``bootstrap``: an address, or the ``[kafka]`` settings with their security options.
    """
    consumer = KafkaConsumer(
        topic, **kafka_python_kwargs(as_kafka(bootstrap)),
        group_id=f"tradewatch-tail-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest" if from_beginning else "latest",
        enable_auto_commit=False,
        consumer_timeout_ms=int(timeout_s * 1000) if timeout_s else float("inf"),
    )
    try:
        for message in consumer:
            try:
                yield message.value, _alert_decoder.decode(message.value)
            except msgspec.DecodeError:
                yield message.value, None
    finally:
        consumer.close()


def tail(bootstrap: str | KafkaSettings, topic: str, *, from_beginning: bool, as_json: bool,
         timeout_s: float | None = None, out: TextIO = sys.stdout) -> int:
    count = 0
    for raw, alert in iter_alerts(bootstrap, topic, from_beginning, timeout_s):
        count += 1
        if as_json or alert is None:
            print(raw.decode("utf-8", "replace"), file=out, flush=True)
        else:
            print(format_alert(alert), file=out, flush=True)
    return count
