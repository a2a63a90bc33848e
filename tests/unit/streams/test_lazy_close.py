"""Closing a window touches only the series with data in it, and the alerts stay the same.

The reference is the eager close (``Scoring.lazy_close = False``): every live series
scored and learned at every window, as before quiet series were left alone. Both run
the same generated stream through the offline pipeline (the worker's record handler).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import msgspec
import pytest

from detectors.windows import ClosedWindow, SeriesAggregate
from evaluation.synth.generator import StreamConfig, SyntheticStream
from evaluation.synth.scenarios import scenario_by_name
from streams.config import DEFAULT_CONFIG_PATH, Settings, load_settings
from streams.offline import OfflineResult, run_offline
from streams.scoring import Scoring
from streams.pipeline import PartitionPipeline
from streams.state_codec import decode_envelope, encode_envelope


def _records() -> list[bytes]:
    """Two months of sparse and dense lanes, a spike, and a partition outage (gap windows)."""
    config = StreamConfig(seed=11, start=dt.date(2022, 1, 10), days=95, daily_declarations=120.0)
    scenarios = [scenario_by_name("ic_spike_de_kg_ru", onset_day=70),
                 scenario_by_name("trap_data_gap_partition", onset_day=80, partitions=4)]
    return list(SyntheticStream(config, scenarios).records())


def _settings(**windows: object) -> Settings:
    """The shipped config, every product in scope, the tier lanes watching drops too."""
    settings = load_settings(DEFAULT_CONFIG_PATH)
    series = [msgspec.structs.replace(s, direction="both") if s.name == "tier" else s
              for s in settings.series_definitions()]
    return msgspec.structs.replace(
        settings, series=series,
        alerts=msgspec.structs.replace(settings.alerts, scope="all"),
        windows=msgspec.structs.replace(settings.windows, **windows))


def _run(records: list[bytes], settings: Settings, lazy: bool,
         monkeypatch: pytest.MonkeyPatch) -> OfflineResult:
    with monkeypatch.context() as m:
        m.setattr(Scoring, "lazy_close", lazy)
        return run_offline(records, settings, now=lambda: 1.9e9)


@pytest.fixture(scope="module")
def records() -> list[bytes]:
    return _records()


@pytest.mark.parametrize("idle_series", ["12d"])
def test_the_lazy_close_raises_the_alerts_and_incidents_of_the_eager_one(
        records: list[bytes], idle_series: str, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(idle_series=idle_series)
    eager = _run(records, settings, lazy=False, monkeypatch=monkeypatch)
    lazy = _run(records, settings, lazy=True, monkeypatch=monkeypatch)
    assert len(eager.alerts) >= 5  # the comparison means something
    assert {a.series.level for a in eager.alerts} >= {"hs6", "tier"}
    assert [a.alert_id for a in lazy.alerts] == [a.alert_id for a in eager.alerts]
    assert [a.severity for a in lazy.alerts] == [a.severity for a in eager.alerts]
    for a, b in zip(lazy.alerts, eager.alerts, strict=True):
        assert a.score == pytest.approx(b.score, rel=1e-9)
    assert [(i.incident_id, i.revision) for i in lazy.incidents] == \
        [(i.incident_id, i.revision) for i in eager.incidents]


def _windows(keys_per_window: list[list[str]], step: float = 86_400.0) -> Iterator[ClosedWindow]:
    for i, keys in enumerate(keys_per_window):
        start = 1.6e9 // step * step + i * step
        aggs = {k: SeriesAggregate(count=3, value_eur=1e4 * (1 + i % 3)) for k in keys}
        yield ClosedWindow(start, start + step, aggs)


@pytest.fixture
def python_close(monkeypatch: pytest.MonkeyPatch) -> None:
    """The close all in Python, whose live series these tests read (the native close keeps
    series packed: tests/unit/streams/test_native_close.py holds it to the same state)."""
    monkeypatch.setattr(Scoring, "native_close", False)


@pytest.mark.usefixtures("python_close")
def test_a_quiet_series_is_not_touched_until_it_has_data_again() -> None:
    scoring = Scoring(load_settings(DEFAULT_CONFIG_PATH))
    busy, quiet = "hs6:DE>KG:854231", "hs6:FR>KZ:090111"
    plan = [[busy, quiet]] + [[busy]] * 9 + [[busy, quiet]]
    windows = list(_windows(plan))
    for w in windows[:10]:
        scoring.score_series(w, lambda name, key: 0.99)
    assert quiet not in scoring._series  # quiet since window 1: packed, not live
    blob = scoring._packed["hs6"][quiet]
    (_, _, learned, _), detectors = scoring._packer.unpack(blob, "up")
    before = detectors["volume"]._n
    assert learned == 1 and scoring._series[busy].learned == 10
    scoring.score_series(windows[10], lambda name, key: 0.99)
    state = scoring._series[quiet]
    assert state.learned == 11
    assert state.detectors["volume"]._n == before + 10  # 9 missed empty windows + this one


@pytest.mark.usefixtures("python_close")
def test_a_state_with_quiet_series_round_trips_and_carries_on_alike() -> None:
    settings = load_settings(DEFAULT_CONFIG_PATH)
    busy, quiet = "hs6:DE>KG:854231", "hs6:FR>KZ:090111"
    windows = list(_windows([[busy, quiet]] + [[busy]] * 20 + [[busy, quiet]]))
    pipeline = PartitionPipeline(settings, partition=1)
    scoring = pipeline.scoring
    for w in windows[:21]:
        scoring.score_series(w, lambda name, key: 0.5)
    raw = encode_envelope("trade.declarations", 1, pipeline, next_offset=7, settings=settings)
    restored = decode_envelope(raw, "trade.declarations", 1, settings).pipeline.scoring
    assert restored._scored == scoring._scored and restored._windows_seen == scoring._windows_seen
    a = scoring.score_series(windows[21], lambda name, key: 0.5)
    b = restored.score_series(windows[21], lambda name, key: 0.5)
    assert [(f.detector, f.meta.key, f.explanation.score) for f in a] == \
        [(f.detector, f.meta.key, f.explanation.score) for f in b]
    assert restored._series[quiet].detectors["volume"]._mean == scoring._series[quiet].detectors["volume"]._mean
