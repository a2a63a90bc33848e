"""Run the pipeline's spike detector over NAB and score it next to the reference detectors.

``python -m bench.nab --out DIR`` streams every series one point at a time
(score, then learn; no look-ahead; one configuration for all 58 files), writes
``DIR/<detector>/<category>/<detector>_<file>.csv`` and prints the three profile
scores. ``python -m bench.nab --score-dir DIR --detector NAME`` scores an
existing results folder (for instance NAB's own reference results).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from bench.nab import corpus
from bench.nab.scoring import CorpusScorer, ProfileResult

__all__ = ["DETECTOR_NAME", "default_detector", "main", "run_corpus", "run_series"]

DETECTOR_NAME = "tradewatchSpike"
PROFILE_ORDER = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")
REFERENCE_ROWS = ("ARTime", "numenta", "contextOSE", "randomCutForest", "windowedGaussian", "null")


def default_detector(**overrides: Any):
    """The one configuration that is benchmarked (the pipeline's default spike detector).

    Built as the pipeline builds it, through the registry, so ``overrides`` take the
    config file's shape: ``default_detector(novelty={"levels": 0})`` is
    ``params = { novelty = { levels = 0 } }`` under ``[detectors.spike]``.
    """
    from detectors.registry import build

    return build("spike", overrides)


def run_series(detector, epoch: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Stream one series through a fresh detector: score each point, then learn it."""
    out = np.empty(len(values), dtype=np.float64)
    score_one, learn_one = detector.score_one, detector.learn_one
    for i, (t, v) in enumerate(zip(epoch.tolist(), values.tolist(), strict=True)):
        x = {"value": v, "t": t}
        out[i] = score_one(x)
        learn_one(x)
    return out


def _run_one(args: tuple[Callable[..., Any], dict[str, Any], np.ndarray, np.ndarray]) -> np.ndarray:
    factory, params, epoch, values = args
    return run_series(factory(**params), epoch, values)


def run_corpus(
    data: Mapping[str, corpus.DataFile],
    factory: Callable[..., Any] = default_detector,
    params: Mapping[str, Any] | None = None,
    processes: int = 2,
) -> dict[str, np.ndarray]:
    """Scores for every file; a fresh detector per file, the same parameters for all."""
    keys = sorted(data, key=lambda k: -len(data[k].values))  # longest first balances the pool
    jobs = [(factory, dict(params or {}), data[k].epoch, data[k].values) for k in keys]
    if processes > 1:
        with mp.get_context("fork").Pool(processes) as pool:
            results = pool.map(_run_one, jobs, chunksize=1)
    else:
        results = [_run_one(j) for j in jobs]
    return dict(zip(keys, results, strict=True))


def format_table(rows: list[tuple[str, Mapping[str, float], str]]) -> str:
    head = f"{'detector':<26}" + "".join(f"{p:>20}" for p in PROFILE_ORDER) + "  note"
    lines = [head, "-" * len(head)]
    for name, scores, note in rows:
        cells = "".join(
            f"{scores[p]:>20.2f}" if p in scores else f"{'-':>20}" for p in PROFILE_ORDER
        )
        lines.append(f"{name:<26}{cells}  {note}")
    return "\n".join(lines)


def score_table(
    scorer: CorpusScorer, name: str, scores: Mapping[str, np.ndarray], root: Path
) -> tuple[str, dict[str, ProfileResult], dict[str, ProfileResult] | None]:
    """Table of our optimised (and, when NAB ships one, fixed-threshold) scores and references."""
    optimised = scorer.evaluate(scores)
    shipped = corpus.load_shipped_thresholds(root).get(name)
    at_shipped = scorer.evaluate(scores, shipped) if shipped else None
    rows = [
        (
            name,
            {p: r.normalized for p, r in optimised.items()},
            "optimised threshold (exhaustive sweep, as NAB's optimiser): "
            + ", ".join(f"{p}={r.threshold:.6g}" for p, r in optimised.items()),
        )
    ]
    if at_shipped:
        rows.append(
            (
                name,
                {p: r.normalized for p, r in at_shipped.items()},
                "at NAB's shipped thresholds (config/thresholds.json)",
            )
        )
    final = corpus.load_final_results(root)
    for ref in REFERENCE_ROWS:
        if ref in final:
            rows.append((ref, final[ref], "reference: final_results.json (shipped thresholds)"))
    return format_table(rows), optimised, at_shipped


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m bench.nab",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--out", type=Path, help="write results here (NAB layout) and score them")
    ap.add_argument("--score-dir", type=Path, help="score an existing NAB results folder")
    ap.add_argument("--detector", default=None, help="detector name inside --score-dir")
    ap.add_argument(
        "--nab-root", type=Path, default=None, help="NAB root (default: $NAB_ROOT or ../shared/nab)"
    )
    ap.add_argument("--processes", type=int, default=2)
    args = ap.parse_args(argv)
    if not args.out and not args.score_dir:
        ap.error("give --out DIR (run our detector) or --score-dir DIR --detector NAME")

    root = corpus.find_nab_root(args.nab_root)
    t0 = time.perf_counter()
    data = corpus.load_corpus(root)
    scorer = CorpusScorer({k: f.labels for k, f in data.items()}, corpus.load_profiles(root))

    if args.score_dir:
        name = args.detector or DETECTOR_NAME
        scores = corpus.read_results_dir(args.score_dir, name, scorer.keys)
    else:
        name = args.detector or DETECTOR_NAME
        det = default_detector()
        print(
            f"running {det!r} over {len(data)} series "
            f"({sum(len(f.values) for f in data.values())} points), {args.processes} processes",
            file=sys.stderr,
        )
        t1 = time.perf_counter()
        scores = run_corpus(data, processes=args.processes)
        elapsed = time.perf_counter() - t1
        for key, s in scores.items():
            corpus.write_results_file(args.out, name, data[key], s)
        print(f"detector time {elapsed:.1f} s; results in {args.out / name}", file=sys.stderr)

    table, _, _ = score_table(scorer, name, scores, root)
    print(table)
    print(
        f"\nNAB score = 100*(raw-null)/(perfect-null), {scorer.n_windows} windows, "
        f"{len(data)} files; total {time.perf_counter() - t0:.1f} s"
    )
    return 0
