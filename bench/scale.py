"""Scaling: what closing one daily window costs with many live series, eager and lazy.

``python -m bench.scale [--series 10000 100000] [--large] [--json]`` builds, per row, one
partition's :class:`~streams.scoring.Scoring` with N live series (hs6 lanes, every
detector of the shipped config, each series past its warm-up), then closes daily
windows in which 1 % of the series have data. Per row (JSON with ``--json``):

* ``series``; ``close_seconds``: median time to close one window (lazy, the runtime's,
  natively where :mod:`streams.native_close` applies; ``native_close`` is true, or why not);
* ``python_close_seconds`` and ``python_over_native``: the same close all in Python
  (``Scoring.native_close = False``), alternating with the native one in pairs of
  windows in the same run, the second of each pair measured (each window has data for
  other series of the same state);
* ``gc_after_close_seconds``: median time of a full garbage collection right after each
  close: the collector is paused during a close, so the objects the close leaves live are
  scanned after it (with a million series about one full collection per close is due);
* ``eager_close_seconds`` and ``eager_over_lazy``: the same windows closed the old way
  (every series scored and learned), measured in the same run on a copy of the state;
* ``records_per_s``: series windows with data closed per second (1 % of N per window);
* ``rss_bytes`` (the process, after building the row) and ``state_bytes_per_series``
  (detector state pickled, from a sample of series, as ``tradewatch_state_bytes``).

``--large`` adds the 1M row (a few minutes on a small machine; ~1.2 GB). Series are built packed, as the runtime keeps the series quiet at the last close; each row runs in its own process, so ``rss_bytes`` is its own. ``--replay
A:B`` instead replays the real background of those months (``evaluation.realdata``)
with daily and 30-day windows, eager (unless ``--no-eager``), lazy in Python and lazy
with the native close, and reports records/s of each, whether each gives the alerts of
the first, and ``thirty_day_over_daily`` per lazy close (the issue's "within 2x").
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import multiprocessing
import re
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from detectors.windows import ClosedWindow, SeriesAggregate
from streams.config import DEFAULT_CONFIG_PATH, Settings, load_settings, load_settings_text
from streams.scoring import Scoring

DAY = 86_400.0
#: Share of the live series with data in a closed window.
ACTIVE_SHARE = 0.01
#: Windows every series learns before the measured closes (past every warm-up: 30).
WARM_WINDOWS = 32


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def _keys(n: int) -> tuple[str, ...]:
    """N series keys, as a tuple: the garbage collector stops scanning a tuple of strings
    after its first pass, as it never scans the runtime's own tables of keys (dicts of
    strings and bytes), whereas a list of a million keys would be scanned at every full
    collection and counted as the runtime's cost."""
    return tuple(f"hs6:{chr(65 + i % 26)}{chr(65 + i // 26 % 26)}>RU:{100000 + i // 676:06d}"
                 for i in range(n))


def _build(settings: Settings, n: int) -> tuple[Scoring, float]:
    """N warmed-up series, quiet at the last close (so packed, as the runtime keeps them).

    One series learns ``WARM_WINDOWS`` windows; every other series gets its learned
    state, packed by the runtime's packer with its own header (so its own bytes).
    """
    scoring = Scoring(settings)
    start = 1.6e9 // DAY * DAY
    keys = _keys(n)
    line = lambda name, key: 2.0  # noqa: E731 - nothing alerts while building
    scoring.score_series(ClosedWindow(start, start + DAY, {
        keys[0]: SeriesAggregate(count=1, value_eur=1e4)}), line)
    prototype = scoring._series.get(keys[0]) or scoring._unpack(keys[0])  # packed by a native close
    for w in range(1, WARM_WINDOWS):
        x = {"value": 1e4 * (1 + w % 3), "t": start + w * DAY}
        for d in prototype.detectors.values():
            d.learn_one(x)
    prototype.learned = WARM_WINDOWS
    direction = scoring.catalog.family_of(keys[0]).direction
    table = scoring._packed.setdefault(prototype.family, {})
    pack = scoring._packer.pack
    for seq, key in enumerate(keys[1:], 1):
        table[key] = pack([start, prototype.activity, WARM_WINDOWS, seq], prototype.detectors, direction)
    scoring._created = n
    scoring._by_last = {start: dict.fromkeys(keys)}
    scoring._scored = [start + w * DAY for w in range(WARM_WINDOWS)]
    scoring._windows_seen = WARM_WINDOWS
    return scoring, start + WARM_WINDOWS * DAY


def _close(scoring: Scoring, start: float, keys: tuple[str, ...], windows: int,
           lazy: bool, collections: list[float] | None = None,
           native: list[bool] | None = None) -> list[float]:
    """Seconds per close of ``windows`` windows, each with data for a rotating 1 % of ``keys``.

    With ``collections``, each close is followed by a full garbage collection, timed
    into it: the close pauses the collector, so the scan of the objects it leaves live
    (the touched series) comes after it, at the next collection of the process.
    ``native[w]`` says whether window ``w`` is closed natively (default: every one, as the
    runtime does where the native close applies; it never applies to an eager close).
    """
    Scoring.lazy_close = lazy
    scoring.rebind(scoring.settings, None)
    if not lazy:
        scoring.settle()  # the eager close holds every series live: unpack them untimed
    k = max(1, int(len(keys) * ACTIVE_SHARE))
    line = lambda name, key: 0.99  # noqa: E731
    seconds = []
    for w in range(windows):
        if native is not None and lazy:
            Scoring.native_close = native[w]
            scoring.rebind(scoring.settings, None)
        picked = keys[(w * k * 37) % len(keys):][:k]
        window = ClosedWindow(start + w * DAY, start + (w + 1) * DAY,
                              {key: SeriesAggregate(count=2, value_eur=2e4) for key in picked})
        t0 = time.perf_counter()
        scoring.score_series(window, line)
        scoring.evict(window.start)
        seconds.append(time.perf_counter() - t0)
        if collections is not None:
            t0 = time.perf_counter()
            gc.collect()
            collections.append(time.perf_counter() - t0)
    Scoring.lazy_close = True
    Scoring.native_close = True
    return seconds


def scale_row(settings: Settings, n: int, windows: int = 5) -> dict[str, Any]:
    before = _rss_bytes()
    scoring, start = _build(settings, n)
    built = _rss_bytes()
    state = sum(scoring.state_bytes_by_detector().values())
    keys = _keys(n)
    eager_windows = max(1, min(windows, 2_000_000 // n))
    eager = copy.deepcopy(scoring) if n <= 200_000 else None
    collections: list[float] = []
    # native and Python closes alternate in pairs of windows (each window touches other
    # series); the second of each pair is measured: the first also packs what the other
    # mode left live (the Python close leaves the series it touched live until the next)
    modes = [r % 4 < 2 for r in range(4 * windows)]
    both = _close(scoring, start, keys, 4 * windows, lazy=True, collections=collections, native=modes)
    measured = [r % 2 == 1 for r in range(4 * windows)]
    lazy = [s for s, native, m in zip(both, modes, measured) if native and m]
    python = [s for s, native, m in zip(both, modes, measured) if not native and m]
    rss = max(built, _rss_bytes())
    scoring.rebind(scoring.settings, None)  # as the runtime has it (native where it applies)
    row: dict[str, Any] = {
        "series": n,
        "close_seconds": statistics.median(lazy),
        "close_seconds_max": max(lazy),
        "native_close": scoring.native_reason is None or scoring.native_reason,
        "python_close_seconds": statistics.median(python),
        "python_over_native": statistics.median(python) / statistics.median(lazy),
        "gc_after_close_seconds": statistics.median(
            c for c, native, m in zip(collections, modes, measured) if native and m),
        "records_per_s": max(1, int(n * ACTIVE_SHARE)) / statistics.median(lazy),
        "rss_bytes": rss,
        "rss_bytes_per_series": (rss - before) / n,
        "state_bytes_per_series": state / n,
    }
    if eager is not None:
        del scoring
        row["eager_close_seconds"] = statistics.median(_close(eager, start, keys, eager_windows, lazy=False))
        row["eager_over_lazy"] = row["eager_close_seconds"] / row["close_seconds"]
    return row


def _row_in_child(n: int, windows: int) -> dict[str, Any]:
    """One row in a fresh process, so its RSS is its own (not the previous rows')."""
    return scale_row(load_settings(DEFAULT_CONFIG_PATH), n, windows)


def _replay_settings(size: float) -> Settings:
    """The shipped config with ``size``-second windows and every product in scope.

    Built from the config's text, so its durations count windows of ``size`` (a
    detector's "28d" is 28 daily windows, or one 30-day window). A duration shorter
    than one window, which a config may not give, becomes one window: the alert
    cooldown (7d), catch-up (2d) and persistence (3d) are left unset (one window
    each), and so is the duplicate horizon (derived from the window); detector
    durations such as trend's 28-day horizon are raised to the window.
    """
    text = Path(DEFAULT_CONFIG_PATH).read_text(encoding="utf-8")
    text = re.sub(r"(?m)^size_seconds = \S+", f"size_seconds = {size:g}", text)
    text = re.sub(r'(?m)^scope = "\w+"', 'scope = "all"', text)
    if size > DAY:
        text = re.sub(r"(?m)^(cooldown|catchup|persistence|dedup_horizon_seconds) = .*$", "", text)
        days = int(size // DAY)
        text = re.sub(r'"(\d+)d"', lambda m: f'"{max(int(m.group(1)), days)}d"', text)
    return load_settings_text(text, env={}, source=str(DEFAULT_CONFIG_PATH))


def replay_rows(months: str, eager: bool = True) -> list[dict[str, Any]]:
    """Records/s of the real background replayed with daily and 30-day windows: eager (with
    ``eager``), lazy in Python (``Scoring.native_close = False``) and lazy with the native
    close (the runtime's), each against the same records in this process."""
    from evaluation.realdata import ExpansionConfig, RealStream, load_comext
    from streams.offline import run_offline

    first, last = months.split(":")
    records = list(RealStream(load_comext(None, (first, last)), ExpansionConfig(seed=20200101)).records())
    rows = []
    closes = [("eager", False, False)] if eager else []
    closes += [("python", True, False), ("native", True, True)]
    for label, size in (("daily", DAY), ("30-day", 30 * DAY)):
        settings = _replay_settings(size)
        ids = {}
        for close, lazy, native in closes:
            Scoring.lazy_close, Scoring.native_close = lazy, native
            t0 = time.perf_counter()
            result = run_offline(records, settings)
            seconds = time.perf_counter() - t0
            ids[close] = [a.alert_id for a in result.alerts]
            rows.append({"windows": label, "close": close, "records": len(records),
                         "seconds": seconds, "records_per_s": len(records) / seconds,
                         "alerts": len(result.alerts)})
            if close != closes[0][0]:
                rows[-1]["same_alerts_as_" + closes[0][0]] = ids[close] == ids[closes[0][0]]
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)  # a long run shows progress
        Scoring.lazy_close = Scoring.native_close = True
    for close in ("python", "native"):
        rate = {r["windows"]: r["records_per_s"] for r in rows if r["close"] == close}
        rows.append({"close": close, "thirty_day_over_daily": rate["30-day"] / rate["daily"]})
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--series", type=int, nargs="+", default=[10_000, 100_000])
    p.add_argument("--large", action="store_true", help="add the 1,000,000-series row")
    p.add_argument("--windows", type=int, default=5, help="closes measured per row")
    p.add_argument("--replay", metavar="A:B", help="replay real months instead, e.g. 2020-01:2020-03")
    p.add_argument("--no-eager", action="store_true", help="with --replay: skip the eager close (slow)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if args.replay:
        rows = replay_rows(args.replay, eager=not args.no_eager)
    else:
        sizes = [*args.series, *([1_000_000] if args.large else [])]
        rows = []
        spawn = multiprocessing.get_context("spawn")
        for n in sizes:
            with spawn.Pool(1) as pool:
                rows.append(pool.apply(_row_in_child, (n, args.windows)))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)  # a long run shows progress
    if args.json:
        print(json.dumps({"rows": rows}, indent=2))
    else:
        for row in rows:
            print("  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
