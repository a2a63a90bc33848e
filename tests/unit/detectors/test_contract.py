"""Every registered detector kind against every conformance check (ids "kind:check")."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from detectors.checks import yield_checks
from detectors.registry import DETECTOR_KINDS


def _cases() -> list[Any]:
    cases = []
    for kind, cls in sorted(DETECTOR_KINDS.items()):
        for i, params in enumerate(cls._unit_test_params()):
            label = kind if i == 0 else f"{kind}[{i}]"
            for check in yield_checks(cls(**params)):
                cases.append(pytest.param(cls, params, check, id=f"{label}:{check.__name__}"))
    return cases


@pytest.mark.parametrize(("cls", "params", "check"), _cases())
def test_detector_contract(cls: type, params: dict[str, Any], check: Any) -> None:
    # a deep copy: parts given as params (e.g. the spike detector's) hold learned
    # state, and every check must start from a fresh detector
    check(cls(**copy.deepcopy(params)))


def test_every_config_kind_is_registered() -> None:
    assert {"changepoint", "unit_value", "novelty", "passthrough"} <= set(DETECTOR_KINDS)
