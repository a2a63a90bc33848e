"""The evidence rule: a series surge is published on declarations weighed, not counted.

A window alone needs ``min_declarations`` declarations that carry its excess (one big
order carrying it all counts as one); a run of the series' over-threshold windows
within ``persistence`` adds them up to ``persistence_min_declarations``; optionally a
heavy excess for its tier stands on thinner evidence.
"""

from __future__ import annotations

import dataclasses

import pytest

from detectors.base import Explanation
from streams.alert_policy import AlertPolicy
from streams.config import ConfigError, load_settings_text
from streams.config_windows import window_plan
from streams.events import AlertSeries
from streams.evidence import window_weight
from streams.scoring import Finding

DAY = 86_400.0
BASE = ('[alerts]\nscope = "all"\ncooldown = "0s"\nmin_declarations = 3\n'
        "persistence_min_declarations = 4\n"
        "min_excess_eur_chpl = 10000\nmin_excess_eur_other = 1000000\n")
#: Three shipments of about a third each: all three carry a 100 kEUR window over a 20 kEUR range.
EVEN = (34_000.0, 33_000.0, 33_000.0)
#: One 85 kEUR order and two small ones: without the order the window is in range.
ONE_BIG = (85_000.0, 10_000.0, 5_000.0)


def policy(extra: str = "") -> AlertPolicy:
    return AlertPolicy(load_settings_text(BASE + extra))


def surge(day: int, top: tuple[float, ...], *, count: int | None = None, origin: str = "DE",
          tier: str = "1", detector: str = "volume") -> Finding:
    """A surge on hs6 DE->KG chips: expected range up to 20 kEUR, observed the sum of ``top``."""
    series = AlertSeries(key=f"hs6:{origin}>KG:854231", level="hs6",  # type: ignore[arg-type]
                         origin_country=origin, destination_country="KG",
                         transit_country="KG", product_code="854231", chpl_tier=tier)
    x = Explanation(observed=sum(top), expected=10_000.0, expected_low=0.0, expected_high=20_000.0,
                    score=1.0, details={"z": 12.0})
    n = len(top) if count is None else count
    return Finding(detector=detector, meta=series, direction="up", rollup=False,
                   window_start=day * DAY, explanation=x, threshold=0.99, unit="EUR", count=n,
                   ids=[f"d{day}-{i}" for i in range(n)], top_eur=top)


def published(p: AlertPolicy, finding: Finding) -> bool:
    return p.decide(finding) is not None


# -- one window -------------------------------------------------------------------


def test_three_declarations_that_carry_the_excess_are_enough_on_their_own() -> None:
    assert published(policy(), surge(100, EVEN))


def test_two_are_not_without_history() -> None:
    assert not published(policy(), surge(100, (50_000.0, 50_000.0)))


def test_a_surge_that_rests_on_one_big_order_counts_as_one_declaration() -> None:
    assert window_weight(3, 100_000.0, 20_000.0, ONE_BIG) == 1
    assert not published(policy(), surge(100, ONE_BIG))


def test_small_declarations_that_came_along_do_not_count() -> None:
    # five declarations; the largest three carry the excess, the other two are small
    top = (30_000.0, 25_000.0, 20_000.0, 15_000.0, 10_000.0)
    assert window_weight(5, 100_000.0, 40_000.0, top) == 3


def test_every_declaration_counts_when_weighing_is_off() -> None:
    assert published(policy("weigh_declarations = false\n"), surge(100, ONE_BIG))


def test_an_empty_window_never_has_evidence() -> None:
    p = policy('heavy_excess_factor = 1\npersistence = "7d"\n')
    for day in (97, 98, 99):
        p.decide(surge(day, EVEN))
    assert not published(p, surge(100, (), count=0))


# -- persistence -------------------------------------------------------------------


def test_a_sparse_lane_that_surges_four_days_running_adds_up_its_evidence() -> None:
    p = policy('persistence = "3d"\n')
    days = [published(p, surge(day, (100_000.0,))) for day in (100, 101, 102, 103)]
    assert days == [False, False, False, True]  # one declaration a day


def test_a_run_needs_one_declaration_more_than_a_window_alone() -> None:
    p = policy('persistence = "3d"\n')
    assert not published(p, surge(100, (60_000.0, 40_000.0)))  # 2
    assert not published(p, surge(101, (100_000.0,)))  # 2 + 1 = 3 < 4
    assert published(p, surge(102, (100_000.0,)))  # 2 + 1 + 1


def test_windows_beyond_the_persistence_span_do_not_count() -> None:
    p = policy('persistence = "2d"\n')
    assert [published(p, surge(d, (1e5,))) for d in (100, 103, 106, 109)] == [False] * 4


def test_persistence_off_judges_each_window_alone() -> None:
    p = policy('persistence = "0s"\n')
    assert [published(p, surge(d, (1e5,))) for d in (100, 101, 102, 103)] == [False] * 4


def test_several_detectors_on_one_window_count_it_once() -> None:
    p = policy('persistence = "3d"\n')
    for detector in ("volume", "changepoint", "spike"):
        assert not published(p, surge(100, (1e5,), detector=detector))
    assert not published(p, surge(101, (1e5,)))
    assert not published(p, surge(102, (1e5,)))  # 1 + 1 + 1 < 4


def test_persistence_is_per_series() -> None:
    p = policy('persistence = "3d"\n')
    for day, origin in ((100, "DE"), (101, "NL"), (102, "LT")):
        p.decide(surge(day, (1e5,), origin=origin))
    assert not published(p, surge(103, (1e5,), origin="PL"))


def test_the_ledger_forgets_windows_older_than_the_span() -> None:
    p = policy('persistence = "2d"\n')
    for day in range(100, 160):
        p.decide(surge(day, (1e5,), origin=f"{chr(65 + day % 26)}{chr(65 + day // 26)}"))
    # swept once per span: at most the span before the last sweep, the span since, and now
    assert sum(len(w) for w in p._evidence.values()) <= 2 * 2 + 1


# -- value for its tier --------------------------------------------------------------


def test_a_heavy_excess_for_its_tier_stands_on_one_declaration_when_asked() -> None:
    # tier 1: half the 10 kEUR CHPL floor, times 10 = 50 kEUR; excess here 80 kEUR
    p = policy("heavy_excess_factor = 10\n")
    assert published(p, surge(100, (100_000.0,), tier="1"))
    # tier 4A: the full floor, 100 kEUR: not heavy enough
    assert not published(p, surge(100, (100_000.0,), tier="4A"))


def test_heavy_sparse_evidence_is_off_by_default() -> None:
    assert not published(policy(), surge(100, (10_000_000.0,)))


# -- what the rule does not touch -----------------------------------------------------


def test_a_collapse_is_not_held_to_the_evidence_rule() -> None:
    x = Explanation(observed=0.0, expected=50_000.0, expected_low=30_000.0,
                    expected_high=80_000.0, score=1.0, details={"z": 12.0})
    down = dataclasses.replace(surge(100, (), count=0), explanation=x, direction="down")
    assert published(policy(), down)


def test_min_declarations_zero_switches_the_rule_off() -> None:
    off = BASE.replace("min_declarations = 3", "min_declarations = 0")
    p = AlertPolicy(load_settings_text(off))
    assert published(p, surge(100, (1e5,)))


# -- configuration ----------------------------------------------------------------------


def test_a_persistence_shorter_than_a_window_is_refused_with_its_path() -> None:
    with pytest.raises(ConfigError, match="alerts.persistence"):
        weekly = '[windows]\ncalendar = "week"\n[alerts]\npersistence = "1d"\n'
        AlertPolicy(load_settings_text(weekly))


def test_a_negative_heavy_factor_is_refused_with_its_path() -> None:
    with pytest.raises(ConfigError, match="alerts.heavy_excess_factor"):
        load_settings_text("[alerts]\nheavy_excess_factor = -1\n")


def test_a_run_of_no_declarations_is_refused_with_its_path() -> None:
    with pytest.raises(ConfigError, match="alerts.persistence_min_declarations"):
        load_settings_text("[alerts]\npersistence_min_declarations = 0\n")


def test_a_run_that_needs_less_than_one_window_is_refused_with_its_path() -> None:
    with pytest.raises(ConfigError, match="alerts.persistence_min_declarations.*below"):
        load_settings_text("[alerts]\nmin_declarations = 5\npersistence_min_declarations = 4\n")


def test_persistence_is_whole_windows_of_the_grid() -> None:
    daily = load_settings_text('[alerts]\npersistence = "3d"\n')
    assert window_plan(daily).persistence_windows == 3
    weekly = load_settings_text('[windows]\ncalendar = "week"\n[alerts]\npersistence = "14d"\n')
    assert window_plan(weekly).persistence_windows == 2


# -- a detector that judges a span of windows (trend) -----------------------------


def span_surge(day: int, declarations: int) -> Finding:
    """A trend finding: one declaration in its own window, ``declarations`` in its month."""
    f = surge(day, (60_000.0,), detector="trend")
    x = dataclasses.replace(f.explanation, observed=900_000.0, expected_high=300_000.0,
                            details={"z": 6.0, "declarations": declarations, "horizon_windows": 28})
    return dataclasses.replace(f, explanation=x)


def test_a_span_detector_is_judged_on_the_declarations_of_its_span_not_its_window() -> None:
    assert published(policy(), span_surge(100, declarations=4))
    assert not published(policy(), span_surge(100, declarations=3))


def test_a_span_is_a_run_so_it_needs_what_a_run_of_windows_needs() -> None:
    p = AlertPolicy(load_settings_text(BASE.replace("persistence_min_declarations = 4",
                                                    "persistence_min_declarations = 6")))
    assert not published(p, span_surge(100, declarations=5))
    assert published(p, span_surge(101, declarations=6))


def test_a_span_alert_says_its_figures_cover_the_span() -> None:
    alert = policy().decide(span_surge(100, declarations=5))
    assert alert is not None
    assert "28 windows to 1970-04-11" in alert.summary
    assert alert.evidence.details["declarations"] == 5
