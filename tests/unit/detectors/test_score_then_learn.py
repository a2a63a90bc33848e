"""``score_then_learn``: one call gives exactly what ``score_one``, ``explain_one`` and
``learn_one`` give in that order (a detector that fuses them shares work, never results).

Float for float: the same scores, the same explanations and the same learned state, for
every registered kind with each of its test parameters, on its own test inputs and on a
sparse random series of window totals (both directions where a kind has one).
"""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest

from detectors.checks import check_score_then_learn_matches_the_three_calls, sample_inputs
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


@pytest.mark.parametrize("cls, params", _cases())
def test_score_then_learn_is_the_three_calls(cls: type, params: dict[str, Any]) -> None:
    """The contract's check (every kind runs it on its own inputs), here on a long sparse
    series too, past every warm-up, and with every direction a kind has."""
    detector = cls(**copy.deepcopy(params))
    inputs = sample_inputs(detector)
    if "value" in inputs[0]:
        inputs = [*inputs, *_series(len(inputs))]
    check_score_then_learn_matches_the_three_calls(detector, inputs, thresholds=(None, 0.0, 0.5, 0.9))
