"""Closing a window scores only the hub pairs with a flow in it, and the findings stay the same.

The reference is the eager close (``Scoring.lazy_close = False``): every hub pair scored
and learned at every window. Both are fed the same random stream of lanes into and out
of transit hubs, window by window, as the pipeline does (series first, then hub pairs).
"""

from __future__ import annotations

import random
from typing import Any

import msgspec
import pytest

from detectors.windows import ClosedWindow, SeriesAggregate
from streams.config import DEFAULT_CONFIG_PATH, SeriesOverride, Settings, load_settings
from streams.features import passthrough_flows
from streams.scoring import Finding, Scoring

DAY = 86_400.0
HUBS = ["KG", "KZ", "AM"]
CODES = ["854231", "848210", "847130", "901380", "852691", "880730"]
ORIGINS = ["DE", "IT", "FR"]


def _settings(passthrough: float = 0.1, onset: float = 0.05,
              overrides: list[SeriesOverride] | None = None) -> Settings:
    """The shipped config with low hub-pair thresholds (many findings to compare) and an
    onset detector with a short past, so a 200-day stream reaches it."""
    settings = load_settings(DEFAULT_CONFIG_PATH)
    detectors = dict(settings.detectors)
    detectors["passthrough"] = msgspec.structs.replace(detectors["passthrough"],
                                                       threshold=passthrough)
    detectors["onset"] = msgspec.structs.replace(
        detectors["onset"], threshold=onset,
        params={"horizon": 5, "warmup": 20, "min_value_eur": 0.0})
    windows = msgspec.structs.replace(settings.windows, idle_series="40d")
    return msgspec.structs.replace(settings, detectors=detectors, overrides=overrides or [],
                                   windows=windows)


def _windows(seed: int, days: int = 200) -> list[ClosedWindow]:
    """Daily windows of sparse lanes into the hubs and out of them to Russia, with surges
    and pairs that go quiet for weeks, then trade again (or are forgotten)."""
    rng = random.Random(seed)
    lanes = [f"hs6:{o}>{h}:{c}" for o in ORIGINS for h in HUBS for c in CODES]
    lanes += [f"hs6:{h}>RU:{c}" for h in HUBS for c in CODES]
    rate = {lane: rng.choice([0.01, 0.03, 0.1, 0.3, 0.8]) for lane in lanes}
    quiet = {lane: (rng.randrange(days), rng.randrange(5, 90)) for lane in lanes}
    windows = []
    for day in range(days):
        aggs = {}
        for lane in lanes:
            start, length = quiet[lane]
            if start <= day < start + length or rng.random() > rate[lane]:
                continue
            value = rng.lognormvariate(10, 1) * (30.0 if rng.random() < 0.03 else 1.0)
            aggs[lane] = SeriesAggregate(count=rng.randrange(1, 9), value_eur=value)
        start = 1.6e9 // DAY * DAY + day * DAY
        windows.append(ClosedWindow(start, start + DAY, aggs))
    return windows


def _findings(settings: Settings, windows: list[ClosedWindow], lazy: bool,
              monkeypatch: pytest.MonkeyPatch) -> tuple[list[tuple[Any, ...]], Scoring, bool]:
    """The hub-pair findings, the scoring, and whether it left quiet pairs unscored."""
    with monkeypatch.context() as m:
        m.setattr(Scoring, "lazy_close", lazy)
        scoring = Scoring(settings)
        return _drive(scoring, settings, windows), scoring, scoring.passthrough_lazy()


def _drive(scoring: Scoring, settings: Settings,
           windows: list[ClosedWindow]) -> list[tuple[Any, ...]]:
    """Close the windows as the pipeline does; the hub-pair findings, in order."""
    out = []
    line = settings.threshold_for
    for w in windows:
        scoring.score_series(w, line)
        out += [_key(f) for f in scoring.score_passthrough(w, passthrough_flows(w), line)]
        scoring.evict(w.start)
    return out


def _key(f: Finding) -> tuple[Any, ...]:
    e = f.explanation
    return (f.detector, f.meta.key, f.window_start, e.score, e.observed, e.expected,
            sorted(e.details.items(), key=lambda kv: kv[0]))


@pytest.mark.parametrize("seed", range(4))
def test_the_lazy_close_of_hub_pairs_finds_what_the_eager_one_finds(
        seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings()
    windows = _windows(seed)
    eager, eager_scoring, was_lazy = _findings(settings, windows, False, monkeypatch)
    assert not was_lazy
    lazy, lazy_scoring, was_lazy = _findings(settings, windows, True, monkeypatch)
    assert was_lazy
    assert {f[0] for f in eager} == {"passthrough", "onset"}  # the comparison means something
    assert lazy == eager  # same findings, same floats, same order
    assert lazy_scoring._calls < eager_scoring._calls  # quiet pairs were not scored
    lazy_scoring.settle()
    for key, state in eager_scoring._passthrough.items():
        other = lazy_scoring._passthrough[key]
        assert vars(other.detectors["passthrough"]) == vars(state.detectors["passthrough"])
        assert vars(other.detectors["onset"]) == vars(state.detectors["onset"])
    assert lazy_scoring._passthrough.keys() == eager_scoring._passthrough.keys()


def test_a_quiet_hub_pair_is_not_touched_until_it_has_a_flow_again() -> None:
    scoring = Scoring(_settings())
    busy, quiet = "hs6:DE>KG:854231", "hs6:FR>KZ:848210"
    start = 1.6e9 // DAY * DAY
    plan = [[busy, quiet]] + [[busy]] * 9 + [[busy, quiet]]
    for i, keys in enumerate(plan):
        w = ClosedWindow(start + i * DAY, start + (i + 1) * DAY,
                         {k: SeriesAggregate(count=2, value_eur=1e4) for k in keys})
        scoring.score_series(w, lambda name, key: 0.99)
        scoring.score_passthrough(w, passthrough_flows(w), lambda name, key: 0.99)
        pair = scoring._passthrough["passthrough:KZ>RU:848210"]
        if i == 9:
            assert pair.learned == 1 and pair.detectors["passthrough"]._inflow[0] == 1.0
    assert pair.learned == 11
    assert pair.detectors["passthrough"]._inflow[0] == 11.0  # 9 empty windows + this one
    assert pair.detectors["onset"]._n == 11


@pytest.mark.parametrize(("detector", "line"), [("passthrough", 0.002), ("onset", 0.0)])
def test_a_threshold_an_empty_window_can_reach_scores_every_pair_every_window(
        detector: str, line: float, monkeypatch: pytest.MonkeyPatch) -> None:
    """At or below a detector's ``empty_score_bound`` an empty window's score may be a
    finding: then the close falls back to scoring every pair, and finds those too."""
    settings = _settings(**{detector: line})
    windows = _windows(seed=7, days=80)
    eager, _, _ = _findings(settings, windows, lazy=False, monkeypatch=monkeypatch)
    lazy, _, was_lazy = _findings(settings, windows, lazy=True, monkeypatch=monkeypatch)
    assert not was_lazy
    flows = {(w.start, k) for w in windows for k in passthrough_flows(w)}
    assert any((f[2], f[1]) not in flows for f in eager if f[0] == detector), \
        "empty windows do reach this threshold: the fallback is needed"
    assert lazy == eager


def test_an_override_below_the_bound_turns_the_lazy_close_of_hub_pairs_off() -> None:
    low = SeriesOverride(match="passthrough:KG>*", detector="passthrough", threshold=0.001)
    high = SeriesOverride(match="passthrough:KG>*", detector="passthrough", threshold=0.95)
    assert Scoring(_settings()).passthrough_lazy()
    assert not Scoring(_settings(overrides=[low])).passthrough_lazy()
    assert Scoring(_settings(overrides=[high])).passthrough_lazy()
