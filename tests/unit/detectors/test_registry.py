"""The detector registry: config kinds and validated construction."""

from __future__ import annotations

import importlib.util
import inspect
import sys
import types

import pytest

from detectors import registry
from detectors.base import Detector, Explanation
from detectors.changepoint import LevelShiftDetector
from detectors.registry import DETECTOR_KINDS, DetectorConfigError, build


def test_the_four_own_kinds_are_registered() -> None:
    assert DETECTOR_KINDS["changepoint"] is LevelShiftDetector
    assert {"changepoint", "unit_value", "novelty", "passthrough"} <= set(DETECTOR_KINDS)
    assert all(issubclass(cls, Detector) for cls in DETECTOR_KINDS.values())


def test_spike_is_registered_exactly_when_its_module_exists() -> None:
    exists = importlib.util.find_spec("detectors.spike") is not None
    assert ("spike" in DETECTOR_KINDS) == exists


@pytest.mark.parametrize("kind", sorted(DETECTOR_KINDS))
def test_every_kind_builds_with_defaults_and_with_its_own_params(kind: str) -> None:
    assert isinstance(build(kind, {}), DETECTOR_KINDS[kind])
    for params in DETECTOR_KINDS[kind]._unit_test_params():
        det = build(kind, params)
        assert {k: getattr(det, k) for k in params} == params


def test_build_applies_params() -> None:
    det = build("passthrough", {"max_lag_windows": 2, "grace_period": 4})
    assert (det.max_lag_windows, det.grace_period) == (2, 4)


def test_unknown_kind_lists_the_valid_kinds() -> None:
    with pytest.raises(DetectorConfigError) as info:
        build("spikes", {})
    err = info.value
    assert isinstance(err, ValueError)
    assert (err.kind, err.param) == ("spikes", None)
    assert "'spikes'" in str(err)
    for kind in DETECTOR_KINDS:
        assert repr(kind) in str(err)


def test_unknown_param_is_named_and_the_valid_ones_listed() -> None:
    with pytest.raises(DetectorConfigError) as info:
        build("unit_value", {"alpha": 0.02, "grace": 5})
    err = info.value
    assert (err.kind, err.param) == ("unit_value", "grace")
    for name in ("alpha", "grace_period", "hst_trees", "max_codes"):
        assert repr(name) in str(err)


def test_a_value_the_constructor_rejects_becomes_a_config_error_naming_the_param() -> None:
    with pytest.raises(DetectorConfigError, match="baseline_alpha") as info:
        build("changepoint", {"baseline_alpha": 2.0})
    assert info.value.param == "baseline_alpha"
    assert isinstance(info.value.__cause__, ValueError)


def test_valid_params_match_the_signature() -> None:
    for cls in DETECTOR_KINDS.values():
        expected = set(inspect.signature(cls).parameters)
        assert set(registry.valid_params(cls)) == expected


class _FakeSpike(Detector):
    """A stand-in spike detector."""

    def learn_one(self, x):  # type: ignore[no-untyped-def]
        return None

    def score_one(self, x):  # type: ignore[no-untyped-def]
        return 0.0

    def explain_one(self, x):  # type: ignore[no-untyped-def]
        return Explanation(0.0, 0.0, 0.0, 0.0, 0.0)


def _fake_module(monkeypatch: pytest.MonkeyPatch, **attrs: object) -> None:
    module = types.ModuleType("detectors.spike")
    for name, value in attrs.items():
        if isinstance(value, type):
            value.__module__ = "detectors.spike"
        setattr(module, name, value)
    monkeypatch.setitem(sys.modules, "detectors.spike", module)


def test_spike_lookup_prefers_the_exported_constant(monkeypatch: pytest.MonkeyPatch) -> None:
    other = type("Other", (_FakeSpike,), {})
    _fake_module(monkeypatch, SPIKE_DETECTOR_CLASS=_FakeSpike, Other=other)
    assert registry._spike_class() is _FakeSpike


def test_spike_lookup_finds_the_single_detector_class(monkeypatch: pytest.MonkeyPatch) -> None:
    only = type("OnlySpike", (_FakeSpike,), {})
    _fake_module(monkeypatch, OnlySpike=only, Detector=Detector)
    assert registry._spike_class() is only


def test_spike_lookup_warns_and_skips_when_ambiguous(monkeypatch: pytest.MonkeyPatch) -> None:
    a = type("A", (_FakeSpike,), {})
    b = type("B", (_FakeSpike,), {})
    _fake_module(monkeypatch, A=a, B=b)
    with pytest.warns(UserWarning, match="SPIKE_DETECTOR_CLASS"):
        assert registry._spike_class() is None


def test_missing_spike_module_is_left_out_quietly(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> types.ModuleType:
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)

    monkeypatch.setattr(registry.importlib, "import_module", missing)
    assert registry._spike_class() is None
    assert "spike" not in registry._kinds()


def test_a_broken_spike_module_is_not_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(name: str) -> types.ModuleType:
        raise ModuleNotFoundError("No module named 'scipy_typo'", name="scipy_typo")

    monkeypatch.setattr(registry.importlib, "import_module", broken)
    with pytest.raises(ModuleNotFoundError, match="scipy_typo"):
        registry._spike_class()
