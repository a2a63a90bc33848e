"""``tradewatch alerts tail`` and ``tradewatch incidents tail``: alerts and incidents for a person.

Both print as messages arrive (``--sort time``, the default), filtered by
``--min-severity``, ``--detector`` and ``--destination``. ``--sort surprise`` or
``--sort excess`` rank instead: they read the topic until it has been quiet for
``--timeout`` seconds (:data:`RANKED_IDLE_SECONDS` when not given), then print
the largest first; with ``--from-beginning`` that is everything retained. A
ranked incident list keeps the highest revision of each incident.
"""

from __future__ import annotations

import dataclasses
import sys
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Literal, TextIO, TypeVar

import msgspec
from kafka import KafkaConsumer

from detectors.calibration import SEVERITY_LEVELS
from streams.alerts import incident_destination
from streams.config import KafkaSettings
from streams.events import TradeAlert, TradeIncident
from streams.kafka_clients import as_kafka, kafka_python_kwargs

__all__ = [
    "AlertFilter",
    "RANKED_IDLE_SECONDS",
    "SORT_KEYS",
    "format_alert",
    "format_incident",
    "iter_alerts",
    "iter_messages",
    "ranked",
    "tail",
    "tail_incidents",
]

_alert_decoder = msgspec.json.Decoder(TradeAlert)
_incident_decoder = msgspec.json.Decoder(TradeIncident)
_BADGE = {"low": "LOW ", "medium": "MED ", "high": "HIGH", "critical": "CRIT"}
_RANK = {s: i for i, s in enumerate(SEVERITY_LEVELS)}
#: Idle seconds a ranked listing waits for more messages when ``--timeout`` is not given.
RANKED_IDLE_SECONDS = 5.0
Sort = Literal["time", "surprise", "excess"]
SORT_KEYS: tuple[Sort, ...] = ("time", "surprise", "excess")
M = TypeVar("M", TradeAlert, TradeIncident)


def _short(value: float) -> str:
    for unit, scale in (("bn", 1e9), ("m", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.1f}{unit}"
    return f"{value:.0f}"


@dataclasses.dataclass(frozen=True)
class AlertFilter:
    """Which alerts or incidents to show; empty sets accept everything.

    ``destinations`` matches an alert's destination or its incident's (the hub of
    a pass-through series), and an incident's destination.

    >>> AlertFilter(min_severity="high").accepts_severity("medium")
    False
    """

    min_severity: str = "low"
    detectors: frozenset[str] = frozenset()
    destinations: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if self.min_severity not in _RANK:
            raise ValueError(
                f"unknown severity {self.min_severity!r}; valid: {list(SEVERITY_LEVELS)}")

    def accepts_severity(self, severity: str) -> bool:
        return _RANK[severity] >= _RANK[self.min_severity]

    def accepts(self, alert: TradeAlert) -> bool:
        if not self.accepts_severity(alert.severity):
            return False
        if self.detectors and alert.detector not in self.detectors:
            return False
        s = alert.series
        return not self.destinations or bool(
            {s.destination_country, incident_destination(s)} & self.destinations)

    def accepts_incident(self, incident: TradeIncident) -> bool:
        if not self.accepts_severity(incident.severity):
            return False
        if self.detectors and not set(incident.detectors) & self.detectors:
            return False
        return not self.destinations or incident.destination_country in self.destinations


def ranked(items: Iterable[M], sort: Sort) -> list[M]:
    """Largest ``surprise`` (or ``excess_eur``) first; ``time`` keeps arrival order.

    Ties go to the higher severity, then the earlier window. Incidents keep their
    highest revision only.
    """
    items = list(items)
    if items and isinstance(items[0], TradeIncident):
        latest: dict[str, TradeIncident] = {}
        for i in items:
            assert isinstance(i, TradeIncident)
            if i.incident_id not in latest or i.revision >= latest[i.incident_id].revision:
                latest[i.incident_id] = i
        items = list(latest.values())  # type: ignore[arg-type]
    if sort == "time":
        return items
    field = "surprise" if sort == "surprise" else "excess_eur"
    return sorted(items, key=lambda m: (-getattr(m, field), -_RANK[m.severity], m.window_start))


def format_alert(alert: TradeAlert) -> str:
    """One alert as two lines: severity, detector, ranking figures and summary, then the evidence.

    >>> from streams.events import AlertEvidence, AlertSeries
    >>> import datetime as dt
    >>> t = dt.datetime(2024, 3, 4, tzinfo=dt.UTC)
    >>> a = TradeAlert(alert_id="ab"*16, detector="spike", severity="high", score=0.97,
    ...     threshold=0.9, surprise=12.34, excess_eur=7e5,
    ...     series=AlertSeries("hs6:DE>KG:854231", "hs6", "DE", "KG", "KG",
    ...     "854231", "1"), window_start=t, window_end=t, evidence=AlertEvidence(
    ...     9e5, 8e4, 2e4, 2e5, "EUR", 31, ["24DE1"]), summary="spike: DE->KG", emitted_at=t)
    >>> print(format_alert(a))
    [HIGH] 2024-03-04 spike      0.97  surprise  12.3  excess 700.0k EUR  spike: DE->KG
           31 declarations, e.g. 24DE1  (alert_id abababababababababababababababab)
    >>> import msgspec
    >>> print(format_alert(msgspec.structs.replace(a, config_version="2026-12-01.1",
    ...     config_hash="5f0c2a9e41d7b3c8")).splitlines()[1])
           31 declarations, e.g. 24DE1  (alert_id abababababababababababababababab, config 2026-12-01.1@5f0c2a9e)
    >>> flow = msgspec.structs.replace(a, evidence=AlertEvidence(9e5, 8e4, 2e4, 2e5, "EUR", 0, []))
    >>> print(format_alert(flow).splitlines()[1])
           (alert_id abababababababababababababababab)
    """
    ids = ", ".join(alert.evidence.declaration_ids[:3])
    # a flow alert (passthrough) names no declarations of its own
    evidence = (f"{alert.evidence.declaration_count} declarations, e.g. {ids}  " if ids
                else "")
    # the config it was judged under (the hash's first 8 digits tell configs apart)
    config = f", config {alert.config_version}@{alert.config_hash[:8]}" if alert.config_hash else ""
    return (
        f"[{_BADGE[alert.severity]}] {alert.window_start:%Y-%m-%d} {alert.detector:<10} "
        f"{alert.score:.2f}  surprise {alert.surprise:5.1f}  "
        f"excess {_short(alert.excess_eur)} EUR  {alert.summary}\n"
        f"       {evidence}(alert_id {alert.alert_id}{config})"
    )


def format_incident(incident: TradeIncident) -> str:
    """One incident on one line: window, destination, goods family, severity, figures, members.

    >>> import datetime as dt
    >>> from streams.events import IncidentMember, Influencer
    >>> t = dt.datetime(2022, 4, 1, tzinfo=dt.UTC)
    >>> m = IncidentMember("a"*32, "volume", "tier:*>KG:T1", "tier", "critical", 1.0, 41.5, 2.4e6)
    >>> i = TradeIncident(incident_id="cd"*16, window_start=t, window_end=t,
    ...     destination_country="KG", transit_country="KG", goods_family="T1", chpl_tier="1",
    ...     severity="critical", surprise=41.5, excess_eur=2.4e6, detectors=["volume"],
    ...     members=[m], influencers=[Influencer("lane", "DE>KG", 0.62),
    ...     Influencer("lane", "NL>KG", 0.2)], summary="", emitted_at=t)
    >>> print(format_incident(i))
    [CRIT] 2022-04-01 KG T1    surprise  41.5  excess 2.4m EUR  1 alerts (volume)  top: DE>KG 62%, NL>KG 20%  (incident cdcdcdcd rev 1)
    """
    top = ", ".join(f"{i.value} {i.share:.0%}" for i in incident.influencers[:3]) or "-"
    return (
        f"[{_BADGE[incident.severity]}] {incident.window_start:%Y-%m-%d} "
        f"{incident.destination_country} {incident.goods_family:<5} "
        f"surprise {incident.surprise:5.1f}  excess {_short(incident.excess_eur)} EUR  "
        f"{len(incident.members)} alerts ({', '.join(incident.detectors)})  top: {top}  "
        f"(incident {incident.incident_id[:8]} rev {incident.revision})"
    )


def iter_messages(
    bootstrap: str | KafkaSettings, topic: str, decode: Callable[[bytes], M],
    from_beginning: bool = False, timeout_s: float | None = None,
) -> Iterator[tuple[bytes, M | None]]:
    """Yield (raw bytes, decoded message or None if it does not decode) from ``topic``.

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
                yield message.value, decode(message.value)
            except msgspec.DecodeError:
                yield message.value, None
    finally:
        consumer.close()


def iter_alerts(
    bootstrap: str | KafkaSettings, topic: str, from_beginning: bool = False,
    timeout_s: float | None = None,
) -> Iterator[tuple[bytes, TradeAlert | None]]:
    """Yield (raw bytes, decoded alert or None if it does not decode) from the alert topic."""
    return iter_messages(bootstrap, topic, _alert_decoder.decode, from_beginning, timeout_s)


def _print_all(messages: Iterable[tuple[bytes, M | None]], accepts: Callable[[M], bool],
               fmt: Callable[[M], str], *, sort: Sort, as_json: bool, out: TextIO) -> int:
    """Print as they come (``time``) or, ranked, once the stream ends; returns messages shown."""
    count = 0

    def show(raw: bytes, item: M | None) -> None:
        nonlocal count
        count += 1
        if as_json or item is None:
            print(raw.decode("utf-8", "replace"), file=out, flush=True)
        else:
            print(fmt(item), file=out, flush=True)

    if sort == "time":
        for raw, item in messages:
            if item is None or accepts(item):
                show(raw, item)
        return count
    kept = [(raw, item) for raw, item in messages if item is not None and accepts(item)]
    raw_of = {id(item): raw for raw, item in kept}
    for item in ranked([item for _, item in kept], sort):
        show(raw_of[id(item)], item)
    return count


def tail(bootstrap: str | KafkaSettings, topic: str, *, from_beginning: bool, as_json: bool,
         timeout_s: float | None = None, out: TextIO = sys.stdout, sort: Sort = "time",
         where: AlertFilter | None = None) -> int:
    """Print the alerts of ``topic``; returns how many were shown."""
    where = where or AlertFilter()
    if sort != "time" and timeout_s is None:
        timeout_s = RANKED_IDLE_SECONDS
    messages = iter_messages(bootstrap, topic, _alert_decoder.decode, from_beginning, timeout_s)
    return _print_all(messages, where.accepts, format_alert, sort=sort, as_json=as_json, out=out)


def tail_incidents(bootstrap: str | KafkaSettings, topic: str, *, from_beginning: bool,
                   as_json: bool, timeout_s: float | None = None, out: TextIO = sys.stdout,
                   sort: Sort = "time", where: AlertFilter | None = None) -> int:
    """Print the incidents of ``topic``, one line each; returns how many were shown."""
    where = where or AlertFilter()
    if sort != "time" and timeout_s is None:
        timeout_s = RANKED_IDLE_SECONDS
    messages = iter_messages(bootstrap, topic, _incident_decoder.decode, from_beginning, timeout_s)
    return _print_all(messages, where.accepts_incident, format_incident, sort=sort,
                      as_json=as_json, out=out)
