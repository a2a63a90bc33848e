"""Compare spike-detector variants on NAB (one configuration per variant, all 58 files).

``python -m bench.nab.experiments '{}' '{"novelty": {"levels": 0}}' ...`` runs the
default detector with each JSON dict of overrides (the shape of ``params`` under
``[detectors.spike]`` in the config file: parts as nested tables) and prints the three
profile scores, plus, at the standard profile's optimised threshold, how many
windows were found and how many detections fell outside the windows.
``--per-category`` adds the standard raw score per NAB category.

Every variant is still a single configuration for the whole corpus, streamed
score-then-learn with no look-ahead: this is the bench used to choose the
class defaults, not a per-file tuner.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict

import numpy as np

from bench.nab import corpus
from bench.nab.run import run_corpus
from bench.nab.scoring import CorpusScorer, probationary_length


def diagnose(data, scores, threshold: float) -> tuple[int, int, dict[str, int]]:
    """(windows with a detection, detections outside windows, FPs per file)."""
    hits = fps = 0
    per_file: dict[str, int] = {}
    for key, f in data.items():
        s = np.asarray(scores[key])
        p = probationary_length(len(s))
        det = np.zeros(len(s), dtype=bool)
        det[p:] = s[p:] >= threshold
        inwin = f.window_flags().astype(bool)
        for a, b in f.windows:
            if b >= p and det[a : b + 1].any():
                hits += 1
        n_fp = int((det & ~inwin).sum())
        fps += n_fp
        per_file[key] = n_fp
    return hits, fps, per_file


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("variants", nargs="*", default=["{}"])
    ap.add_argument("--per-category", action="store_true")
    ap.add_argument("--per-file", action="store_true")
    ap.add_argument("--processes", type=int, default=2)
    args = ap.parse_args(argv)
    root = corpus.find_nab_root()
    data = corpus.load_corpus(root)
    scorer = CorpusScorer({k: f.labels for k, f in data.items()}, corpus.load_profiles(root))
    for spec in args.variants:
        params = json.loads(spec)
        t0 = time.perf_counter()
        scores = run_corpus(data, params=params, processes=args.processes)
        el = time.perf_counter() - t0
        res = scorer.evaluate(scores)
        std = res["standard"]
        hits, fps, per_file = diagnose(data, scores, std.threshold)
        print(
            f"{spec:<60} std {std.normalized:6.2f}  lowFP {res['reward_low_FP_rate'].normalized:6.2f}"
            f"  lowFN {res['reward_low_FN_rate'].normalized:6.2f}  | th {std.threshold:.4f}"
            f" hits {hits}/{scorer.n_windows} fp {fps}  ({el:.1f}s)",
            flush=True,
        )
        if args.per_category or args.per_file:
            cat = defaultdict(float)
            for key in data:
                r = scorer.file_raw(key, scores[key], std.threshold, "standard")
                cat[key.split("/")[0]] += r
                if args.per_file:
                    print(f"    {key:<60} raw {r:7.2f}  fp {per_file[key]}  nwin {len(data[key].windows)}")
            print("    " + "  ".join(f"{c}={v:.1f}" for c, v in sorted(cat.items())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
