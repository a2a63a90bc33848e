"""``score_then_learn``: one call gives exactly what ``score_one``, ``explain_one`` and
``learn_one`` give in that order (a detector that fuses them shares work, never results).

Float for float: the same scores, the same explanations and the same learned state, for
every registered kind with each of its test parameters, on its own test inputs and on a
sparse random series of window totals (both directions where a kind has one).
"""

from __future__ import annotations

import copy
import math
import pickle
import random
from typing import Any

import pytest

from detectors.registry import DETECTOR_KINDS

DAY = 86_400.0


def _series(seed: int, n: int = 400) -> list[dict[str, Any]]:
    """Window totals of a sparse lane with surges and quiet spells (``value``, ``t``, ``count``)."""
    rng = random.Random(seed)
    xs = []
    for day in range(n):
        busy = rng.random() < (0.9 if 150 <= day < 170 else 0.35)
        count = rng.randint(1, 4) if busy else 0
        value = sum(rng.lognormvariate(10, 1) for _ in range(count)) * (8.0 if 300 <= day < 305 else 1.0)
        xs.append({"value": value, "t": day * DAY, "count": count})
    return xs


def _valid(cls: type, params: dict[str, Any]) -> bool:
    try:
        cls(**copy.deepcopy(params))
    except ValueError:
        return False  # e.g. a direction this kind does not have
    return True


def _cases() -> list[Any]:
    cases = []
    for kind, cls in sorted(DETECTOR_KINDS.items()):
        for i, params in enumerate(cls._unit_test_params()):
            variants = [params]
            if "direction" in cls.__init__.__code__.co_varnames and "direction" not in params:
                variants += [{**params, "direction": d} for d in ("down", "both", "up")
                             if _valid(cls, {**params, "direction": d})]
            for j, p in enumerate(variants):
                cases.append(pytest.param(cls, p, id=f"{kind}[{i}.{j}]"))
    return cases


def _same(a: Any, b: Any) -> bool:
    """Equal, NaN equal to NaN (explanations carry NaN where nothing is known)."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return pickle.dumps(a) == pickle.dumps(b)


@pytest.mark.parametrize("cls, params", _cases())
@pytest.mark.parametrize("threshold", [None, 0.0, 0.9])
def test_score_then_learn_is_the_three_calls(cls: type, params: dict[str, Any], threshold: float | None) -> None:
    fused, plain = cls(**copy.deepcopy(params)), cls(**copy.deepcopy(params))
    inputs = cls._unit_test_inputs() if hasattr(cls, "_unit_test_inputs") else []
    if "value" in (inputs[0] if inputs else {"value": 0}):
        inputs = [*inputs, *_series(len(inputs))]
    for step, x in enumerate(inputs):
        learn = step % 7 != 3  # a confirmed anomaly's window is scored but not learned
        try:
            score = plain.score_one(x)
        except (KeyError, TypeError, ValueError):
            continue  # an input this kind refuses: not part of this contract
        expected = plain.explain_one(x) if threshold is not None and score >= threshold else None
        if learn:
            plain.learn_one(x)
        got_score, got = fused.score_then_learn(x, threshold, learn)
        assert _same(got_score, score), step
        assert _same(got, expected), step
        assert pickle.dumps(fused) == pickle.dumps(plain), step
