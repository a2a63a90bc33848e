"""The alert policy's materiality floors: a series surge needs enough EUR above its range."""

from __future__ import annotations

from detectors.base import Explanation
from streams.alert_policy import AlertPolicy
from streams.config import load_settings_text
from streams.events import AlertSeries
from streams.scoring import Finding

DAY = 86_400.0
SETTINGS = load_settings_text(
    '[alerts]\nscope = "all"\nmin_declarations = 1\n'
    "min_excess_eur_chpl = 10000\nmin_excess_eur_other = 1000000\n"
)


def finding(observed: float, tier: str = "none", level: str = "hs6", unit: str = "EUR",
            code: str = "841181", detector: str = "volume") -> Finding:
    series = AlertSeries(key=f"{level}:DE>KZ:{code}", level=level,  # type: ignore[arg-type]
                         origin_country="DE", destination_country="KZ", transit_country="KZ",
                         product_code=code, chpl_tier=tier)
    x = Explanation(observed=observed, expected=10_000.0, expected_low=0.0, expected_high=40_000.0,
                    score=1.0, details={"z": 12.0})
    return Finding(detector=detector, meta=series, direction="up", rollup=False,
                   window_start=100 * DAY, explanation=x, threshold=0.99, unit=unit, count=3,
                   ids=["a", "b", "c"])


def test_a_surge_of_ordinary_goods_needs_the_larger_floor() -> None:
    policy = AlertPolicy(SETTINGS)
    assert policy.decide(finding(40_000 + 999_000)) is None
    assert policy.decide(finding(40_000 + 1_000_000)) is not None


def test_a_chpl_surge_needs_only_the_chpl_floor() -> None:
    policy = AlertPolicy(SETTINGS)
    assert policy.decide(finding(40_000 + 9_000, tier="1", code="854231")) is None
    assert policy.decide(finding(40_000 + 11_000, tier="1", code="854231")) is not None


def test_evidence_not_in_eur_is_not_held_to_a_floor() -> None:
    policy = AlertPolicy(SETTINGS)
    assert policy.decide(finding(45_000, unit="EUR/kg", detector="unit_value")) is not None


def test_floors_default_to_off() -> None:
    policy = AlertPolicy(load_settings_text('[alerts]\nscope = "all"\nmin_declarations = 1\n'))
    assert policy.decide(finding(41_000)) is not None


def test_a_negative_floor_is_refused_with_its_path() -> None:
    import pytest

    from streams.config import ConfigError

    with pytest.raises(ConfigError, match="alerts.min_excess_eur_other"):
        load_settings_text("[alerts]\nmin_excess_eur_other = -1\n")
