"""Labelled scenarios injected into real lanes of the real background, with ground truth.

The background (:mod:`evaluation.realdata`) is real EU trade of 2020-2021 with every
CHPL good removed. Evasion is re-routing of CHPL goods, so each evasion scenario
first gives its lanes a **small CHPL baseline** over the whole period (sparse and
lumpy, as real lanes are: each month trades with probability ``active_share``, at a
log-normal value around ``mean_eur``, sigma 0.8) and from its onset month adds the
surge on top. Baselines are background (their declarations are not evasion); the
surge and its re-export leg are the scenario. Onsets are in 2021, after a year of
history (the first 15 % of the period is the scorecard's probation anyway).

Magnitudes (``../shared/domain/evidence.md`` = "ev"), one scenario per hub:

=================  ====================================================================
KG, chips (T1)     DE->KG 8542.31 x20 from 2021-04 (ev rows 5-6: EU->KG +345 % a year,
                   +537 % over H2; rows 10-13: chips x3 to x70); KG->RU re-export of
                   90 % (row 10: 97 % re-exported), half in the month, half the next.
AM, chips (T1)     NL->AM 8542.39 x3 from 2021-06 (row 10: EU->AM chips +212 %), AM->RU
                   97 % re-exported (row 10); AM->RU chips baseline ~0 (row 11: < $2k a
                   year), so the re-export leg is the loud part.
KZ, memories (T1)  FR->KZ 8542.32 x2.5 from 2021-07 (row 12: KZ chip imports > x2), 90 %
                   re-exported; KZ->RU baseline ~20k EUR a month (row 12: $245k in 2021,
                   to $18m: x70).
UZ, bearings (3B)  IT->RU ball bearings (baseline 1.5m EUR a month) fall by 71 % from
                   2021-09 (row 7: sanctioned exports to RU -71 %); the diverted value
                   goes to IT->UZ (baseline 40k a month: x27; row 18: UZ->RU x118) at a
                   15 % price premium and 90 % is re-exported to RU.
GE, routers (T2)   CZ->GE 8517.62 x5 from 2021-10 (row 8: CZ raised sanctioned supplies
                   to RU neighbours 3-5.5x); no re-export declaration: "lost in transit"
                   (rows 2 and 4: half of the additional exports never arrive).
=================  ====================================================================

Traps (should not page; "low" tolerated), on real lanes of ordinary goods:

* :class:`OneOffShipment`: one declaration worth 40x the lane's mean month
  (DE->UZ other machines 8479.89.97, May 2021).
* :class:`NewPartnerLane`: a reporter that never shipped a product to a partner
  starts at the product's typical level with a new exporter and consignee
  (SK->GE cotton T-shirts 6109.10.00 from June 2021).
* :class:`YearEndPeak`: a lane's Nov-Dec doubles and a half (FR->KZ toilet waters
  3303.00.90, 2021).

Ground truth is :class:`evaluation.synth.scenarios.GroundTruth`, so the scorecard's
``score`` and ``classify_alerts`` apply unchanged: series keys at every level (as
the pipeline formats them today) plus the pass-through key, the onset (first day of
the onset month, UTC), the end (end of the last month) and the injected
declarations' ids (collected while the stream runs). ``details["lanes"]`` lists the
(origin, destination, hs6) lanes, for scorers that key series by other dimensions.
"""

from __future__ import annotations

import calendar
import dataclasses
import datetime as dt
import math
import zlib
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import numpy as np

from detectors.reference import SANCTIONED_DESTINATIONS, TRANSIT_COUNTRIES
from evaluation.realdata import ExpansionConfig, Flow, MonthlyTable, RealStream
from streams.events import TradeDeclaration
from evaluation.synth.generator import all_level_keys
from evaluation.synth.scenarios import GroundTruth

__all__ = [
    "BASELINE_SOURCE",
    "ChplBaseline",
    "TransitSurge",
    "OneOffShipment",
    "NewPartnerLane",
    "YearEndPeak",
    "RealScenario",
    "default_real_scenarios",
    "inject",
    "Injected",
]

#: Flow source of the CHPL baselines (background, not part of any truth).
BASELINE_SOURCE = 1


def _month_start(month: str) -> float:
    return float(calendar.timegm(dt.date.fromisoformat(month + "-01").timetuple()))


def _month_end(month: str) -> float:
    y, m = int(month[:4]), int(month[5:7])
    return _month_start(month) + calendar.monthrange(y, m)[1] * 86_400.0


def _rng(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([seed, 5, zlib.crc32(name.encode())])


def _keys(origin: str, destination: str, code: str) -> set[str]:
    keys = set(all_level_keys(origin, destination, code))
    if destination in TRANSIT_COUNTRIES:
        keys.add(f"passthrough:{destination}>RU:{code[:6]}")
    if origin in TRANSIT_COUNTRIES and destination in SANCTIONED_DESTINATIONS:
        keys.add(f"passthrough:{origin}>RU:{code[:6]}")
    return keys


@dataclasses.dataclass(frozen=True)
class ChplBaseline:
    """A sparse CHPL lane in the background: trades in ``active_share`` of months, at
    a log-normal value around ``mean_eur`` (the mean over active months)."""

    origin: str
    destination: str
    code: str
    mean_eur: float
    active_share: float = 0.6
    sigma: float = 0.8
    #: From ``drop_from`` on, the lane keeps ``1 - drop`` of its value (a route shift).
    drop: float = 0.0
    drop_from: str = "9999-12"

    def monthly(self, months: Sequence[str], seed: int) -> dict[str, float]:
        rng = _rng(seed, f"baseline:{self.origin}>{self.destination}:{self.code}")
        active = rng.random(len(months)) < self.active_share
        z = rng.standard_normal(len(months))
        level = self.mean_eur * np.exp(self.sigma * z - self.sigma**2 / 2)
        return {
            m: float(v) * (1.0 - self.drop if m >= self.drop_from else 1.0)
            for m, a, v in zip(months, active, level, strict=True)
            if a
        }


@dataclasses.dataclass
class RealScenario:
    """Base: a named injection; ``flows`` returns its monthly flows, ``truth`` its label."""

    name: str
    onset: str  # YYYY-MM

    expect_alert: ClassVar[bool] = True
    max_severity_allowed: ClassVar[str | None] = None

    def baselines(self) -> list[ChplBaseline]:
        return []

    def flows(self, table: MonthlyTable, months: Sequence[str], seed: int, source: int) -> list[Flow]:
        raise NotImplementedError

    def lanes(self) -> list[tuple[str, str, str]]:
        raise NotImplementedError

    def describe(self) -> str:
        return self.name

    def truth(self, months: Sequence[str], details: dict[str, Any]) -> GroundTruth:
        series: set[str] = set()
        for o, d, c in self.lanes():
            series |= _keys(o, d, c)
        last = months[-1]
        return GroundTruth(
            scenario=self.name,
            kind=type(self).__name__,
            description=self.describe(),
            expect_alert=self.expect_alert,
            series=frozenset(series),
            onset=_month_start(max(self.onset, months[0])),
            end=_month_end(last),
            max_severity_allowed=self.max_severity_allowed,
            plot_series=tuple(f"hs6:{o}>{d}:{c[:6]}" for o, d, c in self.lanes()[:2]),
            details={"lanes": [list(x) for x in self.lanes()], **details},
        )


@dataclasses.dataclass
class TransitSurge(RealScenario):
    """origin -> hub of a CHPL code grows ``factor``x from ``onset`` (the surge is
    ``(factor - 1) x baseline mean`` a month, +-20 %); the hub re-exports
    ``pass_through`` of it to Russia (half in the month, half the next, at a 10 %
    markup). With ``direct_mean_eur`` the origin also ships directly to Russia, and
    ``direct_drop`` of that moves to the hub from onset (a route shift)."""

    origin: str = "DE"
    hub: str = "KG"
    code: str = "85423190"
    factor: float = 20.0
    base_mean_eur: float = 30_000.0
    base_active_share: float = 0.6
    pass_through: float = 0.9
    onward_base_mean_eur: float = 2_000.0
    onward_active_share: float = 0.3
    direct_mean_eur: float = 0.0
    direct_drop: float = 0.0
    price_premium: float = 1.0

    def baselines(self) -> list[ChplBaseline]:
        out = [ChplBaseline(self.origin, self.hub, self.code, self.base_mean_eur, self.base_active_share)]
        if self.pass_through > 0:
            out.append(ChplBaseline(self.hub, "RU", self.code, self.onward_base_mean_eur, self.onward_active_share))
        if self.direct_mean_eur > 0:
            out.append(ChplBaseline(self.origin, "RU", self.code, self.direct_mean_eur, 1.0, 0.3,
                                    drop=self.direct_drop, drop_from=self.onset))
        return out

    def lanes(self) -> list[tuple[str, str, str]]:
        lanes = [(self.origin, self.hub, self.code)]
        if self.pass_through > 0:
            lanes.append((self.hub, "RU", self.code))
        if self.direct_mean_eur > 0:
            lanes.append((self.origin, "RU", self.code))
        return lanes

    def describe(self) -> str:
        text = f"{self.code[:6]} {self.origin}->{self.hub} x{self.factor:g} from {self.onset}"
        if self.direct_mean_eur > 0:
            text += f", {self.origin}->RU direct -{self.direct_drop:.0%} diverted"
        if self.pass_through > 0:
            text += f", {self.pass_through:.0%} re-exported {self.hub}->RU"
        return text

    def surge(self, months: Sequence[str], seed: int) -> dict[str, float]:
        rng = _rng(seed, self.name)
        extra = (self.factor - 1.0) * self.base_mean_eur + self.direct_drop * self.direct_mean_eur
        return {
            m: extra * self.price_premium * float(np.exp(0.2 * rng.standard_normal()))
            for m in months
            if m >= self.onset
        }

    def flows(self, table: MonthlyTable, months: Sequence[str], seed: int, source: int) -> list[Flow]:
        surge = self.surge(months, seed)
        out = [Flow(m, self.origin, self.hub, self.code, v, source) for m, v in surge.items()]
        if self.pass_through > 0:
            carried = 0.0
            for m in months:
                now = surge.get(m, 0.0) * self.pass_through * 1.1
                value = now / 2 + carried
                carried = now / 2
                if value > 0:
                    out.append(Flow(m, self.hub, "RU", self.code, value, source, procedure="3151"))
        return out


def _lane_mean(table: MonthlyTable, o: str, d: str, code: str, before: str, fallback: float) -> float:
    values = [v for m, v in table.lane_values(o, d, code).items() if m < before]
    return float(np.mean(values)) if values else fallback


@dataclasses.dataclass
class _Trap(RealScenario):
    expect_alert: ClassVar[bool] = False
    max_severity_allowed: ClassVar[str | None] = "low"
    origin: str = ""
    destination: str = ""
    code: str = ""

    def lanes(self) -> list[tuple[str, str, str]]:
        return [(self.origin, self.destination, self.code)]


@dataclasses.dataclass
class OneOffShipment(_Trap):
    """One declaration worth ``multiple`` x the lane's mean month before onset."""

    multiple: float = 40.0
    fallback_mean_eur: float = 100_000.0

    def flows(self, table: MonthlyTable, months: Sequence[str], seed: int, source: int) -> list[Flow]:
        mean = _lane_mean(table, self.origin, self.destination, self.code, self.onset, self.fallback_mean_eur)
        self.value_eur = self.multiple * mean
        return [Flow(self.onset, self.origin, self.destination, self.code, self.value_eur, source, count=1)]

    def describe(self) -> str:
        return f"one declaration of {self.code} {self.origin}->{self.destination}, {self.multiple:g}x a month, {self.onset}"

    def truth(self, months: Sequence[str], details: dict[str, Any]) -> GroundTruth:
        t = super().truth(months, details)
        t.end = _month_end(self.onset)
        return t


@dataclasses.dataclass
class NewPartnerLane(_Trap):
    """A lane with no history starts at ``monthly_eur`` (default: the median mean
    month of the other reporters on (partner, code)) with a new exporter and consignee."""

    monthly_eur: float | None = None

    def flows(self, table: MonthlyTable, months: Sequence[str], seed: int, source: int) -> list[Flow]:
        level = self.monthly_eur
        if level is None:
            mask = (table.partner == self.destination) & (table.code == self.code) & (table.reporter != self.origin)
            by_rep: dict[str, list[float]] = {}
            for r, v in zip(table.reporter[mask], table.value[mask], strict=True):
                by_rep.setdefault(str(r), []).append(float(v))
            means = [float(np.mean(v)) for v in by_rep.values()]
            level = float(np.median(means)) if means else 20_000.0
        self.level_eur = level
        h = zlib.crc32(f"{seed}:{self.name}".encode())
        exporter = f"{self.origin}{(h * 7919) % 10**12:012d}"
        consignee = f"{self.destination}{(h * 104729) % 10**12:012d}"
        rng = _rng(seed, self.name)
        return [
            Flow(m, self.origin, self.destination, self.code, level * float(np.exp(0.3 * rng.standard_normal())), source,
                 exporter=exporter, consignee=consignee)
            for m in months
            if m >= self.onset
        ]

    def describe(self) -> str:
        return f"new lane {self.code} {self.origin}->{self.destination} from {self.onset} (new exporter)"


@dataclasses.dataclass
class YearEndPeak(_Trap):
    """The lane's value is ``amplitude``x its mean month in the months from onset to
    ``last`` (a seasonal peak): the extra is ``(amplitude - 1) x`` the mean of the
    year before onset."""

    last: str = ""
    amplitude: float = 2.5

    def flows(self, table: MonthlyTable, months: Sequence[str], seed: int, source: int) -> list[Flow]:
        y = int(self.onset[:4])
        year_before = f"{y - 1}{self.onset[4:]}"
        values = [v for m, v in table.lane_values(self.origin, self.destination, self.code).items()
                  if year_before <= m < self.onset]
        mean = float(np.mean(values)) if values else 50_000.0
        return [
            Flow(m, self.origin, self.destination, self.code, (self.amplitude - 1) * mean, source)
            for m in months
            if self.onset <= m <= (self.last or self.onset)
        ]

    def describe(self) -> str:
        return f"year-end peak x{self.amplitude:g} of {self.code} {self.origin}->{self.destination}, {self.onset}..{self.last}"

    def truth(self, months: Sequence[str], details: dict[str, Any]) -> GroundTruth:
        t = super().truth(months, details)
        t.end = _month_end(min(self.last or self.onset, months[-1]))
        return t


def default_real_scenarios() -> list[RealScenario]:
    """Five evasion scenarios (one per hub) and three traps; see the module docstring."""
    return [
        TransitSurge("chips_surge_de_kg_ru", "2021-04", origin="DE", hub="KG", code="85423190",
                     factor=20.0, base_mean_eur=30_000.0, pass_through=0.9,
                     onward_base_mean_eur=2_000.0),
        TransitSurge("chips_surge_nl_am_ru", "2021-06", origin="NL", hub="AM", code="85423990",
                     factor=3.0, base_mean_eur=60_000.0, base_active_share=0.7, pass_through=0.97,
                     onward_base_mean_eur=150.0, onward_active_share=0.1),
        TransitSurge("memory_surge_fr_kz_ru", "2021-07", origin="FR", hub="KZ", code="85423290",
                     factor=2.5, base_mean_eur=300_000.0, base_active_share=0.9, pass_through=0.9,
                     onward_base_mean_eur=20_000.0, onward_active_share=0.6),
        TransitSurge("bearings_shift_it_uz_ru", "2021-09", origin="IT", hub="UZ", code="84821010",
                     factor=1.0, base_mean_eur=40_000.0, base_active_share=0.7, pass_through=0.9,
                     onward_base_mean_eur=10_000.0, onward_active_share=0.4,
                     direct_mean_eur=1_500_000.0, direct_drop=0.71, price_premium=1.15),
        TransitSurge("routers_surge_cz_ge", "2021-10", origin="CZ", hub="GE", code="85176200",
                     factor=5.0, base_mean_eur=80_000.0, base_active_share=0.8, pass_through=0.0),
        OneOffShipment("trap_oneoff_machine_de_uz", "2021-05", origin="DE", destination="UZ",
                       code="84798997"),
        NewPartnerLane("trap_new_lane_tshirts_sk_ge", "2021-06", origin="SK", destination="GE",
                       code="61091000"),
        YearEndPeak("trap_yearend_perfume_fr_kz", "2021-11", origin="FR", destination="KZ",
                    code="33030090", last="2021-12"),
    ]


@dataclasses.dataclass
class Injected:
    """The real stream with scenarios injected, and their ground truths.

    The truths' declaration ids are filled in when :meth:`records` (or
    :meth:`declarations`) has been iterated to the end: read the truths after.
    """

    stream: RealStream
    truths: list[GroundTruth]
    sources: list[int]

    def declarations(self) -> Iterator[TradeDeclaration]:
        yield from self.stream.declarations()
        self._fill()

    def records(self) -> Iterator[bytes]:
        yield from self.stream.records()
        self._fill()

    def _fill(self) -> None:
        for truth, source in zip(self.truths, self.sources, strict=True):
            pairs = self.stream.ids_by_source.get(source, [])
            truth.declaration_ids = [p[0] for p in pairs]
            truth.declaration_ts = [p[1] for p in pairs]


def inject(
    table: MonthlyTable,
    scenarios: Sequence[RealScenario],
    config: ExpansionConfig | None = None,
) -> Injected:
    """The real stream with ``scenarios`` injected (their CHPL baselines included).

    Scenarios whose onset lies after the table's last month are left out (a short
    ``--months`` range).
    """
    config = config or ExpansionConfig()
    seed = config.seed
    months = list(table.months)
    flows: list[Flow] = []
    active = [s for s in scenarios if months and s.onset <= months[-1]]
    sources = list(range(BASELINE_SOURCE + 1, BASELINE_SOURCE + 1 + len(active)))
    for s, k in zip(active, sources, strict=True):
        for b in s.baselines():
            flows += [
                Flow(m, b.origin, b.destination, b.code, v, BASELINE_SOURCE)
                for m, v in b.monthly(months, seed).items()
            ]
        flows += s.flows(table, months, seed, k)
    stream = RealStream(table, config, flows)
    truths = [s.truth(months, _details(s)) for s in active]
    return Injected(stream, truths, sources)


def _details(s: RealScenario) -> dict[str, Any]:
    out: dict[str, Any] = {}
    names = ("factor", "base_mean_eur", "pass_through", "direct_drop", "direct_mean_eur",
             "value_eur", "level_eur", "amplitude", "multiple")
    for name in names:
        v = getattr(s, name, None)
        if isinstance(v, float) and math.isfinite(v):
            out[name] = v
    return out
