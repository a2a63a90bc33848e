"""Cost of each detector: score+learn events per second on one core, and state size.

Run ``python -m bench.detector_cost`` (``--events N`` to change the stream length,
``--no-million`` to skip filling the novelty filter with a million keys).

For each detector it times ``score_one`` then ``learn_one`` (the pipeline's
prequential order) over a synthetic stream shaped like that detector's input, and
reports the state two ways: the pickle size (what a checkpoint stores,
``Detector.state_bytes()``) and the live heap size of one trained instance, measured
with ``tracemalloc`` over many instances (what the worker's RAM pays). The
per-series detectors (one instance per series key) are then scaled to 100,000
active series.
"""

from __future__ import annotations

import argparse
import gc
import math
import random
import time
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

from detectors.base import Detector
from detectors.registry import DETECTOR_KINDS, build

DAY = 86400.0
MONTH = 30 * DAY
ACTIVE_SERIES = 100_000


# -- synthetic inputs -----------------------------------------------------------------


def series_inputs(rng: random.Random, n: int) -> Iterator[dict[str, Any]]:
    """Daily window values: log-normal noise, some empty windows, a shift every 200."""
    for i in range(n):
        level = 1e5 * (5.0 if (i // 200) % 2 else 1.0)
        value = 0.0 if rng.random() < 0.05 else level * rng.lognormvariate(0, 0.3)
        yield {"value": value, "t": DAY * i, "count": 0 if value == 0.0 else 1 + int(rng.random() < 0.5)}


def passthrough_inputs(rng: random.Random, n: int) -> Iterator[dict[str, Any]]:
    for i in range(n):
        surge = 10.0 if i % 50 in (30, 31) else 1.0
        yield {
            "inflow": 1e5 * surge * rng.lognormvariate(0, 0.4),
            "outflow": 2e4 * (surge if i % 50 == 31 else 1.0) * rng.lognormvariate(0, 0.4),
            "t": MONTH * i,
        }


def declaration_inputs(rng: random.Random, n: int) -> Iterator[dict[str, Any]]:
    """Declarations of 40 HS6 codes in one chapter, unit values 100..2050 EUR/kg."""
    codes = [f"8542{i:02d}" for i in range(40)]
    for i in range(n):
        mass = rng.uniform(0.5, 100.0)
        k = i % 40
        value = (100 + 50 * k) * mass * rng.lognormvariate(0, 0.5)
        yield {"value_eur": value, "net_mass_kg": mass, "hs6": codes[k]}


def party_inputs(rng: random.Random, n: int, chpl_share: float) -> Iterator[dict[str, Any]]:
    """Declarations naming 5,000 exporters and 20,000 consignees on 8 routes."""
    routes = ["DE>KG", "DE>KZ", "PL>AM", "IT>AE", "FR>TR", "NL>GE", "DE>UZ", "CZ>KZ"]
    tiers = ["1", "2", "3A", "3B", "4A", "4B"]
    for _ in range(n):
        yield {
            "exporter_id": f"DE{rng.randrange(5000):012d}",
            "consignee_id": f"CONS-{rng.randrange(20000)}",
            "route": rng.choice(routes),
            "chpl_tier": rng.choice(tiers) if rng.random() < chpl_share else "",
            "value_eur": rng.lognormvariate(10, 1.5),
        }


# -- measurements -----------------------------------------------------------------------


def time_per_event(make: Callable[[], Detector], xs: list[dict[str, Any]], repeat: int) -> float:
    """Seconds per score_one + learn_one on a fresh detector, best of ``repeat`` runs.

    The best run is the least disturbed by other processes (as ``timeit`` reports);
    the garbage collector is off while timing.
    """
    best = math.inf
    for _ in range(repeat):
        det = make()
        gc.collect()
        gc.disable()
        try:
            start = time.perf_counter()
            for x in xs:
                det.score_one(x)
                det.learn_one(x)
            best = min(best, time.perf_counter() - start)
        finally:
            gc.enable()
    return best / len(xs)


def live_bytes(make: Callable[[], Detector], xs: list[dict[str, Any]], copies: int) -> float:
    """Heap bytes held by one trained instance, averaged over ``copies`` instances."""
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    kept = []
    for _ in range(copies):
        det = make()
        for x in xs:
            det.learn_one(x)
        kept.append(det)
    gc.collect()
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    del kept
    return used / copies


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000, help="events per timing run")
    parser.add_argument("--repeat", type=int, default=3, help="timing runs; the best is shown")
    parser.add_argument("--no-million", action="store_true", help="skip the 1M-key novelty fill")
    args = parser.parse_args(argv)
    n = args.events
    rng = random.Random(42)
    series = list(series_inputs(rng, n))
    legs = list(passthrough_inputs(rng, n))
    decls = list(declaration_inputs(rng, n))
    parties_10 = list(party_inputs(rng, n, chpl_share=0.10))
    parties_all = list(party_inputs(rng, n, chpl_share=1.0))
    hst_n = min(n, 10_000)  # HalfSpaceTrees is slow; fewer events keep the run short

    # (label, kind, params, inputs, one instance per series key?)
    cases: list[tuple[str, str, dict[str, Any], list[dict[str, Any]], bool]] = [
        ("changepoint", "changepoint", {}, series, True),
        ("volume", "volume", {}, series, True),
        ("trend", "trend", {}, series, True),
        ("passthrough", "passthrough", {}, legs, True),
        ("onset", "onset", {}, legs, True),
        ("unit_value (robust z only, default)", "unit_value", {}, decls, False),
        ("unit_value + HST 10 trees", "unit_value", {"hst_trees": 10}, decls[:hst_n], False),
        (
            "unit_value + HST, learn 1 in 10",
            "unit_value",
            {"hst_trees": 10, "hst_learn_every": 10},
            decls[:hst_n],
            False,
        ),
        ("novelty (10 % CHPL stream)", "novelty", {"warm_up": 100}, parties_10, False),
        ("novelty (CHPL only)", "novelty", {"warm_up": 100}, parties_all, False),
    ]
    if "spike" in DETECTOR_KINDS:
        cases.insert(0, ("spike", "spike", {}, series, True))

    print(
        f"detector cost: {n:,} events per run (HST: {hst_n:,}), best of {args.repeat}, one core\n"
    )
    header = (
        f"{'detector':38s} {'events/s':>10s} {'us/event':>9s} {'pickle':>10s} {'live heap':>10s}"
    )
    print(header)
    print("-" * len(header))
    per_series: list[tuple[str, int, float]] = []
    for label, kind, params, xs, is_series in cases:

        def make(kind: str = kind, params: dict[str, Any] = params) -> Detector:
            return build(kind, params)

        seconds = time_per_event(make, xs, args.repeat)
        det = make()
        for x in xs:
            det.learn_one(x)
        size = det.state_bytes()
        # tracemalloc slows every allocation, so the live size uses a short stream.
        live = live_bytes(make, xs[:300], copies=50 if is_series else 2)
        print(
            f"{label:38s} {1 / seconds:>10,.0f} {seconds * 1e6:>9.2f} "
            f"{human(size):>10s} {human(live):>10s}"
        )
        if is_series:
            per_series.append((label, size, live))

    print(f"\nper-series detectors at {ACTIVE_SERIES:,} active series (one instance per key)")
    total_pickle = total_live = 0.0
    for label, size, live in per_series:
        total_pickle += size * ACTIVE_SERIES
        total_live += live * ACTIVE_SERIES
        print(
            f"  {label:14s} {size:>6,d} B pickle/key -> {human(size * ACTIVE_SERIES):>9s} "
            f"checkpoint, {live:>7,.0f} B live/key -> {human(live * ACTIVE_SERIES):>9s} RAM"
        )
    print(
        f"  {'all of them':14s} {human(total_pickle):>36s} checkpoint, {human(total_live):>22s} RAM"
    )

    print("\nper-declaration detectors: one instance per HS chapter (unit_value) or in total")
    det = build("unit_value", {"grace_period": 2})
    base = det.state_bytes()
    for i in range(500):
        det.learn_one({"value_eur": 100.0, "net_mass_kg": 1.0, "hs6": f"{850000 + i}"})
    print(f"  unit_value: {(det.state_bytes() - base) / 500:,.0f} B pickle per HS6 code")
    novelty = build("novelty", {})
    print(
        f"  novelty: capacity 1,000,000 keys/generation -> {human(novelty.memory_bytes())} "
        "of filters (two generations), whatever the number of parties"
    )
    if not args.no_million:
        keys = novelty._keys
        start = time.perf_counter()
        for i in range(1_000_000 - 1):
            keys.add(*keys.locate(f"x:DE{i:012d}"))
        fill = time.perf_counter() - start
        probes = 200_000
        hits = sum(keys.contains(*keys.locate(f"c:KG{i:012d}")) for i in range(probes))
        print(
            f"  novelty: 1M keys inserted in {fill:.1f} s; false-positive rate when full "
            f"{100 * hits / probes:.3f} % (a false positive is a missed novelty); "
            f"pickle {human(novelty.state_bytes())}"
        )


if __name__ == "__main__":
    main()
