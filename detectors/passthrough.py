"""Pass-through through a transit country: an inflow surge followed by an outflow surge.

The 2022 pattern: EU exports of an HS6 code into Kyrgyzstan jump, and within the
same or the next months Kyrgyz exports of the same code to Russia jump too (BIS:
Armenia re-exported 97 % of its extra chip imports to Russia). One instance watches
one (transit country, HS6) pair, fed once per closed window.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from detectors.base import Detector, Explanation
from detectors.calibration import Z_ALARM, robust_sigma, update_robust_level, z_to_score

__all__ = ["PassThroughDetector"]


def _eur(value: Any) -> float:
    """A finite, non-negative amount; anything else counts as 0."""
    v = float(value or 0.0)
    return v if v > 0 and math.isfinite(v) else 0.0


class PassThroughDetector(Detector):
    """Joint surge of a transit country's inflow and, up to a lag, its outflow to RU/BY.

    Each leg (``inflow`` into the transit country, ``outflow`` from it to
    Russia/Belarus, both EUR per window) has its own robust baseline of
    ``log1p(value)`` (:func:`detectors.calibration.update_robust_level`) and so its
    own surge z (a missing, negative or non-finite leg counts as 0). The
    pass-through evidence of a window is::

        max over lag L in 0..max_lag_windows of  min(z_inflow[t - L], z_outflow[t])

    The ``min`` means *both* legs must surge: an inflow surge alone (goods that stay
    in the country) or an outflow surge alone (no matching import) stays as low as
    the quieter leg. The evidence is a z-equivalent, so score 0.5 means both legs
    are 3 sigmas above their baselines with the outflow no earlier than the inflow
    (:func:`detectors.calibration.z_to_score`). The ratio of outflow to the lagged
    inflow (near 1 = everything passes through) is reported in the explanation,
    not scored.

    While both legs stay high the score stays high; the baselines absorb a
    sustained new level within about ``1 / baseline_alpha`` windows.

    Parameters
    ----------
    max_lag_windows
        How many windows the outflow surge may trail the inflow surge (a config
        may give a duration, e.g. "21d").
    baseline_alpha
        Exponential weight of each leg's baseline after ``1/baseline_alpha`` windows.
    grace_period
        Windows learned before any non-zero score (counted in windows; a config
        may give a duration).
    clip
        Residuals beyond ``clip`` sigmas are clipped when updating baselines, so a
        surge moves its own baseline only slowly.
    min_scale
        Floor on each leg's sigma in log units (0.3 is about +-35 %).

    Examples
    --------
    >>> det = PassThroughDetector()
    >>> quiet = [{"inflow": 1e5 * (1 + 0.1 * (i % 3)), "outflow": 2e4 * (1 + 0.1 * (i % 2)),
    ...           "t": 2.6e6 * i} for i in range(12)]
    >>> for x in quiet:
    ...     det.learn_one(x)
    >>> surge_in = {"inflow": 2e6, "outflow": 2e4, "t": 2.6e6 * 12}
    >>> round(det.score_one(surge_in), 3)      # inflow alone: low
    0.0
    >>> det.learn_one(surge_in)
    >>> follow = {"inflow": 1.5e6, "outflow": 1.2e6, "t": 2.6e6 * 13}
    >>> round(det.score_one(follow), 3)        # the outflow follows: high
    1.0
    >>> det.explain_one(follow).details["lag_windows"]
    1
    """

    _state_budget_bytes = 2048

    #: A window without inflow and outflow scores at most ``z_to_score(0)`` (0.0025):
    #: each leg's centre is a weighted mean of ``log1p`` amounts (never below 0: every
    #: step of :func:`~detectors.calibration.update_robust_level` moves it by at most the
    #: whole way to a value >= 0, in floats too), so an empty outflow's z, ``-centre /
    #: sigma``, is at most 0, and the evidence, a ``min`` with it, is too.
    empty_score_bound = z_to_score(0.0)

    #: Parameters counted in windows: a config may give them as a duration ("90d"),
    #: turned into windows of the configured grid at load (streams.config_windows).
    _window_params = ("max_lag_windows", "grace_period")

    def __init__(
        self,
        max_lag_windows: int = 3,
        baseline_alpha: float = 0.1,
        grace_period: int = 6,
        clip: float = 4.0,
        min_scale: float = 0.3,
    ):
        if max_lag_windows < 0:
            raise ValueError(f"max_lag_windows must be >= 0, got {max_lag_windows}")
        if not 0 < baseline_alpha <= 1:
            raise ValueError(f"baseline_alpha must be in (0, 1], got {baseline_alpha}")
        if grace_period < 2:
            raise ValueError(
                f"grace_period must be >= 2 (a scale needs two windows), got {grace_period}"
            )
        if not clip > 0:
            raise ValueError(f"clip must be > 0, got {clip}")
        if not min_scale > 0:
            raise ValueError(f"min_scale must be > 0, got {min_scale}")
        self.max_lag_windows = max_lag_windows
        self.baseline_alpha = baseline_alpha
        self.grace_period = grace_period
        self.clip = clip
        self.min_scale = min_scale
        # Per leg: (count, centre, mean absolute deviation) of log1p(value).
        self._inflow = (0.0, 0.0, 0.0)
        self._outflow = (0.0, 0.0, 0.0)
        # Most recent first: (inflow EUR, expected inflow EUR, inflow z) of past windows.
        self._history: tuple[tuple[float, float, float], ...] = ()

    @classmethod
    def _unit_test_inputs(cls) -> list[dict[str, Any]]:
        inflow = [1e5, 1.1e5, 0.9e5, 1e5, 0.0, 1.05e5, 0.95e5, 1e5, 2e6, 1.8e6, 1.5e6, 1e5]
        outflow = [2e4, 0.0, 2.2e4, 1.8e4, 2e4, 2.1e4, 1.9e4, 2e4, 2e4, 1.5e6, 1.2e6, 1e9]
        xs: list[dict[str, Any]] = [
            {"inflow": i, "outflow": o, "t": 2.6e6 * k}
            for k, (i, o) in enumerate(zip(inflow, outflow, strict=True))
        ]
        # Malformed windows must not break the contract: NaN, None, inf, missing legs.
        return xs + [
            {"inflow": math.nan, "outflow": None, "t": 4e7},
            {"inflow": math.inf, "outflow": 2e4, "t": 4.3e7},
            {"t": 4.6e7},
        ]

    # -- internals --------------------------------------------------------------------

    @staticmethod
    def _log(x: dict[str, Any], key: str) -> float:
        v = float(x.get(key) or 0.0)
        return math.log1p(v) if v > 0 and math.isfinite(v) else 0.0

    def _z(self, leg: tuple[float, float, float], y: float) -> float:
        return (y - leg[1]) / robust_sigma(leg[2], self.min_scale)

    def _range(self, leg: tuple[float, float, float]) -> tuple[float, float, float]:
        sigma = robust_sigma(leg[2], self.min_scale)
        return (
            math.expm1(leg[1]),
            max(math.expm1(leg[1] - Z_ALARM * sigma), 0.0),
            math.expm1(leg[1] + Z_ALARM * sigma),
        )

    def _best_lag(self, x: dict[str, Any]) -> tuple[float, int, float, float, float]:
        """(evidence, lag, z of lagged inflow, z of outflow, lagged inflow EUR)."""
        z_out = self._z(self._outflow, self._log(x, "outflow"))
        inflow = _eur(x.get("inflow"))
        best = (min(self._z(self._inflow, self._log(x, "inflow")), z_out), 0)
        best_in = (inflow, self._z(self._inflow, self._log(x, "inflow")))
        for lag, (past_inflow, _, past_z) in enumerate(self._history, start=1):
            evidence = min(past_z, z_out)
            if evidence > best[0]:
                best = (evidence, lag)
                best_in = (past_inflow, past_z)
        return best[0], best[1], best_in[1], z_out, best_in[0]

    # -- contract ---------------------------------------------------------------------

    def learn_one(self, x: dict[str, Any]) -> None:
        y_in = self._log(x, "inflow")
        y_out = self._log(x, "outflow")
        inflow = _eur(x.get("inflow"))
        past = (inflow, math.expm1(self._inflow[1]), self._z(self._inflow, y_in))
        if self.max_lag_windows > 0:
            self._history = (past, *self._history)[: self.max_lag_windows]
        clip = self.clip if self._inflow[0] >= self.grace_period else math.inf
        a, m = self.baseline_alpha, self.min_scale
        self._inflow = update_robust_level(*self._inflow, y_in, a, clip, m)
        self._outflow = update_robust_level(*self._outflow, y_out, a, clip, m)

    def learn_empty(self, times: Sequence[float]) -> None:
        """Learn windows without inflow and outflow: ``learn_one``'s arithmetic for two
        zero legs, in a tight loop (the same floats); only the last ``max_lag_windows``
        of them leave a trace in the lag history."""
        n = len(times)
        if not n:
            return
        a, m, grace = self.baseline_alpha, self.min_scale, self.grace_period
        lags = self.max_lag_windows
        inflow, outflow, history = self._inflow, self._outflow, self._history
        for i in range(n):
            if lags > 0 and i >= n - lags:
                past = (0.0, math.expm1(inflow[1]), self._z(inflow, 0.0))
                history = (past, *history)[:lags]
            clip = self.clip if inflow[0] >= grace else math.inf
            inflow = update_robust_level(*inflow, 0.0, a, clip, m)
            outflow = update_robust_level(*outflow, 0.0, a, clip, m)
        self._inflow, self._outflow, self._history = inflow, outflow, history

    def score_one(self, x: dict[str, Any]) -> float:
        if self._inflow[0] < self.grace_period:
            return 0.0
        return z_to_score(self._best_lag(x)[0])

    def explain_one(self, x: dict[str, Any]) -> Explanation:
        outflow = _eur(x.get("outflow"))
        out_expected, out_low, out_high = self._range(self._outflow)
        if self._inflow[0] < self.grace_period:
            details = {"reason": "grace period", "windows_seen": int(self._inflow[0])}
            return Explanation(outflow, out_expected, out_low, out_high, 0.0, details)
        evidence, lag, z_in, z_out, inflow = self._best_lag(x)
        in_expected = math.expm1(self._inflow[1]) if lag == 0 else self._history[lag - 1][1]
        _, in_low, in_high = self._range(self._inflow)
        details = {
            "lag_windows": lag,
            "inflow_observed": inflow,
            "inflow_expected": in_expected,
            "inflow_z": z_in,
            "inflow_expected_low_now": in_low,
            "inflow_expected_high_now": in_high,
            "outflow_observed": outflow,
            "outflow_expected": out_expected,
            "outflow_z": z_out,
            "pass_through_ratio": outflow / inflow if inflow > 0 else None,
            "evidence_z": evidence,
        }
        return Explanation(outflow, out_expected, out_low, out_high, z_to_score(evidence), details)
