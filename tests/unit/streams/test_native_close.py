"""Quiet series closed in native code: the Python close's findings and state, to the bit.

The reference is the same close with ``Scoring.native_close = False``. Both see the same
windows of many sparse series (quiet spells, surges, collapses, confirmed anomalies that
are not learned) and must give the same findings, with the same explanations, window by
window, and leave every detector with the same packed values.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

import streams.native_close as native_close
from detectors.windows import ClosedWindow, SeriesAggregate
from evaluation.synth.generator import StreamConfig, SyntheticStream
from evaluation.synth.scenarios import scenario_by_name
from streams.config import DEFAULT_CONFIG_PATH, Settings, load_settings
from streams.offline import run_offline
from streams.pipeline import PartitionPipeline
from streams.scoring import Scoring
from streams.state_codec import decode_envelope, encode_envelope

DAY = 86_400.0


def _windows(seed: int, n_series: int = 300, n_windows: int = 140) -> list[ClosedWindow]:
    """Daily windows of ``n_series`` lanes trading on 2 % to 60 % of days, log-normal
    totals around a level that shifts, with surges now and then."""
    rng = random.Random(seed)
    keys = [f"hs6:{chr(65 + i % 26)}{chr(65 + i // 26 % 26)}>KZ:{850000 + i:06d}" for i in range(n_series)]
    density = {k: rng.choice([0.02, 0.1, 0.3, 0.6]) for k in keys}
    level = {k: 10 ** rng.uniform(3, 6) for k in keys}
    start = 1.6e9 // DAY * DAY
    out = []
    for w in range(n_windows):
        aggs = {}
        for k in keys:
            if rng.random() < 0.005:
                level[k] *= rng.choice([0.1, 4.0, 20.0])
            if rng.random() < density[k]:
                value = level[k] * math.exp(rng.gauss(0, 0.7)) * (30.0 if rng.random() < 0.01 else 1.0)
                aggs[k] = SeriesAggregate(count=max(1, int(value / level[k] * 2)), value_eur=value)
        out.append(ClosedWindow(start + w * DAY, start + (w + 1) * DAY, aggs))
    return out


def _line(name: str, key: str) -> float | None:
    """0.9 for every detector, 0.5 for the lanes ending in 7, none for spike on those ending in 3."""
    if name == "spike" and key.endswith("3"):
        return None
    return 0.5 if key.endswith("7") else 0.9


def _finding(f: Any) -> tuple[Any, ...]:
    e = f.explanation
    return (f.detector, f.meta.key, f.window_start, e.observed, e.expected, e.expected_low,
            e.expected_high, e.score, sorted(e.details.items()), f.count)


def _close_all(windows: list[ClosedWindow], native: bool, monkeypatch: pytest.MonkeyPatch,
               unlearned: Callable[[int], frozenset[str]] = lambda w: frozenset()
               ) -> tuple[Scoring, list[list[tuple[Any, ...]]]]:
    with monkeypatch.context() as m:
        m.setattr(Scoring, "native_close", native)
        scoring = Scoring(load_settings(DEFAULT_CONFIG_PATH, env={}))
        findings = []
        for i, w in enumerate(windows):
            findings.append([_finding(f) for f in scoring.score_series(w, _line, unlearned(i))])
            scoring.evict(w.start)
        return scoring, findings


def _packed_values(scoring: Scoring) -> dict[str, list[Any]]:
    """Every series' header and detectors' packed values, after every quiet series caught up."""
    scoring.settle()
    packer = scoring._packer
    return {key: [s.last_window, s.activity, s.learned, s.seq,
                  {n: packer.values(n, "up", d) for n, d in s.detectors.items()}]
            for key, s in scoring._series.items()}


def _bits(x: Any) -> Any:
    if isinstance(x, float):
        return ("f", struct.pack("<d", x))
    if isinstance(x, list | tuple):
        return [_bits(v) for v in x]
    if isinstance(x, dict):
        return {k: _bits(v) for k, v in x.items()}
    return (type(x).__name__, x)


def test_the_shipped_config_is_closed_natively() -> None:
    scoring = Scoring(load_settings(DEFAULT_CONFIG_PATH, env={}))
    assert scoring.native_reason is None


@pytest.mark.parametrize("seed", [1, 2])
def test_native_close_gives_the_python_findings_and_state(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    windows = _windows(seed)
    unlearned = lambda w: frozenset(k for k in windows[w].aggregates if k.endswith("1"))  # noqa: E731
    calls = _spy(monkeypatch)
    python, python_findings = _close_all(windows, native=False, monkeypatch=monkeypatch, unlearned=unlearned)
    assert not calls
    native, native_findings = _close_all(windows, native=True, monkeypatch=monkeypatch, unlearned=unlearned)
    # the comparison means something: findings on both lines, most closes native
    assert sum(map(len, python_findings)) >= 20
    assert len(calls) > 2000 and sum(calls) > 0.9 * len(calls)
    assert native_findings == python_findings
    assert _bits(_packed_values(native)) == _bits(_packed_values(python))


def test_native_close_keeps_series_packed_and_python_makes_them_live(monkeypatch: pytest.MonkeyPatch) -> None:
    windows = _windows(3, n_series=50, n_windows=40)
    native, _ = _close_all(windows, native=True, monkeypatch=monkeypatch)
    python, _ = _close_all(windows, native=False, monkeypatch=monkeypatch)
    touched = set(windows[-1].aggregates)
    assert touched and touched <= set(python._series)  # the Python close leaves them live
    assert not touched & set(native._series)           # the native one, packed for the next


def test_a_checkpoint_taken_with_the_native_close_restores_and_carries_on_alike(
        monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(DEFAULT_CONFIG_PATH, env={})
    windows = _windows(4, n_series=80, n_windows=60)
    pipeline = PartitionPipeline(settings, partition=1)
    for w in windows[:40]:
        pipeline.scoring.score_series(w, _line)
    raw = encode_envelope("trade.declarations", 1, pipeline, next_offset=7, settings=settings)
    restored = decode_envelope(raw, "trade.declarations", 1, settings).pipeline.scoring
    assert restored.native_reason is None
    for w in windows[40:]:
        assert [_finding(f) for f in restored.score_series(w, _line)] == \
            [_finding(f) for f in pipeline.scoring.score_series(w, _line)]
    assert _bits(_packed_values(restored)) == _bits(_packed_values(pipeline.scoring))


def test_without_the_module_or_with_an_unported_parameter_the_close_stays_python(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(native_close, "tradewatch_native", None)
    scoring = Scoring(load_settings(DEFAULT_CONFIG_PATH, env={}))
    assert scoring.native_reason is not None and "not built" in scoring.native_reason
    monkeypatch.undo()
    settings = load_settings(DEFAULT_CONFIG_PATH, env={})
    volume = settings.detectors["volume"]
    settings = msgspec.structs.replace(settings, detectors={
        **settings.detectors, "volume": msgspec.structs.replace(volume, params={**volume.params, "level_cv": 0.3})})
    scoring = Scoring(settings)
    assert scoring.native_reason is not None and "level_cv" in scoring.native_reason
    assert scoring._native is None


def _records() -> list[bytes]:
    config = StreamConfig(seed=5, start=dt.date(2022, 1, 10), days=90, daily_declarations=150.0)
    scenarios = [scenario_by_name("ic_spike_de_kg_ru", onset_day=60)]
    return list(SyntheticStream(config, scenarios).records())


def _scope_all() -> Settings:
    settings = load_settings(DEFAULT_CONFIG_PATH, env={})
    return msgspec.structs.replace(settings, alerts=msgspec.structs.replace(settings.alerts, scope="all"))


def _spy(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Records, for every series the native close was given, 1 if it closed it, else 0."""
    calls: list[int] = []
    real_close = native_close.NativeClose.close

    def counted(self: native_close.NativeClose, *args: Any, **kwargs: Any) -> list[Any]:
        out = real_close(self, *args, **kwargs)
        calls.extend(1 if r is not None else 0 for r in out)
        return out

    monkeypatch.setattr(native_close.NativeClose, "close", counted)
    return calls


def test_the_offline_pipeline_raises_the_same_alerts_natively(monkeypatch: pytest.MonkeyPatch) -> None:
    records, settings = _records(), _scope_all()
    calls = _spy(monkeypatch)
    results = {}
    for native in (False, True):
        with monkeypatch.context() as m:
            m.setattr(Scoring, "native_close", native)
            results[native] = run_offline(records, settings, now=lambda: 1.9e9)
    python, native = results[False], results[True]
    assert len(python.alerts) >= 3
    assert sum(calls) > 0.9 * len(calls) > 1000  # most series closes were native
    assert [(a.alert_id, a.severity, a.score, a.surprise) for a in native.alerts] == \
        [(a.alert_id, a.severity, a.score, a.surprise) for a in python.alerts]
    assert [(i.incident_id, i.revision) for i in native.incidents] == \
        [(i.incident_id, i.revision) for i in python.incidents]


def test_the_series_closes_metric_counts_each_path() -> None:
    from prometheus_client import CollectorRegistry

    from streams.metrics import PipelineMetrics

    settings = load_settings(DEFAULT_CONFIG_PATH, env={})
    registry = CollectorRegistry()
    scoring = Scoring(settings, PipelineMetrics.create(registry, detectors=settings.detectors))
    windows = _windows(5, n_series=60, n_windows=50)
    for w in windows:
        scoring.score_series(w, _line)
    touched = sum(len(w.aggregates) for w in windows)
    native = registry.get_sample_value("tradewatch_series_closes_total", {"path": "native"})
    python = registry.get_sample_value("tradewatch_series_closes_total", {"path": "python"})
    assert native + python == touched  # every series window with data, once
    assert native > 0.8 * touched and python > 0  # new series and alerts go the Python way


def test_config_check_says_whether_the_native_close_applies(
        tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from streams.cli import main

    assert main(["config", "check", str(DEFAULT_CONFIG_PATH)]) == 0
    assert "native close: on" in capsys.readouterr().err
    text = Path(DEFAULT_CONFIG_PATH).read_text(encoding="utf-8")
    slow = tmp_path / "level_cv.toml"
    slow.write_text(text.replace('[detectors.volume]\nkind = "volume"',
                                 '[detectors.volume]\nkind = "volume"\nparams = { level_cv = 0.3 }'))
    assert main(["config", "check", str(slow)]) == 0
    err = capsys.readouterr().err
    assert "native close: off" in err and "level_cv" in err


def test_a_packed_series_the_native_close_cannot_read_is_left_to_the_python_path() -> None:
    """Never an exception out of the native close: a blob it cannot read, or state a native
    detector does not expect, returns None and the series' blob is left as it was."""
    scoring = Scoring(load_settings(DEFAULT_CONFIG_PATH, env={}))
    windows = _windows(6, n_series=20, n_windows=30)
    for w in windows:
        scoring.score_series(w, _line)
    table = next(iter(scoring._packed.values()))
    key, blob = next(iter(table.items()))
    tree = scoring._packer.tree(blob)
    broken = [*tree[:-1], [[name, values if name != "spike" else [values[0], [], values[2]]]
                           for name, values in tree[-1]]]  # spike's extremity part emptied
    native = scoring._native
    assert native is not None
    args = (scoring._scored, scoring._windows_seen - len(scoring._scored) + 1, scoring._windows_seen,
            windows[-1].end, [1e4] * 3, [2] * 3, [True] * 3, _line, [key] * 3)
    readable, unreadable, odd = native.close([blob, b"\\xc1", scoring._packer.blob(broken)], *args)
    assert readable is not None  # the intact blob closes natively
    assert unreadable is None and odd is None
