"""What a series detector's threshold costs on real lanes: false alerts per 1,000 series a month.

Why: a scenario that sits below a threshold (the routers surge peaks at `trend` z 3.0)
invites lowering it, and the real background is the only honest price list. This tool
replays every hs6 lane and transit rollup of the real background (no scenarios; 1x
expansion unless ``--scale``) with at least ``--min-total`` EUR over the months, one
series at a time, through one detector alone, and counts the windows it would alert on
at each z threshold with the alert policy's main gates: the CHPL materiality floor on
the excess (``--floor``), at least ``--min-declarations`` declarations of evidence
and a cooldown of ``--cooldown`` windows per series. The per-series rate is what a rule
confined to a subset of series (e.g. CHPL tiers 1-2, absent from this background)
would cost per series of that subset.

It approximates the pipeline (one detector, no persistence or de-duplication, no
incident grouping), so compare its rates with each other, not with `evaluate`'s
incident counts.

    python -m evaluation.lane_cost --detector trend --params '{"horizon": 28}' --z 3,4.47 --json F

A sketch of the counting on two hand-made lanes (a flat one, and one that jumps):

>>> import numpy as np
>>> from detectors.trend import TrendDetector
>>> days = 400
>>> flat = (np.full(days, 1e5), np.full(days, 2))
>>> jump = (np.r_[np.full(300, 1e5), np.full(100, 2e6)], np.r_[np.full(300, 2), np.full(100, 9)])
>>> cost = threshold_cost({"flat": flat, "jump": jump}, 0.0, TrendDetector, [4.0])
>>> cost.alerts[4.0] >= 1, cost.by_series[4.0].get("flat", 0)
(True, 0)
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import datetime as dt
import json
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from detectors.base import Detector
from detectors.registry import DetectorConfigError
from detectors.registry import build as build_detector
from evaluation.realdata import ExpansionConfig, RealStream, load_comext, month_range
from streams.config import Settings
from streams.series import SeriesCatalog

DAY = 86_400.0
#: The detectors that judge a series' windows (the others judge declarations or hub pairs).
SERIES_KINDS: tuple[str, ...] = ("changepoint", "spike", "trend", "volume")
#: Daily (values, counts) per series key.
Lanes = Mapping[str, tuple[np.ndarray, np.ndarray]]


def daily_lanes(declarations: Iterable[Any], start_ts: float, days: int,
                min_total_eur: float) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Daily value and declaration count of each hs6 lane and all-origins rollup.

    Keys as the pipeline writes them (``hs6:DE>KZ:847130``, ``hs6:*>KZ:847130``);
    series whose total stays under ``min_total_eur`` are dropped (too small to reach
    the materiality floor often enough to matter, and they dominate the count).
    """
    families = [f for f in SeriesCatalog.from_settings(Settings()).families if f.product == "hs6"]
    values: dict[str, np.ndarray] = {}
    counts: dict[str, np.ndarray] = {}
    for d in declarations:
        i = int((d.declared_at.timestamp() - start_ts) // DAY)
        if not 0 <= i < days:
            continue
        for family in families:  # the default lanes and transit view of HS6 products
            key = family.key(d, None)  # the background holds no CHPL goods: no tier
            if key is None:
                continue
            if key not in values:
                values[key], counts[key] = np.zeros(days), np.zeros(days, np.int32)
            values[key][i] += d.statistical_value_eur
            counts[key][i] += 1
    return {k: (values[k], counts[k]) for k in values if values[k].sum() >= min_total_eur}


@dataclasses.dataclass
class ThresholdCost:
    """Alerts a detector would raise at each z threshold: in total, per month, per series."""

    series: int
    months: int
    alerts: dict[float, int]
    by_month: dict[float, collections.Counter[str]]
    by_series: dict[float, collections.Counter[str]]

    def per_1000_series_month(self, z: float) -> float:
        return 1000.0 * self.alerts[z] / max(1, self.series * self.months)

    def to_dict(self) -> dict[str, Any]:
        return {"series": self.series, "months": self.months, "thresholds": [
            {"z": z, "alerts": self.alerts[z], "alerts_per_month": self.alerts[z] / max(1, self.months),
             "per_1000_series_month": self.per_1000_series_month(z),
             "max_per_month": max(self.by_month[z].values(), default=0)}
            for z in sorted(self.alerts)]}


def threshold_cost(lanes: Lanes, start_ts: float, make_detector: Callable[[], Detector],
                   zs: Sequence[float], floor_eur: float = 10_000.0, min_declarations: int = 3,
                   cooldown_windows: int = 7) -> ThresholdCost:
    """Replay each series through a fresh detector; count the windows over each threshold.

    A window is counted at threshold z when the detector's evidence z (``details["z"]``)
    reaches z, its excess over the expected upper bound reaches ``floor_eur``, its
    evidence holds at least ``min_declarations`` declarations (``details["declarations"]``
    for a detector that judges a span, as the alert policy reads it; else the window's)
    and the series' last counted window at that threshold is more than
    ``cooldown_windows`` before it. Empty windows are
    learned as zeros, as the pipeline does.
    """
    by_month = {z: collections.Counter[str]() for z in zs}
    by_series = {z: collections.Counter[str]() for z in zs}
    months: set[str] = set()
    for key, (values, counts) in lanes.items():
        detector = make_detector()
        last = dict.fromkeys(zs, -10**9)
        for i in range(len(values)):
            t = start_ts + DAY * i
            x = {"value": float(values[i]), "t": t, "count": int(counts[i])}
            if counts[i]:
                month = dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m")
                months.add(month)  # the span of months with trade, whatever the series
                e = detector.explain_one(x)
                z = e.details.get("z", 0.0)
                declarations = e.details.get("declarations", counts[i])
                if declarations >= min_declarations and e.observed - e.expected_high >= floor_eur:
                    for threshold in zs:
                        if z >= threshold and i - last[threshold] > cooldown_windows:
                            last[threshold] = i
                            by_month[threshold][month] += 1
                            by_series[threshold][key] += 1
            detector.learn_one(x)
    span = len(month_range(min(months), max(months))) if months else 0
    return ThresholdCost(series=len(lanes), months=span,
                         alerts={z: sum(by_month[z].values()) for z in zs},
                         by_month=by_month, by_series=by_series)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--detector", default="trend", help="detector kind (a series detector)")
    p.add_argument("--params", default="{}", help="detector params as JSON, in windows")
    p.add_argument("--z", default="3,4.47", help="comma-separated z thresholds")
    p.add_argument("--floor", type=float, default=10_000.0, help="minimum excess, EUR (CHPL floor)")
    p.add_argument("--min-declarations", type=int, default=3)
    p.add_argument("--cooldown", type=int, default=7, help="windows")
    p.add_argument("--min-total", type=float, default=2e6, help="EUR over the months, per series")
    p.add_argument("--months", metavar="A:B", help="e.g. 2020-01:2020-12 (default: all 24)")
    p.add_argument("--scale", type=float, default=1.0, help="declarations per lane-month, x")
    p.add_argument("--realdata", help="path of the Comext file (else $TRADEWATCH_REALDATA)")
    p.add_argument("--json", metavar="F", help="write the figures as JSON to F")
    args = p.parse_args(argv)
    if args.detector not in SERIES_KINDS:
        p.error(f"--detector: {args.detector!r} is not a series detector (one of {', '.join(SERIES_KINDS)})")
    try:
        zs = [float(z) for z in args.z.split(",")]
        params = json.loads(args.params)
        build_detector(args.detector, params)  # a bad parameter fails here, before the replay
    except (ValueError, TypeError, DetectorConfigError) as exc:  # JSONDecodeError is a ValueError
        p.error(f"{exc}")
    months = tuple(args.months.split(":")) if args.months else None
    stream = RealStream(load_comext(args.realdata, months), ExpansionConfig(scale=args.scale))
    days = int((stream.end_ts - stream.start_ts) // DAY) + 1
    lanes = daily_lanes(stream.declarations(), stream.start_ts, days, args.min_total)
    cost = threshold_cost(lanes, stream.start_ts, lambda: build_detector(args.detector, params), zs,
                          args.floor, args.min_declarations, args.cooldown)
    figures = {"detector": args.detector, "params": params, "floor_eur": args.floor,
               "min_declarations": args.min_declarations, "cooldown_windows": args.cooldown,
               "min_total_eur": args.min_total, "scale": args.scale, **cost.to_dict()}
    for row in figures["thresholds"]:
        print(f"z >= {row['z']:g}: {row['alerts']} alerts, {row['alerts_per_month']:.1f} a month "
              f"(max {row['max_per_month']}) on {cost.series} series: "
              f"{row['per_1000_series_month']:.2f} per 1,000 series a month", file=sys.stderr)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(figures, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
