"""Volume surge detector for sparse trade series: how surprising is a window's total?

Most (route, product) series are sparse: a few declarations a week, each of a
heavy-tailed size. Their daily totals are mostly zero, so a median-based level is
zero and any ordinary shipment looks like an infinite spike. This detector
models the window total the way it arises, as a sum of a random number of
shipments (a compound process): it tracks the exponentially weighted mean and
variance of the window total *including* the empty windows. For a series with
``r`` shipments per window of typical size ``s`` that gives a mean of about
``r*s`` and a spread of about ``s*sqrt(r*(1+cv^2))``, so

* one ordinary shipment on a route that ships every few days is unremarkable;
* ten times the usual volume on a busy route is many spreads above the mean;
* on a sparse route, evidence needs volume: the z-score grows with the number of
  shipments above normal, which is what makes the score statistically honest
  across thousands of series.

The score is ``z_to_score`` of the one-sided z (z = 3 -> 0.5). Updates are
winsorised at ``clip`` spreads, so a surge does not teach the baseline that
surges are normal in one window; a sustained new level is learned within a
few tens of windows (``rate``). An optional weekday profile divides out
weekday effects in daily windows; it switches itself off when the series is
sampled less often than every 3.5 days (weekly and monthly windows, where every
window starts on the same weekday or the weekday means nothing).

A route that ships 20k EUR every other day; an ordinary day is unremarkable, one
tenfold day alone is not enough, and the second tenfold day in a row is:

>>> det = VolumeSurgeDetector(warmup=10)
>>> for day in range(60):
...     det.learn_one({"value": 20_000.0 if day % 2 else 0.0, "t": 86_400.0 * day})
>>> det.score_one({"value": 20_000.0, "t": 86_400.0 * 60}) < 0.1
True
>>> surge = {"value": 200_000.0, "t": 86_400.0 * 60}
>>> det.score_one(surge) < 0.5
True
>>> det.learn_one(surge)
>>> det.score_one({"value": 200_000.0, "t": 86_400.0 * 61}) > 0.99
True
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

from detectors.base import Detector, Explanation
from detectors.calibration import pareto_tail_z, score_to_z, z_to_score

_NORMAL = statistics.NormalDist()
#: Share of the excess above the winsorising bound that is still learned (2 %: a new
#: level is learned over a few months of windows, not days). Without it a
#: series whose baseline is zero could never learn that it now ships every day.
LEAK = 0.02

#: Spreads below the mean at which a detector that watches drops winsorises what it learns.
DOWN_CLIP = 2.0

#: The window total's z is read through a normal tail up to this z and a Pareto tail
#: beyond it (:func:`detectors.calibration.pareto_tail_z`). A total is a sum of a few
#: declarations of heavy-tailed sizes, so its far tail is nothing like a normal one: on
#: the real background (EU exports 2020, 5,631 lanes and transit series with at least
#: 2 m EUR over the two years, 373,806 scored windows with data) z exceeded 6.5 in 0.98 %
#: of them, 200 in 0.042 %, where a normal tail says 4e-11 and nothing. The knee (6.45) is
#: score 0.999 (the strictest shipped threshold, ``deploy/examples/strict.toml``): no
#: shipped threshold moves, only scores, surprises and severities above it.
TAIL_KNEE_Z = score_to_z(0.999)
#: Tail exponent beyond the knee: the log-log slope of that empirical survival
#: function between z = 6.5 and 200 (0.92 on 2020; 2021, held out: see docs/measurements.md).
TAIL_ALPHA = 0.9

__all__ = ["VolumeSurgeDetector"]


def _score_of(z: float) -> float:
    """The 0-1 score of evidence ``z``: read through the Pareto tail beyond the knee."""
    return z_to_score(pareto_tail_z(z, TAIL_KNEE_Z, TAIL_ALPHA))


_DAY = 86_400.0
#: Longest window spacing with a weekday profile: at least two windows a week.
_SUB_WEEKLY = 3.5 * _DAY


def _poisson_z(observed: int, expected: float) -> float:
    """z-equivalent of P(N >= observed) for N ~ Poisson(expected)."""
    if observed <= 0:
        return 0.0
    lam = max(expected, 1e-3)
    term = math.exp(-lam)
    cdf = term
    for i in range(1, observed):
        term *= lam / i
        cdf += term
    tail = max(1.0 - cdf, 1e-12)
    return max(0.0, _NORMAL.inv_cdf(1.0 - tail))


def _value(x: dict[str, Any]) -> float:
    v = x.get("value")
    if v is None or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
        return 0.0
    return float(v)


class VolumeSurgeDetector(Detector):
    """One-sided surge score for window totals of a (possibly sparse) series.

    Parameters
    ----------
    rate
        Weight of the newest window in the running mean and variance.
    warmup
        Windows learned before any score is given (score 0 until then). Counted
        in windows (14 days of daily windows, 14 months of monthly ones); a
        config may give a duration ("90d").
    clip
        Updates are winsorised at ``mean + clip * spread``.
    min_spread
        Floor on the spread, as a fraction of the running mean: a perfectly steady
        series still has room for ordinary fluctuation.
    weekday
        Learn a multiplicative weekday profile, when windows are sub-weekly (the
        smallest gap between ``t`` values is at most 3.5 days; unknown until the
        second window).
    span
        Windows in the persistence evidence (a config may give a duration).
    level_cv
        Relative uncertainty of the series' *level* itself, beyond the window-to-window
        noise the running variance sees: real trade lanes change their rate from month
        to month (Comext HS6 lanes active in at least 10 months of 2020: the monthly
        values' coefficient of variation has quartiles 0.56 / 0.79 / 1.1). The windows of
        one month share that month's rate, so their deviations add up rather than cancel:
        the spread of a total over ``k`` windows is ``sqrt(k * spread**2 + (k * level_cv *
        mean)**2)``, and of one window ``sqrt(spread**2 + (level_cv * mean)**2)``. 0 (the
        default) treats windows as independent, as before; it only widens what is
        scored and explained (the expected range), never what is learned.
    direction
        ``"up"`` scores surges (the default), ``"down"`` collapses (the window total
        far below its usual level, for as long as ``persistence`` asks), ``"both"``
        the larger of the two. ``explain_one`` names the side in ``details["direction"]``.
    """

    #: Parameters counted in windows: a config may give them as a duration ("90d"),
    #: turned into windows of the configured grid at load (streams.config_windows).
    _window_params = ("warmup", "span")
    #: Parameters that only make sense on sub-weekly windows (validated at config load).
    _sub_weekly_params = ("weekday",)

    def __init__(self, rate: float = 0.05, warmup: int = 14, clip: float = 4.0,
                 min_spread: float = 0.25, weekday: bool = True, persistence: bool = True,
                 span: int = 5, direction: str = "up", level_cv: float = 0.0) -> None:
        if not 0 < rate < 1:
            raise ValueError(f"rate must be in (0, 1), got {rate}")
        if not 0 <= level_cv <= 10:
            raise ValueError(f"level_cv must be in [0, 10], got {level_cv}")
        if direction not in ("up", "down", "both"):
            raise ValueError(f"direction must be 'up', 'down' or 'both', not {direction!r}")
        self.rate = rate
        self.warmup = warmup
        self.clip = clip
        self.min_spread = min_spread
        self.weekday = weekday
        self.persistence = persistence
        self.span = span
        self.direction = direction
        self.level_cv = level_cv
        self._n = 0
        self._z_prev = 0.0
        self._z_prev_down = 0.0
        self._active = 0.0  # EW share of windows with a non-zero total
        self._recent: list[float] = []  # last ``span`` totals, oldest first
        self._mean = 0.0
        self._var = 0.0
        self._dow = [1.0] * 7
        self._t_prev: float | None = None
        #: Smallest positive gap between window times seen (0 while unknown).
        self._interval = 0.0

    # -- model -------------------------------------------------------------------

    def _weekly_profile(self) -> bool:
        """Whether the weekday profile applies: asked for, and windows are sub-weekly."""
        return self.weekday and self._interval <= _SUB_WEEKLY

    def _factor(self, x: dict[str, Any]) -> float:
        t = x.get("t")
        if not self._weekly_profile() or not isinstance(t, int | float) or not math.isfinite(t):
            return 1.0
        return self._dow[int(t // _DAY + 3) % 7]  # 1970-01-01 was a Thursday

    def _expected(self, x: dict[str, Any]) -> tuple[float, float]:
        return self._expected_at(self._factor(x))

    def _expected_at(self, factor: float) -> tuple[float, float]:
        """(mean, spread) of a window with weekday ``factor``."""
        mean = self._mean * factor
        spread = max(math.sqrt(max(self._var, 0.0)) * factor, self.min_spread * mean, 1e-9)
        return mean, spread

    def _scored(self, x: dict[str, Any]) -> tuple[float, float]:
        """(mean, spread) of one window as scored: :meth:`_expected` plus the level's spread."""
        return self._scored_at(self._expected(x))

    def _scored_at(self, expected: tuple[float, float]) -> tuple[float, float]:
        """:meth:`_scored` given :meth:`_expected` of the window."""
        mean, spread = expected
        return mean, math.hypot(spread, self.level_cv * mean)

    def _total_spread(self, k: int, mean: float, spread: float) -> float:
        """Spread of a total over ``k`` windows: independent noise plus the shared level."""
        return math.sqrt(k * spread * spread + (k * self.level_cv * mean) ** 2)

    def _z_now(self, x: dict[str, Any], up: bool = True) -> float:
        return self._z_at(_value(x), self._expected(x), up)

    def _z_at(self, value: float, expected: tuple[float, float], up: bool = True) -> float:
        """:meth:`_z_now` of ``value`` given :meth:`_expected` of its window."""
        mean, spread = self._scored_at(expected)
        z = (value - mean) / spread
        return max(0.0, z if up else -z)

    def _sides(self, x: dict[str, Any]) -> tuple[float, float]:
        """(surge evidence, collapse evidence), each 0 when ``direction`` does not ask for it."""
        up = self._z(x) if self.direction != "down" else 0.0
        down = self._z_down(x) if self.direction != "up" else 0.0
        return up, down

    def _z_down(self, x: dict[str, Any]) -> float:
        """Collapse evidence: this window and the previous one low, or the span's total low.

        A collapse on a sparse route is hard to tell from its ordinary empty windows,
        and the z-score says so: it grows with how much volume is missing.
        """
        if self._n < self.warmup:
            return 0.0
        z = self._z_now(x, up=False)
        if not self.persistence:
            return z
        sustained = min(z, self._z_prev_down)
        window = [*self._recent[-(self.span - 1):], _value(x)] if self.span > 1 else [_value(x)]
        k = len(window)
        mean, spread = self._mean, max(math.sqrt(max(self._var, 0.0)), self.min_spread * self._mean, 1e-9)
        z_total = (k * mean - sum(window)) / self._total_spread(k, mean, spread)
        return max(0.0, sustained, z_total)

    def _z(self, x: dict[str, Any]) -> float:
        """Surge evidence; with ``persistence``, only a surge that lasts counts.

        Evasion flows last for weeks; ordinary trade has one-off bursts. So the
        evidence is the larger of (a) the surge in this window *and* the previous
        one (``min`` of the two z-scores) and (b) over the last ``span`` windows, a
        surge in the total *and* in how many windows had any declaration at all,
        which lets a sparse route that starts shipping every day stand out.
        """
        if self._n < self.warmup:
            return 0.0
        z = self._z_now(x)
        if not self.persistence:
            return z
        return self._z_from(z, _value(x))

    def _z_from(self, z: float, value: float) -> float:
        """:meth:`_z` past the warm-up, with persistence, given :meth:`_z_now` and the value."""
        sustained = min(z, self._z_prev)
        window = [*self._recent[-(self.span - 1):], value] if self.span > 1 else [value]
        k = len(window)
        mean, spread = self._mean, max(math.sqrt(max(self._var, 0.0)), self.min_spread * self._mean, 1e-9)
        z_total = (sum(window) - k * mean) / self._total_spread(k, mean, spread)
        active = sum(1 for v in window if v > 0)
        z_active = _poisson_z(active, k * self._active)
        return max(0.0, sustained, min(z_total, z_active))

    # -- contract ----------------------------------------------------------------

    def learn_one(self, x: dict[str, Any]) -> None:
        warm = self._n >= self.warmup
        factor = self._factor(x)
        expected = self._expected(x) if warm else None
        z_prev = self._z_now(x) if warm and self.persistence else 0.0
        self._learn(x, _value(x), factor, expected, z_prev)

    def _learn(self, x: dict[str, Any], raw: float, factor: float,
               expected: tuple[float, float] | None, z_prev: float) -> None:
        """``learn_one(x)`` given what it reads of the state before learning: the window's
        value, its weekday factor, :meth:`_expected` (None in the warm-up) and
        :meth:`_z_now` (the surge side, 0 in the warm-up), which a score just computed."""
        warm = expected is not None
        if self.persistence:
            self._z_prev = z_prev
            if self.direction != "up":
                self._z_prev_down = self._z_now(x, up=False) if warm else 0.0
            self._recent = [*self._recent[-(self.span - 2):], raw] if self.span > 1 else []
        rate = self.rate
        a = rate if warm else 1.0 / (self._n + 1)
        self._active += a * ((1.0 if raw > 0 else 0.0) - self._active)
        v = raw
        if expected is not None:
            mean, spread = expected
            bound = mean + self.clip * spread
            if v > bound:  # winsorise, leaking a little so a lasting new level is learned
                v = bound + LEAK * (v - bound)
            floor = mean - DOWN_CLIP * spread
            if self.direction != "up" and v < floor:
                # the same for a collapse, nearer the mean: totals cannot go below 0, so
                # a floor ``clip`` spreads down would never bite
                v = floor + LEAK * (v - floor)
        deseasoned = v / factor
        delta = deseasoned - self._mean
        self._mean += a * delta
        self._var = (1 - a) * (self._var + a * delta * delta)
        t = x.get("t")
        timed = isinstance(t, int | float) and math.isfinite(t)
        if timed:
            if self._t_prev is not None and t > self._t_prev:
                gap = t - self._t_prev
                self._interval = gap if self._interval <= 0 else min(self._interval, gap)
            self._t_prev = float(t)
        if timed and self._mean > 0 and self._weekly_profile():
            i = int(t // _DAY + 3) % 7
            ratio = min(v / self._mean, 7.0)
            dow = self._dow
            dow[i] += (rate / 2) * (ratio - dow[i])
            norm = sum(dow) / 7
            if norm > 0:
                self._dow = [d / norm for d in dow]
        self._n += 1

    def score_then_learn(self, x: dict[str, Any], threshold: float | None,
                         learn: bool = True) -> tuple[float, Explanation | None]:
        """The pipeline's call, reading the state once: the surge side's z of this window
        (:meth:`_z_now`), its weekday factor and :meth:`_expected` are what ``learn_one``
        reads too (the state is unchanged in between). The same floats as the three calls."""
        if self.direction != "up":
            return super().score_then_learn(x, threshold, learn)
        warm = self._n >= self.warmup
        factor = self._factor(x)
        raw = _value(x)
        if warm:
            expected = self._expected_at(factor)
            z_now = self._z_at(raw, expected)
            up = self._z_from(z_now, raw) if self.persistence else z_now
        else:
            expected, z_now, up = None, 0.0, 0.0
        score = _score_of(max(up, 0.0))
        explanation = self.explain_one(x) if threshold is not None and score >= threshold else None
        if learn:
            self._learn(x, raw, factor, expected, z_now if self.persistence and warm else 0.0)
        return score, explanation

    def learn_empty(self, times: Sequence[float]) -> None:
        """Learn empty windows at ``times`` in one step (surge detectors past their warm-up).

        An empty window is never winsorised upwards and deseasons to 0, so the mean
        and the variance decay in closed form: after ``m`` windows with ``q = 1 - rate``,
        ``mean' = q^m mean`` and ``var' = q^m (var + mean^2 (1 - q^m))``; the activity
        share decays by ``q^m``, the weekday profile shrinks each weekday's factor by
        ``(1 - rate/2)`` per empty window on it and is normalised once. Warm-up windows
        (rates ``1/(n+1)``), detectors that watch drops (their floor winsorises zeros)
        and short spans are learned one by one, as ``learn_one`` would.
        """
        i = 0
        m = len(times)
        while i < m and (self._n < self.warmup or self.direction != "up" or self.span <= 2):
            self.learn_one({"value": 0.0, "t": times[i]})
            i += 1
        if i == m:
            return
        rest = times[i:] if i else times
        k = len(rest)
        if self.persistence:
            self._z_prev = 0.0  # an empty window is never above its mean
            self._recent = [*self._recent, *([0.0] * min(k, self.span - 1))][-(self.span - 1):]
        q = 1.0 - self.rate
        qk = q ** k
        self._active *= qk
        mean = self._mean
        self._var = qk * (self._var + mean * mean * (1.0 - qk))
        self._mean = mean * qk
        # sampling interval and the weekday profile, window by window (cheap: no model)
        shrink = 1.0 - self.rate / 2
        hits = [0] * 7
        profiled = False
        t_prev, interval = self._t_prev, self._interval
        for t in rest:
            if t_prev is not None and t > t_prev:
                gap = t - t_prev
                interval = gap if interval <= 0 else min(interval, gap)
            t_prev = t
            if self.weekday and interval <= _SUB_WEEKLY and mean > 0:
                hits[int(t // _DAY + 3) % 7] += 1
                profiled = True
        self._t_prev, self._interval = t_prev, interval
        if profiled:
            dow = [d * shrink ** h for d, h in zip(self._dow, hits, strict=True)]
            norm = sum(dow) / 7
            if norm > 0:
                self._dow = [d / norm for d in dow]
        self._n += k

    def score_one(self, x: dict[str, Any]) -> float:
        return _score_of(max(self._sides(x)))

    def explain_one(self, x: dict[str, Any]) -> Explanation:
        """``details["z"]`` is the evidence on the shared scale (past the knee, the
        Pareto-tail reading the score and the surprise use); ``details["z_gaussian"]``
        the plain deviate of the total from its mean, in spreads."""
        mean, spread = self._scored(x)
        up, down = self._sides(x)
        z_gaussian = max(up, down)
        z = pareto_tail_z(z_gaussian, TAIL_KNEE_Z, TAIL_ALPHA)
        return Explanation(
            observed=_value(x), expected=mean, expected_low=max(0.0, mean - 3 * spread),
            expected_high=mean + 3 * spread, score=z_to_score(z),
            details={"z": round(z, 3), "z_gaussian": round(z_gaussian, 3),
                     "spread": round(spread, 2), "windows_seen": self._n,
                     "direction": "up" if up >= down else "down"},
        )

    @classmethod
    def _unit_test_inputs(cls) -> list[dict[str, Any]]:
        values = [0.0, 5e3, 0.0, 0.0, 1.2e4, 3e3, 0.0, 8e3] * 4 + [9e4, float("nan"), -1.0]
        return [{"value": v, "t": _DAY * i} for i, v in enumerate(values)] + [{"value": None}]
