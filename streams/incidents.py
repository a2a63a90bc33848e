"""Group one window's alerts into incidents: one story to read, not twenty alerts.

A re-routing surge of chips into Kyrgyzstan raises alerts on several lanes
(DE>KG, NL>KG ...), at several levels (HS6, CHPL tier, the transit view of all
origins), from several detectors (volume, spike, pass-through) and on
individual declarations (novelty). They are one event. An **incident** is the
set of alerts of

* one **window** (the same ``window_start``),
* one **destination** (:func:`streams.alerts.incident_destination`: the flow's
  destination, or the hub for flows out of a transit hub to Russia/Belarus),
* one **goods family** (:func:`streams.alerts.goods_family`: the CHPL tier for
  CHPL goods, ``HS<chapter>`` otherwise),

across detectors, lanes and levels. Its id is a hash of those three
(:func:`streams.alerts.incident_id`), so it does not depend on which alerts
arrived or in which order, and every alert names its incident in
``TradeAlert.incident_id``.

When an incident is published
-----------------------------
Alerts of one window arrive at two moments: per-declaration detectors (novelty,
unit value) alert while the window is open; series detectors alert when it
closes. :class:`IncidentGrouper` therefore holds the alerts of open windows and
publishes a window's incidents once the window has closed (the caller says
which windows have: :meth:`IncidentGrouper.close`), with the per-declaration
alerts of that window joined. Should alerts for an incident that was already
published arrive later, the incident is published again with the same id, the
union of the members and ``revision`` one higher; consumers keep the highest
revision of each id. The grouper runs per partition: the keying of the
declarations topic puts every series of a goods family on one partition, so an
incident is never split across partitions.

The grouper's state is data only (alerts kept as their JSON bytes), so it is
checkpointed with its partition's pipeline: a restart neither loses the held
per-declaration alerts nor re-publishes incidents under new ids.

Figures of an incident
----------------------
* ``severity``: the highest of its members';
* ``surprise``: the highest of its members' (the ranking figure);
* ``excess_eur``: value above the expected range, **counted once**: each series
  counts its largest excess over detectors, the series of one *view* (the lanes
  at one level, the transit view of all origins at one level, the pass-through
  flows) are summed, and the incident takes the largest view. The views overlap
  (a lane's HS6 series, its tier series and the transit view hold the same
  euros), so a plain total would count one surge three times;
* ``influencers``: the union of the members' influencers (their own
  ``evidence.influencers`` when the alert carries them, as rollup alerts do;
  else the lane of each series and the exporter/consignee a per-declaration
  alert names), each kind's shares weighted by the members' excess and
  normalised to sum to 1. A lane is named by its route (``DE>KG``): an alert's
  lane influencer is an HS6 series key, and the HS6 lanes of one route add up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from detectors.calibration import SEVERITY_LEVELS
from detectors.reference import TRANSIT_COUNTRIES
from streams.alerts import goods_family, incident_destination, incident_id, utc
from streams.events import IncidentMember, Influencer, TradeAlert, TradeIncident

__all__ = ["IncidentGrouper", "build_incident", "MAX_INFLUENCERS"]

#: Influencers listed per incident, largest shares first.
MAX_INFLUENCERS = 10
_RANK = {s: i for i, s in enumerate(SEVERITY_LEVELS)}
_alert_decoder = msgspec.json.Decoder(TradeAlert)
_encoder = msgspec.json.Encoder()


def _key(alert: TradeAlert) -> tuple[str, str]:
    return incident_destination(alert.series), goods_family(alert.series)


def _view(alert: TradeAlert) -> str:
    """The set of series an alert's series belongs to that partition the goods without overlap."""
    s = alert.series
    return f"{s.level}:{'*' if s.origin_country == '*' else 'lanes'}"


def _excess_once(alerts: list[TradeAlert]) -> float:
    per_series: dict[tuple[str, str], float] = {}
    for a in alerts:
        k = (_view(a), a.series.key)
        per_series[k] = max(per_series.get(k, 0.0), a.excess_eur)
    per_view: dict[str, float] = {}
    for (view, _), excess in per_series.items():
        per_view[view] = per_view.get(view, 0.0) + excess
    return max(per_view.values(), default=0.0)


def _lane_route(value: str) -> str:
    """An alert's lane influencer (its HS6 series key) as the incident's lane: the route.

    An incident already fixes the destination and goods family; its lanes are the
    routes, so that the HS6 lanes of one route add up.

    >>> _lane_route("hs6:DE>KG:854231"), _lane_route("DE>KG")
    ('DE>KG', 'DE>KG')
    """
    parts = value.split(":")
    return parts[1] if len(parts) == 3 else value


def _own_influencers(alert: TradeAlert) -> list[tuple[str, str, float]]:
    """The influencers an alert reports, or those its series and details imply."""
    reported = getattr(alert.evidence, "influencers", None)
    if reported:
        out = []
        for item in reported:
            get: Callable[[str], Any] = (item.get if isinstance(item, dict)
                                         else lambda name, item=item: getattr(item, name, None))
            kind, value, share = get("kind"), get("value"), get("share")
            if kind and value is not None and isinstance(share, int | float):
                out.append((str(kind), _lane_route(str(value)) if kind == "lane" else str(value),
                            float(share)))
        if out:
            return out
    s = alert.series
    out = []
    if s.origin_country != "*" and s.level != "passthrough":
        out.append(("lane", f"{s.origin_country}>{s.destination_country}", 1.0))
    details = alert.evidence.details
    for kind in ("exporter", "consignee"):
        value = details.get(f"{kind}_id")
        if isinstance(value, str) and value:
            out.append((kind, value, 1.0))
    return out


def _influencers(alerts: list[TradeAlert]) -> list[Influencer]:
    """Each kind's shares: the members' shares weighted by their excess, normalised to 1."""
    weighted: dict[str, dict[str, float]] = {}
    plain: dict[str, dict[str, float]] = {}
    for a in alerts:
        for kind, value, share in _own_influencers(a):
            w = weighted.setdefault(kind, {})
            w[value] = w.get(value, 0.0) + share * a.excess_eur
            p = plain.setdefault(kind, {})
            p[value] = p.get(value, 0.0) + share
    out = []
    for kind in sorted(plain):
        # without excess (e.g. only unit-value alerts) every member weighs the same
        shares = weighted[kind] if sum(weighted[kind].values()) > 0 else plain[kind]
        total = sum(shares.values())
        out += [Influencer(kind, value, round(v / total, 4)) for value, v in shares.items()
                if v > 0]
    out.sort(key=lambda i: (-i.share, i.kind, i.value))
    return out[:MAX_INFLUENCERS]


def _short(value: float) -> str:
    for unit, scale in (("bn", 1e9), ("m", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.1f}{unit}"
    return f"{value:.0f}"


def build_incident(
    alerts: Iterable[TradeAlert], *, revision: int, emitted_at: float
) -> TradeIncident:
    """The incident of alerts sharing one window, destination and goods family.

    Members are de-duplicated by ``alert_id``; the result does not depend on their
    order. Raises ``ValueError`` for no alerts or alerts of different incidents.
    """
    by_id = {a.alert_id: a for a in alerts}
    members = sorted(by_id.values(), key=lambda a: (-a.surprise, a.alert_id))
    if not members:
        raise ValueError("an incident needs at least one alert")
    first = members[0]
    destination, family = _key(first)
    start = min(a.window_start for a in members).timestamp()
    ident = incident_id(start, destination, family)
    if any(_key(a) != (destination, family) or a.window_start.timestamp() != start
           for a in members):
        raise ValueError(f"alerts of different incidents cannot form incident {ident}")
    severity = max((a.severity for a in members), key=_RANK.__getitem__)
    surprise = max(a.surprise for a in members)
    excess = round(_excess_once(members), 2)
    detectors = sorted({a.detector for a in members})
    influencers = _influencers(members)
    top = ", ".join(f"{i.value} {i.share:.0%}" for i in influencers[:3])
    summary = (
        f"{destination} {family}, window {first.window_start:%Y-%m-%d}: {len(members)} alerts "
        f"({', '.join(detectors)}), surprise {surprise:.1f}, excess {_short(excess)} EUR"
        + (f"; top: {top}" if top else "")
    )
    return TradeIncident(
        incident_id=ident,
        revision=revision,
        window_start=first.window_start,
        window_end=max(a.window_end for a in members),
        destination_country=destination,
        transit_country=destination if destination in TRANSIT_COUNTRIES else "none",
        goods_family=family,
        chpl_tier=family[1:] if family.startswith("T") else "none",
        severity=severity,
        surprise=surprise,
        excess_eur=excess,
        detectors=detectors,
        members=[IncidentMember(a.alert_id, a.detector, a.series.key, a.series.level, a.severity,
                                a.score, a.surprise, a.excess_eur) for a in members],
        influencers=influencers,
        summary=summary,
        emitted_at=utc(emitted_at),
    )


class IncidentGrouper:
    """Holds the alerts of open windows; publishes a window's incidents once it has closed.

    Pure and per partition: feed it every alert the partition's pipeline returns
    (:meth:`add`), then ask for the incidents of the windows that have closed
    (:meth:`close`). State is data only: alerts are kept as their JSON bytes.

    >>> grouper = IncidentGrouper()
    >>> grouper.close(lambda window_start: True, now=0.0)
    []

    Parameters
    ----------
    retain_windows
        Published incidents of this many most recent windows are remembered, so
        that a late member re-publishes its incident with a higher revision.
    """

    def __init__(self, retain_windows: int = 8) -> None:
        if retain_windows < 1:
            raise ValueError(f"retain_windows must be >= 1, got {retain_windows}")
        self.retain_windows = retain_windows
        #: window start -> alerts (JSON) of a window not closed yet
        self._pending: dict[float, list[bytes]] = {}
        #: incident id -> [window start, revision, member alerts (JSON)]
        self._published: dict[str, list[Any]] = {}

    def add(self, alerts: Iterable[TradeAlert]) -> None:
        """Hold alerts until their window closes."""
        for a in alerts:
            self._pending.setdefault(a.window_start.timestamp(), []).append(_encoder.encode(a))

    @property
    def has_pending(self) -> bool:
        """True while alerts are held for a window not yet seen closed."""
        return bool(self._pending)

    def close(self, is_closed: Callable[[float], bool], *, now: float) -> list[TradeIncident]:
        """The incidents (new, or revised with new members) of every held window now closed.

        ``is_closed(window_start)`` says whether a window has closed (the
        pipeline's ``windows.is_late``). Incidents come oldest window first.
        """
        out: list[TradeIncident] = []
        for start in sorted(s for s in self._pending if is_closed(s)):
            groups: dict[tuple[str, str], list[TradeAlert]] = {}
            for raw in self._pending.pop(start):
                alert = _alert_decoder.decode(raw)
                groups.setdefault(_key(alert), []).append(alert)
            for (destination, family), alerts in sorted(groups.items()):
                ident = incident_id(start, destination, family)
                incident = self._publish(ident, start, alerts, now)
                if incident is not None:
                    out.append(incident)
        self._evict()
        return out

    def _publish(self, ident: str, start: float, alerts: list[TradeAlert],
                 now: float) -> TradeIncident | None:
        known = self._published.get(ident)
        if known is None:
            revision, members = 1, alerts
        else:
            old = [_alert_decoder.decode(raw) for raw in known[2]]
            ids = {a.alert_id for a in old}
            new = [a for a in alerts if a.alert_id not in ids]
            if not new:
                return None  # nothing new: the published revision stands
            revision, members = known[1] + 1, old + new
        incident = build_incident(members, revision=revision, emitted_at=now)
        self._published[ident] = [start, revision, [_encoder.encode(a) for a in members]]
        return incident

    def _evict(self) -> None:
        starts = sorted({entry[0] for entry in self._published.values()})
        if len(starts) <= self.retain_windows:
            return
        horizon = starts[-self.retain_windows]
        for ident in [i for i, entry in self._published.items() if entry[0] < horizon]:
            del self._published[ident]

