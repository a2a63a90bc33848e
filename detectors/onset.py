"""Zero-to-positive onset of a transit country's exports of one product to Russia/Belarus.

A red flag analysts read in the trade statistics (``red_flags.md``, "Zero-to-positive
onset"): an HS6 code a hub never shipped to Russia, or shipped on a day or two a year,
is suddenly exported there week after week (rifle scopes Kyrgyzstan -> Russia, drones
Kazakhstan -> Russia). The pass-through detector needs *both* legs to surge; when the
hub already imports the code in volume from many origins, a re-routed stream of one
origin hides in the inflow's noise (the synthetic set's CNC route shift: DE -> KZ grows
from 8 to 55 declarations a month among 20 a month from other origins), and the only
clear sign is the outflow that did not exist before.

One instance watches one (transit country, HS6) pair, fed once per closed window with
the same ``{"inflow", "outflow"}`` as the pass-through detector; only the outflow is read.

The evidence is a count: how many of the last ``horizon`` windows had an outflow (``k``,
the current window included), against an upper estimate of how often the pair had one
before: ``r = (active_before + 1) / windows_before`` (one more active window than seen,
so a pair that never shipped is not taken to ship never). Under that rate the horizon
expects ``mu = r * horizon`` active windows, and the tail probability
``P(Poisson(mu) >= k)`` is read as a one-sided z (:func:`detectors.calibration.tail_probability_to_z`)
on the shared scale (z = 3 -> 0.5). A pair known for 500 daily windows without an
outflow reaches z 4.0 at its third active day within 28 days and 4.9 at its fourth;
one that shipped on every other day before never gets near.

Only a window with an outflow is scored (an onset is news on the day goods leave), only
when the horizon's outflow carries at least ``min_value_eur``, and nothing before the pair
has been watched for ``warmup`` windows before the horizon: "never shipped" needs a past
to mean anything (a hub pair is created when either leg first has trade, and forgotten
after ``windows.idle_series`` without any, so a forgotten pair starts its warm-up again).

>>> det = OnsetDetector(horizon=28, warmup=180)
>>> for day in range(500):               # the hub imports the code; nothing leaves for Russia
...     det.learn_one({"inflow": 3e4, "outflow": 0.0, "t": 86_400.0 * day})
>>> scores = []
>>> for day in range(500, 504):          # then four days of exports to Russia
...     x = {"inflow": 3e4, "outflow": 6e4, "t": 86_400.0 * day}
...     scores.append(round(det.score_one(x), 2))
...     det.learn_one(x)
>>> scores
[0.05, 0.47, 0.88, 0.98]
>>> det.explain_one({"inflow": 0.0, "outflow": 6e4, "t": 86_400.0 * 504}).details["active_windows"]
5
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from detectors.base import Detector, Explanation
from detectors.calibration import Z_ALARM, tail_probability_to_z, z_to_score

__all__ = ["OnsetDetector", "poisson_tail"]


def poisson_tail(mu: float, k: int) -> float:
    """``P(X >= k)`` for ``X ~ Poisson(mu)``, accurate far into the tail (summed upward
    from ``k`` when ``k > mu``, so a tiny probability is not a difference of two near-ones).

    >>> poisson_tail(0.5, 0), round(poisson_tail(0.5, 1), 4), f"{poisson_tail(0.056, 3):.2e}"
    (1.0, 0.3935, '2.81e-05')
    """
    if k <= 0:
        return 1.0
    if mu <= 0.0:
        return 0.0
    if k <= mu:
        term = total = math.exp(-mu)
        for i in range(1, k):
            term *= mu / i
            total += term
        return min(1.0, max(0.0, 1.0 - total))
    term = math.exp(k * math.log(mu) - mu - math.lgamma(k + 1))
    total, i = 0.0, k
    while term > total * 1e-15 and i < k + 1000:
        total += term
        i += 1
        term *= mu / i
    return min(1.0, total)


def _eur(value: Any) -> float:
    """A finite, non-negative amount; anything else counts as 0."""
    v = float(value) if isinstance(value, int | float) else 0.0
    return v if v > 0 and math.isfinite(v) else 0.0


def _score(z: float) -> float:
    """The shared scale for evidence; exactly 0 for a window not scored (no outflow,
    warm-up, immaterial), not the scale's 0.002 at z = 0."""
    return z_to_score(z) if z > 0.0 else 0.0


class OnsetDetector(Detector):
    """Score the first weeks of a hub's exports of a product to Russia/Belarus.

    Parameters
    ----------
    horizon
        Windows in which active windows are counted: 28 daily windows (a config may give
        a duration, "28d"; on monthly windows give at least three months).
    warmup
        Windows the pair must have been watched *before* the horizon ("180d").
    min_value_eur
        The horizon's outflow must carry at least this much (10 kEUR, the CHPL floor of
        the alert policy, which does not judge hub pairs).
    """

    _window_params = ("horizon", "warmup")

    #: A window without outflow scores exactly 0 (:meth:`score_one`'s first line).
    empty_score_bound = 0.0

    def __init__(self, horizon: int = 28, warmup: int = 180, min_value_eur: float = 10_000.0) -> None:
        if horizon < 1:
            raise ValueError(f"horizon must be at least 1 window, got {horizon}")
        if warmup < 1:
            raise ValueError(f"warmup must be at least 1 window, got {warmup}")
        if not (min_value_eur >= 0 and math.isfinite(min_value_eur)):
            raise ValueError(f"min_value_eur must be a finite amount >= 0, got {min_value_eur}")
        self.horizon = horizon
        self.warmup = warmup
        self.min_value_eur = min_value_eur
        #: Windows learned (the next window's index).
        self._n = 0
        #: Windows with an outflow, ever learned.
        self._active = 0
        #: (window index, outflow EUR) of the active windows within the horizon, oldest first.
        self._recent: tuple[tuple[int, float], ...] = ()

    @classmethod
    def _unit_test_params(cls):  # type: ignore[no-untyped-def]
        yield {"horizon": 5, "warmup": 10}

    @classmethod
    def _unit_test_inputs(cls) -> list[dict[str, Any]]:
        quiet = [{"inflow": 1e4, "outflow": 0.0, "t": 86_400.0 * i} for i in range(30)]
        onset = [{"inflow": 1e4, "outflow": 2e4 * (1 + i % 2), "t": 86_400.0 * (30 + i)} for i in range(6)]
        return quiet + onset + [
            {"inflow": math.nan, "outflow": None, "t": 4e7},
            {"inflow": 1.0, "outflow": math.inf, "t": 4.1e7},
            {"outflow": -5.0, "t": 4.2e7},
            {"t": 4.3e7},
        ]

    # -- model -------------------------------------------------------------------

    def _in_horizon(self) -> tuple[tuple[int, float], ...]:
        """The active windows of the past that the current window's horizon still holds."""
        first = self._n - self.horizon + 1
        return tuple(r for r in self._recent if r[0] >= first)

    def _evidence(self, x: dict[str, Any]) -> tuple[float, int, int, int, float, float]:
        """(z, active windows in the horizon, windows before it, active before it,
        horizon outflow EUR, expected active windows) for window ``x``; z is 0 when not scored."""
        outflow = _eur(x.get("outflow"))
        held = self._in_horizon()
        k = len(held) + (1 if outflow > 0 else 0)
        before = self._n - self.horizon + 1
        active_before = self._active - len(held)
        total = outflow + sum(v for _, v in held)
        mu = self.horizon * (active_before + 1) / max(before, 1)
        if outflow <= 0 or before < self.warmup or total < self.min_value_eur:
            return 0.0, k, before, active_before, total, mu
        z = max(0.0, tail_probability_to_z(poisson_tail(mu, k)))
        return z, k, before, active_before, total, mu

    # -- contract ----------------------------------------------------------------

    def learn_one(self, x: dict[str, Any]) -> None:
        outflow = _eur(x.get("outflow"))
        held = self._in_horizon()
        if outflow > 0:
            held += ((self._n, outflow),)
            self._active += 1
        self._recent = held
        self._n += 1

    def learn_empty(self, times: Sequence[float]) -> None:
        """Learn windows without outflow in one step: each would only count itself and
        drop the active windows its horizon no longer holds, so the last one's horizon
        decides what is kept (the same integers as window by window)."""
        if not times:
            return
        self._n += len(times)
        first = self._n - self.horizon  # the last empty window's (n - 1) - horizon + 1
        self._recent = tuple(r for r in self._recent if r[0] >= first)

    def score_one(self, x: dict[str, Any]) -> float:
        if _eur(x.get("outflow")) <= 0:
            return 0.0  # most windows of most pairs: nothing left for Russia, nothing to count
        return _score(self._evidence(x)[0])

    def explain_one(self, x: dict[str, Any]) -> Explanation:
        z, k, before, active_before, total, mu = self._evidence(x)
        typical = total / k if k else 0.0
        expected = mu * typical
        return Explanation(
            observed=total, expected=expected, expected_low=0.0,
            expected_high=(mu + Z_ALARM * math.sqrt(mu)) * typical, score=_score(z),
            details={"z": round(z, 3), "active_windows": k, "horizon_windows": self.horizon,
                     "windows_before": max(before, 0), "active_before": active_before},
        )
