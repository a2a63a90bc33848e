"""The evidence rule: a series surge is published on declarations weighed, not counted.

Declarations behind a surge add up over the series' recent over-threshold windows
(persistence); a window whose excess rests on its one largest declaration counts as
one; optionally a heavy excess for its tier stands on thinner evidence.
"""

from __future__ import annotations

import pytest

from detectors.base import Explanation
from streams.alert_policy import AlertPolicy
from streams.config import ConfigError, load_settings_text
from streams.events import AlertSeries
from streams.evidence import window_weight
from streams.scoring import Finding

DAY = 86_400.0
BASE = ('[alerts]\nscope = "all"\ncooldown = "0s"\nmin_declarations = 3\n'
        "min_excess_eur_chpl = 10000\nmin_excess_eur_other = 1000000\n")


def policy(extra: str = "") -> AlertPolicy:
    return AlertPolicy(load_settings_text(BASE + extra))


def surge(day: int, count: int, *, observed: float = 100_000.0, largest: float = 0.0,
          key_origin: str = "DE", tier: str = "1", detector: str = "volume",
          direction: str = "up") -> Finding:
    """A finding on hs6 DE->KG chips: expected range up to 40 kEUR, observed 100 kEUR."""
    series = AlertSeries(key=f"hs6:{key_origin}>KG:854231", level="hs6",  # type: ignore[arg-type]
                         origin_country=key_origin, destination_country="KG",
                         transit_country="KG", product_code="854231", chpl_tier=tier)
    x = Explanation(observed=observed, expected=10_000.0, expected_low=0.0, expected_high=40_000.0,
                    score=1.0, details={"z": 12.0})
    return Finding(detector=detector, meta=series, direction=direction, rollup=False,
                   window_start=day * DAY, explanation=x, threshold=0.99, unit="EUR", count=count,
                   ids=[f"d{day}-{i}" for i in range(count)], largest_eur=largest)


# -- one window -------------------------------------------------------------------


def test_enough_declarations_in_one_window_are_enough() -> None:
    assert policy().decide(surge(100, 3, largest=30_000.0)) is not None


def test_fewer_declarations_in_a_window_without_history_are_not() -> None:
    assert policy().decide(surge(100, 2, largest=30_000.0)) is None


def test_a_surge_that_rests_on_its_largest_declaration_counts_as_one() -> None:
    # 100k observed, range up to 40k: without the 70k order the window is in range
    assert policy().decide(surge(100, 5, largest=70_000.0)) is None
    assert window_weight(5, 100_000.0, 40_000.0, 70_000.0) == 1


def test_the_largest_declaration_is_not_discounted_when_switched_off() -> None:
    assert policy("discount_largest = false\n").decide(surge(100, 5, largest=70_000.0)) is not None


def test_an_empty_window_never_has_evidence() -> None:
    p = policy('heavy_excess_factor = 1\npersistence = "7d"\n')
    for day in (97, 98, 99):
        p.decide(surge(day, 3, largest=1.0))
    assert p.decide(surge(100, 0)) is None


# -- persistence -------------------------------------------------------------------


def test_a_sparse_lane_that_surges_window_after_window_adds_up_its_evidence() -> None:
    p = policy('persistence = "2d"\n')
    published = [p.decide(surge(day, 1, largest=100_000.0)) is not None for day in (100, 101, 102)]
    assert published == [False, False, True]  # one declaration a day, three days running


def test_windows_beyond_the_persistence_span_do_not_count() -> None:
    p = policy('persistence = "2d"\n')
    published = [p.decide(surge(day, 1, largest=100_000.0)) is not None for day in (100, 103, 106)]
    assert published == [False, False, False]


def test_persistence_off_judges_each_window_alone() -> None:
    p = policy('persistence = "0s"\n')
    assert [p.decide(surge(d, 1, largest=1e5)) is not None for d in (100, 101, 102)] == [False] * 3


def test_several_detectors_on_one_window_count_it_once() -> None:
    p = policy('persistence = "2d"\n')
    for detector in ("volume", "changepoint", "spike"):
        assert p.decide(surge(100, 1, largest=1e5, detector=detector)) is None
    assert p.decide(surge(101, 1, largest=1e5)) is None  # 1 + 1 < 3


def test_persistence_is_per_series() -> None:
    p = policy('persistence = "2d"\n')
    p.decide(surge(100, 1, largest=1e5, key_origin="DE"))
    p.decide(surge(101, 1, largest=1e5, key_origin="NL"))
    assert p.decide(surge(102, 1, largest=1e5, key_origin="PL")) is None


def test_the_ledger_forgets_windows_older_than_the_span() -> None:
    p = policy('persistence = "2d"\n')
    for day in range(100, 160):
        p.decide(surge(day, 1, largest=1e5, key_origin=f"{chr(65 + day % 26)}{chr(65 + day // 26)}"))
    # swept once per span: at most the span before the last sweep, the span since, and now
    assert sum(len(w) for w in p._evidence.values()) <= 2 * 2 + 1


# -- value for its tier --------------------------------------------------------------


def test_a_heavy_excess_for_its_tier_stands_on_one_declaration_when_asked() -> None:
    # tier 1: half the 10 kEUR CHPL floor, times 10 = 50 kEUR; excess here 60 kEUR
    p = policy("heavy_excess_factor = 10\n")
    assert p.decide(surge(100, 1, largest=1e5, tier="1")) is not None
    # tier 4A: the full floor, 100 kEUR: not heavy enough
    assert p.decide(surge(100, 1, largest=1e5, tier="4A")) is None


def test_heavy_sparse_evidence_is_off_by_default() -> None:
    assert policy().decide(surge(100, 1, largest=1e5, observed=1e7)) is None


# -- what the rule does not touch -----------------------------------------------------


def test_a_collapse_is_not_held_to_the_evidence_rule() -> None:
    finding = surge(100, 0, observed=0.0)
    x = Explanation(observed=0.0, expected=50_000.0, expected_low=30_000.0,
                    expected_high=80_000.0, score=1.0, details={"z": 12.0})
    import dataclasses
    down = dataclasses.replace(finding, explanation=x, direction="down")
    assert policy().decide(down) is not None


def test_min_declarations_zero_switches_the_rule_off() -> None:
    assert policy().decide(surge(100, 1, largest=1e5)) is None
    p = AlertPolicy(load_settings_text(BASE.replace("min_declarations = 3", "min_declarations = 0")))
    assert p.decide(surge(100, 1, largest=1e5)) is not None


# -- configuration ----------------------------------------------------------------------


def test_a_persistence_shorter_than_a_window_is_refused_with_its_path() -> None:
    with pytest.raises(ConfigError, match="alerts.persistence"):
        AlertPolicy(load_settings_text('[windows]\ncalendar = "week"\n[alerts]\npersistence = "1d"\n'))


def test_a_negative_heavy_factor_is_refused_with_its_path() -> None:
    with pytest.raises(ConfigError, match="alerts.heavy_excess_factor"):
        load_settings_text("[alerts]\nheavy_excess_factor = -1\n")


def test_persistence_is_whole_windows_of_the_grid() -> None:
    from streams.config_windows import window_plan

    assert window_plan(load_settings_text('[alerts]\npersistence = "3d"\n')).persistence_windows == 3
    weekly = load_settings_text('[windows]\ncalendar = "week"\n[alerts]\npersistence = "14d"\n')
    assert window_plan(weekly).persistence_windows == 2
