"""UnitValueDetector: declarations far from their HS6 code's usual EUR/kg stand out."""

from __future__ import annotations

import math
import pickle
import random

import pytest

from detectors.calibration import update_robust_level
from detectors.unit_value import UnitValueDetector

CHIPS = "854231"  # processors, about 2000 EUR/kg here
PHONES = "851762"  # about 60 EUR/kg here


def decl(unit_value: float, mass: float, hs6: str) -> dict:
    return {"value_eur": unit_value * mass, "net_mass_kg": mass, "hs6": hs6}


def trained(seed: int = 0, n: int = 400, **params) -> UnitValueDetector:
    rng = random.Random(seed)
    det = UnitValueDetector(**params)
    for _ in range(n):
        for hs6, uv in ((CHIPS, 2000.0), (PHONES, 60.0)):
            x = decl(uv * rng.lognormvariate(0, 0.4), rng.uniform(0.5, 200), hs6)
            det.score_one(x)
            det.learn_one(x)
    return det


@pytest.mark.parametrize("seed", range(5))
def test_chips_at_a_tenth_of_their_usual_unit_value_score_high(seed: int) -> None:
    det = trained(seed)
    assert det.score_one(decl(200.0, 25.0, CHIPS)) > 0.9


@pytest.mark.parametrize("seed", range(5))
def test_ordinary_declarations_score_low(seed: int) -> None:
    det = trained(seed)
    rng = random.Random(100 + seed)
    scores = [det.score_one(decl(2000.0 * rng.uniform(0.7, 1.4), 10.0, CHIPS)) for _ in range(200)]
    assert max(scores) < 0.1


def test_false_alarm_rate_on_fresh_ordinary_declarations_is_small() -> None:
    det = trained(1)
    rng = random.Random(7)
    fresh = [decl(2000.0 * rng.lognormvariate(0, 0.4), 5.0, CHIPS) for _ in range(5000)]
    assert sum(det.score_one(x) >= 0.5 for x in fresh) / len(fresh) < 0.01


def test_overpriced_goods_score_high_too() -> None:
    det = trained(2)
    e = det.explain_one(decl(20_000.0, 3.0, CHIPS))
    assert e.score > 0.9 and e.details["direction"] == "above"


def test_each_code_is_judged_against_its_own_unit_value() -> None:
    det = trained(3)
    # 200 EUR/kg is a tenth of a chip's usual value but triple a phone's.
    assert det.score_one(decl(200.0, 10.0, CHIPS)) > 0.9
    assert det.score_one(decl(60.0, 10.0, PHONES)) < 0.05


def test_explanation_gives_observed_and_expected_unit_values() -> None:
    det = trained(4)
    x = decl(200.0, 25.0, CHIPS)
    e = det.explain_one(x)
    assert e.score == pytest.approx(det.score_one(x))
    assert e.observed == pytest.approx(200.0)
    assert e.expected == pytest.approx(2000.0, rel=0.15)
    assert e.expected_low < e.expected < e.expected_high
    assert e.expected_low > 200.0  # the observation lies outside the ordinary range
    assert e.details["direction"] == "below"
    assert e.details["ratio_to_expected"] == pytest.approx(0.1, rel=0.2)
    assert e.details["unit"] == "EUR/kg" and e.details["hs6"] == CHIPS


@pytest.mark.parametrize("seed", range(5))
def test_a_burst_of_cheap_declarations_is_flagged_before_it_is_absorbed(seed: int) -> None:
    det = trained(seed)
    before = det.explain_one(decl(2000.0, 1.0, CHIPS)).expected
    scores = []
    for _ in range(20):
        x = decl(200.0, 25.0, CHIPS)
        scores.append(det.score_one(x))
        det.learn_one(x)
    assert sum(s >= 0.5 for s in scores) >= 15
    after = det.explain_one(decl(2000.0, 1.0, CHIPS)).expected
    # Each clipped step moves the log centre by at most alpha * clip * sigma
    # (0.01 * 3 * ~0.5), so 20 steps cost at most about a third of the level.
    assert after > 0.65 * before


def test_unknown_and_young_codes_score_zero() -> None:
    det = UnitValueDetector(grace_period=20)
    assert det.score_one(decl(1.0, 1.0, "999999")) == 0.0
    for _ in range(19):
        det.learn_one(decl(2000.0, 1.0, CHIPS))
    assert det.score_one(decl(1.0, 1.0, CHIPS)) == 0.0
    det.learn_one(decl(2000.0, 1.0, CHIPS))
    assert det.score_one(decl(1.0, 1.0, CHIPS)) > 0.9


@pytest.mark.parametrize(
    "x",
    [
        {"value_eur": 100.0, "net_mass_kg": 0.0, "hs6": CHIPS},
        {"value_eur": 0.0, "net_mass_kg": 5.0, "hs6": CHIPS},
        {"value_eur": -10.0, "net_mass_kg": 5.0, "hs6": CHIPS},
        {"value_eur": 100.0, "hs6": CHIPS},
        {"value_eur": 100.0, "net_mass_kg": None, "hs6": CHIPS},
    ],
)
def test_declarations_without_a_unit_value_score_zero_and_are_not_learned(x: dict) -> None:
    det = trained(6, n=50)
    before = pickle.dumps(det)
    assert det.score_one(x) == 0.0
    assert det.explain_one(x).details["reason"] == "no positive value and net mass"
    det.learn_one(x)
    assert pickle.dumps(det) == before


def test_inlined_update_matches_the_shared_robust_level() -> None:
    det = UnitValueDetector(grace_period=5, alpha=0.05)
    rng = random.Random(9)
    state = (0.0, 0.0, 0.0)
    for _ in range(300):
        uv = 2000.0 * rng.lognormvariate(0, 0.5) * (20 if rng.random() < 0.05 else 1)
        det.learn_one(decl(uv, 2.0, CHIPS))
        state = update_robust_level(
            *state, math.log(uv), 0.05, 3.0 if state[0] >= 5 else math.inf, 0.1
        )
        assert det._codes[CHIPS] == pytest.approx(state, rel=1e-12)


def test_per_code_state_is_a_few_floats() -> None:
    det = UnitValueDetector(grace_period=2)
    base = det.state_bytes()
    for i in range(200):
        det.learn_one(decl(100.0, 1.0, f"8542{i:02d}"))
    assert (det.state_bytes() - base) / 200 < 100  # bytes per HS6 code


def test_max_codes_caps_the_number_of_codes() -> None:
    det = UnitValueDetector(max_codes=3)
    for i in range(10):
        det.learn_one(decl(100.0, 1.0, f"8542{i:02d}"))
    assert len(det._codes) == 3


def test_halfspacetrees_option_adds_to_the_robust_score() -> None:
    det = trained(7, n=300, hst_trees=10)
    plain = trained(7, n=300)
    cheap = decl(200.0, 25.0, CHIPS)
    assert det.score_one(cheap) >= plain.score_one(cheap) > 0.9
    ordinary = decl(2000.0, 25.0, CHIPS)
    assert 0.0 <= det.score_one(ordinary) < 0.5
    assert "hst_score" in det.explain_one(ordinary).details


def test_halfspacetrees_learns_on_a_sample_when_asked() -> None:
    det = UnitValueDetector(hst_trees=3, hst_learn_every=10)
    for i in range(100):
        det.learn_one(decl(2000.0 + i, 1.0, CHIPS))
    assert len(det._hst_calibrator) == 10


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"alpha": 0.0}, "alpha"),
        ({"grace_period": 1}, "grace_period"),
        ({"max_codes": 0}, "max_codes"),
        ({"hst_trees": -1}, "hst_trees"),
        ({"hst_learn_every": 0}, "hst_learn_every"),
        ({"min_scale": 0.0}, "min_scale"),
    ],
)
def test_constructor_rejects_bad_values_naming_the_parameter(params: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        UnitValueDetector(**params)
