"""Conformance checks every detector must pass, in the style of ``river.checks``.

Each check is a plain ``check_<property>(detector[, dataset])`` function that
raises ``AssertionError`` on failure. :func:`yield_checks` lists the checks that
apply to a detector, with the dataset already bound, so a test only calls
``check(fresh_detector)``; ``tests/unit/detectors/test_contract.py`` runs every
registered kind through every check.

Sample inputs come from the class: ``_unit_test_inputs()`` returns a list of input
dicts (ordinary values plus edge cases: zeros, empty ids, huge values). A class
without it is taken to be a per-series detector of window aggregates and gets
:data:`FALLBACK_SERIES` as ``{"value": v, "t": 86400 * i}``.

State budget: a class may set ``_state_budget_bytes``; a per-series detector that
sets none gets :data:`PER_SERIES_STATE_BUDGET`, because the pipeline keeps one
instance per series key (100k keys x 2 KB = 200 MB).

>>> from detectors.changepoint import LevelShiftDetector
>>> det = LevelShiftDetector()
>>> for check in yield_checks(det):
...     check(LevelShiftDetector())
>>> "check_state_bytes_bounded" in [c.__name__ for c in yield_checks(det)]
True
"""

from __future__ import annotations

import copy
import functools
import math
import pickle
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from river.checks import common as river_common

from detectors.base import Detector, Explanation

__all__ = [
    "FALLBACK_SERIES",
    "PER_SERIES_STATE_BUDGET",
    "sample_inputs",
    "state_budget",
    "yield_checks",
]

#: Per-series state budget in bytes (pickle size) when a class declares none.
PER_SERIES_STATE_BUDGET = 2048

#: A daily series for detectors without ``_unit_test_inputs``: noise around 100,
#: an empty window, a one-off spike, a level shift, a huge value.
FALLBACK_SERIES: tuple[float, ...] = (
    100, 104, 97, 101, 99, 103, 98, 0, 102, 100, 96, 105, 99, 2000, 101, 98,
    100, 97, 103, 99, 500, 510, 495, 505, 498, 502, 1e9, 500, 499, 501,
)  # fmt: skip


def sample_inputs(detector: Detector) -> list[dict[str, Any]]:
    """The class's ``_unit_test_inputs()``, or :data:`FALLBACK_SERIES` as window inputs."""
    make = getattr(type(detector), "_unit_test_inputs", None)
    if make is not None:
        return [dict(x) for x in make()]
    return [{"value": float(v), "t": 86400.0 * i} for i, v in enumerate(FALLBACK_SERIES)]


def state_budget(detector: Detector) -> int | None:
    """The state budget in bytes that applies to ``detector``, or ``None`` if unbounded."""
    budget = getattr(type(detector), "_state_budget_bytes", None)
    if budget is None and getattr(type(detector), "_unit_test_inputs", None) is None:
        return PER_SERIES_STATE_BUDGET
    return budget


def _state(detector: Detector) -> bytes:
    return pickle.dumps(detector, protocol=pickle.HIGHEST_PROTOCOL)


# -- checks that need inputs ------------------------------------------------------------


def check_learn_one_returns_none(detector: Detector, dataset: list[dict[str, Any]]) -> None:
    """``learn_one`` returns ``None`` (river#1417: no more ``return self``)."""
    for x in dataset:
        assert detector.learn_one(x) is None


def check_score_one_is_pure(detector: Detector, dataset: list[dict[str, Any]]) -> None:
    """``score_one`` and ``explain_one`` change neither the state nor the input."""
    for x in dataset:
        x_before = copy.deepcopy(x)
        before = _state(detector)
        detector.score_one(x)
        detector.explain_one(x)
        assert _state(detector) == before, f"score_one/explain_one changed the state on {x}"
        assert x == x_before, "score_one/explain_one mutated its input"
        detector.learn_one(x)


def check_score_in_unit_interval(detector: Detector, dataset: list[dict[str, Any]]) -> None:
    """Every score, scored before learning, is a finite float in ``[0, 1]``."""
    for x in dataset:
        score = detector.score_one(x)
        assert isinstance(score, float), f"score {score!r} is not a float"
        assert math.isfinite(score) and 0.0 <= score <= 1.0, f"score {score} on {x}"
        detector.learn_one(x)


def check_score_before_any_learn(detector: Detector, dataset: list[dict[str, Any]]) -> None:
    """A fresh detector scores and explains any input without raising (cold start)."""
    for x in dataset:
        assert 0.0 <= detector.score_one(x) <= 1.0
        assert isinstance(detector.explain_one(x), Explanation)


def check_explain_one_consistent(detector: Detector, dataset: list[dict[str, Any]]) -> None:
    """``explain_one(x).score`` equals ``score_one(x)`` and its range is ordered."""
    for x in dataset:
        explanation = detector.explain_one(x)
        assert isinstance(explanation, Explanation)
        assert math.isclose(explanation.score, detector.score_one(x), abs_tol=1e-9)
        assert isinstance(explanation.details, dict)
        low, high = explanation.expected_low, explanation.expected_high
        if math.isfinite(low) and math.isfinite(high):
            assert low <= high, f"expected_low {low} > expected_high {high}"
        detector.learn_one(x)


def check_score_then_learn_matches_the_three_calls(
        detector: Detector, dataset: list[dict[str, Any]],
        thresholds: Sequence[float | None] = (None, 0.0, 0.5)) -> None:
    """``score_then_learn`` gives what ``score_one``, ``explain_one`` and ``learn_one`` give.

    Checked at each of ``thresholds`` (none, 0: explain everything, and 0.5 by default)
    and with learning off for every third input, on a twin fed the same inputs the long
    way: the same scores, explanations and pickled state.
    """
    for threshold in thresholds:
        fused, twin = copy.deepcopy(detector), copy.deepcopy(detector)
        for i, x in enumerate(dataset):
            learn = i % 3 != 2
            score, explanation = fused.score_then_learn(x, threshold, learn)
            expected = twin.score_one(x)
            assert score == expected or (math.isnan(score) and math.isnan(expected))
            if threshold is not None and expected >= threshold:
                assert explanation == twin.explain_one(x) or _same_explanation(
                    explanation, twin.explain_one(x))
            else:
                assert explanation is None
            if learn:
                twin.learn_one(x)
        assert _state(fused) == _state(twin)


def _same_explanation(a: Explanation | None, b: Explanation) -> bool:
    """Equal, NaN fields counting as equal (NaN != NaN)."""
    if a is None:
        return False
    return repr(a) == repr(b)


def check_pickle_roundtrip_same_scores(detector: Detector, dataset: list[dict[str, Any]]) -> None:
    """A detector restored from a pickle mid-stream scores exactly like the original."""
    half = len(dataset) // 2
    for x in dataset[:half]:
        detector.learn_one(x)
    restored = pickle.loads(_state(detector))
    for x in dataset[half:]:
        assert restored.score_one(x) == detector.score_one(x)
        detector.learn_one(x)
        restored.learn_one(x)
    for x in dataset:  # and still after both learned the rest
        assert restored.score_one(x) == detector.score_one(x)


def check_clone_is_fresh(detector: Detector, dataset: list[dict[str, Any]]) -> None:
    """``clone()`` keeps the parameters and drops the learned state."""
    fresh = _state(detector.clone())
    for x in dataset:
        detector.learn_one(x)
    clone = detector.clone()
    assert clone._get_params() == detector._get_params()
    assert _state(clone) == fresh, "clone() carried learned state over"
    assert _state(detector) != fresh, "learning the sample inputs changed nothing"


def check_no_state_aliasing_with_input(detector: Detector, dataset: list[dict[str, Any]]) -> None:
    """Mutating an input after ``learn_one`` leaves the detector unchanged."""
    for x in dataset:
        x = copy.deepcopy(x)
        detector.learn_one(x)
        before = _state(detector)
        for key, value in list(x.items()):
            x[key] = value * 2 if isinstance(value, float) else "mutated"
        assert _state(detector) == before, "the detector keeps a reference into its input"


def check_state_bytes_bounded(detector: Detector, dataset: list[dict[str, Any]]) -> None:
    """After the sample inputs three times over, ``state_bytes()`` is within budget."""
    budget = state_budget(detector)
    assert budget is not None
    for _ in range(3):
        for x in dataset:
            detector.learn_one(x)
    size = detector.state_bytes()
    assert size <= budget, f"state is {size} bytes, budget {budget}"


def check_state_does_not_grow_on_repeat(detector: Detector, dataset: list[dict[str, Any]]) -> None:
    """Seeing the same inputs again does not grow the state (no per-event memory)."""
    for x in dataset:
        detector.learn_one(x)
    first = detector.state_bytes()
    for _ in range(3):
        for x in dataset:
            detector.learn_one(x)
    assert detector.state_bytes() <= first * 1.1 + 256


# -- checks on the object alone -----------------------------------------------------------


def check_repr(detector: Detector) -> None:
    """``repr`` echoes the class and survives ``clone()``."""
    text = repr(detector)
    assert type(detector).__name__ in text
    assert text == repr(detector.clone())


def check_state_bytes_is_int(detector: Detector) -> None:
    """``state_bytes()`` returns a positive int."""
    size = detector.state_bytes()
    assert isinstance(size, int) and size > 0


def _bind(check: Callable[..., None], dataset: list[dict[str, Any]]) -> Callable[[Detector], None]:
    bound = functools.partial(check, dataset=dataset)
    functools.update_wrapper(bound, check)
    return bound  # type: ignore[return-value]


def yield_checks(detector: Detector) -> Iterator[Callable[[Detector], None]]:
    """The checks that apply to ``detector``, each callable as ``check(fresh_detector)``.

    A detector opts out of checks by name through river's ``_unit_test_skips()``
    (a set of check names); an opt-out is explicit and visible in review.
    """
    skips = set(detector._unit_test_skips())
    dataset = sample_inputs(detector)
    checks: list[Callable[[Detector], None]] = [
        river_common.check_init_default_params_are_not_mutable,
        river_common.check_get_params_matches_signature,
        river_common.check_init_has_default_params_for_tests,
        river_common.check_clone_with_new_params_applies,
        river_common.check_doc,
        check_repr,
        check_state_bytes_is_int,
    ]
    with_data = [
        check_learn_one_returns_none,
        check_score_one_is_pure,
        check_score_in_unit_interval,
        check_score_before_any_learn,
        check_explain_one_consistent,
        check_score_then_learn_matches_the_three_calls,
        check_pickle_roundtrip_same_scores,
        check_clone_is_fresh,
        check_no_state_aliasing_with_input,
        check_state_does_not_grow_on_repeat,
    ]
    if state_budget(detector) is not None:
        with_data.append(check_state_bytes_bounded)
    checks += [_bind(check, dataset) for check in with_data]
    for check in checks:
        if check.__name__ not in skips:
            yield check
