"""Reference data the detectors and the validator share: CHPL tiers, countries, watchlists.

The files live in ``detectors/data`` (sources in ``detectors/data/SOURCES.md``) and
are read once, at import, from the installed package, never from the host.

>>> chpl_tier("854231")
'1'
>>> chpl_tier("85423190")   # a CN8 code maps through its HS6 prefix
'1'
>>> chpl_tier("090111") is None
True
>>> "KG" in TRANSIT_COUNTRIES and "RU" in SANCTIONED_DESTINATIONS
True
"""

from __future__ import annotations

import csv
import hashlib
from importlib import resources

__all__ = [
    "CHPL_EDITION",
    "CHPL_TIERS",
    "CHPL_VERSION",
    "CHPL_TIER_ORDER",
    "COUNTRY_CODES",
    "EAEU_MEMBERS",
    "SANCTIONED_DESTINATIONS",
    "TRANSIT_COUNTRIES",
    "chpl_tier",
]

_DATA = resources.files("detectors") / "data"


def _load_chpl() -> dict[str, str]:
    with (_DATA / "chpl.csv").open(encoding="utf-8") as fh:
        return {row["hs6"]: row["tier"] for row in csv.DictReader(fh)}


def _load_countries() -> frozenset[str]:
    with (_DATA / "iso3166.tab").open(encoding="utf-8") as fh:
        return frozenset(line.split("\t", 1)[0] for line in fh if line[:1].isalpha())


#: HS6 code -> CHPL tier ("1", "2", "3A", "3B", "4A", "4B").
CHPL_TIERS: dict[str, str] = _load_chpl()
#: The edition of the list ``chpl.csv`` transcribes (its date, as SOURCES.md states it).
#: Update it with the file: a new edition changes what is in scope.
CHPL_EDITION = "2024-02-23"
#: Edition and content hash of the list this process loaded (``2024-02-23+1a2b3c4d``):
#: every alert carries it, so an alert can be reproduced with the same list; the
#: hash moves with any edit of the file, even one that forgot the edition.
CHPL_VERSION = (f"{CHPL_EDITION}+"
                f"{hashlib.sha256((_DATA / 'chpl.csv').read_bytes()).hexdigest()[:8]}")
#: Tiers from most to least concerning; tier 1 has no Russian production at all.
CHPL_TIER_ORDER: tuple[str, ...] = ("1", "2", "3A", "3B", "4A", "4B")
#: Every ISO 3166-1 alpha-2 code; a declaration naming anything else is rejected.
COUNTRY_CODES: frozenset[str] = _load_countries()
#: Eurasian Economic Union members other than Russia: no customs border with Russia.
EAEU_MEMBERS: frozenset[str] = frozenset({"AM", "BY", "KZ", "KG"})
#: Countries through which published evidence shows CHPL goods re-routed to Russia.
TRANSIT_COUNTRIES: frozenset[str] = frozenset({"AM", "KZ", "KG", "GE", "UZ", "TR", "AE"})
#: Destinations that the sanctions regimes close for CHPL goods.
SANCTIONED_DESTINATIONS: frozenset[str] = frozenset({"RU", "BY"})


def chpl_tier(hs_code: str) -> str | None:
    """The CHPL tier of an HS6 or CN8 code, or ``None`` when the code is not listed."""
    return CHPL_TIERS.get(hs_code[:6])
