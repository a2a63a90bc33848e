"""Catch-up: learning a quiet spell at once (``learn_empty``) against window by window.

``python -m bench.catch_up [--json]``: for each series detector of the shipped config,
trained on a sparse daily series, the microseconds to learn ``m`` missed empty windows
(1, 5, 30) with ``Detector.learn_empty`` and with the ``learn_one`` loop it replaces,
measured alternately in the same run (best of ``--rounds``), and their ratio. This is
what a quiet series costs when it has data again (:mod:`streams.scoring`, "Quiet
series"); the two leave the same state (``tests/unit/detectors/test_learn_empty.py``).
"""

from __future__ import annotations

import argparse
import json
import pickle
import random
import sys
import time
from typing import Any

from detectors.base import Detector
from detectors.registry import build
from streams.config import DEFAULT_CONFIG_PATH, load_settings
from streams.scoring import DETECTOR_ROLES

DAY = 86_400.0
#: Detectors timed per round and spell length (each starts from the same trained state).
COPIES = 300
#: Days of training before the spell: past every warm-up of the shipped config (trend: 120).
TRAINED_DAYS = 150


def _trained(kind: str, params: dict[str, Any]) -> bytes:
    rng = random.Random(11)
    det = build(kind, params)
    for day in range(TRAINED_DAYS):
        value = rng.lognormvariate(10, 1) if rng.random() < 0.4 else 0.0
        det.learn_one({"value": value, "t": day * DAY, "count": 1 if value else 0})
    return pickle.dumps(det, protocol=pickle.HIGHEST_PROTOCOL)


def _seconds(raw: bytes, times: list[float], at_once: bool) -> float:
    detectors = [pickle.loads(raw) for _ in range(COPIES)]  # noqa: S301 - our own bytes
    t0 = time.perf_counter()
    for det in detectors:
        if at_once:
            det.learn_empty(times)
        else:
            Detector.learn_empty(det, times)  # the learn_one loop
    return (time.perf_counter() - t0) / COPIES


def measure(spells: tuple[int, ...] = (1, 5, 30), rounds: int = 5) -> list[dict[str, Any]]:
    settings = load_settings(DEFAULT_CONFIG_PATH)
    rows = []
    for name, spec in settings.detectors.items():
        if DETECTOR_ROLES.get(spec.kind) != "series" or not spec.enabled:
            continue
        raw = _trained(spec.kind, dict(spec.params))
        for m in spells:
            times = [(TRAINED_DAYS + i) * DAY for i in range(m)]
            best = {True: float("inf"), False: float("inf")}
            for _ in range(rounds):
                for at_once in (True, False):
                    best[at_once] = min(best[at_once], _seconds(raw, times, at_once))
            rows.append({"detector": name, "missed_windows": m,
                         "learn_empty_us": best[True] * 1e6, "learn_one_loop_us": best[False] * 1e6,
                         "loop_over_learn_empty": best[False] / best[True]})
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    rows = measure(rounds=args.rounds)
    if args.json:
        print(json.dumps({"rows": rows}, indent=2))
    else:
        for r in rows:
            print(f"{r['detector']:12s} missed {r['missed_windows']:3d}: learn_empty "
                  f"{r['learn_empty_us']:8.1f} us, learn_one loop {r['learn_one_loop_us']:8.1f} us "
                  f"({r['loop_over_learn_empty']:.1f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
