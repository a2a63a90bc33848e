"""A real background: EU27 monthly export statistics expanded into export declarations.

The source is Eurostat Comext, monthly EU exports by CN8 to AM, BY, GE, KG, KZ, RU
and UZ in 2020-2021, as extracted in the MIT-licensed repository vzemlys/ruimpeks
(``raw/eurostat_xlsx``); Eurostat data may be reused with acknowledgement of the
source. The file is ``../shared/realdata/comext_eu27_exports_2020_2021.csv.gz`` (17 MB,
783,095 rows): too large to ship in the package, so it is read from the path given
(``--realdata PATH``, else ``$TRADEWATCH_REALDATA``, else :data:`DEFAULT_REALDATA`,
the ``shared/realdata`` folder beside the checkout). Nothing here downloads.

The data hold values only (no dates within the month, no mass, no firms) and no
goods of the Common High Priority List. Turning a month into declarations is a
model; every choice below is a parameter of :class:`ExpansionConfig`.

Rows kept
    CN8 rows as they are. Four-digit rows are, for 97 % of them, the heading's
    subtotal of CN8 rows already present (95,068 of 97,963 equal the sum of their
    CN8 rows): kept would double-count. Only the *residual* (heading value minus its
    CN8 rows in the same month and lane, when above 1 EUR) is expanded, under the
    code ``HHHH00`` ("heading, not further specified"): goods reported at heading
    level only, e.g. aircraft (8802), turbojets (8411), diamonds (7102), about
    4.5 bn EUR over the 24 months. Heading 8471's residual (1.5 bn EUR) is dropped:
    it holds the CHPL subheading 8471.50 that the extraction removed from the CN8
    rows, and the background must stay free of CHPL goods.
How many declarations (:class:`SizeModel`)
    A lane-month's value V becomes ``n = max(1, round(scale * min(cap, max(1,
    round(V / typical)))))`` declarations, where ``typical`` is a typical declaration
    value of the product's HS chapter (100k EUR for food, 160k for machinery, 240k for
    vehicles, 8m for aircraft ...: order-of-magnitude assumptions, not measured;
    consolidated declarations, about four consignments each, so that the replay stays
    near a million declarations) and ``cap`` (60) bounds the busiest lanes to about
    three declarations a working day. Every lane-month with trade makes at least one
    declaration, so the 686k lane-months are the floor of the count. ``scale``
    multiplies every lane-month's count (``scale=4``: four times as many, smaller
    declarations of the same values). The values of the n
    declarations are V split by log-normal weights (sigma 0.9), rounded to cents, the
    rounding remainder on the largest: they sum to V within a cent.
When
    A working day of the month drawn uniformly: Monday to Friday, except the
    holidays that most member states share (1 January, Good Friday, Easter Monday,
    1 May, 25 and 26 December); one calendar for all 27 reporters, no declaration
    on weekends. Time of day normal around 10:30 UTC (sd 2.5 h), clipped to
    05:00-19:00 UTC (working hours in Central European time).
Who
    Exporters: a Zipf-weighted pool per (reporter, HS chapter), sized by the
    pool's two-year value (``3 + 2 sqrt(value / 1 m EUR)``, at most 400). Each CN8
    series has two regular exporters (drawn once from the pool, by hash: big
    exporters serve many series) that lodge 80 % of its declarations; the rest are
    spot sales from the whole pool. Consignees: a pool per (partner, HS chapter);
    each exporter has two regular consignees per partner (75 %), else spot buyers.
    Ids are EORI-like (country + 12 digits), stable for a seed.
Mass, transport, route
    Net mass = value / unit value, the unit value being a typical EUR/kg of the
    chapter (3 for food, 25 for machinery, 12 for vehicles ...: assumptions) times
    a fixed per-series price factor (log-normal, sigma 0.35) and a per-declaration
    one (sigma 0.25), to the gram (at least 1 g). No supplementary quantity. Air (mode 4) for 70 % of goods
    above 300 EUR/kg, rail (2) for 10 %, else road (3); road and rail go through the
    usual land route to the partner (e.g. PL, BY, RU to Kazakhstan). Procedure 1000
    (permanent export); injected re-exports use 3151.

Randomness: one generator per (seed, month) for the background and another for
injected flows, so the background is identical with or without scenarios and with
any month range. Declarations of a month are built as arrays, then turned into
objects one at a time in time order: memory holds one month of arrays, not the stream.

At scale 1 the full 24 months make 1,163,703 declarations (48.5k a month on average,
from 33.5k in April 2020 to 54.1k in September 2021) out of 686,308 lane-months; at
scale 4, 4,654,812 (:func:`summarize_counts` gives the counts without building them).
"""

from __future__ import annotations

import calendar
import csv
import dataclasses
import datetime as dt
import gzip
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from detectors.reference import chpl_tier
from streams.events import TradeDeclaration

__all__ = [
    "DEFAULT_REALDATA",
    "MonthlyTable",
    "SizeModel",
    "ExpansionConfig",
    "Flow",
    "RealStream",
    "load_comext",
    "realdata_path",
    "working_days",
    "easter_sunday",
    "month_range",
    "summarize_counts",
]

#: ``shared/realdata`` beside the checkout (the project's shared folder).
DEFAULT_REALDATA = (
    Path(__file__).resolve().parent.parent.parent
    / "shared"
    / "realdata"
    / "comext_eu27_exports_2020_2021.csv.gz"
)
_DAY = 86_400


def realdata_path(path: str | Path | None = None) -> Path:
    """The CSV to read: ``path``, else ``$TRADEWATCH_REALDATA``, else :data:`DEFAULT_REALDATA`."""
    chosen = Path(path or os.environ.get("TRADEWATCH_REALDATA") or DEFAULT_REALDATA)
    if not chosen.exists():
        raise FileNotFoundError(
            f"real trade data not found at {chosen}; pass --realdata PATH "
            "(comext_eu27_exports_2020_2021.csv.gz, see evaluation/realdata.py)"
        )
    return chosen


def month_range(first: str, last: str) -> list[str]:
    """``YYYY-MM`` months from ``first`` to ``last`` inclusive.

    >>> month_range("2020-11", "2021-02")
    ['2020-11', '2020-12', '2021-01', '2021-02']
    """
    y, m = int(first[:4]), int(first[5:7])
    out = []
    while f"{y:04d}-{m:02d}" <= last:
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


# --------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------


@dataclasses.dataclass
class MonthlyTable:
    """Monthly values per (reporter, partner, code), sorted by month.

    ``month`` indexes ``months``; ``code`` is CN8, or ``HHHH00`` for a heading residual.
    """

    months: list[str]
    month: np.ndarray  # int16
    reporter: np.ndarray  # <U2
    partner: np.ndarray  # <U2
    code: np.ndarray  # <U8
    value: np.ndarray  # float64, EUR
    labels: dict[str, str]

    def __len__(self) -> int:
        return len(self.value)

    def rows_of(self, month_index: int) -> slice:
        lo, hi = np.searchsorted(self.month, [month_index, month_index + 1])
        return slice(int(lo), int(hi))

    def lane_values(self, reporter: str, partner: str, code: str) -> dict[str, float]:
        """Month -> value of one lane (months without trade absent)."""
        mask = (self.reporter == reporter) & (self.partner == partner) & (self.code == code)
        return {self.months[int(m)]: float(v) for m, v in zip(self.month[mask], self.value[mask])}

    def monthly_totals(self) -> dict[str, float]:
        sums = np.bincount(self.month, weights=self.value, minlength=len(self.months))
        return {m: float(s) for m, s in zip(self.months, sums, strict=True)}


def load_comext(
    path: str | Path | None = None, months: tuple[str, str] | None = None
) -> MonthlyTable:
    """Read the Comext CSV (``month,reporter,partner,code,product,value_eur``).

    ``months`` = (first, last) keeps that range only. Four-digit rows become heading
    residuals and CHPL codes are dropped (see the module docstring).
    """
    src = realdata_path(path)
    opener = gzip.open if src.suffix == ".gz" else open
    cn8: dict[tuple[str, str, str, str], float] = {}
    heading_sum: dict[tuple[str, str, str, str], float] = {}
    headings: dict[tuple[str, str, str, str], float] = {}
    labels: dict[str, str] = {}
    with opener(src, "rt", encoding="utf-8", newline="") as fh:  # type: ignore[operator]
        reader = csv.reader(fh)
        header = next(reader)
        if header[:6] != ["month", "reporter", "partner", "code", "product", "value_eur"]:
            raise ValueError(f"{src}: unexpected header {header}")
        for month, reporter, partner, code, product, value in reader:
            if months is not None and not months[0] <= month <= months[1]:
                continue
            v = float(value)
            if v <= 0:
                continue
            if len(code) == 8:
                if chpl_tier(code) is not None:
                    continue
                cn8[(month, reporter, partner, code)] = v
                k4 = (month, reporter, partner, code[:4])
                heading_sum[k4] = heading_sum.get(k4, 0.0) + v
                labels.setdefault(code, product)
            elif len(code) == 4:
                headings[(month, reporter, partner, code)] = v
                labels.setdefault(code + "00", product)
    for (month, reporter, partner, h4), v in headings.items():
        residual = v - heading_sum.get((month, reporter, partner, h4), 0.0)
        code = h4 + "00"
        if residual > 1.0 and h4 != "8471" and chpl_tier(code) is None:
            cn8[(month, reporter, partner, code)] = residual
    keys = sorted(cn8)
    month_names = sorted({k[0] for k in keys})
    index = {m: i for i, m in enumerate(month_names)}
    return MonthlyTable(
        months=month_names,
        month=np.array([index[k[0]] for k in keys], dtype=np.int16),
        reporter=np.array([k[1] for k in keys], dtype="<U2"),
        partner=np.array([k[2] for k in keys], dtype="<U2"),
        code=np.array([k[3] for k in keys], dtype="<U8"),
        value=np.array([cn8[k] for k in keys], dtype=np.float64),
        labels=labels,
    )


# --------------------------------------------------------------------------------------
# The model's parameters
# --------------------------------------------------------------------------------------

#: (first HS chapter, last, typical declaration value EUR, unit value EUR/kg): assumptions.
#: The declaration values are consolidated ones, about four times a typical consignment
#: (a real extra-EU export declaration averages nearer 10k EUR): at consignment size the
#: 24 months would be ~3 million declarations (``scale`` ~2.6), too many for a replay.
_CHAPTER_TABLE: tuple[tuple[int, int, float, float], ...] = (
    (1, 24, 100_000, 3.0),  # food and drink
    (25, 27, 240_000, 0.5),  # minerals, fuels
    (28, 29, 120_000, 4.0),  # chemicals
    (30, 30, 200_000, 60.0),  # pharmaceuticals
    (31, 38, 80_000, 8.0),  # paints, cosmetics, soaps, chemical products
    (39, 40, 80_000, 4.0),  # plastics, rubber
    (41, 43, 40_000, 40.0),  # leather, bags
    (44, 49, 60_000, 1.5),  # wood, paper
    (50, 63, 40_000, 25.0),  # textiles, clothing
    (64, 67, 40_000, 30.0),  # footwear, headgear
    (68, 70, 50_000, 3.0),  # stone, ceramics, glass
    (71, 71, 120_000, 5_000.0),  # precious stones and metals
    (72, 83, 100_000, 3.0),  # base metals
    (84, 84, 160_000, 25.0),  # machinery
    (85, 85, 100_000, 40.0),  # electrical equipment
    (86, 86, 600_000, 8.0),  # railway
    (87, 87, 240_000, 12.0),  # vehicles
    (88, 88, 8_000_000, 300.0),  # aircraft
    (89, 89, 2_000_000, 10.0),  # ships
    (90, 92, 80_000, 150.0),  # instruments, clocks
    (93, 99, 60_000, 15.0),  # arms, furniture, toys, art, other
)


def _chapter_column(col: int) -> tuple[tuple[int, float], ...]:
    return tuple(
        (ch, row[col]) for row in _CHAPTER_TABLE for ch in range(row[0], row[1] + 1)
    )


@dataclasses.dataclass(frozen=True)
class SizeModel:
    """How many declarations a lane-month's value becomes (see the module docstring).

    >>> SizeModel().count(1_000_000.0, "84")   # 1m EUR of machinery: 6 declarations
    6
    >>> SizeModel().count(300.0, "61"), SizeModel().count(1e9, "87"), SizeModel().count(1e9, "87", 4)
    (1, 60, 240)
    """

    #: HS chapter (int) -> typical consignment value, EUR.
    typical_eur: tuple[tuple[int, float], ...] = _chapter_column(2)
    default_typical_eur: float = 100_000.0
    #: Most declarations one lane-month becomes at scale 1.
    cap: int = 60
    #: Spread of the declarations' values within a lane-month (log-normal sigma).
    sigma: float = 0.9

    def typical(self, hs2: str) -> float:
        return dict(self.typical_eur).get(int(hs2), self.default_typical_eur)

    def count(self, value: float, hs2: str, scale: float = 1.0) -> int:
        base = min(self.cap, max(1, round(value / self.typical(hs2))))
        return max(1, round(scale * base))


@dataclasses.dataclass(frozen=True)
class ExpansionConfig:
    """Every modelling choice of the expansion, with its default."""

    seed: int = 20200101
    #: Multiplies every lane-month's declaration count.
    scale: float = 1.0
    size: SizeModel = SizeModel()
    #: HS chapter -> typical unit value, EUR per kg net mass.
    unit_value_eur_kg: tuple[tuple[int, float], ...] = _chapter_column(3)
    series_price_sigma: float = 0.35
    declaration_price_sigma: float = 0.25
    #: Skip the common EU public holidays (besides weekends, always skipped).
    holidays: bool = True
    hour_mean_utc: float = 10.5
    hour_sd: float = 2.5
    regular_exporter_share: float = 0.8
    regular_consignee_share: float = 0.75
    #: Share of declarations of goods above 300 EUR/kg that travel by air.
    air_share_dense: float = 0.7
    rail_share: float = 0.1

    def __post_init__(self) -> None:
        if self.scale <= 0:
            raise ValueError(f"scale must be > 0, got {self.scale}")


@dataclasses.dataclass(frozen=True)
class Flow:
    """A monthly value on one lane that is not in the statistics (injected).

    ``source`` > 0 names who injected it (ids of its declarations are collected per
    source); ``count`` > 0 fixes the number of declarations (e.g. one big shipment);
    ``exporter``/``consignee`` fix the parties (a new firm).
    """

    month: str
    reporter: str
    partner: str
    code: str
    value: float
    source: int
    label: str = ""
    count: int = 0
    exporter: str | None = None
    consignee: str | None = None
    procedure: str = "1000"


# --------------------------------------------------------------------------------------
# Calendar
# --------------------------------------------------------------------------------------


def easter_sunday(year: int) -> dt.date:
    """Gregorian Easter Sunday (the anonymous Gregorian algorithm).

    >>> easter_sunday(2020), easter_sunday(2021)
    (datetime.date(2020, 4, 12), datetime.date(2021, 4, 4))
    """
    a, b, c = year % 19, year // 100, year % 100
    d, e = divmod(b, 4)
    g = (8 * b + 13) // 25
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    ell = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * ell) // 451
    month, day = divmod(h + ell - 7 * m + 114, 31)
    return dt.date(year, month, day + 1)


def _holidays(year: int) -> set[dt.date]:
    easter = easter_sunday(year)
    return {
        dt.date(year, 1, 1),
        easter - dt.timedelta(days=2),
        easter + dt.timedelta(days=1),
        dt.date(year, 5, 1),
        dt.date(year, 12, 25),
        dt.date(year, 12, 26),
    }


def working_days(month: str, holidays: bool = True) -> list[dt.date]:
    """Monday-Friday of ``YYYY-MM``, without the common EU holidays.

    >>> len(working_days("2021-04")), len(working_days("2021-04", holidays=False))
    (20, 22)
    """
    y, m = int(month[:4]), int(month[5:7])
    skip = _holidays(y) if holidays else set()
    days = (dt.date(y, m, d) for d in range(1, calendar.monthrange(y, m)[1] + 1))
    return [d for d in days if d.weekday() < 5 and d not in skip]


# --------------------------------------------------------------------------------------
# Hashing: stable per-series choices without state
# --------------------------------------------------------------------------------------

_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _mix(*parts: np.ndarray | int) -> np.ndarray:
    """splitmix64 over the combined parts: a deterministic uint64 per element."""
    with np.errstate(over="ignore"):
        h = np.uint64(0x9E3779B97F4A7C15)
        for p in parts:
            x = np.asarray(p).astype(np.uint64) + h
            x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            h = x ^ (x >> np.uint64(31))
    return np.asarray(h, dtype=np.uint64)


def _unit(h: np.ndarray) -> np.ndarray:
    """uint64 hash -> uniform in (0, 1)."""
    return ((h >> np.uint64(11)).astype(np.float64) + 0.5) / float(1 << 53)


def _country_int(codes: np.ndarray) -> np.ndarray:
    b = np.char.encode(codes.astype("<U2"), "ascii").view(np.uint8).reshape(-1, 2)
    return b[:, 0].astype(np.int64) * 256 + b[:, 1].astype(np.int64)


_EU_LAND_ROUTES: dict[str, tuple[tuple[str, ...], ...]] = {
    "RU": (("PL", "BY"), ("LT",), ("LV",), ("FI",)),
    "BY": (("PL",), ("LT",)),
    "KZ": (("PL", "BY", "RU"), ("LT", "RU")),
    "KG": (("PL", "BY", "RU", "KZ"), ("LT", "RU", "KZ")),
    "UZ": (("PL", "BY", "RU", "KZ"), ("LT", "RU", "KZ")),
    "AM": (("BG", "TR", "GE"),),
    "GE": (("BG", "TR"),),
}
#: Re-export legs out of a hub to Russia, by hub.
_HUB_LAND_ROUTES: dict[str, tuple[str, ...]] = {"KG": ("KZ",), "UZ": ("KZ",), "AM": ("GE",)}
_HUBS = frozenset({"AM", "GE", "KG", "KZ", "UZ"})
_ID_MASK = (1 << 52) - 1
_ID_MULT = 0x9E3779B97F4A7  # odd: a bijection mod 2**52 (the generator's MRN scheme)
_CHECK = "0123456789ABCDEFGHJKLMNPRSTUVWXYZ"


# --------------------------------------------------------------------------------------
# The stream
# --------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Rows:
    """One month's lane rows to expand (background or injected)."""

    reporter: np.ndarray
    partner: np.ndarray
    code: np.ndarray
    value: np.ndarray
    source: np.ndarray
    count: np.ndarray
    exporter: list[str | None]
    consignee: list[str | None]
    procedure: list[str]

    @classmethod
    def of_flows(cls, flows: Sequence[Flow]) -> _Rows:
        return cls(
            np.array([f.reporter for f in flows], dtype="<U2"),
            np.array([f.partner for f in flows], dtype="<U2"),
            np.array([f.code for f in flows], dtype="<U8"),
            np.array([f.value for f in flows], dtype=np.float64),
            np.array([f.source for f in flows], dtype=np.int64),
            np.array([f.count for f in flows], dtype=np.int64),
            [f.exporter for f in flows],
            [f.consignee for f in flows],
            [f.procedure for f in flows],
        )


class RealStream:
    """The real background (plus injected flows) as declarations in event-time order.

    ``ids_by_source`` collects, while :meth:`declarations` runs, the ids and times
    of every injected declaration per flow source (ground truth is read after).
    """

    def __init__(
        self,
        table: MonthlyTable,
        config: ExpansionConfig | None = None,
        flows: Iterable[Flow] = (),
    ) -> None:
        self.table = table
        self.config = config or ExpansionConfig()
        self.flows_by_month: dict[str, list[Flow]] = {}
        for f in flows:
            if f.value > 0 and f.month in table.months:
                self.flows_by_month.setdefault(f.month, []).append(f)
        for f in (f for fl in self.flows_by_month.values() for f in fl):
            if f.label:
                table.labels.setdefault(f.code, f.label)
        self.ids_by_source: dict[int, list[tuple[str, float]]] = {}
        self.count = 0
        self.count_by_month: dict[str, int] = {}
        self._pools = self._pool_sizes()
        cfg = self.config
        self._typical = np.full(100, cfg.size.default_typical_eur)
        for ch, v in cfg.size.typical_eur:
            self._typical[ch] = v
        self._uv = np.full(100, 15.0)
        for ch, v in cfg.unit_value_eur_kg:
            self._uv[ch] = v

    @property
    def start_ts(self) -> float:
        return float(calendar.timegm(dt.date.fromisoformat(self.table.months[0] + "-01").timetuple()))

    @property
    def end_ts(self) -> float:
        y, m = int(self.table.months[-1][:4]), int(self.table.months[-1][5:7])
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
        return float(calendar.timegm(dt.date(y, m, 1).timetuple()))

    def _pool_sizes(self) -> dict[tuple[str, int], int]:
        """Exporters per (reporter, chapter) and consignees per (partner, chapter)."""
        t = self.table
        hs2 = np.array([int(c[:2]) for c in t.code]) if len(t) else np.zeros(0, int)
        sizes: dict[tuple[str, int], float] = {}
        for side in (t.reporter, t.partner):
            for country in np.unique(side):
                mask = side == country
                totals = np.bincount(hs2[mask], weights=t.value[mask], minlength=100)
                for ch in np.flatnonzero(totals):
                    sizes[(str(country), int(ch))] = float(totals[ch])
        return {k: int(min(400, 3 + 2 * math.sqrt(v / 1e6))) for k, v in sizes.items()}

    def pool_size(self, country: str, hs2: int) -> int:
        return self._pools.get((country, hs2), 3)

    # -- public iteration -------------------------------------------------------------

    def declarations(self) -> Iterator[TradeDeclaration]:
        """Every declaration, month by month, in ``declared_at`` order."""
        self.ids_by_source = {}
        self.count = 0
        self.count_by_month = {}
        t = self.table
        cfg = self.config
        for mi, month in enumerate(t.months):
            sl = t.rows_of(mi)
            n_bg = sl.stop - sl.start
            bg = _Rows(
                t.reporter[sl], t.partner[sl], t.code[sl], t.value[sl],
                np.zeros(n_bg, np.int64), np.zeros(n_bg, np.int64),
                [None] * n_bg, [None] * n_bg, ["1000"] * n_bg,
            )
            batches = [self._expand(bg, month, mi, np.random.default_rng([cfg.seed, 0, mi]))]
            flows = self.flows_by_month.get(month)
            if flows:
                rng = np.random.default_rng([cfg.seed, 1, mi])
                batches.append(self._expand(_Rows.of_flows(flows), month, mi, rng, serial0=1 << 30))
            n_month = 0
            for d, source in self._emit(batches, month):
                n_month += 1
                if source:
                    self.ids_by_source.setdefault(source, []).append(
                        (d.declaration_id, d.declared_ts)
                    )
                yield d
            self.count += n_month
            self.count_by_month[month] = n_month

    def records(self) -> Iterator[bytes]:
        from streams.events import encode

        for d in self.declarations():
            yield encode(d)

    # -- expansion --------------------------------------------------------------------

    def _expand(
        self, rows: _Rows, month: str, mi: int, rng: np.random.Generator, serial0: int = 0
    ) -> dict[str, object]:
        cfg = self.config
        n_rows = len(rows.value)
        hs2 = np.array([int(c[:2]) for c in rows.code], dtype=np.int64)
        base = np.clip(np.rint(rows.value / self._typical[hs2]), 1, cfg.size.cap)
        n = np.maximum(1, np.rint(cfg.scale * base)).astype(np.int64)
        n = np.where(rows.count > 0, rows.count, n)
        total = int(n.sum())
        row = np.repeat(np.arange(n_rows), n)
        # draws in a fixed order
        z_split = rng.standard_normal(total)
        days = working_days(month, cfg.holidays)
        day_idx = rng.integers(0, len(days), total)
        secs = np.clip(
            rng.normal(cfg.hour_mean_utc * 3600, cfg.hour_sd * 3600, total), 5 * 3600, 19 * 3600
        ).astype(np.int64)
        z_price = rng.standard_normal(total)
        u_mode = rng.random(total)
        u_route = rng.random(total)
        u_exp = rng.random(total)
        u_exp_pool = rng.random(total)
        u_con = rng.random(total)
        u_con_pool = rng.random(total)
        # values: split V by log-normal weights, cents, remainder on the largest
        w = np.exp(cfg.size.sigma * z_split)
        wsum = np.bincount(row, weights=w, minlength=n_rows)
        values = np.round(rows.value[row] * w / wsum[row], 2)
        firsts = np.concatenate(([0], np.cumsum(n)[:-1])) if n_rows else np.zeros(0, np.int64)
        largest = firsts + _argmax_per_group(w, n)
        drift = rows.value - np.bincount(row, weights=values, minlength=n_rows)
        values[largest] = np.maximum(np.round(values[largest] + drift, 2), 0.0)
        # unit values and mass
        rep_i, par_i = _country_int(rows.reporter), _country_int(rows.partner)
        code_i = rows.code.astype(np.int64)
        series_h = _mix(cfg.seed, rep_i, par_i, code_i)
        price = np.exp(cfg.series_price_sigma * _normal_of(series_h))
        uv_chapter = self._uv[hs2]
        uv = uv_chapter[row] * price[row] * np.exp(cfg.declaration_price_sigma * z_price)
        # to the gram, as declarations give it (a 0.1 kg grid made every small
        # declaration's unit value an outlier: at 4x declarations most unit-value
        # alerts were that rounding, not trade)
        mass = np.maximum(np.round(values / uv, 3), 0.001)
        # transport mode
        p_air = np.where(uv_chapter >= 300.0, cfg.air_share_dense, 0.02)[row]
        mode = np.where(u_mode < p_air, 4, np.where(u_mode < p_air + cfg.rail_share, 2, 3))
        # exporters: two regulars per series (Zipf ranks by hash), else spot
        exp_pool = np.array(
            [self.pool_size(r, int(h)) for r, h in zip(rows.reporter, hs2, strict=True)],
            dtype=np.int64,
        )
        reg1 = _zipf_rank(_unit(_mix(series_h, 1)), exp_pool)
        reg2 = _zipf_rank(_unit(_mix(series_h, 2)), exp_pool)
        spot = _zipf_rank(u_exp_pool, exp_pool[row])
        share = cfg.regular_exporter_share
        exp_rank = np.where(
            u_exp < share * 0.7, reg1[row], np.where(u_exp < share, reg2[row], spot)
        )
        con_pool = np.array(
            [self.pool_size(p, int(h)) for p, h in zip(rows.partner, hs2, strict=True)],
            dtype=np.int64,
        )[row]
        pair_h = _mix(cfg.seed, rep_i[row], hs2[row], exp_rank, par_i[row])
        c_reg1 = _zipf_rank(_unit(_mix(pair_h, 1)), con_pool)
        c_reg2 = _zipf_rank(_unit(_mix(pair_h, 2)), con_pool)
        c_spot = _zipf_rank(u_con_pool, con_pool)
        cshare = cfg.regular_consignee_share
        con_rank = np.where(
            u_con < cshare * 0.7, c_reg1, np.where(u_con < cshare, c_reg2, c_spot)
        )
        exp_num = _mix(cfg.seed, 11, rep_i[row], hs2[row], exp_rank) % np.uint64(10**12)
        con_num = _mix(cfg.seed, 12, par_i[row], hs2[row], con_rank) % np.uint64(10**12)
        serial = np.uint64(serial0) + np.arange(total, dtype=np.uint64)
        return {
            "rows": rows, "row": row, "days": days, "day_idx": day_idx, "secs": secs,
            "values": values, "mass": mass, "mode": mode, "u_route": u_route,
            "exp_num": exp_num, "con_num": con_num, "mi": mi, "serial": serial,
        }

    def _emit(
        self, batches: list[dict[str, object]], month: str
    ) -> Iterator[tuple[TradeDeclaration, int]]:
        """Merge the month's batches and yield declarations in time order."""
        keys = []
        for b, batch in enumerate(batches):
            day_idx, secs = batch["day_idx"], batch["secs"]
            t = np.asarray(day_idx) * _DAY + np.asarray(secs)
            keys.append(np.stack([t, np.full(len(t), b), np.arange(len(t))], axis=1))
        if not keys:
            return
        allk = np.concatenate(keys)
        order = np.lexsort((allk[:, 2], allk[:, 1], allk[:, 0]))
        labels = self.table.labels
        yy = month[2:4]
        cfg_seed = self.config.seed
        id_key = (cfg_seed * 0x1F1F1F + 0x5EED) & _ID_MASK
        starts = {
            b: [dt.datetime(d.year, d.month, d.day, tzinfo=dt.UTC) for d in batch["days"]]  # type: ignore[attr-defined]
            for b, batch in enumerate(batches)
        }
        td = dt.timedelta
        for b, i in allk[order][:, 1:].tolist():
            batch = batches[b]
            rows: _Rows = batch["rows"]  # type: ignore[assignment]
            r = int(batch["row"][i])  # type: ignore[index]
            rep, par, code = str(rows.reporter[r]), str(rows.partner[r]), str(rows.code[r])
            mode = int(batch["mode"][i])  # type: ignore[index]
            serial = (int(batch["mi"]) << 32) + int(batch["serial"][i])  # type: ignore[call-overload,index]
            x = ((serial * _ID_MULT) & _ID_MASK) ^ id_key
            source = int(rows.source[r])
            yield (
                TradeDeclaration(
                    schema_version=1,
                    declaration_id=f"{yy}{rep}{x:013X}{_CHECK[x % 33]}",
                    declared_at=starts[b][int(batch["day_idx"][i])]  # type: ignore[index]
                    + td(seconds=int(batch["secs"][i])),  # type: ignore[index]
                    exporter_id=rows.exporter[r] or f"{rep}{int(batch['exp_num'][i]):012d}",  # type: ignore[index]
                    exporter_country=rep,
                    consignee_id=rows.consignee[r] or f"{par}{int(batch['con_num'][i]):012d}",  # type: ignore[index]
                    consignee_country=par,
                    destination_country=par,
                    hs_code=code,
                    net_mass_kg=float(batch["mass"][i]),  # type: ignore[index]
                    statistical_value_eur=float(batch["values"][i]),  # type: ignore[index]
                    customs_procedure=rows.procedure[r],
                    transport_mode=mode,
                    transit_route=_route(rep, par, mode, float(batch["u_route"][i])),  # type: ignore[index]
                    goods_description=labels.get(code, "")[:512],
                ),
                source,
            )


def _argmax_per_group(w: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Offset of the largest weight within each consecutive group of sizes ``n``."""
    if len(n) == 0:
        return np.zeros(0, np.int64)
    group = np.repeat(np.arange(len(n)), n)
    order = np.lexsort((-w, group))
    firsts = np.concatenate(([0], np.cumsum(n)[:-1]))
    return order[firsts] - firsts


def _normal_of(h: np.ndarray) -> np.ndarray:
    """A standard normal per hash (Box-Muller on two derived uniforms)."""
    u1, u2 = _unit(_mix(h, 101)), _unit(_mix(h, 102))
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


def _zipf_rank(u: np.ndarray, pool: np.ndarray, exponent: float = 1.1) -> np.ndarray:
    """Rank in a pool of ``pool`` members drawn with weights (rank+1)^-exponent.

    Inverse of the continuous approximation of the Zipf CDF (no per-pool table).
    """
    a = 1.0 - exponent
    top = (pool.astype(np.float64) + 1.0) ** a
    x = (1.0 + u * (top - 1.0)) ** (1.0 / a)
    return np.minimum(np.floor(x - 1.0), pool - 1).astype(np.int64)


def _route(origin: str, destination: str, mode: int, u: float) -> list[str]:
    if mode not in (2, 3):
        return []
    if destination in ("RU", "BY") and origin in _HUBS:
        options: tuple[tuple[str, ...], ...] = (_HUB_LAND_ROUTES.get(origin, ()),)
    else:
        options = _EU_LAND_ROUTES.get(destination, ((),))
    chosen = options[min(int(u * len(options)), len(options) - 1)]
    return [c for c in chosen if c not in (origin, destination)]


def summarize_counts(
    table: MonthlyTable, config: ExpansionConfig | None = None
) -> dict[str, int]:
    """Declarations per month the expansion makes, without building them."""
    cfg = config or ExpansionConfig()
    out: dict[str, int] = {}
    typical = np.full(100, cfg.size.default_typical_eur)
    for ch, v in cfg.size.typical_eur:
        typical[ch] = v
    hs2 = np.array([int(c[:2]) for c in table.code], dtype=np.int64)
    base = np.clip(np.rint(table.value / typical[hs2]), 1, cfg.size.cap)
    n = np.maximum(1, np.rint(cfg.scale * base)).astype(np.int64)
    sums = np.bincount(table.month, weights=n, minlength=len(table.months))
    for m, s in zip(table.months, sums, strict=True):
        out[m] = int(s)
    return out

