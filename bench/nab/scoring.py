"""The NAB scoring algorithm, reimplemented without pandas.

Pure functions over row indices and score arrays: nothing here reads files
(see :mod:`bench.nab.corpus` for that). The algorithm is NAB's
``nab/sweeper.py`` + ``nab/optimizer.py`` + ``Runner.normalize``:

* every row ``i`` of a file gets a weight ``S_i`` per profile: inside a label
  window ``A_TP * scaledSigmoid(-(b-i+1)/W) / scaledSigmoid(-1)`` (earlier is
  better), outside ``A_FP * scaledSigmoid((i-b_prev)/(W_prev-1))`` after a
  window (``-A_FP`` before any window);
* rows inside the probationary period ``P = min(floor(0.15 N), 750)`` are
  not scored;
* at threshold ``theta`` a row is a detection when ``score >= theta``; a
  window contributes the best ``S_i`` among its detections (``-A_FN`` when it
  has none), every detection outside windows adds its (negative) ``S_i``;
* one threshold for the whole corpus, either the shipped one or the best one
  found by an exhaustive sweep over all distinct score values (plus 1.1);
* ``NAB = 100 * (raw - null) / (perfect - null)`` with
  ``null = -A_FN * n_windows`` and ``perfect = A_TP * n_windows``.

>>> p = Profile("standard", tp=1.0, fp=0.11, fn=1.0)
>>> f = FileLabels(n_rows=20, windows=((10, 13),))   # P = floor(0.15*20) = 3
>>> round(score_file(f, [0.0] * 10 + [1.0] + [0.0] * 9, 0.5, p), 6)   # first window row
1.0
>>> round(score_file(f, [0.0] * 20, 0.5, p), 6)                       # missed window
-1.0
>>> round(score_file(f, [0.0] * 5 + [1.0] + [0.0] * 14, 0.5, p), 6)   # FP before any window
-1.11
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

__all__ = [
    "PROFILES",
    "CorpusScorer",
    "FileLabels",
    "Profile",
    "ProfileResult",
    "probationary_length",
    "scaled_sigmoid",
    "score_file",
    "sweep_weights",
]

PROBATION_PERCENT = 0.15
NO_DETECTION_THRESHOLD = 1.1


@dataclasses.dataclass(frozen=True, slots=True)
class Profile:
    """A NAB cost profile: reward of a true positive, costs of FP and FN."""

    name: str
    tp: float
    fp: float
    fn: float


PROFILES: tuple[Profile, ...] = (
    Profile("standard", tp=1.0, fp=0.11, fn=1.0),
    Profile("reward_low_FP_rate", tp=1.0, fp=0.22, fn=1.0),
    Profile("reward_low_FN_rate", tp=1.0, fp=0.11, fn=2.0),
)


@dataclasses.dataclass(frozen=True, slots=True)
class FileLabels:
    """One data file as the scorer sees it: its length and its label windows.

    ``windows`` are ``(first_row, last_row)`` pairs (both included, 0-based),
    sorted and non-overlapping.
    """

    n_rows: int
    windows: tuple[tuple[int, int], ...] = ()

    def __post_init__(self) -> None:
        prev_end = -1
        for a, b in self.windows:
            if not (0 <= a <= b < self.n_rows) or a <= prev_end:
                raise ValueError(f"bad window {(a, b)} for a file of {self.n_rows} rows")
            prev_end = b


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def scaled_sigmoid(y: float) -> float:
    """NAB's scaled sigmoid: ``-1`` for ``y > 3``, else ``2*sigmoid(-5y) - 1``.

    >>> scaled_sigmoid(0.0)
    0.0
    >>> round(scaled_sigmoid(-1.0), 6)
    0.986614
    >>> scaled_sigmoid(3.5)
    -1.0
    """
    if y > 3.0:
        return -1.0
    return 2.0 * sigmoid(-5.0 * y) - 1.0


def _scaled_sigmoid_array(y: np.ndarray) -> np.ndarray:
    out = 2.0 / (1.0 + np.exp(5.0 * y)) - 1.0
    out[y > 3.0] = -1.0
    return out


def probationary_length(n_rows: int, percent: float = PROBATION_PERCENT) -> int:
    """Rows at the start of a file that NAB does not score: ``min(floor(pN), p*5000)``.

    >>> probationary_length(4032), probationary_length(10320)
    (604, 750)
    """
    return int(min(math.floor(percent * n_rows), percent * 5000))


def sweep_weights(f: FileLabels, profile: Profile) -> tuple[np.ndarray, np.ndarray]:
    """Per-row NAB weight ``S_i`` and window index (``-1`` outside windows), all rows.

    The weights of rows inside the probationary period are computed as well;
    callers drop them (see :func:`probationary_length`).
    """
    n = f.n_rows
    idx = np.arange(n, dtype=np.float64)
    weight = np.full(n, -profile.fp, dtype=np.float64)
    window = np.full(n, -1, dtype=np.int64)
    max_tp = scaled_sigmoid(-1.0)
    for k, (a, b) in enumerate(f.windows):
        width = b - a + 1
        pos = -(b - idx[a : b + 1] + 1.0) / width
        weight[a : b + 1] = _scaled_sigmoid_array(pos) * profile.tp / max_tp
        window[a : b + 1] = k
        # rows after this window and before the next one: FP cost by distance
        nxt = f.windows[k + 1][0] if k + 1 < len(f.windows) else n
        if nxt > b + 1:
            if width > 1:
                past = (idx[b + 1 : nxt] - b) / float(width - 1)
                weight[b + 1 : nxt] = _scaled_sigmoid_array(past) * profile.fp
            else:  # NAB divides by zero here; numpy-style inf -> beyond 3 -> -1
                weight[b + 1 : nxt] = -profile.fp
    return weight, window


def score_file(
    f: FileLabels, scores: Sequence[float] | np.ndarray, threshold: float, profile: Profile
) -> float:
    """Raw NAB score of one file at a fixed threshold (detections: ``score >= threshold``)."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != (f.n_rows,):
        raise ValueError(f"expected {f.n_rows} scores, got {scores.shape}")
    weight, window = sweep_weights(f, profile)
    p = probationary_length(f.n_rows)
    det = np.zeros(f.n_rows, dtype=bool)
    det[p:] = scores[p:] >= threshold
    total = float(weight[det & (window < 0)].sum())
    for k in range(len(f.windows)):
        in_k = window == k
        if not in_k[p:].any():
            continue  # a window wholly inside the probation is not scored
        hit = det & in_k
        total += float(weight[hit].max()) if hit.any() else -profile.fn
    return total


@dataclasses.dataclass(frozen=True, slots=True)
class ProfileResult:
    """Score of one detector under one profile."""

    profile: str
    threshold: float
    raw: float
    normalized: float
    optimized: bool


class CorpusScorer:
    """Scores a whole corpus: one threshold for all files, optimised or given.

    ``files`` maps a file key (``"<category>/<name>.csv"``) to its
    :class:`FileLabels`. The per-row weights are computed once per profile and
    reused, so scoring many detectors is cheap.
    """

    def __init__(self, files: Mapping[str, FileLabels], profiles: Iterable[Profile] = PROFILES):
        self.files = dict(files)
        self.keys = sorted(self.files)
        self.profiles = {p.name: p for p in profiles}
        self.n_windows = sum(len(f.windows) for f in self.files.values())
        self._offsets: dict[str, tuple[int, int]] = {}
        weights: dict[str, list[np.ndarray]] = {name: [] for name in self.profiles}
        windows, n_scored_windows = [], 0
        pos = 0
        for key in self.keys:
            f = self.files[key]
            p = probationary_length(f.n_rows)
            for name, prof in self.profiles.items():
                w, win = sweep_weights(f, prof)
                weights[name].append(w[p:])
            win = win[p:]
            # global window ids over windows that have at least one scored row
            local = np.unique(win[win >= 0])
            remap = np.full(len(f.windows) + 1, -1, dtype=np.int64)
            remap[local] = np.arange(n_scored_windows, n_scored_windows + len(local))
            windows.append(np.where(win >= 0, remap[win], -1))
            n_scored_windows += len(local)
            self._offsets[key] = (p, pos)
            pos += f.n_rows - p
        self.n_scored_windows = n_scored_windows
        self._weights = {name: np.concatenate(ws) for name, ws in weights.items()}
        self._window = np.concatenate(windows)

    # -- input ----------------------------------------------------------------
    def _gather(self, scores: Mapping[str, Sequence[float] | np.ndarray]) -> np.ndarray:
        out = np.empty(self._window.shape[0], dtype=np.float64)
        missing = [k for k in self.keys if k not in scores]
        if missing:
            raise KeyError(f"no scores for {len(missing)} files, e.g. {missing[0]}")
        for key in self.keys:
            s = np.asarray(scores[key], dtype=np.float64)
            n = self.files[key].n_rows
            if s.shape != (n,):
                raise ValueError(f"{key}: expected {n} scores, got {s.shape}")
            p, start = self._offsets[key]
            out[start : start + n - p] = s[p:]
        return out

    # -- scoring --------------------------------------------------------------
    def raw_at(
        self, scores: Mapping[str, Sequence[float]], threshold: float, profile: str
    ) -> float:
        """Corpus raw score at a fixed threshold."""
        prof = self.profiles[profile]
        s = self._gather(scores)
        return self._raw_at(s, threshold, prof)

    def _raw_at(self, s: np.ndarray, threshold: float, prof: Profile) -> float:
        det = s >= threshold
        w = self._weights[prof.name]
        win = self._window
        fp = float(w[det & (win < 0)].sum())
        best = np.full(self.n_scored_windows, -prof.fn)
        hit = det & (win >= 0)
        np.maximum.at(best, win[hit], w[hit])
        return float(best.sum()) + fp

    def sweep(
        self, scores: Mapping[str, Sequence[float]], profile: str
    ) -> tuple[np.ndarray, np.ndarray]:
        """All candidate thresholds (descending, starting at 1.1) and the raw score at each."""
        return self._sweep(self._gather(scores), self.profiles[profile])

    def _sweep(self, s: np.ndarray, prof: Profile) -> tuple[np.ndarray, np.ndarray]:
        w = self._weights[prof.name]
        win = self._window
        order = np.argsort(-s, kind="stable")
        s_sorted = s[order]
        w_sorted = w[order]
        win_sorted = win[order]
        delta = np.where(win_sorted < 0, w_sorted, 0.0)
        # window rows: the score moves only when a window's best weight rises
        in_win = np.flatnonzero(win_sorted >= 0)
        if in_win.size:
            wid = win_sorted[in_win]
            grp_order = np.lexsort((in_win, wid))  # by window, then by sorted position
            g_pos = in_win[grp_order]
            g_wid = wid[grp_order]
            g_w = w_sorted[g_pos]
            span = 4.0 * (abs(prof.tp) + abs(prof.fn) + 1.0)
            # running max within each window group via an offset per group
            run = np.maximum.accumulate(g_w + g_wid * span) - g_wid * span
            first = np.ones(g_pos.size, dtype=bool)
            first[1:] = g_wid[1:] != g_wid[:-1]
            prev = np.empty_like(run)
            prev[1:] = run[:-1]
            prev[first] = -prof.fn
            # max(-fn, .) is implicit: window weights are > 0 > -fn
            run = np.maximum(run, -prof.fn)
            delta[g_pos] = run - prev
        cum = np.cumsum(delta) - prof.fn * self.n_scored_windows
        # a threshold equal to a score value takes every row with that value (>=)
        last_of_tie = np.ones(s_sorted.size, dtype=bool)
        last_of_tie[:-1] = s_sorted[:-1] != s_sorted[1:]
        thresholds = np.concatenate(([NO_DETECTION_THRESHOLD], s_sorted[last_of_tie]))
        raws = np.concatenate(([-prof.fn * self.n_scored_windows], cum[last_of_tie]))
        return thresholds, raws

    def optimize(self, scores: Mapping[str, Sequence[float]], profile: str) -> tuple[float, float]:
        """Best threshold by NAB's exhaustive sweep, and the raw score there.

        Ties in the raw score go to the highest threshold (the first one the
        sweep meets), as NAB's optimiser does.
        """
        thresholds, raws = self.sweep(scores, profile)
        k = int(np.argmax(raws))
        return float(thresholds[k]), float(raws[k])

    def null_raw(self, profile: str) -> float:
        return -self.profiles[profile].fn * self.n_windows

    def perfect_raw(self, profile: str) -> float:
        return self.profiles[profile].tp * self.n_windows

    def normalize(self, raw: float, profile: str) -> float:
        null, perfect = self.null_raw(profile), self.perfect_raw(profile)
        return 100.0 * (raw - null) / (perfect - null)

    def evaluate(
        self,
        scores: Mapping[str, Sequence[float]],
        thresholds: Mapping[str, float] | None = None,
    ) -> dict[str, ProfileResult]:
        """Score every profile: at the given thresholds, or optimised when none given."""
        s = self._gather(scores)
        out = {}
        for name, prof in self.profiles.items():
            if thresholds is not None and name in thresholds:
                th = float(thresholds[name])
                raw, opt = self._raw_at(s, th, prof), False
            else:
                ths, raws = self._sweep(s, prof)
                k = int(np.argmax(raws))
                th, raw, opt = float(ths[k]), float(raws[k]), True
            out[name] = ProfileResult(name, th, raw, self.normalize(raw, name), opt)
        return out

    def file_raw(self, key: str, scores: Sequence[float], threshold: float, profile: str) -> float:
        """Raw score of one file of the corpus at a threshold (for per-file tables)."""
        return score_file(self.files[key], scores, threshold, self.profiles[profile])
