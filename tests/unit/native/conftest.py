"""The oracle the native close is held to: the Python detectors themselves.

A case builds a detector's twin in Rust from its packed values, applies the same calls
to it and to the Python detector, and compares what both would pack afterwards (every
value: its type and its float bits) and every score. Cases come from the shipped
configs' prototypes and from op sequences shaped like the pipeline's close: quiet
spells learned with ``learn_empty``, windows with data scored with ``score_then_learn``
on daily, weekly and calendar-month grids, surges, collapses and level shifts.
"""

from __future__ import annotations

import calendar
import copy
import datetime as dt
import math
import random
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from streams import tradewatch_native
from streams.config import load_settings
from streams.packing import DetectorPacker
from streams.scoring import Scoring

ROOT = Path(__file__).resolve().parents[3]
#: The configs whose series detectors the native close must match.
CONFIGS = ["deploy/tradewatch.toml", "deploy/examples/month.toml", "deploy/examples/week.toml",
           "deploy/examples/strict.toml"]
DAY = 86_400.0

Op = tuple[Any, ...]


def prototypes(config: str) -> dict[str, Any]:
    """The untrained series detectors of ``config``, by name."""
    scoring = Scoring(load_settings(ROOT / config, env={}))
    return dict(scoring._prototypes["series"])


def same(a: Any, b: Any, path: str = "values") -> str | None:
    """Where ``a`` and ``b`` differ (type, float bits, length), or None when they do not.

    A tuple and a list are the same sequence: a packed tree holds tuples as lists (msgpack
    arrays), and the packer makes them tuples again when it builds the detector."""
    if isinstance(a, tuple):
        a = list(a)
    if isinstance(b, tuple):
        b = list(b)
    if type(a) is not type(b):
        return f"{path}: {type(a).__name__} {a!r} vs {type(b).__name__} {b!r}"
    if isinstance(a, float):
        if struct.pack("<d", a) != struct.pack("<d", b) and not (math.isnan(a) and math.isnan(b)):
            return f"{path}: {a!r} vs {b!r}"
        return None
    if isinstance(a, list | tuple):
        if len(a) != len(b):
            return f"{path}: length {len(a)} vs {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found = same(x, y, f"{path}[{i}]")
            if found:
                return found
        return None
    return None if a == b else f"{path}: {a!r} vs {b!r}"


class Oracle:
    """Replays ops on a Python detector and on its native twin and compares them."""

    def __init__(self, name: str, prototype: Any) -> None:
        self.name = name
        self.packer = DetectorPacker({(name, "up"): prototype})
        self.spec = self.packer.spec(name, "up")
        self.fresh = self.packer.values(name, "up", prototype)

    def python(self, values: list[Any], ops: list[Op]) -> tuple[list[Any], list[float]]:
        # a copy: packing's build reuses the packed lists (a season, a block, volume's
        # weekday profile), which the detector then changes in place, and the native twin
        # must start from the same values
        d = self.packer.build(self.name, "up", copy.deepcopy(values))
        scores = []
        for op in ops:
            if op[0] == "learn_one":
                d.learn_one({"value": op[1], "t": op[2], "count": op[3]})
            elif op[0] == "learn_empty":
                d.learn_empty(list(op[1]))
            else:
                scores.append(d.score_then_learn({"value": op[1], "t": op[2], "count": op[3]}, None, op[4])[0])
        return self.packer.values(self.name, "up", d), scores

    def check(self, ops: list[Op], values: list[Any] | None = None, every: int = 0) -> None:
        """Python and native agree after ``ops`` (and, with ``every``, after each prefix of
        that many ops, so a difference is caught where it starts)."""
        values = self.fresh if values is None else values
        cuts = list(range(every, len(ops), every)) if every else []
        start = 0
        for cut in [*cuts, len(ops)]:
            chunk = ops[start:cut]
            want, want_scores = self.python(values, chunk)
            got, got_scores = tradewatch_native.replay(self.spec, values, chunk)
            where = same(want, got) or same(want_scores, got_scores, "scores")
            assert where is None, f"{self.name} after ops {start}..{cut} ({chunk[-1:]}): {where}"
            values, start = want, cut


def grid(kind: str, n: int, start: float = 1.6e9 // DAY * DAY) -> list[float]:
    """``n`` window starts: ``day``, ``week`` (7 days) or ``month`` (calendar months, UTC)."""
    if kind == "day":
        return [start + i * DAY for i in range(n)]
    if kind == "week":
        return [start + i * 7 * DAY for i in range(n)]
    first = dt.datetime.fromtimestamp(start, dt.UTC).replace(day=1, hour=0, minute=0, second=0)
    out = []
    y, m = first.year, first.month
    for _ in range(n):
        out.append(float(calendar.timegm((y, m, 1, 0, 0, 0))))
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def close_ops(rng: random.Random, times: list[float], density: float, level: float = 1e4,
              shocks: bool = True, unlearned: float = 0.03) -> list[Op]:
    """The calls a lazily closed series gets: quiet windows learned in one ``learn_empty``
    when it next has data, then ``score_then_learn`` of the window (sometimes without
    learning it: a confirmed anomaly). Values are log-normal around a level that shifts,
    surges (x3 to x50) and collapses, with declaration counts to match."""
    ops: list[Op] = []
    missed: list[float] = []
    for t in times:
        if rng.random() < 0.01 and shocks:
            level *= rng.choice([0.05, 0.3, 3.0, 10.0, 50.0])
        if rng.random() >= density:
            missed.append(t)
            continue
        if missed:
            ops.append(("learn_empty", missed))
            missed = []
        value = level * math.exp(rng.gauss(0.0, rng.choice([0.1, 0.5, 1.2])))
        if shocks and rng.random() < 0.02:
            value *= rng.choice([5.0, 20.0, 100.0])
        count = max(1, int(value / (level * 0.4) + rng.random()))
        ops.append(("score_then_learn", value, t, count, rng.random() >= unlearned))
    if missed:
        ops.append(("learn_empty", missed))
    return ops


@pytest.fixture(scope="session")
def oracle_for() -> Callable[[str, str], Oracle]:
    """``oracle_for(config, detector name)``: the oracle of that config's detector."""
    cache: dict[tuple[str, str], Oracle] = {}

    def make(config: str, name: str) -> Oracle:
        if (config, name) not in cache:
            cache[(config, name)] = Oracle(name, prototypes(config)[name])
        return cache[(config, name)]

    return make
