"""``learn_empty``: a quiet spell learned in one step leaves the state ``learn_one`` would."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from detectors.changepoint import LevelShiftDetector
from detectors.spike import SeasonalRobustSpikeDetector
from detectors.volume import VolumeSurgeDetector

DAY = 86_400.0


def _state(obj: Any) -> dict[str, Any]:
    """Every learned attribute, parts expanded."""
    out = {}
    for name, value in vars(obj).items():
        out[name] = _state(value) if hasattr(value, "__dict__") and not isinstance(value, type) else value
    return out


def _assert_close(a: Any, b: Any, path: str = "") -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            _assert_close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-9, abs=1e-12) or (math.isnan(a) and math.isnan(b)), path
    else:
        assert a == b, path


def _trained(make: Any, seed: int, days: int, gap_days: list[int]) -> tuple[Any, Any, list[float]]:
    """Two identical detectors fed a sparse random series, and the quiet days that follow."""
    rng = random.Random(seed)
    a, b = make(), make()
    for day in range(days):
        x = {"value": rng.lognormvariate(10, 1) if rng.random() < 0.4 else 0.0, "t": day * DAY}
        a.learn_one(x)
        b.learn_one(x)
    return a, b, [(days + g) * DAY for g in gap_days]


DETECTORS = {
    "volume": VolumeSurgeDetector,
    "volume_weekly_windows": lambda: VolumeSurgeDetector(weekday=True, warmup=3),
    "volume_down": lambda: VolumeSurgeDetector(direction="down"),
    "spike": SeasonalRobustSpikeDetector,
    "changepoint": LevelShiftDetector,
}


@pytest.mark.parametrize("kind", sorted(DETECTORS))
@pytest.mark.parametrize("days", [3, 20, 90])
@pytest.mark.parametrize("gap", [[0], list(range(7)), list(range(40)), [0, 1, 2, 4, 5, 9, 30]])
def test_learning_a_quiet_spell_at_once_equals_learning_it_window_by_window(
        kind: str, days: int, gap: list[int]) -> None:
    one_by_one, at_once, times = _trained(DETECTORS[kind], seed=days + len(gap), days=days, gap_days=gap)
    for t in times:
        one_by_one.learn_one({"value": 0.0, "t": t})
    at_once.learn_empty(times)
    _assert_close(_state(one_by_one), _state(at_once))
    after = {"value": 5e4, "t": times[-1] + DAY}
    assert at_once.score_one(after) == pytest.approx(one_by_one.score_one(after), rel=1e-9, abs=1e-12)


def test_nothing_to_learn_changes_nothing() -> None:
    one, other, _ = _trained(VolumeSurgeDetector, seed=1, days=30, gap_days=[])
    other.learn_empty([])
    _assert_close(_state(one), _state(other))
