"""Scores that rank: the surprise and the excess every alert carries.

Specification:

* the surprise is strictly increasing in the evidence (z) and never saturates,
  where the 0-1 score reads 1.00;
* for every detector, more extreme observations never rank lower;
* the excess is non-negative, zero inside the expected range, and zero for
  evidence that is not a value in EUR;
* a detector whose z is a deviate of something heavy-tailed (``volume``) reads it
  through a Pareto tail beyond a knee: the same below it, monotone, and growing by
  the tail exponent per tenfold beyond it, so a lumpy lane's 90-sigma week does not
  outrank everything; no shipped threshold's decision moves.
"""

from __future__ import annotations

import copy
import math
import random
from typing import Any

import pytest

from detectors.base import Detector, Explanation
from detectors import volume
from detectors.calibration import (
    evidence_z,
    excess_above,
    pareto_tail_z,
    score_to_z,
    surprise_of_z,
    z_to_score,
)
from detectors.changepoint import LevelShiftDetector
from detectors.passthrough import PassThroughDetector
from detectors.spike import SeasonalRobustSpikeDetector
from detectors.unit_value import UnitValueDetector
from detectors.volume import VolumeSurgeDetector
from streams.alerts import ranking

DAY = 86_400.0


def test_surprise_is_strictly_increasing_and_does_not_saturate() -> None:
    grid = [i / 8 for i in range(-40, 8 * 200)] + [250.0, 500.0, 1000.0, 5000.0]
    surprises = [surprise_of_z(z) for z in grid]
    assert all(a < b for a, b in zip(surprises, surprises[1:], strict=False))
    # where the score has long stopped moving, the surprise still separates
    assert z_to_score(25.0) == z_to_score(40.0) == 1.0
    assert surprise_of_z(40.0) - surprise_of_z(25.0) > 200


def test_surprise_reads_as_minus_log10_of_the_normal_tail() -> None:
    assert surprise_of_z(3.0) == pytest.approx(-math.log10(0.0013499), abs=1e-4)
    assert surprise_of_z(0.0) == pytest.approx(math.log10(2))
    # the asymptotic branch joins the exact one
    assert surprise_of_z(30.0) == pytest.approx(surprise_of_z(29.999999), rel=1e-6)


@pytest.mark.parametrize("z", [-math.inf, math.nan])
def test_no_evidence_is_no_surprise(z: float) -> None:
    assert surprise_of_z(z) == 0.0


def test_surprise_is_finite_for_any_z() -> None:
    assert math.isfinite(surprise_of_z(math.inf)) and math.isfinite(surprise_of_z(1e300))


@pytest.mark.parametrize(
    ("score", "details", "z"),
    [
        (0.5, {}, 3.0),  # from the score alone
        (1.0, {"z": 40.0}, 40.0),  # spike, volume: the detector's unsaturated z
        (0.99, {"z": -6.0}, 6.0),  # unit value below its range: a magnitude
        (1.0, {"evidence_z": 25.0, "inflow_z": 30.0}, 25.0),  # pass-through
        (1.0, {"cusum_up": 0.0, "cusum_down": 50.0, "threshold": 5.0, "z": 99.0}, 30.0),
        (0.5, {"z": -math.inf}, 3.0),  # a detector in warm-up reports -inf
        (0.5, {"z": 1.0}, 3.0),  # never below what the published score implies
    ],
)
def test_evidence_z_reads_each_detectors_evidence(
    score: float, details: dict[str, Any], z: float
) -> None:
    assert evidence_z(score, details) == pytest.approx(z)


@pytest.mark.parametrize(
    ("observed", "high", "excess"),
    [(150.0, 100.0, 50.0), (100.0, 100.0, 0.0), (20.0, 100.0, 0.0), (math.nan, 1.0, 0.0),
     (5.0, math.nan, 0.0), (math.inf, 1.0, 0.0)],
)
def test_excess_is_what_lies_above_the_range(observed: float, high: float, excess: float) -> None:
    assert excess_above(observed, high) == excess


def test_excess_is_non_negative_and_zero_inside_the_range() -> None:
    rng = random.Random(3)
    for _ in range(1000):
        low, high = sorted(rng.uniform(0, 1e6) for _ in range(2))
        inside = rng.uniform(low, high)
        assert ranking(Explanation(inside, (low + high) / 2, low, high, 0.1, {}), "EUR")[1] == 0.0
        anywhere = rng.uniform(-1e6, 3e6)
        assert ranking(Explanation(anywhere, 0.0, low, high, 0.9, {}), "EUR")[1] >= 0.0


def test_evidence_in_other_units_has_no_excess_eur() -> None:
    assert ranking(Explanation(90.0, 10.0, 5.0, 20.0, 1.0, {"z": 9.0}), "EUR/kg")[1] == 0.0


# -- every detector: a larger observation never ranks lower ---------------------------------


def _series(det: Detector, n: int, rng: random.Random) -> float:
    for i in range(n):
        det.learn_one({"value": 10_000.0 * (1 + 0.2 * rng.random()), "t": i * DAY})
    return n * DAY


# Each maker returns a warmed-up detector, the input at observed value v in window k
# of a surge, and how many surge windows to learn before the one explained (the
# volume detector counts only a surge that lasts two windows, the change-point
# detector a shift that lasts several).


def _volume() -> tuple[Detector, Any, int]:
    det = VolumeSurgeDetector(warmup=10)
    t = _series(det, 60, random.Random(1))
    return det, lambda v, k=0: {"value": v, "t": t + k * DAY}, 1


def _spike() -> tuple[Detector, Any, int]:
    det = SeasonalRobustSpikeDetector(warmup=20)
    t = _series(det, 60, random.Random(2))
    return det, lambda v, k=0: {"value": v, "t": t + k * DAY}, 0


def _changepoint() -> tuple[Detector, Any, int]:
    det = LevelShiftDetector()
    t = _series(det, 60, random.Random(3))
    # its residuals are clipped at 4 sigmas: its evidence grows with the shift's
    # duration, and with its size only up to the clip (monotone, then flat)
    return det, lambda v, k=0: {"value": v, "t": t + k * DAY}, 2


def _passthrough() -> tuple[Detector, Any, int]:
    det = PassThroughDetector()
    rng = random.Random(4)
    for i in range(40):
        det.learn_one({"inflow": 10_000.0 * (1 + 0.2 * rng.random()),
                       "outflow": 2_000.0 * (1 + 0.2 * rng.random()), "t": i * DAY})
    return det, lambda v, k=0: {"inflow": v, "outflow": v / 2, "t": (40 + k) * DAY}, 0


def _unit_value() -> tuple[Detector, Any, int]:
    det = UnitValueDetector()
    rng = random.Random(5)
    for _ in range(200):
        det.learn_one({"value_eur": 1_000.0 * (1 + 0.2 * rng.random()), "net_mass_kg": 1.0,
                       "hs6": "854231"})
    return det, lambda v, k=0: {"value_eur": v / 10, "net_mass_kg": 1.0, "hs6": "854231"}, 0


@pytest.mark.parametrize("make", [_volume, _spike, _changepoint, _passthrough, _unit_value],
                         ids=lambda f: f.__name__.strip("_"))
def test_surprise_is_monotone_in_each_detectors_evidence(make: Any) -> None:
    warmed, x_of, lead = make()
    values = [11_000.0 * 1.15 ** k for k in range(80)]  # from ordinary to a million-fold
    figures, scores = [], []
    for v in values:
        det = copy.deepcopy(warmed)
        for k in range(lead):
            det.learn_one(x_of(v, k))
        e = det.explain_one(x_of(v, lead))
        figures.append(ranking(e, "EUR"))
        scores.append(det.score_one(x_of(v, lead)))
    surprises = [s for s, _ in figures]
    excesses = [x for _, x in figures]
    assert surprises == sorted(surprises), surprises
    assert excesses == sorted(excesses)
    assert surprises[-1] > surprises[0]
    # where the published score saturates, the ranking figure still climbs
    saturated = [s for score, s in zip(scores, surprises, strict=True) if score >= 1.0 - 1e-12]
    if len(saturated) > 2:
        assert saturated[-1] > saturated[0]


# -- heavy tails: the Pareto continuation ----------------------------------------------------


def test_pareto_tail_is_the_normal_reading_up_to_the_knee_and_continuous_at_it() -> None:
    for z in (-2.0, 0.0, 3.0, 5.3, 6.45):
        assert pareto_tail_z(z, knee=6.45, alpha=0.9) == z
    assert pareto_tail_z(6.45 + 1e-9, knee=6.45, alpha=0.9) == pytest.approx(6.45, abs=1e-6)
    assert math.isnan(pareto_tail_z(math.nan, knee=6.45, alpha=0.9))


@pytest.mark.parametrize("alpha", [0.5, 0.9, 2.0])
def test_pareto_tail_surprise_grows_by_alpha_per_tenfold(alpha: float) -> None:
    base = surprise_of_z(6.45)
    for decades in (1, 2, 5):
        z = 6.45 * 10 ** decades
        assert surprise_of_z(pareto_tail_z(z, 6.45, alpha)) == pytest.approx(
            base + alpha * decades, abs=1e-3)


def test_pareto_tail_is_strictly_increasing_and_finite() -> None:
    grid = [6.0 + i / 4 for i in range(400)] + [1e3, 1e5, 1e10, 1e100, 1e300, math.inf]
    out = [pareto_tail_z(z, 6.45, 0.9) for z in grid]
    assert all(a < b for a, b in zip(out[:-2], out[1:-1], strict=False))
    assert all(math.isfinite(z) for z in out)


def _lumpy_lane() -> VolumeSurgeDetector:
    """A lane shipping one 50 kEUR declaration about every tenth day."""
    det = VolumeSurgeDetector()
    rng = random.Random(7)
    for i in range(200):
        det.learn_one({"value": 50_000.0 if rng.random() < 0.1 else 0.0, "t": i * DAY})
    return det


def test_a_lumpy_lanes_huge_week_is_unsaturated_and_ranks_by_the_pareto_tail() -> None:
    det = _lumpy_lane()
    surge = {"value": 20_000_000.0, "t": 200 * DAY}
    det.learn_one(surge)  # volume counts a surge that lasts two windows
    e = det.explain_one({"value": 20_000_000.0, "t": 201 * DAY})
    z_gaussian = e.details["z_gaussian"]
    assert z_gaussian > 100  # the normal reading: one in 10**2000 and more
    surprise, _ = ranking(e, "EUR")
    expected = surprise_of_z(volume.TAIL_KNEE_Z) + volume.TAIL_ALPHA * math.log10(
        z_gaussian / volume.TAIL_KNEE_Z)
    assert surprise == pytest.approx(expected, abs=1e-3)
    assert surprise < 15
    assert e.score < 1.0  # unsaturated: scores of such weeks still order them


def test_no_volume_decision_moves_at_any_shipped_threshold() -> None:
    """Below the knee the score is the normal one, so every threshold up to 0.999 (the
    strictest shipped) passes exactly the windows it passed before."""
    assert volume.TAIL_KNEE_Z >= score_to_z(0.999) - 1e-9
    det = _lumpy_lane()
    for value in (60_000.0, 150_000.0, 400_000.0, 1e6, 1e7):
        x = {"value": value, "t": 200 * DAY}
        z = det.explain_one(x).details["z_gaussian"]
        for threshold in (0.5, 0.9, 0.95, 0.99, 0.999):
            assert (det.score_one(x) >= threshold) == (z_to_score(z) >= threshold)
