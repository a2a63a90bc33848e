"""The detector contract: river's AnomalyDetector plus an explanation.

River's base class lives at a different path in different releases; it is
imported here and nowhere else, so a river upgrade touches one line.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Sequence
from typing import Any

from river.base import AnomalyDetector, Base

__all__ = ["Detector", "Explanation", "Part"]


@dataclasses.dataclass(frozen=True, slots=True)
class Explanation:
    """Why a detector scored an observation as it did, in the units of the input.

    ``expected_low``/``expected_high`` bound what the detector considered
    ordinary; an analyst reads ``observed`` against them.
    """

    observed: float
    expected: float
    expected_low: float
    expected_high: float
    score: float
    details: dict[str, Any] = dataclasses.field(default_factory=dict)


class Detector(AnomalyDetector):
    """An online detector with a calibrated ``[0, 1]`` score and an explanation.

    Subclasses implement ``learn_one``, ``score_one`` and ``explain_one``.
    ``score_one`` and ``explain_one`` must be side-effect free.
    """

    #: The highest score ``score_one`` can give a window without data (what
    #: :meth:`learn_empty` learns), whatever was learned before; None when no bound is
    #: known. A pipeline may leave such windows unscored (learning them later with
    #: :meth:`learn_empty`) only where every threshold of the detector is above it:
    #: then none of them can reach a threshold. A subclass that sets it says why it holds.
    empty_score_bound: float | None = None

    @abc.abstractmethod
    def explain_one(self, x: dict[str, Any]) -> Explanation:
        """Explain the score ``score_one(x)`` would give, without learning."""

    def score_then_learn(self, x: dict[str, Any], threshold: float | None,
                         learn: bool = True) -> tuple[float, Explanation | None]:
        """``score_one(x)``, ``explain_one(x)`` if ``threshold`` is set and reached, then
        ``learn_one(x)`` (unless ``learn`` is False): the pipeline's one call per observation.

        The same results as the three calls in that order. A detector whose score and
        update share work (hashing a key, finding its statistics) overrides it to do
        that work once: on the per-declaration path it is most of the cost.
        """
        score = self.score_one(x)
        explanation = self.explain_one(x) if threshold is not None and score >= threshold else None
        if learn:
            self.learn_one(x)
        return score, explanation

    def learn_empty(self, times: Sequence[float]) -> None:
        """Learn windows without data, at window starts ``times`` (oldest first), unscored.

        What ``learn_one({"value": 0.0, "t": t})`` for each ``t`` would learn: a series
        detector's state after a quiet spell. The pipeline calls it when a quiet series
        has data again, instead of touching every quiet series at every window close.
        This fallback learns them one by one; a detector whose update has a closed form
        overrides it with one step that leaves the same state up to float rounding, one
        without overrides it with a tight loop of the same arithmetic (the same floats).
        """
        for t in times:
            self.learn_one({"value": 0.0, "t": t})

    def state_bytes(self) -> int:
        """Approximate size of the learned state, for the memory budget (pickle size)."""
        import pickle

        return len(pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL))


class Part(Base):
    """A component of a composed detector (a seasonal baseline, a novelty table...).

    A river ``Base``, so a detector that takes parts as constructor arguments keeps
    river's contract: ``repr`` shows each part with its parameters, ``_get_params``
    returns ``(class, params)`` for it and ``clone()`` clones it fresh. A part stores
    every constructor argument under its own name and keeps its learned state in
    plain attributes (floats, lists, bytearrays), so state can be written as data.
    A part holds learned state: give each detector its own (``clone()`` does).
    """

    def __str__(self) -> str:
        """One line with every parameter, so a detector's ``repr`` shows its parts' settings.

        (river expands only its own classes in a ``repr``; other parameters print by ``str``.)
        """
        params = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._get_params())
        return f"{type(self).__name__}({params})"
