"""Events per second (score_one + learn_one, one core) and state bytes per series.

``python -m bench.detector_speed [--events N]`` prints a table for the spike
detector on three kinds of series (5-minute, hourly, daily with a weekday
pattern), each streamed prequentially through one detector instance.
"""

from __future__ import annotations

import argparse
import math
import random
import time

from detectors.spike import SeasonalRobustSpikeDetector

__all__ = ["measure", "main"]

SERIES = {
    "5-minute, noisy": 300.0,
    "hourly, daily cycle": 3600.0,
    "daily trade EUR, weekdays": 86400.0,
}


def _events(step: float, n: int, seed: int = 0) -> list[dict[str, float]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        t = i * step
        hour = (t // 3600) % 24
        weekday = int(t // 86400 + 3) % 7
        season = (
            (0.35 if weekday >= 5 else 1.0)
            if step >= 86400
            else 1 + 0.3 * math.sin(hour / 24 * 2 * math.pi)
        )
        out.append({"value": 1e5 * season * rng.lognormvariate(0, 0.2), "t": t})
    return out


def measure(
    factory=SeasonalRobustSpikeDetector, step: float = 300.0, n: int = 200_000, repeats: int = 3
):
    """(events per second, state bytes) for one detector over ``n`` synthetic events."""
    events = _events(step, n)
    best = math.inf
    det = None
    for _ in range(repeats):
        det = factory()
        score_one, learn_one = det.score_one, det.learn_one
        t0 = time.perf_counter()
        for x in events:
            score_one(x)
            learn_one(x)
        best = min(best, time.perf_counter() - t0)
    return n / best, det.state_bytes()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.detector_speed", description=__doc__)
    ap.add_argument("--events", type=int, default=200_000)
    args = ap.parse_args(argv)
    print(f"{'series':<28}{'events/s (score+learn)':>24}{'state bytes':>14}")
    for name, step in SERIES.items():
        rate, size = measure(step=step, n=args.events)
        print(f"{name:<28}{rate:>24,.0f}{size:>14}")
    print("one core, CPython; state = pickle size of one detector (one series)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
