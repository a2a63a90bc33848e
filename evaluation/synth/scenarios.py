"""Injected scenarios with ground truth: evasion patterns to catch, traps to stay quiet on.

Each scenario is a small dataclass. ``apply(ctx)`` returns an
:class:`~evaluation.synth.generator.Effect` (extra declarations and/or removals of
background declarations) and records a :class:`GroundTruth`: the series keys it
touches (at every aggregation level, plus the pass-through key where a transit hub is
involved), the event-time range, the injected declaration ids, whether an alert is
expected and, for traps, the highest severity tolerated.

Evasion patterns (``expect_alert=True``):

* :class:`SuddenSpike`: tier-1 chips origin -> hub tenfold and more from one day,
  then hub -> RU re-exports of the same code a few days later (the 2022 pattern:
  evidence.md rows 5-6 KG +345 %/+537 %, rows 10-13 chips x3 to x6500; BIS: Armenia
  re-exported 97 % to Russia, row 10).
* :class:`RouteShift`: a direct flow to RU (bearings IT -> RU) collapses and the same
  exporters ship to a hub instead, which re-exports to RU (row 7: sanctioned exports
  to RU -71 %, to neighbours +95 %).
* :class:`ShellExporter`: a never-seen exporter ships CHPL goods in volume
  (red_flags.md 1-2, 17).
* :class:`UnitValueMisdeclaration`: chips declared at 5-10 % of their usual EUR/kg
  (red_flags.md "unit-value anomalies").
* :class:`SlowRamp`: a flow that grows slowly over months (row 15: China -> KZ/KG
  +64 % y/y): the hard case.

Traps (``expect_alert=False``, at most "low" severity tolerated):

* :class:`SeasonalPeak`: a recurring pre-holiday peak of an ordinary good (cut roses
  before 8 March, toys before New Year).
* :class:`OneOffLegitShipment`: one very large declaration of non-CHPL goods.
* :class:`NewOrdinaryPartner`: a new, large, ordinary (non-CHPL) exporter.
* :class:`DataGapCatchUp`: a whole Kafka partition (all HS6 codes keyed to it)
  receives nothing for a few days, then the backlog is lodged in one burst.

Magnitudes stay unscaled from the evidence (tenfold, 90 % pass-through, 5-10 %
undervaluation); only the background is scaled down. Because the background is
scaled down, a hub lane's base rate can be far below one declaration a day, so every
volume scenario also has an absolute floor (``min_per_day``): the effective factor
over the background is reported in ``GroundTruth.details``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from detectors.reference import SANCTIONED_DESTINATIONS, TRANSIT_COUNTRIES
from streams.events import TradeDeclaration
from evaluation.synth.generator import (
    PRODUCTS,
    Effect,
    LaneMatch,
    Removal,
    StreamConfig,
    StreamContext,
    all_level_keys,
)

__all__ = [
    "GroundTruth",
    "Scenario",
    "SuddenSpike",
    "RouteShift",
    "ShellExporter",
    "UnitValueMisdeclaration",
    "SlowRamp",
    "SeasonalPeak",
    "OneOffLegitShipment",
    "NewOrdinaryPartner",
    "DataGapCatchUp",
    "ScenarioSet",
    "default_scenario_set",
    "small_scenario_set",
    "scenario_by_name",
    "list_scenarios",
    "partition_of",
]

_DAY = 86_400.0


@dataclasses.dataclass
class GroundTruth:
    """What a scenario did, for scoring alerts against it.

    An alert *matches* the scenario when its series key is in ``series`` and its
    window starts in ``[onset, end + tolerance_days)``, or when its evidence names
    one of ``declaration_ids``. ``onset`` is the start of the first affected UTC day,
    ``end`` the end of the last one.
    """

    scenario: str
    kind: str
    description: str
    expect_alert: bool
    series: frozenset[str]
    onset: float
    end: float
    declaration_ids: list[str] = dataclasses.field(default_factory=list)
    declaration_ts: list[float] = dataclasses.field(default_factory=list)
    max_severity_allowed: str | None = None
    tolerance_days: float = 7.0
    plot_series: tuple[str, ...] = ()
    details: dict[str, Any] = dataclasses.field(default_factory=dict)

    def add(self, decls: list[TradeDeclaration]) -> None:
        for d in decls:
            self.declaration_ids.append(d.declaration_id)
            self.declaration_ts.append(d.declared_ts)

    @property
    def match_until(self) -> float:
        return self.end + self.tolerance_days * _DAY

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "kind": self.kind,
            "description": self.description,
            "expect_alert": self.expect_alert,
            "series": sorted(self.series),
            "onset": self.onset,
            "end": self.end,
            "declarations": len(self.declaration_ids),
            "max_severity_allowed": self.max_severity_allowed,
            "tolerance_days": self.tolerance_days,
            "plot_series": list(self.plot_series),
            "details": self.details,
        }


def partition_of(hs6: str, partitions: int) -> int:
    """Kafka's default partition of a record of ``hs6`` keyed as the producer keys it."""
    from streams.keys import partition_for, partition_key

    return partition_for(partition_key(hs6), partitions)


def _keys(origin: str, destination: str, hs6: str) -> set[str]:
    keys: set[str] = set()
    for cn8 in PRODUCTS_BY_HS6[hs6].cn8:
        keys.update(all_level_keys(origin, destination, cn8))
    return keys


PRODUCTS_BY_HS6 = {p.hs6: p for p in PRODUCTS}


def _passthrough_key(origin: str, destination: str, hs6: str) -> set[str]:
    """The pipeline's pass-through key for a flow into, or out of, a transit hub."""
    if destination in TRANSIT_COUNTRIES:
        return {f"passthrough:{destination}>RU:{hs6}"}
    if origin in TRANSIT_COUNTRIES and destination in SANCTIONED_DESTINATIONS:
        return {f"passthrough:{origin}>RU:{hs6}"}
    return set()


@dataclasses.dataclass
class Scenario:
    """Base class: a named injection starting on stream day ``onset_day``."""

    name: str = ""
    onset_day: int = 0

    expect_alert: ClassVar[bool] = True
    max_severity_allowed: ClassVar[str | None] = None

    def __post_init__(self) -> None:
        self._truth: GroundTruth | None = None

    def apply(self, ctx: StreamContext) -> Effect:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def ground_truth(self) -> GroundTruth:
        """The truth of the last :meth:`apply` (a stream must have been built)."""
        if self._truth is None:
            raise RuntimeError(f"scenario {self.name!r} has not been applied to a stream yet")
        return self._truth

    def _truth_for(
        self,
        ctx: StreamContext,
        description: str,
        series: set[str],
        first_day: int,
        last_day: int,
        plot: tuple[str, ...],
        **details: Any,
    ) -> GroundTruth:
        truth = GroundTruth(
            scenario=self.name,
            kind=type(self).__name__,
            description=description,
            expect_alert=self.expect_alert,
            series=frozenset(series),
            onset=ctx.day_ts(first_day),
            end=ctx.day_ts(last_day + 1),
            max_severity_allowed=self.max_severity_allowed,
            plot_series=plot,
            details=details,
        )
        self._truth = truth
        return truth


def _daily_counts(
    rng: np.random.Generator,
    ctx: StreamContext,
    hs6: str,
    days: range,
    rate: Callable[[int], float],
) -> list[tuple[int, int]]:
    """Poisson count per day of a rate (per average day) times that day's seasonality."""
    out = []
    for day in days:
        if 0 <= day < ctx.config.days:
            lam = max(rate(day), 0.0) * ctx.season(day, hs6)
            out.append((day, int(rng.poisson(lam))))
    return out


def _reexports(
    ctx: StreamContext,
    rng: np.random.Generator,
    inflow: list[TradeDeclaration],
    hub: str,
    destination: str,
    hs6: str,
    lag_days: int,
    share: float,
    markup: float = 1.1,
) -> list[TradeDeclaration]:
    """The hub's consignees re-export ``share`` of what they received ``lag_days``
    (+0..2) later, consolidated per consignee and day, at a ``markup`` on value."""
    by: dict[tuple[int, str], list[TradeDeclaration]] = {}
    start = ctx.config.start_ts
    for d in inflow:
        day = int((d.declared_ts - start) // _DAY)
        by.setdefault((day, d.consignee_id), []).append(d)
    buyers = [ctx.new_party_id(destination, rng) for _ in range(4)]
    out: list[TradeDeclaration] = []
    for (day, firm), got in sorted(by.items()):
        ship_day = day + lag_days + int(rng.integers(0, 3))
        while ctx.season(ship_day) < 0.5:  # no lodging on Sundays/holidays
            ship_day += 1
        mass = sum(d.net_mass_kg for d in got) * share
        value = sum(d.statistical_value_eur for d in got) * share * markup
        out += ctx.declarations(
            hub,
            destination,
            hs6,
            ship_day,
            1,
            rng,
            exporter=firm,
            consignee=buyers[int(rng.integers(0, len(buyers)))],
            masses=[mass],
            values=[value],
            procedure="3151",
        )
    return out


# --------------------------------------------------------------------------------------
# Evasion patterns
# --------------------------------------------------------------------------------------


@dataclasses.dataclass
class SuddenSpike(Scenario):
    """Origin -> hub jumps ``factor``x (at least ``min_per_day``) from ``onset_day``;
    the hub re-exports ``pass_through`` of it to ``destination`` ``lag_days`` later."""

    origin: str = "DE"
    hub: str = "KG"
    hs6: str = "854231"
    destination: str = "RU"
    duration_days: int = 28
    factor: float = 12.0
    min_per_day: float = 4.0
    lag_days: int = 4
    pass_through: float = 0.9

    def apply(self, ctx: StreamContext) -> Effect:
        rng = ctx.rng(self.name)
        base = ctx.rate(self.origin, self.hub, self.hs6)
        rate = max(self.factor * base, self.min_per_day)
        exporters = ctx.exporter_ids(self.origin, self.hs6)[:8]  # established exporters
        new_buyers = [ctx.new_party_id(self.hub, rng) for _ in range(3)]  # new hub firms
        inflow: list[TradeDeclaration] = []
        days = range(self.onset_day, self.onset_day + self.duration_days)
        for day, n in _daily_counts(rng, ctx, self.hs6, days, lambda _d: rate):
            for _ in range(n):
                inflow += ctx.declarations(
                    self.origin,
                    self.hub,
                    self.hs6,
                    day,
                    1,
                    rng,
                    exporter=exporters[int(rng.integers(0, len(exporters)))],
                    consignee=new_buyers[int(rng.integers(0, len(new_buyers)))],
                )
        outflow = _reexports(
            ctx, rng, inflow, self.hub, self.destination, self.hs6, self.lag_days, self.pass_through
        )
        series = (
            _keys(self.origin, self.hub, self.hs6)
            | _keys(self.hub, self.destination, self.hs6)
            | _passthrough_key(self.origin, self.hub, self.hs6)
        )
        last = max(
            [self.onset_day + self.duration_days - 1]
            + [int((d.declared_ts - ctx.config.start_ts) // _DAY) for d in outflow]
        )
        truth = self._truth_for(
            ctx,
            f"{self.hs6} {self.origin}->{self.hub} x{self.factor:g}+ from day {self.onset_day}, "
            f"{self.pass_through:.0%} re-exported {self.hub}->{self.destination} "
            f"after ~{self.lag_days} days",
            series,
            self.onset_day,
            last,
            (
                f"hs6:{self.origin}>{self.hub}:{self.hs6}",
                f"hs6:{self.hub}>{self.destination}:{self.hs6}",
            ),
            base_per_day=base,
            injected_per_day=rate,
            effective_factor=(rate + base) / base if base else None,
        )
        truth.add(inflow + outflow)
        return Effect(extra=inflow + outflow, truth=truth)


@dataclasses.dataclass
class RouteShift(Scenario):
    """Direct origin -> RU trade collapses; the same exporters ship to a hub, which
    re-exports to RU ``lag_days`` later."""

    origin: str = "IT"
    hub: str = "AM"
    hs6: str = "848210"
    destination: str = "RU"
    duration_days: int = 35
    share: float = 0.9
    min_per_day: float = 1.0
    lag_days: int = 5
    pass_through: float = 0.97
    price_premium: float = 1.15

    def apply(self, ctx: StreamContext) -> Effect:
        rng = ctx.rng(self.name)
        direct = ctx.rate(self.origin, self.destination, self.hs6)
        base_hub = ctx.rate(self.origin, self.hub, self.hs6)
        rate = max(self.share * direct, self.min_per_day)
        exporters = ctx.exporter_ids(self.origin, self.hs6)[:10]
        buyers = [ctx.new_party_id(self.hub, rng) for _ in range(2)]
        inflow: list[TradeDeclaration] = []
        days = range(self.onset_day, self.onset_day + self.duration_days)
        for day, n in _daily_counts(rng, ctx, self.hs6, days, lambda _d: rate):
            for _ in range(n):
                inflow += ctx.declarations(
                    self.origin,
                    self.hub,
                    self.hs6,
                    day,
                    1,
                    rng,
                    exporter=exporters[int(rng.integers(0, len(exporters)))],
                    consignee=buyers[int(rng.integers(0, len(buyers)))],
                    value_factor=self.price_premium,
                )
        outflow = _reexports(
            ctx, rng, inflow, self.hub, self.destination, self.hs6, self.lag_days, self.pass_through
        )
        removal = Removal(
            LaneMatch(
                frozenset({self.origin}), frozenset({self.destination}), frozenset({self.hs6})
            ),
            self.onset_day,
            self.onset_day + self.duration_days,
            keep=1 - self.share,
        )
        series = (
            _keys(self.origin, self.hub, self.hs6)
            | _keys(self.hub, self.destination, self.hs6)
            | _keys(self.origin, self.destination, self.hs6)
            | _passthrough_key(self.origin, self.hub, self.hs6)
        )
        last = max(
            [self.onset_day + self.duration_days - 1]
            + [int((d.declared_ts - ctx.config.start_ts) // _DAY) for d in outflow]
        )
        truth = self._truth_for(
            ctx,
            f"{self.hs6} {self.origin}->{self.destination} direct -{self.share:.0%}, "
            f"re-routed via {self.hub} from day {self.onset_day}",
            series,
            self.onset_day,
            last,
            (
                f"hs6:{self.origin}>{self.hub}:{self.hs6}",
                f"hs6:{self.origin}>{self.destination}:{self.hs6}",
            ),
            direct_per_day=direct,
            hub_base_per_day=base_hub,
            injected_per_day=rate,
            effective_factor=(rate + base_hub) / base_hub if base_hub else None,
        )
        truth.add(inflow + outflow)
        return Effect(extra=inflow + outflow, removals=[removal], truth=truth)


@dataclasses.dataclass
class ShellExporter(Scenario):
    """A never-seen exporter ships CHPL goods in volume to one destination."""

    origin: str = "PL"
    destination: str = "KZ"
    hs6s: tuple[str, ...] = ("854232", "851762")
    duration_days: int = 21
    per_day: float = 3.0
    mass_factor: float = 2.0

    def apply(self, ctx: StreamContext) -> Effect:
        rng = ctx.rng(self.name)
        shell = ctx.new_party_id(self.origin, rng)
        extra: list[TradeDeclaration] = []
        series: set[str] = set()
        days = range(self.onset_day, self.onset_day + self.duration_days)
        for hs6 in self.hs6s:
            series |= _keys(self.origin, self.destination, hs6) | _passthrough_key(
                self.origin, self.destination, hs6
            )
            for day, n in _daily_counts(
                rng, ctx, hs6, days, lambda _d: self.per_day / len(self.hs6s)
            ):
                extra += ctx.declarations(
                    self.origin,
                    self.destination,
                    hs6,
                    day,
                    n,
                    rng,
                    exporter=shell,
                    mass_factor=self.mass_factor,
                )
        truth = self._truth_for(
            ctx,
            f"new exporter {shell} ships {'/'.join(self.hs6s)} {self.origin}->{self.destination}, "
            f"~{self.per_day:g}/day from day {self.onset_day}",
            series,
            self.onset_day,
            self.onset_day + self.duration_days - 1,
            tuple(f"hs6:{self.origin}>{self.destination}:{h}" for h in self.hs6s[:2]),
            exporter_id=shell,
            base_per_day=sum(ctx.rate(self.origin, self.destination, h) for h in self.hs6s),
        )
        truth.add(extra)
        return Effect(extra=extra, truth=truth)


@dataclasses.dataclass
class UnitValueMisdeclaration(Scenario):
    """An established exporter declares chips at ``low``-``high`` of their usual value per kg."""

    origin: str = "NL"
    destination: str = "AE"
    hs6: str = "854231"
    duration_days: int = 21
    per_day: float = 1.5
    low: float = 0.05
    high: float = 0.10
    exporter_rank: int = 2

    def apply(self, ctx: StreamContext) -> Effect:
        rng = ctx.rng(self.name)
        exporter = ctx.exporter_ids(self.origin, self.hs6)[self.exporter_rank]
        extra: list[TradeDeclaration] = []
        days = range(self.onset_day, self.onset_day + self.duration_days)
        for day, n in _daily_counts(rng, ctx, self.hs6, days, lambda _d: self.per_day):
            if n:
                extra += ctx.declarations(
                    self.origin,
                    self.destination,
                    self.hs6,
                    day,
                    n,
                    rng,
                    exporter=exporter,
                    value_factor=rng.uniform(self.low, self.high, n),
                )
        series = _keys(self.origin, self.destination, self.hs6)
        truth = self._truth_for(
            ctx,
            f"{self.hs6} {self.origin}->{self.destination} declared at "
            f"{self.low:.0%}-{self.high:.0%} of the usual EUR/kg by {exporter}",
            series,
            self.onset_day,
            self.onset_day + self.duration_days - 1,
            (f"hs6:{self.origin}>{self.destination}:{self.hs6}",),
            exporter_id=exporter,
            usual_eur_per_kg=ctx.product(self.hs6).uv_eur_kg,
        )
        truth.add(extra)
        return Effect(extra=extra, truth=truth)


@dataclasses.dataclass
class SlowRamp(Scenario):
    """A lane grows linearly to ``final_factor``x (at least ``min_final_per_day``) over
    ``ramp_days``, then holds for ``hold_days``."""

    origin: str = "CN"
    destination: str = "KZ"
    hs6: str = "850440"
    ramp_days: int = 120
    hold_days: int = 30
    final_factor: float = 5.0
    min_final_per_day: float = 3.0

    def apply(self, ctx: StreamContext) -> Effect:
        rng = ctx.rng(self.name)
        base = ctx.rate(self.origin, self.destination, self.hs6)
        extra_final = max(self.final_factor * base, self.min_final_per_day) - base

        def rate(day: int) -> float:
            return extra_final * min(1.0, (day - self.onset_day + 1) / self.ramp_days)

        extra: list[TradeDeclaration] = []
        days = range(self.onset_day, self.onset_day + self.ramp_days + self.hold_days)
        for day, n in _daily_counts(rng, ctx, self.hs6, days, rate):
            extra += ctx.declarations(self.origin, self.destination, self.hs6, day, n, rng)
        series = _keys(self.origin, self.destination, self.hs6) | _passthrough_key(
            self.origin, self.destination, self.hs6
        )
        truth = self._truth_for(
            ctx,
            f"{self.hs6} {self.origin}->{self.destination} ramps to "
            f"x{(extra_final + base) / base if base else math.inf:.0f} over {self.ramp_days} days",
            series,
            self.onset_day,
            self.onset_day + self.ramp_days + self.hold_days - 1,
            (f"hs6:{self.origin}>{self.destination}:{self.hs6}",),
            base_per_day=base,
            final_per_day=extra_final + base,
        )
        truth.add(extra)
        return Effect(extra=extra, truth=truth)


# --------------------------------------------------------------------------------------
# Traps
# --------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Trap(Scenario):
    expect_alert: ClassVar[bool] = False
    max_severity_allowed: ClassVar[str | None] = "low"


@dataclasses.dataclass
class SeasonalPeak(_Trap):
    """A bell-shaped yearly peak of an ordinary good around (``month``, ``day``) of
    ``year`` (``amplitude``x the lane's level at the top, ``width_days`` sigma).

    ``onset_day`` is ignored: the peak is placed by date.
    """

    origin: str = "NL"
    destination: str = "KZ"
    hs6: str = "060311"
    year: int = 2022
    month: int = 3
    day: int = 4
    width_days: float = 6.0
    amplitude: float = 3.0

    def apply(self, ctx: StreamContext) -> Effect:
        import datetime as dt

        rng = ctx.rng(self.name)
        peak = ctx.config.day_of(dt.date(self.year, self.month, self.day))
        half = int(3 * self.width_days)
        base = ctx.rate(self.origin, self.destination, self.hs6)

        def rate(day: int) -> float:
            return (
                base * (self.amplitude - 1) * math.exp(-0.5 * ((day - peak) / self.width_days) ** 2)
            )

        extra: list[TradeDeclaration] = []
        for day, n in _daily_counts(rng, ctx, self.hs6, range(peak - half, peak + half + 1), rate):
            extra += ctx.declarations(self.origin, self.destination, self.hs6, day, n, rng)
        truth = self._truth_for(
            ctx,
            f"yearly peak of {self.hs6} {self.origin}->{self.destination} "
            f"x{self.amplitude:g} around {self.year}-{self.month:02d}-{self.day:02d}",
            _keys(self.origin, self.destination, self.hs6)
            | _passthrough_key(self.origin, self.destination, self.hs6),
            max(peak - half, 0),
            min(peak + half, ctx.config.days - 1),
            (f"hs6:{self.origin}>{self.destination}:{self.hs6}",),
            base_per_day=base,
        )
        truth.add(extra)
        return Effect(extra=extra, truth=truth)


@dataclasses.dataclass
class OneOffLegitShipment(_Trap):
    """One declaration worth ``value_multiple`` times the lane's usual daily value,
    by the lane's largest exporter (e.g. a car plant's CKD kits)."""

    origin: str = "DE"
    destination: str = "UZ"
    hs6: str = "870899"
    value_multiple: float = 40.0

    def apply(self, ctx: StreamContext) -> Effect:
        rng = ctx.rng(self.name)
        prod = ctx.product(self.hs6)
        # mean value of one declaration of a log-normal mass and unit value
        mean_decl = (
            prod.mass_kg
            * math.exp(prod.mass_sigma**2 / 2)
            * prod.uv_eur_kg
            * math.exp(prod.uv_sigma**2 / 2)
        )
        daily = max(ctx.rate(self.origin, self.destination, self.hs6), 1.0) * mean_decl
        value = self.value_multiple * daily
        mass = value / prod.uv_eur_kg
        extra = ctx.declarations(
            self.origin,
            self.destination,
            self.hs6,
            self.onset_day,
            1,
            rng,
            exporter=ctx.exporter_ids(self.origin, self.hs6)[0],
            masses=[mass],
            values=[value],
        )
        truth = self._truth_for(
            ctx,
            f"one {value / 1e6:.1f}m EUR declaration of {self.hs6} "
            f"{self.origin}->{self.destination}",
            _keys(self.origin, self.destination, self.hs6)
            | _passthrough_key(self.origin, self.destination, self.hs6),
            self.onset_day,
            self.onset_day,
            (f"hs6:{self.origin}>{self.destination}:{self.hs6}",),
            value_eur=value,
        )
        truth.add(extra)
        return Effect(extra=extra, truth=truth)


@dataclasses.dataclass
class NewOrdinaryPartner(_Trap):
    """A never-seen exporter starts shipping an ordinary good, in volume, to a new
    consignee, from ``onset_day`` to the end of the stream."""

    origin: str = "IT"
    destination: str = "GE"
    hs6: str = "940360"
    per_day: float = 3.0

    def apply(self, ctx: StreamContext) -> Effect:
        rng = ctx.rng(self.name)
        exporter = ctx.new_party_id(self.origin, rng)
        consignee = ctx.new_party_id(self.destination, rng)
        extra: list[TradeDeclaration] = []
        days = range(self.onset_day, ctx.config.days)
        for day, n in _daily_counts(rng, ctx, self.hs6, days, lambda _d: self.per_day):
            extra += ctx.declarations(
                self.origin,
                self.destination,
                self.hs6,
                day,
                n,
                rng,
                exporter=exporter,
                consignee=consignee,
            )
        truth = self._truth_for(
            ctx,
            f"new ordinary exporter {exporter}: {self.hs6} {self.origin}->{self.destination} "
            f"~{self.per_day:g}/day from day {self.onset_day}",
            _keys(self.origin, self.destination, self.hs6)
            | _passthrough_key(self.origin, self.destination, self.hs6),
            self.onset_day,
            ctx.config.days - 1,
            (f"hs6:{self.origin}>{self.destination}:{self.hs6}",),
            exporter_id=exporter,
            base_per_day=ctx.rate(self.origin, self.destination, self.hs6),
        )
        truth.add(extra)
        return Effect(extra=extra, truth=truth)


@dataclasses.dataclass
class DataGapCatchUp(_Trap):
    """No declaration at all on one Kafka partition for ``gap_days``, then the
    backlog is lodged on the next day (declared_at = the catch-up day).

    The partition is the one ``anchor_hs6`` is keyed to with ``partitions``
    partitions; every background lane whose HS6 maps there goes quiet.
    """

    anchor_hs6: str = "610910"  # a partition holding no CHPL tier (keys: streams.keys)
    partitions: int = 4
    gap_days: int = 3

    def apply(self, ctx: StreamContext) -> Effect:
        p = partition_of(self.anchor_hs6, self.partitions)
        codes = frozenset(pr.hs6 for pr in PRODUCTS if partition_of(pr.hs6, self.partitions) == p)
        catch_up = self.onset_day + self.gap_days
        series: set[str] = set()
        # The hs6 series (lanes and all-origins views) and pass-through keys of the
        # silent codes. Their HS4/HS2 rollups live wholly in the silent partition too
        # (keys: streams.keys), but also hold codes this set does not generate; an
        # alert there belongs to the trap when its evidence names a moved declaration.
        for lane in ctx.lanes(LaneMatch(hs6=codes)):
            series.add(f"hs6:{lane.origin}>{lane.destination}:{lane.hs6}")
            series.add(f"hs6:*>{lane.destination}:{lane.hs6}")
            series |= _passthrough_key(lane.origin, lane.destination, lane.hs6)
        truth = self._truth_for(
            ctx,
            f"partition {p} of {self.partitions} ({', '.join(sorted(codes))}) silent for "
            f"{self.gap_days} days from day {self.onset_day}, backlog lodged on day {catch_up}",
            series,
            self.onset_day,
            catch_up,
            (f"hs6:DE>RU:{self.anchor_hs6}",),
            partition=p,
            hs6_codes=sorted(codes),
        )
        # The trap covers a whole partition (hundreds of series): attribute to it only
        # what the burst can cause -- the catch-up window and the two after it (a CUSUM
        # needs two) -- not every background alert on those series for a week.
        truth.tolerance_days = 2.0

        seen: set[str] = set()

        def moved(d: TradeDeclaration) -> None:  # called again on a second pass: dedupe
            if d.declaration_id not in seen:
                seen.add(d.declaration_id)
                truth.declaration_ids.append(d.declaration_id)
                truth.declaration_ts.append(d.declared_ts)

        removal = Removal(
            LaneMatch(hs6=codes),
            self.onset_day,
            catch_up,
            keep=0.0,
            restamp_day=catch_up,
            on_moved=moved,
        )
        return Effect(removals=[removal], truth=truth)

    def hs6_codes(self) -> frozenset[str]:
        p = partition_of(self.anchor_hs6, self.partitions)
        return frozenset(pr.hs6 for pr in PRODUCTS if partition_of(pr.hs6, self.partitions) == p)


# --------------------------------------------------------------------------------------
# Catalogue and sets
# --------------------------------------------------------------------------------------


@dataclasses.dataclass
class ScenarioSet:
    """A stream configuration and the scenarios injected into it."""

    name: str
    config: StreamConfig
    scenarios: list[Scenario]

    def stream(self) -> Any:
        from evaluation.synth.generator import SyntheticStream

        return SyntheticStream(self.config, self.scenarios)


#: name -> factory. Default onset days suit the small stream (120 days); every field
#: can be overridden (``scenario_by_name(name, onset_day=..)``); SeasonalPeak is
#: placed by date instead.
_CATALOGUE: dict[str, Callable[..., Scenario]] = {
    "ic_spike_de_kg_ru": lambda **kw: SuddenSpike(
        **{"name": "ic_spike_de_kg_ru", "onset_day": 84, **kw}
    ),
    "memory_spike_de_am_ru": lambda **kw: SuddenSpike(
        **{
            "name": "memory_spike_de_am_ru",
            "onset_day": 84,
            "origin": "DE",
            "hub": "AM",
            "hs6": "854232",
            **kw,
        }
    ),
    "ic_spike_us_kz_ru": lambda **kw: SuddenSpike(
        **{
            "name": "ic_spike_us_kz_ru",
            "onset_day": 84,
            "origin": "US",
            "hub": "KZ",
            "hs6": "854239",
            **kw,
        }
    ),
    "router_spike_fr_ge_ru": lambda **kw: SuddenSpike(
        **{
            "name": "router_spike_fr_ge_ru",
            "onset_day": 84,
            "origin": "FR",
            "hub": "GE",
            "hs6": "851762",
            **kw,
        }
    ),
    "bearings_route_shift_it_am_ru": lambda **kw: RouteShift(
        **{"name": "bearings_route_shift_it_am_ru", "onset_day": 80, **kw}
    ),
    "cnc_route_shift_de_kz_ru": lambda **kw: RouteShift(
        **{
            "name": "cnc_route_shift_de_kz_ru",
            "onset_day": 80,
            "origin": "DE",
            "hub": "KZ",
            "hs6": "846693",
            **kw,
        }
    ),
    "shell_exporter_pl_kz": lambda **kw: ShellExporter(
        **{"name": "shell_exporter_pl_kz", "onset_day": 88, **kw}
    ),
    "shell_exporter_cn_kg": lambda **kw: ShellExporter(
        **{
            "name": "shell_exporter_cn_kg",
            "onset_day": 88,
            "origin": "CN",
            "destination": "KG",
            "hs6s": ("854231",),
            **kw,
        }
    ),
    "chip_undervalue_nl_ae": lambda **kw: UnitValueMisdeclaration(
        **{"name": "chip_undervalue_nl_ae", "onset_day": 86, **kw}
    ),
    "chip_undervalue_de_tr": lambda **kw: UnitValueMisdeclaration(
        **{
            "name": "chip_undervalue_de_tr",
            "onset_day": 86,
            "origin": "DE",
            "destination": "TR",
            "hs6": "854239",
            **kw,
        }
    ),
    "converter_slow_ramp_cn_kz": lambda **kw: SlowRamp(
        **{
            "name": "converter_slow_ramp_cn_kz",
            "onset_day": 30,
            "ramp_days": 60,
            "hold_days": 20,
            **kw,
        }
    ),
    "trap_roses_8march_nl_kz": lambda **kw: SeasonalPeak(
        **{"name": "trap_roses_8march_nl_kz", **kw}
    ),
    "trap_toys_newyear_de_kz": lambda **kw: SeasonalPeak(
        **{
            "name": "trap_toys_newyear_de_kz",
            "origin": "DE",
            "destination": "KZ",
            "hs6": "950300",
            "year": 2021,
            "month": 12,
            "day": 3,
            "width_days": 9.0,
            "amplitude": 2.5,
            **kw,
        }
    ),
    "trap_oneoff_vehicle_parts_de_uz": lambda **kw: OneOffLegitShipment(
        **{"name": "trap_oneoff_vehicle_parts_de_uz", "onset_day": 95, **kw}
    ),
    "trap_new_partner_furniture_it_ge": lambda **kw: NewOrdinaryPartner(
        **{"name": "trap_new_partner_furniture_it_ge", "onset_day": 90, **kw}
    ),
    "trap_data_gap_partition": lambda **kw: DataGapCatchUp(
        **{"name": "trap_data_gap_partition", "onset_day": 100, **kw}
    ),
}


def list_scenarios() -> list[str]:
    """Names :func:`scenario_by_name` knows."""
    return sorted(_CATALOGUE)


def scenario_by_name(name: str, /, **overrides: Any) -> Scenario:
    """A catalogue scenario, e.g. ``scenario_by_name("ic_spike_de_kg_ru", onset_day=30)``.

    >>> s = scenario_by_name("ic_spike_de_kg_ru")
    >>> (s.origin, s.hub, s.hs6, s.destination, s.factor >= 10)
    ('DE', 'KG', '854231', 'RU', True)
    """
    try:
        factory = _CATALOGUE[name]
    except KeyError:
        raise KeyError(f"unknown scenario {name!r}; known: {', '.join(list_scenarios())}") from None
    return factory(**overrides)


def small_scenario_set(seed: int = 20220224, partitions: int = 4) -> ScenarioSet:
    """120 days from 2022-01-10 (~120k declarations): three evasion patterns with
    onsets in March-April 2022 (evidence.md: onset "March-June 2022") and two traps.
    Runs offline in seconds.

    The window starts after the New Year holidays on purpose: this set checks the
    scenarios against detectors warmed on ordinary weeks. Holidays (the December dip
    and the recovery in January, which detectors that have never seen a year cannot
    anticipate) are covered by :func:`default_scenario_set`, after a year of history.
    """
    import datetime as dt

    config = StreamConfig(
        seed=seed, start=dt.date(2022, 1, 10), days=120, daily_declarations=1000.0
    )
    scenarios = [
        scenario_by_name("bearings_route_shift_it_am_ru", onset_day=80),  # 2022-03-31
        scenario_by_name("ic_spike_de_kg_ru", onset_day=84),  # 2022-04-04
        scenario_by_name("shell_exporter_pl_kz", onset_day=88),  # 2022-04-08
        scenario_by_name("trap_roses_8march_nl_kz", year=2022),  # peak 2022-03-04
        scenario_by_name("trap_data_gap_partition", onset_day=100, partitions=partitions),
    ]
    return ScenarioSet("small", config, scenarios)


def default_scenario_set(seed: int = 20220224, partitions: int = 4) -> ScenarioSet:
    """630 days from 2020-10-05: a year and a quarter of baseline, then every pattern in 2022
    (four sudden spikes, two route shifts, two shell exporters, two undervaluations,
    a slow ramp) and every trap (two 8 March peaks, a New Year peak, a one-off
    shipment, a new ordinary partner, a partition data gap)."""
    import datetime as dt

    start = dt.date(2020, 10, 5)  # the first 15 % (to 2021-01-08) is the unscored probation
    config = StreamConfig(seed=seed, start=start, days=630, daily_declarations=1000.0)

    def d(y: int, m: int, day: int) -> int:
        return (dt.date(y, m, day) - start).days

    scenarios = [
        scenario_by_name(
            "converter_slow_ramp_cn_kz", onset_day=d(2022, 1, 10), ramp_days=120, hold_days=30
        ),
        scenario_by_name("bearings_route_shift_it_am_ru", onset_day=d(2022, 3, 1)),
        scenario_by_name("ic_spike_de_kg_ru", onset_day=d(2022, 3, 14)),
        scenario_by_name("cnc_route_shift_de_kz_ru", onset_day=d(2022, 3, 21)),
        scenario_by_name("chip_undervalue_nl_ae", onset_day=d(2022, 3, 28)),
        scenario_by_name("memory_spike_de_am_ru", onset_day=d(2022, 4, 4)),
        scenario_by_name("shell_exporter_pl_kz", onset_day=d(2022, 4, 11)),
        scenario_by_name("router_spike_fr_ge_ru", onset_day=d(2022, 4, 19)),
        scenario_by_name("ic_spike_us_kz_ru", onset_day=d(2022, 5, 2)),
        scenario_by_name("chip_undervalue_de_tr", onset_day=d(2022, 5, 9)),
        scenario_by_name("shell_exporter_cn_kg", onset_day=d(2022, 5, 16)),
        scenario_by_name("trap_roses_8march_nl_kz", name="trap_roses_8march_nl_kz_2021", year=2021),
        scenario_by_name("trap_roses_8march_nl_kz", name="trap_roses_8march_nl_kz_2022", year=2022),
        scenario_by_name("trap_toys_newyear_de_kz", year=2021),
        scenario_by_name("trap_new_partner_furniture_it_ge", onset_day=d(2022, 3, 7)),
        scenario_by_name("trap_oneoff_vehicle_parts_de_uz", onset_day=d(2022, 4, 20)),
        scenario_by_name(
            "trap_data_gap_partition", onset_day=d(2021, 10, 11), partitions=partitions
        ),
    ]
    return ScenarioSet("full", config, scenarios)
