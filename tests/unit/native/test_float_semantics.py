"""The native crate's float operations are CPython's, to the bit."""

from __future__ import annotations

import math
import random
from statistics import NormalDist

import pytest

from detectors.calibration import pareto_tail_z, ratio_to_z, z_to_score
from streams import tradewatch_native

from .conftest import same

EDGES = [0.0, -0.0, 1.0, -1.0, 7.0, -7.0, 86_400.0, 1.6e9, -1.6e9, 1e-300, 1e300, 0.5, 2.5]


def _pow(a: float, b: float) -> float:
    try:
        return a ** b
    except ZeroDivisionError:  # 0.0 ** negative: the C library's inf
        return math.inf
    except OverflowError:
        return math.inf


def python_ops(a: float, b: float) -> tuple[float, ...]:
    return (a // b, a % b, math.erfc(a), math.exp(a) if a < 700 else math.inf, math.log(abs(a)) if a else -math.inf,
            math.expm1(a) if a < 700 else math.inf, math.log1p(abs(a)),
            _pow(abs(a), b))


@pytest.mark.parametrize("seed", range(4))
def test_floor_division_remainder_and_libm_calls_match_cpython(seed: int) -> None:
    rng = random.Random(seed)
    pairs = [(a, b) for a in EDGES for b in EDGES if b != 0.0 and abs(b) < 1e3 and abs(a) < 1e6]
    pairs += [(rng.uniform(-1e10, 1e10), rng.choice([86_400.0, 7.0, 3600.0, rng.uniform(0.1, 100)]))
              for _ in range(3000)]
    pairs += [(rng.uniform(-40, 40), rng.uniform(-3, 3)) for _ in range(3000)]
    for a, b in pairs:
        assert same(list(python_ops(a, b)), list(tradewatch_native.float_ops(a, b))) is None, (a, b)


def test_calibration_functions_match_python() -> None:
    rng = random.Random(5)
    for _ in range(20000):
        z, knee, alpha = rng.uniform(-60, 400), rng.choice([6.45, 3.0, 10.0]), rng.uniform(1e-12, 1 - 1e-12)
        want = [z_to_score(z), ratio_to_z(z, alpha), pareto_tail_z(z, knee, alpha), NormalDist().inv_cdf(alpha)]
        assert same(want, list(tradewatch_native.calibration_ops(z, knee, alpha))) is None, (z, knee, alpha)


def test_hypot_with_zero_is_abs_in_cpython() -> None:
    """The crate offers only ``hypot(x, 0.0)`` (as ``abs``): CPython's own algorithm agrees."""
    rng = random.Random(3)
    for _ in range(20000):
        x = rng.uniform(-1, 1) * 10.0 ** rng.randint(-300, 300)
        assert math.hypot(x, 0.0) == abs(x)
