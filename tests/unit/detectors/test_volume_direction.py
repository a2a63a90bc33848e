"""The volume detector's direction: surges by default, collapses when asked for."""

from __future__ import annotations

import pytest

from detectors.volume import VolumeSurgeDetector

DAY = 86_400.0


def _trained(direction: str) -> VolumeSurgeDetector:
    det = VolumeSurgeDetector(direction=direction, weekday=False)
    for day in range(60):
        det.learn_one({"value": 50_000.0 + 5_000.0 * (day % 3), "t": DAY * day})
    return det


def _scores(det: VolumeSurgeDetector, values: list[float], start: int = 60) -> list[float]:
    out = []
    for i, v in enumerate(values):
        x = {"value": v, "t": DAY * (start + i)}
        out.append(det.score_one(x))
        det.learn_one(x)
    return out


def test_a_collapse_that_lasts_is_scored_when_drops_are_asked_for() -> None:
    assert max(_scores(_trained("down"), [0.0] * 5)) > 0.99
    assert max(_scores(_trained("both"), [0.0] * 5)) > 0.99


def test_a_collapse_is_not_a_surge() -> None:
    assert max(_scores(_trained("up"), [0.0] * 5)) < 0.01


def test_a_drops_only_detector_ignores_surges_and_names_the_side() -> None:
    det = _trained("down")
    assert max(_scores(det, [500_000.0] * 3)) < 0.01
    det = _trained("both")
    _scores(det, [0.0, 0.0])
    assert det.explain_one({"value": 0.0, "t": DAY * 62}).details["direction"] == "down"


def test_an_unknown_direction_is_refused() -> None:
    with pytest.raises(ValueError, match="direction"):
        VolumeSurgeDetector(direction="sideways")
