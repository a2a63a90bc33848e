"""The wire contracts: ``TradeDeclaration`` in, ``TradeAlert``/``TradeIncident`` out, versioned JSON.

A declaration carries the data elements of an EU export declaration (SAD boxes in
brackets; see ``streams/schemas/trade_declaration.v1.json`` for producers outside
Python): the declaration id (MRN), when it was lodged, exporter [2] and consignee [8]
with their countries, country of destination [17a], the transit route, the CN8 or
HS6 commodity code [33], goods description [31], net mass [38], supplementary
quantity and unit [41], statistical value in EUR [46], customs procedure [37] and
transport mode at the border [25].

Decoding is on the hot path, so types are ``msgspec`` Structs: decode and type
validation together cost a few microseconds per event. Checks that JSON Schema
cannot express cheaply (known country codes, timestamps in the future) live in
:mod:`streams.validate`.

>>> raw = example_declaration_json()
>>> d = decode_declaration(raw)
>>> d.hs_code, d.exporter_country, d.destination_country
('85423190', 'DE', 'KG')
>>> d.declared_at.tzinfo is not None
True
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

__all__ = [
    "DECLARATION_SCHEMA_VERSION",
    "ALERT_SCHEMA_VERSION",
    "INCIDENT_SCHEMA_VERSION",
    "TradeDeclaration",
    "TradeAlert",
    "AlertSeries",
    "AlertEvidence",
    "TradeIncident",
    "IncidentMember",
    "Influencer",
    "decode_declaration",
    "encode",
    "example_declaration_json",
]

DECLARATION_SCHEMA_VERSION = 1
ALERT_SCHEMA_VERSION = 1
INCIDENT_SCHEMA_VERSION = 1

CountryCode = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{2}$")]
#: CN8 (8 digits, the EU's Combined Nomenclature) or HS6 (6 digits, worldwide).
HsCode = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{6}([0-9]{2})?$")]
NonNegative = Annotated[float, msgspec.Meta(ge=0.0)]
AwareDatetime = Annotated[dt.datetime, msgspec.Meta(tz=True)]
ShortText = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class TradeDeclaration(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    """One export (or re-export) declaration, as lodged with customs.

    Unknown fields are ignored rather than rejected, so producers can add fields
    in a minor revision without breaking older workers; ``schema_version`` is
    bumped only for incompatible changes.
    """

    schema_version: Literal[1]
    declaration_id: ShortText
    declared_at: AwareDatetime
    exporter_id: ShortText
    exporter_country: CountryCode
    consignee_id: ShortText
    consignee_country: CountryCode
    destination_country: CountryCode
    hs_code: HsCode
    net_mass_kg: NonNegative
    statistical_value_eur: NonNegative
    customs_procedure: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{4}$")]
    transport_mode: Annotated[int, msgspec.Meta(ge=0, le=9)]
    transit_route: list[CountryCode] = []
    goods_description: Annotated[str, msgspec.Meta(max_length=512)] = ""
    supplementary_quantity: NonNegative | None = None
    supplementary_unit: Annotated[str, msgspec.Meta(max_length=16)] | None = None

    @property
    def hs6(self) -> str:
        """The six-digit HS code: the level shared by every customs tariff."""
        return self.hs_code[:6]

    @property
    def declared_ts(self) -> float:
        """Event time as epoch seconds."""
        return self.declared_at.timestamp()


class AlertSeries(msgspec.Struct, frozen=True):
    """Which aggregated series an alert is about."""

    key: str
    level: Literal["hs6", "hs4", "hs2", "tier", "passthrough", "declaration"]
    origin_country: str
    destination_country: str
    transit_country: str
    product_code: str
    chpl_tier: str


class Influencer(msgspec.Struct, frozen=True):
    """One contributor to an anomaly and its share (0-1) of the excess.

    ``kind`` is ``lane``, ``exporter`` or ``consignee`` (their ids). On an alert
    (``AlertEvidence.influencers``) a lane's ``value`` is its HS6 series key, e.g.
    ``hs6:DE>KG:854231``, and ``share`` is the contributor's part of what the rollup
    moved beyond its contributors' usual values in the alert's direction (the
    shares of one kind sum to at most 1). On an incident
    (``TradeIncident.influencers``) a lane is its route, e.g. ``DE>KG``, with its
    share of the incident's excess (:mod:`streams.incidents`).
    """

    kind: str
    value: str
    share: float


class AlertEvidence(msgspec.Struct, frozen=True):
    """What the detector saw: observed vs its learned baseline, and the declarations.

    ``influencers``: on rollup series (all origins, tier, HS4/HS2), the lanes,
    exporters and consignees that carried the excess, top 5 of each kind.
    """

    observed: float
    expected: float
    expected_low: float
    expected_high: float
    unit: str
    declaration_count: int
    declaration_ids: list[str]
    details: dict[str, float | int | str] = {}
    influencers: list[Influencer] = []


class TradeAlert(msgspec.Struct, frozen=True, kw_only=True):
    """An alert on ``trade.alerts``; schema in ``streams/schemas/trade_alert.v1.json``.

    ``alert_id`` is a hash of (detector, series key, window start), so a consumer
    can deduplicate redeliveries and replays: the same anomaly always has the same id.

    ``score`` is the calibrated 0-1 scale the thresholds use; ``surprise`` is the
    ranking figure (``-log10 p`` of the evidence, one in ``10**surprise``; it does
    not saturate) and ``excess_eur`` the value above the expected range (0 inside
    it, and for evidence not in EUR). ``incident_id`` names the incident the alert
    belongs to (:mod:`streams.incidents`). These three were added to v1 without a
    version bump: they are optional in the schema (alerts published before lack
    them) and v1 never forbade additional properties.

    The audit fields say what the alert was judged with (:mod:`streams.audit`):
    ``config_version`` (the config's label), ``config_hash`` (short SHA-256 of the
    canonical config) and ``chpl_version`` (edition + content hash of the CHPL
    list). Added to v1 the same way: optional, empty on alerts published before.
    ``state_version`` names the models that scored it (:meth:`streams.scoring.Scoring.state_version`):
    ``cold+N`` for models learned from a cold start over N windows of their series'
    partition, ``snapshot:NAME+N`` after a revert to snapshot NAME; an offline replay of
    the same records from the start reproduces an alert whose version starts ``cold``.
    """

    schema_version: Literal[1] = 1
    alert_id: str
    detector: str
    severity: Literal["low", "medium", "high", "critical"]
    score: float
    threshold: float
    surprise: float = 0.0
    excess_eur: float = 0.0
    incident_id: str = ""
    series: AlertSeries
    window_start: dt.datetime
    window_end: dt.datetime
    evidence: AlertEvidence
    summary: str
    emitted_at: dt.datetime
    config_version: str = ""
    config_hash: str = ""
    chpl_version: str = ""
    state_version: str = ""


class IncidentMember(msgspec.Struct, frozen=True):
    """One alert of an incident, with what it adds to the incident's ranking."""

    alert_id: str
    detector: str
    series_key: str
    level: str
    severity: Literal["low", "medium", "high", "critical"]
    score: float
    surprise: float
    excess_eur: float


class TradeIncident(msgspec.Struct, frozen=True, kw_only=True):
    """An incident on ``trade.incidents``; schema in ``streams/schemas/trade_incident.v1.json``.

    The alerts of one window on one destination and goods family (the CHPL tier
    for CHPL goods, ``HS<chapter>`` otherwise), across detectors, lanes and
    levels. ``incident_id`` is a hash of (window start, destination, goods family):
    deterministic, so replays give the same id. A later publication with the same
    id and a higher ``revision`` supersedes an earlier one (it has more members);
    consumers keep the highest revision per id. ``severity`` is the members'
    highest, ``surprise`` their highest, ``excess_eur`` the value above the expected
    range counted once (see :mod:`streams.incidents`). ``config_version``,
    ``config_hash`` and ``chpl_version`` are the audit fields of
    :class:`TradeAlert` (optional additions to v1), those of the config the
    incident's window was judged with.
    """

    schema_version: Literal[1] = 1
    incident_id: str
    revision: Annotated[int, msgspec.Meta(ge=1)] = 1
    window_start: dt.datetime
    window_end: dt.datetime
    destination_country: str
    transit_country: str
    goods_family: str
    chpl_tier: str
    severity: Literal["low", "medium", "high", "critical"]
    surprise: float
    excess_eur: float
    detectors: list[str]
    members: list[IncidentMember]
    influencers: list[Influencer] = []
    summary: str
    emitted_at: dt.datetime
    config_version: str = ""
    config_hash: str = ""
    chpl_version: str = ""


_declaration_decoder = msgspec.json.Decoder(TradeDeclaration)
_encoder = msgspec.json.Encoder()


def decode_declaration(raw: bytes) -> TradeDeclaration:
    """Decode and type-check one declaration; raises msgspec/Unicode errors on bad input.

    :func:`streams.validate.validate_declaration` wraps this and turns every
    failure into a :class:`~streams.validate.RejectedDeclaration` with a reason code.
    """
    return _declaration_decoder.decode(raw)


def encode(obj: msgspec.Struct) -> bytes:
    """Encode a declaration, alert or incident as compact JSON (UTF-8)."""
    return _encoder.encode(obj)


def example_declaration_json() -> bytes:
    """A valid declaration: Tier-1 processors from Germany to Kyrgyzstan."""
    return (
        b'{"schema_version":1,"declaration_id":"24DE0000000000001A",'
        b'"declared_at":"2024-03-04T09:30:00Z","exporter_id":"DE123456789012",'
        b'"exporter_country":"DE","consignee_id":"KG-TRADE-0001","consignee_country":"KG",'
        b'"destination_country":"KG","transit_route":["PL","BY","RU","KZ"],'
        b'"hs_code":"85423190","goods_description":"Microcontrollers, 32-bit",'
        b'"net_mass_kg":12.5,"supplementary_quantity":5000,"supplementary_unit":"p/st",'
        b'"statistical_value_eur":48200.0,"customs_procedure":"1000","transport_mode":4}'
    )
