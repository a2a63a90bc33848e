"""Finding and loading the NAB corpus: data files, label windows, profiles, thresholds.

The NAB root is ``$NAB_ROOT`` when set, else ``<repo>/../shared/nab`` (CI runs
in a clone with ``shared/`` beside it). The data are never copied into the repo.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from bench.nab.scoring import PROFILES, FileLabels, Profile

__all__ = [
    "DataFile",
    "find_nab_root",
    "load_corpus",
    "load_labels",
    "load_profiles",
    "load_shipped_thresholds",
    "parse_timestamp",
    "read_results_dir",
    "write_results_file",
]

REPO_ROOT = Path(__file__).resolve().parents[2]


def find_nab_root(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The NAB root: ``explicit``, else ``$NAB_ROOT``, else ``<repo>/../shared/nab``."""
    candidates = []
    if explicit:
        candidates.append(Path(explicit))
    if os.environ.get("NAB_ROOT"):
        candidates.append(Path(os.environ["NAB_ROOT"]))
    candidates.append(REPO_ROOT.parent / "shared" / "nab")
    for c in candidates:
        if (c / "data").is_dir() and (c / "labels" / "combined_windows.json").is_file():
            return c.resolve()
    raise FileNotFoundError(
        "NAB corpus not found; set NAB_ROOT or place it at "
        f"{REPO_ROOT.parent / 'shared' / 'nab'} (tried {[str(c) for c in candidates]})"
    )


def parse_timestamp(ts: str) -> dt.datetime:
    """NAB timestamps (``2014-07-01 00:00:00`` or with ``.000000``), read as UTC."""
    return dt.datetime.fromisoformat(ts.strip()).replace(tzinfo=dt.UTC)


@dataclasses.dataclass(frozen=True)
class DataFile:
    """One NAB series: key ``<category>/<name>.csv``, timestamps, values, windows."""

    key: str
    timestamps: tuple[str, ...]
    epoch: np.ndarray  # seconds since 1970, float64, naive timestamps read as UTC
    values: np.ndarray  # float64
    windows: tuple[tuple[int, int], ...]

    @property
    def category(self) -> str:
        return self.key.split("/", 1)[0]

    @property
    def name(self) -> str:
        return self.key.split("/", 1)[1]

    @property
    def labels(self) -> FileLabels:
        return FileLabels(len(self.values), self.windows)

    def window_flags(self) -> np.ndarray:
        flags = np.zeros(len(self.values), dtype=np.int8)
        for a, b in self.windows:
            flags[a : b + 1] = 1
        return flags


def _read_data_csv(path: Path) -> tuple[tuple[str, ...], np.ndarray]:
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        if header[:2] != ["timestamp", "value"]:
            raise ValueError(f"{path}: unexpected header {header}")
        ts, vals = [], []
        for row in reader:
            ts.append(row[0])
            vals.append(float(row[1]))
    return tuple(ts), np.asarray(vals, dtype=np.float64)


def load_labels(root: Path | None = None, name: str = "combined_windows.json") -> dict:
    root = find_nab_root(root)
    with (root / "labels" / name).open() as fh:
        return json.load(fh)


def _epoch(ts: tuple[str, ...]) -> np.ndarray:
    return np.fromiter(
        (parse_timestamp(t).timestamp() for t in ts), dtype=np.float64, count=len(ts)
    )


def load_corpus(
    root: Path | None = None, windows_file: str = "combined_windows.json"
) -> dict[str, DataFile]:
    """All data files with their windows as row indices, keyed ``<category>/<name>.csv``."""
    root = find_nab_root(root)
    windows = load_labels(root, windows_file)
    out: dict[str, DataFile] = {}
    for key in sorted(windows):
        ts, values = _read_data_csv(root / "data" / key)
        epoch = _epoch(ts)
        index = {t: i for i, t in enumerate(epoch.tolist())}
        win_idx = []
        for start, end in windows[key]:
            es = parse_timestamp(start).timestamp()
            ee = parse_timestamp(end).timestamp()
            if es not in index or ee not in index:
                raise ValueError(f"{key}: window {start}..{end} is not on data timestamps")
            win_idx.append((index[es], index[ee]))
        out[key] = DataFile(key, ts, epoch, values, tuple(win_idx))
    return out


def load_profiles(root: Path | None = None) -> tuple[Profile, ...]:
    """The cost profiles from ``config/profiles.json`` (falls back to the built-in three)."""
    try:
        root = find_nab_root(root)
        with (root / "config" / "profiles.json").open() as fh:
            raw = json.load(fh)
    except FileNotFoundError:
        return PROFILES
    return tuple(
        Profile(
            name,
            tp=c["CostMatrix"]["tpWeight"],
            fp=c["CostMatrix"]["fpWeight"],
            fn=c["CostMatrix"]["fnWeight"],
        )
        for name, c in raw.items()
    )


def load_shipped_thresholds(root: Path | None = None) -> dict[str, dict[str, float]]:
    """``config/thresholds.json`` as ``{detector: {profile: threshold}}``."""
    root = find_nab_root(root)
    with (root / "config" / "thresholds.json").open() as fh:
        raw = json.load(fh)
    return {det: {prof: float(v["threshold"]) for prof, v in d.items()} for det, d in raw.items()}


def load_final_results(root: Path | None = None) -> dict[str, dict[str, float]]:
    """The reference normalised scores (``reference_results/final_results.json``)."""
    root = find_nab_root(root)
    path = root / "reference_results" / "final_results.json"
    if not path.is_file():
        path = root / "results" / "final_results.json"
    with path.open() as fh:
        return json.load(fh)


def results_path(out_dir: Path, detector: str, key: str) -> Path:
    category, name = key.split("/", 1)
    return Path(out_dir) / detector / category / f"{detector}_{name}"


def iter_results_files(results_dir: Path, detector: str, keys) -> Iterator[tuple[str, Path]]:
    for key in keys:
        yield key, results_path(results_dir, detector, key)


def read_results_dir(results_dir: Path, detector: str, keys) -> dict[str, np.ndarray]:
    """Anomaly scores of ``<dir>/<det>/<category>/<det>_<name>.csv`` for each key."""
    out = {}
    for key, path in iter_results_files(Path(results_dir), detector, keys):
        with path.open(newline="") as fh:
            reader = csv.reader(fh)
            header = next(reader)
            col = header.index("anomaly_score")
            out[key] = np.asarray([float(r[col]) for r in reader], dtype=np.float64)
    return out


def write_results_file(out_dir: Path, detector: str, f: DataFile, scores: np.ndarray) -> Path:
    """Write one file in NAB's results layout: ``timestamp,value,anomaly_score,label``."""
    path = results_path(out_dir, detector, f.key)
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = f.window_flags()
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["timestamp", "value", "anomaly_score", "label"])
        for t, v, s, lab in zip(
            f.timestamps,
            f.values.tolist(),
            np.asarray(scores).tolist(),
            flags.tolist(),
            strict=True,
        ):
            w.writerow([t, repr(v) if v != int(v) else int(v), repr(float(s)), lab])
    return path
