"""Which series a declaration counts towards: the configured families and their keys.

A *family* (one ``[[series]]`` section of the config, Elastic ML's partition/by
fields in spirit) names the dimensions that split trade into series and the grain
that sums it:

* ``origin``: ``"each"`` (one series per exporting country: a *lane*), ``"any"``
  (all origins summed: the *transit-country view*, key origin ``*``) or one
  country code (only that origin);
* ``destination``: ``"each"`` or one country code;
* ``product``: ``hs6``, ``hs4``, ``hs2`` or the CHPL ``tier``.

Every key reads ``level:origin>destination:product`` (``hs6:*>KG:854231``,
``tier:DE>KG:T1``): alert ids, override globs, the scorecard and the dashboards
parse it. The level is the product grain; ``*`` marks the all-origins view.

**CHPL goods roll up by tier, never by heading or chapter.** Records are keyed by
CHPL tier for listed goods and by HS2 chapter otherwise (:mod:`streams.keys`), so
an HS4 heading or HS2 chapter that mixes listed and other codes would be split
across partitions. HS4/HS2 series therefore sum the goods *outside* the list:
complete in one partition, never a partial. A CHPL code counts towards its HS6
series and its tier series (config validation refuses HS4/HS2 families when only
CHPL alerts are published: they could never alert).

>>> from streams.events import decode_declaration, example_declaration_json
>>> catalog = SeriesCatalog.from_settings(Settings())
>>> [k for k, _ in catalog.keys_of(decode_declaration(example_declaration_json()))]
['hs6:DE>KG:854231', 'tier:DE>KG:T1', 'hs6:*>KG:854231', 'tier:*>KG:T1']
>>> catalog.family_of("tier:*>KG:T1").name
'transit_tier'
"""

from __future__ import annotations

import dataclasses

from detectors.reference import chpl_tier
from streams.alerts import transit_country_of
from streams.config import Settings
from streams.events import AlertSeries, TradeDeclaration

__all__ = ["ANY_ORIGIN", "DeclarationKeys", "SeriesFamily", "SeriesCatalog", "series_meta"]

#: The origin of an all-origins series in its key.
ANY_ORIGIN = "*"


@dataclasses.dataclass(frozen=True, slots=True)
class SeriesFamily:
    """One configured family of series (see :class:`streams.config.SeriesSpec`)."""

    name: str
    origin: str
    destination: str
    product: str
    direction: str

    @property
    def is_rollup(self) -> bool:
        """Sums more than one lane or more than one HS6 code: its alerts name influencers."""
        return self.origin == "any" or self.product != "hs6"

    def key(self, d: TradeDeclaration, tier: str | None) -> str | None:
        """This family's key for ``d``, or None when ``d`` is not part of it."""
        if self.destination != "each" and d.destination_country != self.destination:
            return None
        if self.origin == "any":
            origin = ANY_ORIGIN
        elif self.origin == "each" or self.origin == d.exporter_country:
            origin = d.exporter_country
        else:
            return None
        product = self.product
        if product == "tier":
            if tier is None:
                return None
            code = f"T{tier}"
        elif product == "hs6":
            code = d.hs_code[:6]
        elif tier is not None:  # CHPL goods roll up by tier only (module docstring)
            return None
        else:
            code = d.hs_code[:4] if product == "hs4" else d.hs_code[:2]
        return f"{product}:{origin}>{d.destination_country}:{code}"

    def owns(self, level: str, origin: str, destination: str) -> bool:
        """Whether a key with these parts belongs to this family."""
        if level != self.product or (self.destination not in ("each", destination)):
            return False
        if origin == ANY_ORIGIN:
            return self.origin == "any"
        return self.origin in ("each", origin)


#: Routes x codes remembered by :meth:`SeriesCatalog.declaration_keys` (a few MB at most).
_MEMO_SIZE = 50_000


@dataclasses.dataclass(frozen=True, slots=True)
class DeclarationKeys:
    """What the per-record path needs of a declaration's route and code, computed once."""

    #: Every series the declaration counts towards.
    keys: tuple[str, ...]
    #: The rollups among them (their alerts name influencers).
    rollups: tuple[str, ...]
    #: The lane's HS6 key, ``hs6:DE>KG:854231``: the influencer a rollup names.
    lane: str
    #: ``DE>KG``.
    route: str
    #: The CHPL tier of the code, "" outside the list.
    chpl_tier: str


class SeriesCatalog:
    """The configured families, in config order; keys of a declaration, family of a key."""

    def __init__(self, families: list[SeriesFamily]) -> None:
        self.families = families
        self._rollup = [f.is_rollup for f in families]
        #: (origin, destination, HS code) -> its keys: a declaration's keys depend on
        #: nothing else, and the same few thousand routes x codes repeat all day.
        self._memo: dict[tuple[str, str, str], DeclarationKeys] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> SeriesCatalog:
        return cls([SeriesFamily(s.name, s.origin, s.destination, s.product, s.direction)
                    for s in settings.series_definitions()])

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.families]

    def keys_of(self, d: TradeDeclaration) -> list[tuple[str, bool]]:
        """``(key, is_rollup)`` of every series ``d`` counts towards."""
        tier = chpl_tier(d.hs_code)
        out = []
        for family, rollup in zip(self.families, self._rollup, strict=True):
            key = family.key(d, tier)
            if key is not None:
                out.append((key, rollup))
        return out

    def declaration_keys(self, d: TradeDeclaration) -> DeclarationKeys:
        """:meth:`keys_of` ``d`` as the per-record path needs them, remembered per route and code."""
        memo_key = (d.exporter_country, d.destination_country, d.hs_code)
        found = self._memo.get(memo_key)
        if found is None:
            if len(self._memo) >= _MEMO_SIZE:
                self._memo.clear()  # a bound, not a cache policy: refilling costs microseconds
            pairs = self.keys_of(d)
            found = self._memo[memo_key] = DeclarationKeys(
                keys=tuple(k for k, _ in pairs),
                rollups=tuple(k for k, rollup in pairs if rollup),
                lane=f"hs6:{d.exporter_country}>{d.destination_country}:{d.hs_code[:6]}",
                route=f"{d.exporter_country}>{d.destination_country}",
                chpl_tier=chpl_tier(d.hs_code) or "",
            )
        return found

    def family_of(self, key: str) -> SeriesFamily:
        """The family a series key belongs to (families never overlap: config validation)."""
        level, route, _ = key.split(":")
        origin, destination = route.split(">")
        for family in self.families:
            if family.owns(level, origin, destination):
                return family
        raise KeyError(f"no configured series family holds {key!r}")


def series_meta(key: str) -> AlertSeries:
    """The alert's description of the series ``key`` (pass-through keys included)."""
    level, route, product = key.split(":")
    origin, destination = route.split(">")
    if level == "tier":
        tier = product[1:]
    elif level in ("hs6", "passthrough"):
        tier = chpl_tier(product) or "none"
    else:
        tier = "none"  # HS4/HS2 series hold goods outside the CHPL only
    return AlertSeries(
        key=key, level=level,  # type: ignore[arg-type]
        origin_country=origin, destination_country=destination,
        transit_country=transit_country_of("" if origin == ANY_ORIGIN else origin, destination),
        product_code=product, chpl_tier=tier,
    )
