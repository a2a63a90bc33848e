"""A seasonal, robust, online spike detector for one aggregated series, composed of parts.

The pipeline runs one :class:`SeasonalRobustSpikeDetector` per series (e.g. the
daily statistical value in EUR of one route x HS6 code). It is three parts with
one job each, and a rule that combines them:

* :class:`~detectors.seasonal.RobustSeasonalBaseline` knows the ordinary value
  (level + seasonal offset) and measures distance from it in robust sigmas;
* :class:`~detectors.extremity.RecentExtremity` asks whether that distance is
  more extreme than anything the series did lately (spikes, drops, shifts);
* :class:`~detectors.context_novelty.ContextNovelty` asks whether the series ever
  moved like this before (new patterns a z-score ranks low).

Each part gives a z-equivalent; the larger one goes through the shared
:func:`detectors.calibration.z_to_score`, so 0.5 is the alarm line ``z = 3`` as for
every detector. On the Numenta Anomaly Benchmark (one configuration, streamed
score-then-learn: ``python -m bench.nab``) the detector scores 60.9 standard; the
extremity evidence alone scores 50.3.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, TypeVar

from detectors.base import Detector, Explanation, Part
from detectors.calibration import z_to_score
from detectors.context_novelty import ContextNovelty
from detectors.extremity import RecentExtremity
from detectors.seasonal import RobustSeasonalBaseline

__all__ = [
    "ContextNovelty",
    "RecentExtremity",
    "RobustSeasonalBaseline",
    "SeasonalRobustSpikeDetector",
]

#: Points learnt before the extremity history takes any z: the baseline's spreads
#: are still forming and their first z-scores mean nothing.
_EXTREMITY_GRACE = 10

_P = TypeVar("_P", bound=Part)


def _slog(v: float) -> float:
    return math.copysign(math.log1p(abs(v)), v)


def _slog_inv(y: float) -> float:
    return math.copysign(math.expm1(abs(y)), y)


def _part(value: _P | None, cls: type[_P], name: str) -> _P:
    if value is None:
        return cls()
    if not isinstance(value, cls):
        raise TypeError(
            f"{name} must be a {cls.__name__} (in a config file: a table of its "
            f"parameters), not {type(value).__name__}"
        )
    return value


class SeasonalRobustSpikeDetector(Detector):
    """Online spike detector: seasonal baseline, recent extremity, context novelty.

    **Evidence.** Before learning a value (optionally on a signed ``log1p``
    scale), the ``baseline`` gives three robust z-scores: the seasonal residual,
    the change from the previous value and a short mean of residuals (a sustained
    shift). ``direction = "up"`` counts only rises. The ``extremity`` part turns
    them into one z-equivalent: 3 (score 0.5) when the value is 1.6 times as
    extreme as the most extreme of its kind in the last three days (sub-daily
    series) or weeks (daily series). The ``novelty`` part gives new transitions
    between value bins a z-equivalent of at most 2.9: a new pattern ranks just
    below the alarm line but never alarms alone.

    **Score.** ``z_to_score(max(extremity z, novelty z))``, the shared scale of
    :mod:`detectors.calibration`. ``score_one`` is 0 during the first ``warmup``
    points. ``explain_one(x).details["z"]`` is the z-equivalent itself, which
    does not saturate: use it to rank alerts whose scores all read 1.00.

    **State** is a few floats per part, one list per seasonal phase and the
    novelty bit table: under 2 KB pickled (:meth:`state_bytes`). Each part keeps
    its own state; :meth:`clone` clones the parts fresh.

    Parameters
    ----------
    transform
        ``"none"`` (values as they are) or ``"log1p"`` (signed ``log1p``: for
        values in EUR spanning orders of magnitude; the explanation is given
        back in the input's units either way).
    direction
        ``"both"`` scores rises and falls; ``"up"`` only rises (export spikes).
    warmup
        Points learnt before the detector scores at all (in the pipeline, windows:
        30 days of daily windows, 30 months of monthly ones; a config may give a
        duration, e.g. "180d"). The baseline's weekday seasonality applies only to
        series sampled at most every 3.5 days (sub-weekly windows).
    baseline
        A :class:`RobustSeasonalBaseline` (default: its defaults).
    extremity
        A :class:`RecentExtremity` (default: its defaults).
    novelty
        A :class:`ContextNovelty`; ``ContextNovelty(levels=0)`` turns it off.

    Examples
    --------
    Daily values with a weekday pattern and noise, then a tenfold jump:

    >>> import math, random
    >>> rng = random.Random(7)
    >>> det = SeasonalRobustSpikeDetector()
    >>> day = 86400.0
    >>> scores = []
    >>> for i in range(200):
    ...     weekday = (i + 3) % 7
    ...     v = 1e6 * (0.4 if weekday >= 5 else 1.0) * math.exp(rng.gauss(0.0, 0.1))
    ...     x = {"value": v, "t": i * day}
    ...     scores.append(det.score_one(x))
    ...     det.learn_one(x)
    >>> max(scores[60:]) < 0.5          # ordinary noise and weekends are not spikes
    True
    >>> spike = {"value": 1e7, "t": 200 * day}
    >>> det.score_one(spike) > 0.99
    True
    >>> ex = det.explain_one(spike)
    >>> ex.expected_low < ex.expected < ex.expected_high < ex.observed
    True
    >>> ex.details["evidence"], ex.details["z"] > 5.3
    ('extremity', True)
    >>> det.state_bytes() <= 2048
    True

    Parts with their own parameters (in a config file:
    ``params = { novelty = { levels = 0 }, extremity = { alarm_ratio = 2.0 } }``):

    >>> SeasonalRobustSpikeDetector(
    ...     novelty=ContextNovelty(levels=0), extremity=RecentExtremity(alarm_ratio=2.0)
    ... ).extremity.alarm_ratio
    2.0
    """

    #: Parameters counted in windows: a config may give them as a duration ("90d"),
    #: turned into windows of the configured grid at load (streams.config_windows).
    _window_params = ("warmup",)

    def __init__(
        self,
        transform: str = "none",
        direction: str = "both",
        warmup: int = 30,
        baseline: RobustSeasonalBaseline | None = None,
        extremity: RecentExtremity | None = None,
        novelty: ContextNovelty | None = None,
    ):
        if transform not in ("none", "log1p"):
            raise ValueError(f"transform must be 'none' or 'log1p', not {transform!r}")
        if direction not in ("both", "up"):
            raise ValueError(f"direction must be 'both' or 'up', not {direction!r}")
        if warmup < 0:
            raise ValueError(f"warmup must be >= 0, got {warmup}")
        self.transform = transform
        self.direction = direction
        self.warmup = warmup
        self.baseline = _part(baseline, RobustSeasonalBaseline, "baseline")
        self.extremity = _part(extremity, RecentExtremity, "extremity")
        self.novelty = _part(novelty, ContextNovelty, "novelty")

    @classmethod
    def _unit_test_params(cls):  # type: ignore[no-untyped-def]
        yield {}
        yield {"transform": "log1p", "direction": "up"}
        yield {"novelty": ContextNovelty(levels=0), "extremity": RecentExtremity(alarm_ratio=2.0)}

    # -- helpers ------------------------------------------------------------------
    def _read(self, x: dict[str, Any]) -> tuple[float, float | None]:
        """(value on the model's scale, t or None)."""
        v = float(x["value"])
        t = x.get("t")
        return (_slog(v) if self.transform == "log1p" else v), (None if t is None else float(t))

    def _judge(self, y: float, phase: int) -> tuple[float, str, tuple[float, float, float, float, float]]:
        """(z-equivalent, which part gave it, baseline evidence) of ``y``, before learning it."""
        evidence = self.baseline.evidence(y, phase, self.direction == "up")
        z = self.extremity.z(evidence)
        source = "extremity" if z > -math.inf else "none"
        z_new = self.novelty.z(y)
        if z_new > z:
            z, source = z_new, "novelty"
        return z, source, evidence

    # -- river API ------------------------------------------------------------------
    def score_one(self, x: dict[str, Any]) -> float:
        if self.baseline.count < self.warmup:
            return 0.0
        y, t = self._read(x)
        if not math.isfinite(y):
            return 0.0
        z, source, _ = self._judge(y, self.baseline.phase(t))
        return z_to_score(z) if source != "none" else 0.0

    def learn_one(self, x: dict[str, Any]) -> None:
        y, t = self._read(x)
        if not math.isfinite(y):
            return  # a missing value teaches nothing
        base = self.baseline
        n = base.count
        phase = base.phase(t)
        if n == 0:
            base.learn(y, t, phase)
            return
        self._learn_judged(y, t, phase, base.evidence(y, phase, self.direction == "up"), n)

    def _learn_judged(self, y: float, t: float | None, phase: int,
                      evidence: tuple[float, float, float, float, float], n: int) -> None:
        """``learn_one`` of a value past the first, given the baseline's ``evidence`` of it
        (read before learning) and the baseline's count ``n``."""
        self.novelty.learn(y, scoring=n >= self.warmup)
        self.baseline.learn(y, t, phase)
        if n > _EXTREMITY_GRACE:
            self.extremity.learn(evidence, t, self.baseline.interval, n)

    def score_then_learn(self, x: dict[str, Any], threshold: float | None,
                         learn: bool = True) -> tuple[float, Explanation | None]:
        """The pipeline's call, reading the value, its phase and the baseline's evidence
        once: ``learn_one`` reads the same (the state is unchanged in between). The same
        floats as the three calls; warming up, or on a value it does not learn, as they are."""
        base = self.baseline
        n = base.count
        if n < self.warmup or n == 0:
            return super().score_then_learn(x, threshold, learn)
        y, t = self._read(x)
        if not math.isfinite(y):
            return super().score_then_learn(x, threshold, learn)
        phase = base.phase(t)
        z, source, evidence = self._judge(y, phase)
        score = z_to_score(z) if source != "none" else 0.0
        explanation = self.explain_one(x) if threshold is not None and score >= threshold else None
        if learn:
            self._learn_judged(y, t, phase, evidence, n)
        return score, explanation

    def learn_empty(self, times: Sequence[float]) -> None:
        """``learn_one({"value": 0.0, "t": t})`` for each of ``times``, part by part.

        The same arithmetic in the same order, so the same state: a zero's baseline
        evidence does not depend on the other parts, so the baseline learns the whole
        run first (giving each step's evidence), then the novelty table and the
        extremity history take the run in one loop each.
        """
        times = [float(t) for t in times]
        base = self.baseline
        if times and base.count == 0:  # the very first value only starts the baseline
            base.learn(0.0, times[0], base.phase(times[0]))
            times = times[1:]
        if not times:
            return
        n = base.count
        evidence = base.learn_zeros(times, self.direction == "up", _EXTREMITY_GRACE)
        self.novelty.learn_zeros(len(times), max(0, self.warmup - n))
        skipped = len(times) - len(evidence)  # the first steps are within the grace
        self.extremity.learn_many(evidence, times[skipped:], n + skipped)

    def explain_one(self, x: dict[str, Any]) -> Explanation:
        """Observed vs expected, with the range within which the score stays below 0.5.

        ``details["z"]`` is the unsaturated z-equivalent behind the score (the
        figure to rank alerts by), ``details["evidence"]`` the part that gave it.
        """
        base = self.baseline
        y, t = self._read(x)
        observed = float(x["value"])
        if not math.isfinite(y) or base.count == 0:
            nan = math.nan
            return Explanation(observed, nan, nan, nan, 0.0, {"n": base.count})
        phase = base.phase(t)
        z, source, (z0, z1, z2, expected, spread) = self._judge(y, phase)
        inv = _slog_inv if self.transform == "log1p" else float
        # residual at which the residual evidence alone reaches the alarm line
        half = self.extremity.alarm_ratio * self.extremity.recent_max(0) * spread
        low = expected - half if self.direction == "both" else -math.inf
        warming_up = base.count < self.warmup
        return Explanation(
            observed=observed,
            expected=inv(expected),
            expected_low=inv(low) if math.isfinite(low) else low,
            expected_high=inv(expected + half),
            score=self.score_one(x),
            details={
                "z": -math.inf if warming_up else z,
                "evidence": source,
                "z_residual": z0,
                "z_change": z1,
                "z_shift": z2,
                "recent_max_z": [self.extremity.recent_max(k) for k in range(3)],
                "novelty": self.novelty.novelty(y),
                "phase": phase,
                "n": base.count,
                "warming_up": warming_up,
            },
        )
