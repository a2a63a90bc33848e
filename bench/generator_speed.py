"""Declarations per second of the synthetic generator, as encoded bytes.

    python -m bench.generator_speed [--days 120] [--daily 1500] [--repeat 3]

Measures ``generate_records`` end to end (background draws, declaration structs,
msgspec JSON encoding), with and without the small set's scenarios, and prints
the best of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import time

from evaluation.synth.generator import StreamConfig, generate_records
from evaluation.synth.scenarios import small_scenario_set


def measure(config: StreamConfig, scenarios: list, repeat: int) -> tuple[int, float, int]:
    best = float("inf")
    n = size = 0
    for _ in range(repeat):
        started = time.perf_counter()
        n = size = 0
        for raw in generate_records(config, scenarios):
            n += 1
            size += len(raw)
        best = min(best, time.perf_counter() - started)
    return n, best, size


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--days", type=int, default=120)
    p.add_argument("--daily", type=float, default=1500.0)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args(argv)
    small = small_scenario_set()
    config = StreamConfig(
        seed=small.config.seed,
        start=small.config.start,
        days=args.days,
        daily_declarations=args.daily,
    )
    for label, scenarios in (
        ("background only", []),
        ("with small-set scenarios", small.scenarios),
    ):
        n, seconds, size = measure(config, scenarios, args.repeat)
        print(
            f"{label:<26} {n:>8} declarations in {seconds:6.2f}s = {n / seconds:>9,.0f}/s "
            f"({size / n:.0f} bytes each, {size / seconds / 1e6:.1f} MB/s)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
