"""Build ``TradeAlert`` messages: deterministic ids, human summaries, evidence.

Pure functions, no Kafka: the worker and the offline evaluator call the same code,
which is what makes their alerts identical.

>>> alert_id("spike", "hs6:DE>KG:854231", 1_710_000_000.0) == alert_id("spike", "hs6:DE>KG:854231", 1_710_000_000.0)
True
>>> len(alert_id("spike", "hs6:DE>KG:854231", 0.0))
32
"""

from __future__ import annotations

import datetime as dt
import hashlib

from detectors.base import Explanation
from detectors.reference import SANCTIONED_DESTINATIONS, TRANSIT_COUNTRIES
from streams.events import AlertEvidence, AlertSeries, Influencer, TradeAlert

__all__ = ["alert_id", "transit_country_of", "make_alert", "utc"]


def alert_id(detector: str, series_key: str, window_start: float) -> str:
    """Same detector, series and window -> same id, so consumers can deduplicate replays."""
    digest = hashlib.sha256(f"{detector}|{series_key}|{window_start:.0f}".encode())
    return digest.hexdigest()[:32]


def transit_country_of(origin: str, destination: str) -> str:
    """The transit hub a flow involves: the destination if it is a hub, else the
    origin when a hub ships to a sanctioned destination; ``"none"`` otherwise."""
    if destination in TRANSIT_COUNTRIES:
        return destination
    if origin in TRANSIT_COUNTRIES and destination in SANCTIONED_DESTINATIONS:
        return origin
    return "none"


def utc(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC)


def _short(value: float) -> str:
    for unit, scale in (("bn", 1e9), ("m", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.1f}{unit}"
    return f"{value:.0f}"


def make_alert(
    *,
    detector: str,
    series: AlertSeries,
    window_start: float,
    window_end: float,
    explanation: Explanation,
    threshold: float,
    severity: str,
    unit: str,
    declaration_count: int,
    declaration_ids: list[str],
    emitted_at: float,
    id_key: str | None = None,
    notes: dict[str, float | int | str] | None = None,
    influencers: list[Influencer] | None = None,
) -> TradeAlert:
    """Assemble an alert; ``id_key`` replaces the series key in the id (per-declaration alerts)."""
    x = explanation
    tier = f", CHPL tier {series.chpl_tier}" if series.chpl_tier != "none" else ""
    summary = (
        f"{detector}: {series.origin_country}->{series.destination_country} "
        f"{series.level} {series.product_code}{tier}, window {utc(window_start):%Y-%m-%d}: "
        f"observed {_short(x.observed)} {unit} vs expected {_short(x.expected)} "
        f"(range {_short(x.expected_low)}-{_short(x.expected_high)}), score {x.score:.2f}"
    )
    # the published schema allows numbers and strings only: flags travel as 0/1
    details = {k: int(v) if isinstance(v, bool) else v
               for k, v in x.details.items() if isinstance(v, int | float | str)}
    details.update(notes or {})
    return TradeAlert(
        alert_id=alert_id(detector, id_key or series.key, window_start),
        detector=detector,
        severity=severity,  # type: ignore[arg-type]
        score=round(float(x.score), 6),
        threshold=threshold,
        series=series,
        window_start=utc(window_start),
        window_end=utc(window_end),
        evidence=AlertEvidence(
            observed=float(x.observed),
            expected=float(x.expected),
            expected_low=float(x.expected_low),
            expected_high=float(x.expected_high),
            unit=unit,
            declaration_count=declaration_count,
            declaration_ids=declaration_ids,
            details=details,
            influencers=influencers or [],
        ),
        summary=summary,
        emitted_at=utc(emitted_at),
    )
