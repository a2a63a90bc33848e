"""Build ``TradeAlert`` messages: deterministic ids, ranking figures, severity, evidence.

Pure functions, no Kafka: the worker and the offline evaluator call the same code,
which is what makes their alerts identical.

Every alert is ranked by two figures computed from the detector's
:class:`~detectors.base.Explanation` (:func:`ranking`): ``surprise``, the
unsaturated ``-log10 p`` of the evidence (:func:`detectors.calibration.surprise_of_z`
of :func:`detectors.calibration.evidence_z`), and ``excess_eur``, the value
above the expected range for evidence in EUR. :func:`alert_severity` turns both
and the CHPL tier into the severity (rule in :func:`detectors.calibration.severity`).
Each alert also names its incident: :func:`incident_id` of its window,
destination (:func:`incident_destination`) and goods family (:func:`goods_family`).

>>> alert_id("spike", "hs6:DE>KG:854231", 1_710_000_000.0) == alert_id("spike", "hs6:DE>KG:854231", 1_710_000_000.0)
True
>>> len(alert_id("spike", "hs6:DE>KG:854231", 0.0))
32
"""

from __future__ import annotations

import datetime as dt
import hashlib

from detectors.base import Explanation
from detectors.calibration import Severity, evidence_z, excess_above, severity, surprise_of_z
from detectors.reference import SANCTIONED_DESTINATIONS, TRANSIT_COUNTRIES
from streams.events import AlertEvidence, AlertSeries, Influencer, TradeAlert

__all__ = [
    "alert_id",
    "alert_severity",
    "goods_family",
    "incident_destination",
    "incident_id",
    "make_alert",
    "ranking",
    "transit_country_of",
    "utc",
]

#: The unit of evidence that is a value in EUR (series totals, declaration values):
#: only such evidence has an ``excess_eur``.
VALUE_UNIT = "EUR"


def alert_id(detector: str, series_key: str, window_start: float) -> str:
    """Same detector, series and window -> same id, so consumers can deduplicate replays."""
    digest = hashlib.sha256(f"{detector}|{series_key}|{window_start:.0f}".encode())
    return digest.hexdigest()[:32]


def incident_id(window_start: float, destination: str, family: str) -> str:
    """Same window, destination and goods family -> same incident id, whatever the alerts.

    >>> incident_id(1_710_000_000.0, "KG", "T1") == incident_id(1_710_000_000.4, "KG", "T1")
    True
    >>> incident_id(1_710_000_000.0, "KG", "T1") == incident_id(1_710_000_000.0, "KZ", "T1")
    False
    """
    digest = hashlib.sha256(f"incident|{window_start:.0f}|{destination}|{family}".encode())
    return digest.hexdigest()[:32]


def goods_family(series: AlertSeries) -> str:
    """An alert's goods family: ``T<tier>`` for CHPL goods, else ``HS<chapter>``.

    >>> goods_family(AlertSeries("tier:*>KG:T1", "tier", "*", "KG", "KG", "T1", "1"))
    'T1'
    >>> goods_family(AlertSeries("hs6:NL>KZ:060311", "hs6", "NL", "KZ", "KZ", "060311", "none"))
    'HS06'
    """
    if series.chpl_tier not in ("none", ""):
        return f"T{series.chpl_tier}"
    code = series.product_code
    if code[:2].isdigit():
        return f"HS{code[:2]}"
    return f"{series.level}:{code}"


def incident_destination(series: AlertSeries) -> str:
    """The country an alert's incident is about.

    The destination of the flow, except for flows *out of* a transit hub to a
    sanctioned destination (pass-through series, hub -> RU/BY lanes): those
    belong to the hub's incident, since goods into Kyrgyzstan and goods from
    Kyrgyzstan on to Russia are one story.

    >>> incident_destination(AlertSeries("passthrough:KG>RU:854231", "passthrough", "KG", "RU",
    ...                                  "KG", "854231", "1"))
    'KG'
    """
    hub = series.transit_country
    if hub not in ("none", "") and (series.level == "passthrough"
                                    or series.destination_country in SANCTIONED_DESTINATIONS):
        return hub
    return series.destination_country


def ranking(explanation: Explanation, unit: str) -> tuple[float, float]:
    """``(surprise, excess_eur)`` of an explanation: the figures alerts are ranked by.

    ``surprise`` is ``-log10 p`` of the detector's z-equivalent (monotone in its
    evidence, never saturating); ``excess_eur`` is ``observed - expected_high``
    when positive and the evidence is in EUR, else 0.

    >>> ranking(Explanation(5e5, 1e5, 5e4, 2e5, 0.99999, {"z": 12.0}), "EUR")
    (32.7504, 300000.0)
    >>> ranking(Explanation(9.0, 3.0, 1.0, 6.0, 0.9, {"z": 4.0}), "EUR/kg")[1]
    0.0
    """
    surprise = surprise_of_z(evidence_z(float(explanation.score), explanation.details))
    excess = excess_above(float(explanation.observed), float(explanation.expected_high)) \
        if unit == VALUE_UNIT else 0.0
    return round(surprise, 4), round(excess, 2)


def alert_severity(explanation: Explanation, chpl_tier: str, unit: str) -> Severity:
    """Severity from the evidence's magnitude (surprise, excess) and the goods' CHPL tier.

    ``chpl_tier`` as in :class:`~streams.events.AlertSeries` (``"none"`` off the list).
    """
    surprise, excess = ranking(explanation, unit)
    return severity(float(explanation.score), chpl_tier if chpl_tier != "none" else "",
                    surprise=surprise, excess_eur=excess if unit == VALUE_UNIT else None)


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
    span = x.details.get("horizon_windows")  # a detector that judges the last N windows
    when = f"{span} windows to {utc(window_start):%Y-%m-%d}" if isinstance(span, int) and span > 1 \
        else f"window {utc(window_start):%Y-%m-%d}"
    summary = (
        f"{detector}: {series.origin_country}->{series.destination_country} "
        f"{series.level} {series.product_code}{tier}, {when}: "
        f"observed {_short(x.observed)} {unit} vs expected {_short(x.expected)} "
        f"(range {_short(x.expected_low)}-{_short(x.expected_high)}), score {x.score:.2f}"
    )
    active, before = x.details.get("active_windows"), x.details.get("windows_before")
    if isinstance(active, int) and isinstance(before, int) and isinstance(span, int):
        # an onset: how often the flow ran lately against before
        summary += (f"; flowing in {active} of the last {span} windows, "
                    f"{x.details.get('active_before', 0)} of the {before} before")
    # the published schema allows numbers and strings only: flags travel as 0/1
    details = {k: int(v) if isinstance(v, bool) else v
               for k, v in x.details.items() if isinstance(v, int | float | str)}
    details.update(notes or {})
    surprise, excess = ranking(x, unit)
    return TradeAlert(
        alert_id=alert_id(detector, id_key or series.key, window_start),
        detector=detector,
        severity=severity,  # type: ignore[arg-type]
        score=round(float(x.score), 6),
        threshold=threshold,
        surprise=surprise,
        excess_eur=excess,
        incident_id=incident_id(window_start, incident_destination(series), goods_family(series)),
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
