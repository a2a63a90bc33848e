"""A calibrated, seeded generator of export-declaration events, in event-time order.

The background is a *pre-sanctions steady state*: EU (and a few non-EU) origins
exporting ordinary goods and CHPL goods to Russia's neighbours (the transit hubs),
to Russia and Belarus directly and to a couple of control destinations, plus the
hubs' own onward exports to RU/BY at low levels. Scenarios
(:mod:`evaluation.synth.scenarios`) then inject the 2022 patterns and benign traps.

How the stream is drawn, one UTC day at a time:

* **Lanes.** A lane is (origin, destination, HS6). Its base rate in declarations
  per day is ``daily_declarations x origin weight x destination weight x product
  weight`` (normalised), with the CHPL share and the onward share set by
  :class:`SeriesMix`. Lanes below ``SeriesMix.min_lane_rate`` are not generated:
  the stream models the active lanes, not every theoretical one.
* **Counts.** Each day every lane draws ``Poisson(rate x season x drift)``:
  ``season`` is weekday x month x holiday (x a pre-holiday bump for consumer goods),
  ``drift`` a slow log-AR(1) per lane (stationary sd ~0.16), so series are
  over-dispersed and wander a little, as real ones do.
* **Declarations.** The exporter is drawn from a Zipf-weighted pool per (country,
  sector), so shipment counts per exporter are heavy-tailed (a few big exporters,
  a long tail of occasional ones that keep appearing for the first time); the
  consignee likewise per (destination, sector). Net mass is log-normal around the
  product's typical consignment (sigma ~1, scaled by the exporter's size), the unit
  value log-normal around the product's EUR/kg (sigma ~0.3, with a fixed lane-level
  price factor). Value = mass x unit value, so declaration values are heavy-tailed.
  Lodging time is business-hours-shaped (80 %) or uniform (20 %).

Randomness: one ``numpy.random.Generator`` per day for the background
(``seed, day``), one per scenario (``seed, name``) in the scenarios, so the
background is identical whatever scenarios are added and any day can be redrawn.
Declaration ids are MRN-shaped (``YY`` + country + 13 hex + check character); the
13 hex digits are a fixed bijection of (source, serial), so ids are unique and
deterministic but carry no visible sequence or source label.

Where the numbers come from (``/work/shared/domain/evidence.md`` = "ev"):

========================  ==================================================================
destination weights       sqrt of the 2021 EU export value (EUR bn) to each country,
                          backed out of ev row 5 (2022 increase / growth rate): TR 89,
                          KZ 5.2, GE 2.07, UZ 1.15, AM 0.67, KG 0.26; RU 69.2 (ev row 8).
                          AE 38 and BY 11 are *not* in ev (order of magnitude of Eurostat
                          2021, unverified). sqrt compresses the 340:1 TR:KG range to
                          18:1 so every hub has daily declarations at laptop scale.
onward legs (hub->RU/BY)  6 % of declarations, split by the hub's own weight; CHPL share
                          of onward legs 3 % ("low ordinary levels": ev rows 11-13, chips
                          KZ->RU $245k and AM->RU < $2k in 2021).
CHPL share                12 % of the direct lanes' declarations (assumption; CHPL goods
                          are a minor share of EU exports to the region, ev rows 7, 10).
unit values (EUR/kg)      trade-press typical values, not from ev: ICs 1.5-3k, routers
                          ~180, MLCC ~250, bearings 12-18, CNC parts ~30, coffee ~6,
                          textiles 20-25, furniture ~4, wine ~4.
seasonality               weekday: Sat ~0.4, Sun ~0.25 of a weekday; month: August and
                          December dips, October/November high (the usual shape of
                          monthly extra-EU exports; not from ev); Christmas/New Year
                          holidays very low; consumer goods +15 % before the holidays.
scenario magnitudes       in ``scenarios.py``: kept *unscaled* from ev (tenfold and more,
                          97 % pass-through, 5-10 % undervaluation ...).
========================  ==================================================================
"""

from __future__ import annotations

import calendar
import dataclasses
import datetime as dt
import json
import math
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import msgspec
import numpy as np

from detectors.reference import SANCTIONED_DESTINATIONS, TRANSIT_COUNTRIES, chpl_tier
from streams.events import TradeDeclaration, encode

__all__ = [
    "PRODUCTS",
    "Product",
    "SeriesMix",
    "StreamConfig",
    "Effect",
    "Removal",
    "LaneMatch",
    "StreamContext",
    "SyntheticStream",
    "generate_records",
    "write_jsonl",
    "throttle",
    "season_factor",
    "all_level_keys",
]

_DAY = 86_400

# --------------------------------------------------------------------------------------
# Reference tables
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Product:
    """One HS6 product: its CN8 codes, typical consignment and unit value."""

    hs6: str
    cn8: tuple[str, ...]
    description: str
    sector: str
    uv_eur_kg: float  # median unit value, EUR per kg net mass
    mass_kg: float  # median net mass of one declaration
    weight: float  # relative declaration frequency within its group (CHPL / not)
    pieces_per_kg: float = 0.0  # supplementary quantity per kg (0: no supplementary unit)
    sup_unit: str | None = None
    uv_sigma: float = 0.3
    mass_sigma: float = 1.0

    @property
    def tier(self) -> str | None:
        return chpl_tier(self.hs6)


#: The HS mix. CHPL tiers 1, 2, 3A, 3B, 4A, 4B and ordinary goods. Unit values are
#: typical trade values (EUR/kg), chosen to be plausible, not taken from evidence.md.
PRODUCTS: tuple[Product, ...] = (
    # Tier 1: integrated circuits (thousands of EUR per kg)
    Product(
        "854231",
        ("85423111", "85423190"),
        "Processors and controllers, integrated circuits",
        "chips",
        3000,
        6,
        1.0,
        300,
        "p/st",
    ),
    Product(
        "854232",
        ("85423231", "85423290"),
        "Memories, integrated circuits",
        "chips",
        2000,
        8,
        0.8,
        250,
        "p/st",
    ),
    Product(
        "854233",
        ("85423300",),
        "Amplifiers, integrated circuits",
        "chips",
        1500,
        4,
        0.4,
        400,
        "p/st",
    ),
    Product(
        "854239",
        ("85423911", "85423990"),
        "Other electronic integrated circuits",
        "chips",
        2500,
        5,
        0.8,
        350,
        "p/st",
    ),
    # Tier 2
    Product(
        "851762",
        ("85176200",),
        "Routers, switches and data transmission apparatus",
        "electronics",
        180,
        40,
        1.2,
        0.6,
        "p/st",
    ),
    Product(
        "852691",
        ("85269120", "85269180"),
        "Radio navigational aid apparatus (GNSS receivers)",
        "electronics",
        400,
        10,
        0.4,
        2.0,
        "p/st",
    ),
    Product("853224", ("85322400",), "Multilayer ceramic capacitors", "electronics", 250, 15, 0.6),
    Product(
        "854800", ("85480000",), "Electrical parts of machinery n.e.s.", "electronics", 90, 20, 0.6
    ),
    # Tier 3A
    Product(
        "850440",
        ("85044030", "85044095"),
        "Static converters",
        "electronics",
        40,
        60,
        1.0,
        0.2,
        "p/st",
    ),
    Product("854129", ("85412900",), "Transistors", "electronics", 350, 5, 0.5),
    Product(
        "847150",
        ("84715000",),
        "Processing units for data-processing machines",
        "electronics",
        120,
        30,
        0.8,
        0.1,
        "p/st",
    ),
    # Tier 3B: bearings
    Product("848210", ("84821010", "84821090"), "Ball bearings", "machinery", 18, 300, 1.2),
    Product("848220", ("84822000",), "Tapered roller bearings", "machinery", 12, 400, 0.6),
    Product("848250", ("84825000",), "Cylindrical roller bearings", "machinery", 14, 350, 0.5),
    # Tier 4A / 4B
    Product("853400", ("85340011", "85340090"), "Printed circuits", "electronics", 120, 25, 0.7),
    Product(
        "846693",
        ("84669340", "84669350"),
        "Parts and accessories for machine tools (CNC)",
        "machinery",
        30,
        150,
        0.8,
    ),
    Product(
        "845811",
        ("84581120", "84581180"),
        "Horizontal lathes, numerically controlled",
        "machinery",
        20,
        4000,
        0.3,
        0.00025,
        "p/st",
        0.25,
        0.5,
    ),
    # Ordinary goods
    Product("090121", ("09012100",), "Coffee, roasted, not decaffeinated", "food", 6, 2000, 1.0),
    Product(
        "180690", ("18069019", "18069090"), "Chocolate and cocoa preparations", "food", 7, 1500, 1.0
    ),
    Product(
        "220421",
        ("22042109", "22042142"),
        "Wine of fresh grapes, containers <= 2 l",
        "food",
        4,
        3000,
        0.8,
        0.75,
        "l",
    ),
    Product("060311", ("06031100",), "Cut roses, fresh", "food", 8, 800, 0.5),
    Product("950300", ("95030099",), "Toys", "consumer", 12, 500, 0.8),
    Product("330499", ("33049900",), "Beauty and skin-care preparations", "consumer", 22, 400, 1.2),
    Product("940360", ("94036010", "94036090"), "Wooden furniture", "consumer", 4, 1500, 1.0),
    Product(
        "610910",
        ("61091000",),
        "T-shirts and vests, cotton, knitted",
        "textiles",
        20,
        300,
        1.0,
        5.0,
        "p/st",
    ),
    Product(
        "620342",
        ("62034231", "62034235"),
        "Men's trousers, cotton",
        "textiles",
        25,
        300,
        0.8,
        2.5,
        "p/st",
    ),
    Product("870899", ("87089997",), "Parts of motor vehicles n.e.s.", "vehicles", 8, 800, 1.5),
    Product("870829", ("87082990",), "Body parts of motor vehicles", "vehicles", 6, 900, 0.8),
    Product("300490", ("30049000",), "Medicaments in measured doses", "pharma", 80, 200, 1.2),
    Product("392690", ("39269097",), "Articles of plastics n.e.s.", "industrial", 10, 500, 1.2),
    Product(
        "841810",
        ("84181080",),
        "Combined refrigerator-freezers",
        "consumer",
        4.5,
        2000,
        0.7,
        0.02,
        "p/st",
    ),
)
PRODUCT_INDEX: dict[str, int] = {p.hs6: i for i, p in enumerate(PRODUCTS)}
SECTORS: tuple[str, ...] = tuple(sorted({p.sector for p in PRODUCTS}))
_CONSUMER_SECTORS = frozenset({"food", "consumer", "textiles"})

#: Origins: weight among direct exports (illustrative; evidence.md has no origin split)
#: and which destination groups they ship to.
ORIGINS: dict[str, tuple[float, bool]] = {
    # code: (weight, ships to control destinations)
    "DE": (0.26, True),
    "IT": (0.11, True),
    "PL": (0.09, True),
    "FR": (0.08, True),
    "NL": (0.08, True),
    "LT": (0.04, True),
    "CZ": (0.04, True),
    "CN": (0.16, False),
    "US": (0.05, False),
    "TR": (0.05, False),
}
#: Destinations: sqrt of 2021 EU export value in EUR bn (see the module docstring).
HUB_WEIGHTS: dict[str, float] = {
    "TR": math.sqrt(89.0),
    "AE": math.sqrt(38.0),
    "KZ": math.sqrt(5.2),
    "GE": math.sqrt(2.07),
    "UZ": math.sqrt(1.15),
    "AM": math.sqrt(0.667),
    "KG": math.sqrt(0.263),
}
SANCTIONED_WEIGHTS: dict[str, float] = {"RU": math.sqrt(69.2), "BY": math.sqrt(11.0)}
CONTROL_WEIGHTS: dict[str, float] = {"CH": 1.0, "US": 1.0}
#: Onward legs to RU/BY: RU takes 85 %, BY 15 % of each hub's onward declarations.
ONWARD_SPLIT: dict[str, float] = {"RU": 0.85, "BY": 0.15}
#: Sector tilts per destination (trade-structure flavour, illustrative).
SECTOR_TILT: dict[str, dict[str, float]] = {
    "AE": {"chips": 1.5, "electronics": 1.5, "vehicles": 1.3},
    "KZ": {"machinery": 1.3, "vehicles": 1.3},
    "KG": {"machinery": 1.2, "vehicles": 1.4, "textiles": 1.3},
    "UZ": {"machinery": 1.3, "vehicles": 1.5},
    "AM": {"food": 1.3, "consumer": 1.2},
    "GE": {"food": 1.3, "consumer": 1.2, "vehicles": 1.3},
}
#: Origin x product affinities (who makes what): multipliers, 0 = not exported.
ORIGIN_AFFINITY: dict[tuple[str, str], float] = {
    **{(o, "060311"): 0.0 for o in ORIGINS if o != "NL"},
    ("NL", "060311"): 6.0,
    **{(o, "220421"): 0.0 for o in ("PL", "LT", "CZ", "NL", "CN", "US", "TR")},
    ("FR", "220421"): 3.0,
    ("IT", "220421"): 3.0,
    ("IT", "848210"): 2.5,
    ("IT", "848220"): 2.0,
    ("DE", "848210"): 1.5,
    ("DE", "846693"): 2.0,
    ("IT", "846693"): 2.0,
    ("DE", "845811"): 2.0,
    ("IT", "845811"): 2.0,
    ("DE", "854231"): 1.5,
    ("NL", "854231"): 1.5,
    ("US", "854231"): 3.0,
    ("US", "854239"): 3.0,
    ("CN", "854231"): 2.0,
    ("CN", "854239"): 2.0,
    ("CN", "851762"): 3.0,
    ("CN", "850440"): 2.0,
    ("CN", "610910"): 3.0,
    ("CN", "950300"): 3.0,
    ("CN", "300490"): 0.2,
    ("CN", "090121"): 0.0,
    ("US", "090121"): 0.2,
    ("TR", "610910"): 3.0,
    ("TR", "620342"): 3.0,
    ("TR", "180690"): 1.5,
    ("FR", "330499"): 3.0,
    ("IT", "940360"): 2.0,
    ("PL", "940360"): 2.5,
    ("IT", "090121"): 2.0,
    ("DE", "090121"): 2.0,
    ("DE", "870899"): 2.0,
    ("CZ", "870899"): 2.0,
    ("DE", "300490"): 1.5,
}
#: Transport mode at the border by sector: (modes, probabilities).
SECTOR_MODES: dict[str, tuple[tuple[int, ...], tuple[float, ...]]] = {
    "chips": ((4, 3, 5), (0.55, 0.35, 0.10)),
    "electronics": ((4, 3, 1), (0.45, 0.45, 0.10)),
    "machinery": ((3, 2, 1), (0.70, 0.20, 0.10)),
    "pharma": ((4, 3), (0.40, 0.60)),
}
_DEFAULT_MODES = ((3, 1, 2), (0.60, 0.25, 0.15))

# Per-product arrays for the vectorised declaration builder.
_P_MASS = np.array([p.mass_kg for p in PRODUCTS])
_P_MSIG = np.array([p.mass_sigma for p in PRODUCTS])
_P_UV = np.array([p.uv_eur_kg for p in PRODUCTS])
_P_USIG = np.array([p.uv_sigma for p in PRODUCTS])
_P_PPK = np.array([p.pieces_per_kg for p in PRODUCTS])
_P_NCN8 = np.array([len(p.cn8) for p in PRODUCTS])
_P_CHPL = np.array([p.tier is not None for p in PRODUCTS])
_P_SECTOR = np.array([SECTORS.index(p.sector) for p in PRODUCTS])
#: Per sector: cumulative mode probabilities (3 slots) and the modes (last repeated).
_MODE_CUM = np.ones((len(SECTORS), 3))
_MODE_VALS = np.zeros((len(SECTORS), 4), dtype=np.int64)
for _i, _sector in enumerate(SECTORS):
    _modes, _probs = SECTOR_MODES.get(_sector, _DEFAULT_MODES)
    _cum = np.cumsum(_probs)[:-1]
    _MODE_CUM[_i, : len(_cum)] = _cum
    _MODE_VALS[_i, :] = list(_modes) + [_modes[-1]] * (4 - len(_modes))
#: Overland routes (transit_route) from the EU, by destination.
_EU_LAND_ROUTES: dict[str, tuple[tuple[str, ...], ...]] = {
    "KZ": (("PL", "BY", "RU"), ("LT", "RU"), ("LV", "RU")),
    "KG": (("PL", "BY", "RU", "KZ"), ("LT", "RU", "KZ")),
    "UZ": (("PL", "BY", "RU", "KZ"), ("LT", "RU", "KZ")),
    "AM": (("BG", "TR", "GE"), ("PL", "BY", "RU", "GE")),
    "GE": (("BG", "TR"),),
    "TR": (("BG",),),
    "RU": (("PL", "BY"), ("LT",), ("LV",), ("FI",)),
    "BY": (("PL",), ("LT",)),
    "CH": (("AT",),),
    "AE": ((),),
    "US": ((),),
}
_ONWARD_LAND_ROUTES: dict[str, tuple[str, ...]] = {
    "KZ": (),
    "KG": ("KZ",),
    "UZ": ("KZ",),
    "AM": ("GE",),
    "GE": (),
    "TR": ("GE",),
    "AE": (),
}
_OTHER_LAND_ROUTES: dict[tuple[str, str], tuple[str, ...]] = {
    ("CN", "KG"): (),
    ("CN", "KZ"): (),
    ("CN", "UZ"): ("KZ",),
    ("CN", "RU"): ("KZ",),
    ("TR", "AM"): ("GE",),
    ("TR", "KZ"): ("GE", "AZ"),
    ("TR", "RU"): ("GE",),
}

# Seasonality -------------------------------------------------------------------------
#: Mon..Sun, relative; normalised to mean 1 below.
_WEEKDAY_RAW = (1.10, 1.12, 1.12, 1.08, 1.00, 0.35, 0.22)
WEEKDAY_FACTORS = tuple(w * 7 / sum(_WEEKDAY_RAW) for w in _WEEKDAY_RAW)
#: Mid-month levels Jan..Dec (August and December dips, autumn high), mean ~1.
MONTH_FACTORS = (0.93, 0.97, 1.06, 1.02, 1.00, 1.05, 0.99, 0.82, 1.04, 1.08, 1.10, 0.94)
#: (month, day) -> factor: Christmas and New Year, Orthodox holidays in early January.
HOLIDAYS: dict[tuple[int, int], float] = {
    (12, 24): 0.45,
    (12, 25): 0.15,
    (12, 26): 0.2,
    (12, 27): 0.75,
    (12, 28): 0.75,
    (12, 29): 0.7,
    (12, 30): 0.6,
    (12, 31): 0.3,
    (1, 1): 0.1,
    (1, 2): 0.6,
    (1, 3): 0.7,
    (1, 4): 0.8,
    (1, 5): 0.8,
    (1, 6): 0.75,
    (1, 7): 0.7,
}


def season_factor(day: dt.date, sector: str = "") -> float:
    """Expected volume of ``day`` relative to an average day (weekday x month x holiday).

    >>> season_factor(dt.date(2022, 3, 2)) > 1.0 > season_factor(dt.date(2022, 3, 6))
    True
    >>> season_factor(dt.date(2021, 12, 25)) < 0.1
    True
    """
    doy = day.timetuple().tm_yday
    pos = (doy - 15.2) / 30.44
    i = math.floor(pos)
    frac = pos - i
    month = MONTH_FACTORS[i % 12] * (1 - frac) + MONTH_FACTORS[(i + 1) % 12] * frac
    f = WEEKDAY_FACTORS[day.weekday()] * month * HOLIDAYS.get((day.month, day.day), 1.0)
    if sector in _CONSUMER_SECTORS:
        # pre-holiday peak: +15 % around 20 November, ~3 weeks wide
        d = (day - dt.date(day.year, 11, 20)).days
        f *= 1.0 + 0.15 * math.exp(-0.5 * (d / 12.0) ** 2)
    return f


# --------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SeriesMix:
    """Which kinds of lanes the background contains, and how much of each."""

    #: Share of direct-lane declarations that carry CHPL goods.
    chpl_share: float = 0.12
    #: Share of all declarations that are onward legs hub -> RU/BY.
    onward_share: float = 0.06
    #: Share of direct-lane declarations to control destinations (CH, US).
    control_share: float = 0.12
    #: Lanes with a lower base rate (declarations/day) are not generated.
    min_lane_rate: float = 0.03
    #: CHPL share within onward legs ("low ordinary levels").
    onward_chpl_share: float = 0.03


@dataclasses.dataclass(frozen=True)
class StreamConfig:
    """What to generate: seed, first day (UTC), number of days, volume and lane mix.

    ``daily_declarations`` is the mean background volume of an average day (weekday
    and month seasonality average to 1); scenarios add to it.
    """

    seed: int = 20220224
    start: dt.date = dt.date(2021, 12, 6)
    days: int = 120
    daily_declarations: float = 1500.0
    mix: SeriesMix = SeriesMix()

    @property
    def start_ts(self) -> float:
        return float(calendar.timegm(self.start.timetuple()))

    @property
    def end_ts(self) -> float:
        return self.start_ts + self.days * _DAY

    def day_of(self, date: dt.date) -> int:
        return (date - self.start).days

    def date_of(self, day: int) -> dt.date:
        return self.start + dt.timedelta(days=day)


# --------------------------------------------------------------------------------------
# The background model: lanes and party pools
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Lane:
    origin: str
    destination: str
    product: int  # index into PRODUCTS
    rate: float  # base declarations per day
    onward: bool  # hub -> RU/BY leg
    price: float  # lane-level unit-value factor

    @property
    def hs6(self) -> str:
        return PRODUCTS[self.product].hs6


@dataclasses.dataclass(frozen=True, slots=True)
class LaneMatch:
    """A filter on lanes: any field left ``None`` matches everything."""

    origins: frozenset[str] | None = None
    destinations: frozenset[str] | None = None
    hs6: frozenset[str] | None = None

    def __call__(self, lane: Lane) -> bool:
        return (
            (self.origins is None or lane.origin in self.origins)
            and (self.destinations is None or lane.destination in self.destinations)
            and (self.hs6 is None or lane.hs6 in self.hs6)
        )


class _Pool:
    """Parties of one (country, sector): ids, Zipf weights, size factors."""

    __slots__ = ("ids", "cum", "size")

    def __init__(self, ids: list[str], weights: np.ndarray, size: np.ndarray) -> None:
        self.ids = ids
        self.cum = np.cumsum(weights / weights.sum())
        self.cum[-1] = 1.0
        self.size = size

    def pick(self, u: np.ndarray) -> np.ndarray:
        return np.minimum(np.searchsorted(self.cum, u, side="right"), len(self.ids) - 1)


class BackgroundModel:
    """The lane table and party pools implied by a config (deterministic)."""

    def __init__(self, config: StreamConfig) -> None:
        self.config = config
        mix = config.mix
        rng = np.random.default_rng([config.seed, 0])
        self.lanes: list[Lane] = []
        raw: list[tuple[str, str, int, bool, float]] = []
        chpl = np.array([p.tier is not None for p in PRODUCTS])
        pw = np.array([p.weight for p in PRODUCTS])
        pw_chpl = np.where(chpl, pw, 0.0) / pw[chpl].sum()
        pw_ord = np.where(chpl, 0.0, pw) / pw[~chpl].sum()

        def product_weights(share: float) -> np.ndarray:
            return share * pw_chpl + (1 - share) * pw_ord

        direct = product_weights(mix.chpl_share)
        onward = product_weights(mix.onward_chpl_share)
        hub_total = sum(HUB_WEIGHTS.values()) + sum(SANCTIONED_WEIGHTS.values())
        direct_share = 1.0 - mix.onward_share
        for origin, (ow, to_control) in ORIGINS.items():
            dests: dict[str, float] = {}
            for d, w in (*HUB_WEIGHTS.items(), *SANCTIONED_WEIGHTS.items()):
                if d != origin:
                    dests[d] = w / hub_total * (1 - mix.control_share)
            if to_control:
                ctot = sum(CONTROL_WEIGHTS.values())
                for d, w in CONTROL_WEIGHTS.items():
                    dests[d] = w / ctot * mix.control_share
            for dest, dw in dests.items():
                tilt = SECTOR_TILT.get(dest, {})
                for j, prod in enumerate(PRODUCTS):
                    a = ORIGIN_AFFINITY.get((origin, prod.hs6), 1.0) * tilt.get(prod.sector, 1.0)
                    raw.append((origin, dest, j, False, direct_share * ow * dw * direct[j] * a))
        hub_sum = sum(HUB_WEIGHTS.values())
        for hub, hw in HUB_WEIGHTS.items():
            for dest, split in ONWARD_SPLIT.items():
                for j, prod in enumerate(PRODUCTS):
                    a = 0.0 if prod.hs6 in ("060311", "220421") else 1.0
                    raw.append(
                        (
                            hub,
                            dest,
                            j,
                            True,
                            mix.onward_share * hw / hub_sum * split * onward[j] * a,
                        )
                    )
        total = sum(r[4] for r in raw)
        scale = config.daily_declarations / total
        for origin, dest, j, is_onward, w in raw:
            rate = w * scale
            if rate >= mix.min_lane_rate:
                self.lanes.append(
                    Lane(
                        origin,
                        dest,
                        j,
                        float(rate),
                        is_onward,
                        float(math.exp(rng.normal(0.0, 0.15))),
                    )
                )
        # party pools per (country, sector), sized by the lanes' volume
        exp_rate: dict[tuple[str, str], float] = {}
        con_rate: dict[tuple[str, str], float] = {}
        for lane in self.lanes:
            s = PRODUCTS[lane.product].sector
            exp_rate[(lane.origin, s)] = exp_rate.get((lane.origin, s), 0.0) + lane.rate
            con_rate[(lane.destination, s)] = con_rate.get((lane.destination, s), 0.0) + lane.rate
        countries = sorted({*ORIGINS, *HUB_WEIGHTS, *SANCTIONED_WEIGHTS, *CONTROL_WEIGHTS})
        self._used_ids: set[str] = set()
        self.exporters: dict[tuple[str, str], _Pool] = {}
        self.consignees: dict[tuple[str, str], _Pool] = {}
        for country in countries:
            for sector in SECTORS:
                self.exporters[(country, sector)] = self._pool(
                    rng, country, exp_rate.get((country, sector), 0.0)
                )
                self.consignees[(country, sector)] = self._pool(
                    rng, country, con_rate.get((country, sector), 0.0)
                )
        self.lane_index = {
            (ln.origin, ln.destination, ln.hs6): i for i, ln in enumerate(self.lanes)
        }
        self._serving: dict[tuple[str, str, str], _Pool] = {}

    def serving(self, origin: str, sector: str, destination: str) -> _Pool:
        """The exporters of (origin, sector) that serve ``destination``.

        The biggest exporters serve every destination; an exporter of rank r (0 =
        biggest) serves a given destination with probability ``min(1, 0.25 + 3/(r+1))``,
        so small exporters have one to three markets, as in real trade networks.
        """
        key = (origin, sector, destination)
        sub = self._serving.get(key)
        if sub is None:
            pool = self.exporters[(origin, sector)]
            n = len(pool.ids)
            ranks = np.arange(n)
            u = np.array([zlib.crc32(f"{pid}>{destination}".encode()) / 2**32 for pid in pool.ids])
            keep = u < np.minimum(1.0, 0.25 + 3.0 / (ranks + 1.0))
            weights = np.diff(np.concatenate(([0.0], pool.cum)))[keep]
            sub = self._serving[key] = _Pool(
                [pool.ids[i] for i in np.flatnonzero(keep)], weights, pool.size[keep]
            )
        return sub

    def new_party_id(self, country: str, rng: np.random.Generator) -> str:
        """An EORI-like id (country + 12 digits) that no pool uses."""
        while True:
            pid = f"{country}{int(rng.integers(10**11, 10**12))}"
            if pid not in self._used_ids:
                self._used_ids.add(pid)
                return pid

    def _pool(self, rng: np.random.Generator, country: str, rate: float) -> _Pool:
        n = int(6 + 14 * math.sqrt(rate))
        ids = [self.new_party_id(country, rng) for _ in range(n)]
        weights = (np.arange(n) + 1.0) ** -1.1
        # bigger exporters also ship somewhat bigger consignments
        size = np.exp(0.15 * np.log(weights / weights.mean()) + rng.normal(0.0, 0.4, n))
        return _Pool(ids, weights, size)


# --------------------------------------------------------------------------------------
# Scenario plumbing
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Removal:
    """Thin background declarations of matching lanes on days ``[day_from, day_to)``.

    ``keep`` is the kept fraction (0: none). With ``restamp_day`` the removed
    declarations are not lost but lodged on that day instead (a backlog);
    ``on_moved`` is called with each moved declaration.
    """

    match: Callable[[Lane], bool]
    day_from: int
    day_to: int
    keep: float = 0.0
    restamp_day: int | None = None
    on_moved: Callable[[TradeDeclaration], None] | None = None


@dataclasses.dataclass
class Effect:
    """What one scenario does to a stream: extra declarations and background removals."""

    extra: list[TradeDeclaration] = dataclasses.field(default_factory=list)
    removals: list[Removal] = dataclasses.field(default_factory=list)
    truth: Any = None


class ScenarioLike(Protocol):
    name: str

    def apply(self, ctx: StreamContext) -> Effect: ...


def all_level_keys(origin: str, destination: str, hs_code: str) -> list[str]:
    """Every aggregate series key a declaration can count towards, at all levels
    (``hs6``, ``hs4``, ``hs2``, ``tier``), for its lane and for the all-origins
    (transit-country) view, in the pipeline's key format. CHPL goods roll up by
    tier, others by HS4/HS2 (see :mod:`streams.series`).

    >>> all_level_keys("DE", "KG", "85423190")
    ['hs6:DE>KG:854231', 'tier:DE>KG:T1', 'hs6:*>KG:854231', 'tier:*>KG:T1']
    >>> all_level_keys("NL", "KZ", "06031100")[:3]
    ['hs6:NL>KZ:060311', 'hs4:NL>KZ:0603', 'hs2:NL>KZ:06']
    """
    tier = chpl_tier(hs_code)
    keys = []
    for o in (origin, "*"):
        route = f"{o}>{destination}"
        keys.append(f"hs6:{route}:{hs_code[:6]}")
        if tier is not None:
            keys.append(f"tier:{route}:T{tier}")
        else:
            keys += [f"hs4:{route}:{hs_code[:4]}", f"hs2:{route}:{hs_code[:2]}"]
    return keys


_ID_MASK = (1 << 52) - 1
_ID_MULT = 0x9E3779B97F4A7  # odd: multiplication mod 2**52 is a bijection
_CHECK = "0123456789ABCDEFGHJKLMNPRSTUVWXYZ"
#: Cumulative shares of an exporter's regular customers (slots 0-2); the rest is spot sales.
_SLOT_CUM = np.array([0.60, 0.85, 0.95])


class _Sampler:
    """Turns arrays of lane attributes into declarations (shared by background and scenarios)."""

    def __init__(self, model: BackgroundModel) -> None:
        self.model = model
        self.config = model.config
        self._id_key = (zlib.crc32(f"ids{self.config.seed}".encode()) * 0x1F1F1F) & _ID_MASK
        self._serial: dict[int, int] = {}
        self._day_dt: dict[int, dt.datetime] = {}
        self._rel_cache: dict[str, int] = {}

    def day_start(self, day: int) -> dt.datetime:
        d = self._day_dt.get(day)
        if d is None:
            date = self.config.date_of(day)
            d = self._day_dt[day] = dt.datetime(date.year, date.month, date.day, tzinfo=dt.UTC)
        return d

    def reset_serial(self, source: int) -> None:
        self._serial[source] = 0

    def _relationship_keys(self, exporter_ids: list[str]) -> np.ndarray:
        cache = self._rel_cache
        out = np.empty(len(exporter_ids), dtype=np.uint64)
        for i, e in enumerate(exporter_ids):
            k = cache.get(e)
            if k is None:
                k = cache[e] = zlib.crc32(e.encode())
            out[i] = k
        return out

    def times_of_day(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Seconds into the day: 80 % business hours (~11:00 UTC +- 2.6 h), 20 % uniform."""
        business = np.clip(rng.normal(11.0 * 3600, 2.6 * 3600, n), 5 * 3600, 20 * 3600)
        anytime = rng.uniform(0, _DAY - 1, n)
        return np.where(rng.random(n) < 0.8, business, anytime).astype(np.int64)

    def ids(self, source: int, n: int, year: int, countries: Sequence[str]) -> list[str]:
        start = self._serial.get(source, 0)
        self._serial[source] = start + n
        serial = (np.uint64(source) << np.uint64(40)) + np.arange(start, start + n, dtype=np.uint64)
        mixed = ((serial * np.uint64(_ID_MULT)) & np.uint64(_ID_MASK)) ^ np.uint64(self._id_key)
        yy = f"{year % 100:02d}"
        check = _CHECK
        return [
            f"{yy}{c}{int(x):013X}{check[int(x) % 33]}"
            for c, x in zip(countries, mixed.tolist(), strict=True)
        ]

    def build(
        self,
        lanes: Sequence[Lane],
        day: int,
        rng: np.random.Generator,
        source: int,
        **overrides: Any,
    ) -> list[TradeDeclaration]:
        return self.build_with_order(lanes, day, rng, source, **overrides)[0]

    def build_with_order(
        self,
        lanes: Sequence[Lane],
        day: int,
        rng: np.random.Generator,
        source: int,
        *,
        seconds: np.ndarray | None = None,
        exporter: str | None = None,
        consignee: str | None = None,
        mass_factor: float | np.ndarray = 1.0,
        value_factor: float | np.ndarray = 1.0,
        procedure: str | None = None,
        masses: Sequence[float] | None = None,
        values: Sequence[float] | None = None,
        customs_procedure: str | None = None,
    ) -> tuple[list[TradeDeclaration], list[int]]:
        """One declaration per entry of ``lanes``, lodged on ``day``, sorted by time,
        and for each the index of its entry in ``lanes``.

        Random draws happen in a fixed order whatever the overrides, so results
        depend only on (rng state, lanes, day). ``masses``/``values`` fix a
        declaration's net mass and value (in the order of ``lanes``).
        """
        procedure = procedure or customs_procedure
        n = len(lanes)
        if n == 0:
            return [], []
        model = self.model
        prod_idx = np.fromiter((ln.product for ln in lanes), dtype=np.int64, count=n)
        secs = self.times_of_day(rng, n) if seconds is None else np.asarray(seconds, dtype=np.int64)
        u_exp, u_con, u_cn8, u_mode, u_route, u_proc = rng.random((6, n))
        z_mass, z_uv, z_sup = rng.standard_normal((3, n))
        order_arr = np.argsort(secs, kind="stable")
        order = order_arr.tolist()
        day_dt = self.day_start(day)
        year = day_dt.year
        countries = [lanes[i].origin for i in order]
        ids = self.ids(source, n, year, countries)
        mf = np.broadcast_to(np.asarray(mass_factor, dtype=float), (n,)).tolist()
        vf = np.broadcast_to(np.asarray(value_factor, dtype=float), (n,)).tolist()
        # parties: one vectorised pick per pool
        exp_ids: list[str] = [""] * n
        exp_size = [1.0] * n
        con_ids: list[str] = [""] * n
        if exporter is None or consignee is None:
            groups_e: dict[tuple[str, str], list[int]] = {}
            groups_c: dict[tuple[str, str], list[int]] = {}
            for i, ln in enumerate(lanes):
                sector = PRODUCTS[ln.product].sector
                groups_e.setdefault((ln.origin, sector, ln.destination), []).append(i)
                groups_c.setdefault((ln.destination, sector), []).append(i)
            if exporter is None:
                for key, idx in groups_e.items():
                    pool = model.serving(*key)
                    picks = pool.pick(u_exp[idx]).tolist()
                    sizes = pool.size[picks].tolist()
                    for i, e, sz in zip(idx, picks, sizes, strict=True):
                        exp_ids[i] = pool.ids[e]
                        exp_size[i] = sz
            if exporter is not None:
                exp_ids = [exporter] * n
            if consignee is None:
                # Sticky trade relationships: each exporter has a few regular customers
                # per (destination, sector) -- slot 0 (60 %), 1 (25 %), 2 (10 %) -- and
                # 5 % spot sales to anyone in the destination's pool.
                rel = self._relationship_keys(exp_ids)
                slot = np.searchsorted(_SLOT_CUM, u_con, side="right")
                spot = slot >= 3
                mixed = (
                    (rel + slot.astype(np.uint64) * np.uint64(0x9E3779B1)) * np.uint64(_ID_MULT)
                ) & np.uint64(_ID_MASK)
                u_rel = np.where(
                    spot,
                    (u_con - _SLOT_CUM[-1]) / (1 - _SLOT_CUM[-1]),
                    mixed.astype(np.float64) / float(_ID_MASK + 1),
                )
                for key, idx in groups_c.items():
                    cpool = model.consignees[key]
                    salt = zlib.crc32(f"{key[0]}{key[1]}".encode()) / 2**32
                    u = np.where(spot[idx], u_rel[idx], np.mod(u_rel[idx] + salt, 1.0))
                    picks = cpool.pick(u).tolist()
                    for i, c in zip(idx, picks, strict=True):
                        con_ids[i] = cpool.ids[c]
        if exporter is not None:
            exp_ids = [exporter] * n
        if consignee is not None:
            con_ids = [consignee] * n
        # numeric fields, vectorised
        prices = np.fromiter((ln.price for ln in lanes), dtype=float, count=n)
        onward = np.fromiter((ln.onward for ln in lanes), dtype=bool, count=n)
        mass = (
            _P_MASS[prod_idx]
            * np.asarray(exp_size)
            * np.exp(_P_MSIG[prod_idx] * z_mass)
            * np.asarray(mf)
        )
        if masses is not None:
            mass = np.asarray(masses, dtype=float)
        mass = np.round(np.maximum(mass, 0.1), 1)
        if values is None:
            value = (
                mass * _P_UV[prod_idx] * prices * np.exp(_P_USIG[prod_idx] * z_uv) * np.asarray(vf)
            )
        else:
            value = np.asarray(values, dtype=float)
        value = np.round(value, 2)
        qty = np.maximum(1.0, np.round(mass * _P_PPK[prod_idx] * np.exp(0.15 * z_sup)))
        sec = _P_SECTOR[prod_idx]
        mode = _MODE_VALS[sec, (u_mode[:, None] >= _MODE_CUM[sec]).sum(axis=1)]
        cn8_pick = np.minimum((u_cn8 * _P_NCN8[prod_idx]).astype(np.int64), _P_NCN8[prod_idx] - 1)
        re_export = np.where(onward, np.where(_P_CHPL[prod_idx], 0.9, 0.4), 0.03)
        procs = (
            np.where(u_proc < re_export, "3151", "1000").tolist()
            if procedure is None
            else [procedure] * n
        )
        massl, valuel, qtyl, model, cn8l = (
            mass.tolist(),
            value.tolist(),
            qty.tolist(),
            mode.tolist(),
            cn8_pick.tolist(),
        )
        u_routel = u_route.tolist()
        secsl = secs.tolist()
        prods = [PRODUCTS[j] for j in prod_idx.tolist()]
        out: list[TradeDeclaration] = []
        td = dt.timedelta
        decl = TradeDeclaration
        for k, i in enumerate(order):
            lane = lanes[i]
            prod = prods[i]
            unit = prod.sup_unit
            m = model[i]
            out.append(
                decl(
                    schema_version=1,
                    declaration_id=ids[k],
                    declared_at=day_dt + td(seconds=secsl[i]),
                    exporter_id=exp_ids[i],
                    exporter_country=lane.origin,
                    consignee_id=con_ids[i],
                    consignee_country=lane.destination,
                    destination_country=lane.destination,
                    hs_code=prod.cn8[cn8l[i]],
                    net_mass_kg=massl[i],
                    statistical_value_eur=valuel[i],
                    customs_procedure=procs[i],
                    transport_mode=m,
                    transit_route=_route(lane, m, u_routel[i]),
                    goods_description=prod.description,
                    supplementary_quantity=qtyl[i] if unit is not None else None,
                    supplementary_unit=unit,
                )
            )
        return out, order


_ROUTE_CACHE: dict[tuple[str, str, int], tuple[list[str], ...]] = {}


def _route(lane: Lane, mode: int, u: float) -> list[str]:
    key = (lane.origin, lane.destination, mode)
    options = _ROUTE_CACHE.get(key)
    if options is None:
        if mode not in (2, 3):  # sea, air, post: no overland transit countries
            raw: tuple[tuple[str, ...], ...] = ((),)
        elif lane.origin in TRANSIT_COUNTRIES and lane.destination in SANCTIONED_DESTINATIONS:
            raw = (_ONWARD_LAND_ROUTES.get(lane.origin, ()),)
        elif (lane.origin, lane.destination) in _OTHER_LAND_ROUTES:
            raw = (_OTHER_LAND_ROUTES[(lane.origin, lane.destination)],)
        elif lane.origin in ("CN", "US", "TR"):
            raw = ((),)
        else:
            raw = _EU_LAND_ROUTES.get(lane.destination, ((),))
        cleaned = []
        for r in raw:
            cleaned.append([c for c in r if c not in (lane.origin, lane.destination)])
        options = _ROUTE_CACHE[key] = tuple(cleaned)
    return options[min(int(u * len(options)), len(options) - 1)]


class StreamContext:
    """What a scenario sees: the config, the background lanes, and a declaration factory.

    Scenarios draw from their own ``rng(name)``; nothing they do changes the background.
    """

    def __init__(self, model: BackgroundModel, sampler: _Sampler) -> None:
        self.model = model
        self.config = model.config
        self._sampler = sampler
        self._source = 0

    # time
    def day_ts(self, day: int) -> float:
        return self.config.start_ts + day * _DAY

    def season(self, day: int, hs6: str = "") -> float:
        sector = PRODUCTS[PRODUCT_INDEX[hs6]].sector if hs6 in PRODUCT_INDEX else ""
        return season_factor(self.config.date_of(day), sector)

    def days_of_year_date(self, month: int, day: int) -> list[int]:
        """Stream day indices of (month, day) in every year the stream touches."""
        first, last = self.config.start.year, self.config.date_of(self.config.days - 1).year
        return [self.config.day_of(dt.date(y, month, day)) for y in range(first - 1, last + 2)]

    # lanes
    def lane(self, origin: str, destination: str, hs6: str) -> Lane:
        """The background lane, or a zero-rate lane with the same attributes."""
        i = self.model.lane_index.get((origin, destination, hs6))
        if i is not None:
            return self.model.lanes[i]
        onward = origin in TRANSIT_COUNTRIES and destination in SANCTIONED_DESTINATIONS
        return Lane(origin, destination, PRODUCT_INDEX[hs6], 0.0, onward, 1.0)

    def rate(self, origin: str, destination: str, hs6: str) -> float:
        """Base declarations per day of a lane (0 if the background does not have it)."""
        return self.lane(origin, destination, hs6).rate

    def expected(self, origin: str, destination: str, hs6: str, day: int) -> float:
        """Expected background declarations of a lane on ``day`` (before drift)."""
        return self.rate(origin, destination, hs6) * self.season(day, hs6)

    def lanes(self, match: Callable[[Lane], bool]) -> list[Lane]:
        return [ln for ln in self.model.lanes if match(ln)]

    # parties
    def rng(self, name: str) -> np.random.Generator:
        return np.random.default_rng([self.config.seed, 1, zlib.crc32(name.encode())])

    def new_party_id(self, country: str, rng: np.random.Generator) -> str:
        return self.model.new_party_id(country, rng)

    def exporter_ids(self, origin: str, hs6: str) -> list[str]:
        """Known exporters of (origin, the product's sector), biggest first."""
        return list(self.model.exporters[(origin, PRODUCTS[PRODUCT_INDEX[hs6]].sector)].ids)

    def consignee_ids(self, destination: str, hs6: str) -> list[str]:
        return list(self.model.consignees[(destination, PRODUCTS[PRODUCT_INDEX[hs6]].sector)].ids)

    def product(self, hs6: str) -> Product:
        return PRODUCTS[PRODUCT_INDEX[hs6]]

    # declarations
    def begin(self, source: int) -> None:
        """Set the id namespace for the next declarations (one per scenario)."""
        self._source = source

    def declarations(
        self,
        origin: str,
        destination: str,
        hs6: str,
        day: int,
        n: int,
        rng: np.random.Generator,
        **overrides: Any,
    ) -> list[TradeDeclaration]:
        """``n`` declarations on one lane on ``day`` with the background's distributions.

        ``overrides``: ``exporter``, ``consignee`` (fixed party ids), ``mass_factor``,
        ``value_factor`` (scalars or arrays of ``n``), ``masses``, ``values`` (exact,
        arrays of ``n``), ``procedure``, ``seconds``.
        """
        if not 0 <= day < self.config.days or n <= 0:
            return []
        lane = self.lane(origin, destination, hs6)
        return self._sampler.build([lane] * n, day, rng, self._source, **overrides)


# --------------------------------------------------------------------------------------
# The stream
# --------------------------------------------------------------------------------------


class SyntheticStream:
    """Background plus scenarios, as declarations in event-time order.

    >>> s = SyntheticStream(StreamConfig(days=2, daily_declarations=40))
    >>> decls = list(s.declarations())
    >>> all(a.declared_at <= b.declared_at for a, b in zip(decls, decls[1:]))
    True
    """

    def __init__(self, config: StreamConfig, scenarios: Iterable[ScenarioLike] = ()) -> None:
        self.config = config
        self.model = BackgroundModel(config)
        self._sampler = _Sampler(self.model)
        self.context = StreamContext(self.model, self._sampler)
        self.scenarios = list(scenarios)
        self.effects: list[Effect] = []
        names = [s.name for s in self.scenarios]
        if len(set(names)) != len(names):
            raise ValueError(f"scenario names must be unique, got {names}")
        for k, scenario in enumerate(self.scenarios, start=1):
            self.context.begin(k)
            self.effects.append(scenario.apply(self.context))
        self._extra_by_day: dict[int, list[TradeDeclaration]] = {}
        start = config.start_ts
        for effect in self.effects:
            for d in effect.extra:
                day = int((d.declared_ts - start) // _DAY)
                if 0 <= day < config.days:
                    self._extra_by_day.setdefault(day, []).append(d)
        self.removals = [r for e in self.effects for r in e.removals]
        self.background_count = 0
        self.extra_count = 0

    @property
    def truths(self) -> list[Any]:
        """Each scenario's ground truth (moved-declaration ids are complete after a full pass)."""
        return [e.truth for e in self.effects]

    def declarations(self) -> Iterator[TradeDeclaration]:
        """Every declaration of the stream, in event-time order."""
        cfg = self.config
        lanes = self.model.lanes
        n_lanes = len(lanes)
        rates = np.array([ln.rate for ln in lanes])
        lane_sector = [PRODUCTS[ln.product].sector for ln in lanes]
        sector_ids = {s: i for i, s in enumerate(SECTORS)}
        lane_sector_idx = np.array([sector_ids[s] for s in lane_sector], dtype=np.int64)
        phi, sd = 0.97, 0.04
        var = sd * sd / (1 - phi * phi)
        drift = np.random.default_rng([cfg.seed, 2]).normal(0.0, math.sqrt(var), n_lanes)
        masks = [np.array([r.match(ln) for ln in lanes], dtype=bool) for r in self.removals]
        backlog: dict[int, list[TradeDeclaration]] = {}
        self.background_count = self.extra_count = 0
        self._sampler.reset_serial(0)  # a second pass yields the same ids
        for day in range(cfg.days):
            rng = np.random.default_rng([cfg.seed, 3, day])
            date = cfg.date_of(day)
            drift = phi * drift + sd * rng.standard_normal(n_lanes)
            season = np.array([season_factor(date, s) for s in SECTORS])[lane_sector_idx]
            counts = rng.poisson(rates * season * np.exp(drift - 0.5 * var))
            lane_idx = np.repeat(np.arange(n_lanes), counts)
            u_keep = rng.random(len(lane_idx))
            day_lanes = [lanes[i] for i in lane_idx.tolist()]
            batch, order = self._sampler.build_with_order(day_lanes, day, rng, 0)
            if self.removals:
                batch = self._remove(batch, order, day, lane_idx, u_keep, masks, backlog)
            extra = self._extra_by_day.get(day, [])
            moved = backlog.pop(day, [])
            if extra or moved:
                batch = batch + extra + moved
                batch.sort(key=_declared_at)
            self.extra_count += len(extra)
            self.background_count += len(batch) - len(extra)
            yield from batch

    def _remove(
        self,
        batch: list[TradeDeclaration],
        order: list[int],
        day: int,
        lane_idx: np.ndarray,
        u_keep: np.ndarray,
        masks: list[np.ndarray],
        backlog: dict[int, list[TradeDeclaration]],
    ) -> list[TradeDeclaration]:
        active = [
            (r, m)
            for r, m in zip(self.removals, masks, strict=True)
            if r.day_from <= day < r.day_to
        ]
        if not active or not batch:
            return batch
        kept = []
        for d, i in zip(batch, order, strict=True):
            li = int(lane_idx[i])
            removed_by = None
            for r, m in active:
                if m[li] and u_keep[i] >= r.keep:
                    removed_by = r
                    break
            if removed_by is None:
                kept.append(d)
            elif removed_by.restamp_day is not None and removed_by.restamp_day < self.config.days:
                moved = self._restamp(d, removed_by.restamp_day)
                backlog.setdefault(removed_by.restamp_day, []).append(moved)
                if removed_by.on_moved is not None:
                    removed_by.on_moved(moved)
        return kept

    def _restamp(self, d: TradeDeclaration, day: int) -> TradeDeclaration:
        rng = np.random.default_rng([self.config.seed, 4, zlib.crc32(d.declaration_id.encode())])
        secs = int(self._sampler.times_of_day(rng, 1)[0])
        return msgspec.structs.replace(
            d, declared_at=self._sampler.day_start(day) + dt.timedelta(seconds=secs)
        )

    def records(self) -> Iterator[bytes]:
        """Encoded declarations (compact JSON bytes), in event-time order."""
        enc = encode
        for d in self.declarations():
            yield enc(d)


def _declared_at(d: TradeDeclaration) -> dt.datetime:
    return d.declared_at


def generate_records(
    config: StreamConfig, scenarios: Iterable[ScenarioLike] = ()
) -> Iterator[bytes]:
    """The encoded declarations of ``config`` plus ``scenarios``, in event-time order."""
    return SyntheticStream(config, scenarios).records()


def throttle(records: Iterable[bytes], per_second: float) -> Iterator[bytes]:
    """Yield ``records`` at most ``per_second`` a second (for feeding a broker at a chosen rate)."""
    if per_second <= 0:
        yield from records
        return
    interval = 1.0 / per_second
    next_at = time.monotonic()
    for i, raw in enumerate(records):
        if i % 64 == 0:
            now = time.monotonic()
            if now < next_at:
                time.sleep(next_at - now)
        next_at += interval
        yield raw


def write_jsonl(
    path: str | Path, config: StreamConfig, scenarios: Iterable[ScenarioLike] = ()
) -> dict[str, Any]:
    """Write the stream as JSON lines and its ground truth beside it (``<path>.truth.json``).

    Returns a summary: record count and the truth file's path.
    """
    path = Path(path)
    stream = SyntheticStream(config, scenarios)
    n = 0
    with path.open("wb") as fh:
        for raw in stream.records():
            fh.write(raw)
            fh.write(b"\n")
            n += 1
    truth_path = path.with_name(path.name + ".truth.json")
    truths = [t.to_dict() if hasattr(t, "to_dict") else t for t in stream.truths]
    truth_path.write_text(
        json.dumps(
            {"config": _config_dict(config), "records": n, "scenarios": truths},
            indent=1,
            default=str,
        )
    )
    return {"records": n, "truth": str(truth_path)}


def _config_dict(config: StreamConfig) -> dict[str, Any]:
    d = dataclasses.asdict(config)
    d["start"] = config.start.isoformat()
    return d
