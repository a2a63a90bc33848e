"""A robust seasonal baseline for one series: level + seasonal offsets + robust spreads.

One part of :class:`detectors.spike.SeasonalRobustSpikeDetector`; it knows what an
ordinary value of the series looks like and how far from it an observation is, in
robust standard deviations. It does not decide what is anomalous.
"""

from __future__ import annotations

from detectors.base import Part

__all__ = ["RobustSeasonalBaseline"]

_DAY = 86400.0
_HOUR = 3600.0
#: Longest sampling interval with a weekday phase: at least two windows a week.
_SUB_WEEKLY = 3.5 * _DAY
#: MAD-to-sigma factor of this baseline: 1.25, not calibration.SIGMA_PER_MEAN_ABS_DEV
#: (1.2533), because the NAB-benchmarked defaults were chosen with it (0.3 % apart).
_SIGMA_PER_MAD = 1.25
#: Points before which the winsorising limit is not yet trusted (the spread is still 0).
_CLIP_AFTER = 3


class RobustSeasonalBaseline(Part):
    """Exponentially weighted level, seasonal offsets and spreads, updated robustly.

    The expected value is ``level + season[phase]``. The seasonal phase comes from
    the timestamp (epoch seconds, UTC): hour of day for series sampled every two
    hours or faster, day of week (Monday = 0) for series sampled every half day
    to 3.5 days (daily windows); no timestamp, a sampling interval in between, or
    a weekly or slower one (weekly, monthly windows: every window starts on the
    same weekday, or on a weekday that means nothing) means no seasonality. The
    sampling interval is the smallest positive gap seen. Month-of-year seasonality
    is not modelled.

    Every update uses the residual *winsorised* at ``clip`` robust standard
    deviations, so one spike moves the level by at most ``level_rate * clip``
    spreads: a spike does not drag the baseline with it, and the next ordinary
    value is judged against the old level. The spread is an exponentially
    weighted mean absolute deviation of the clipped residuals (times 1.25, the
    normal MAD-to-sigma factor), floored at ``rel_floor`` times the mean absolute
    value so a perfectly flat series does not divide by zero. The first
    ``1 / rate`` points are learnt as a plain running mean (the rates start at
    ``1 / (n + 1)``), so the baseline forms quickly.

    :meth:`evidence` gives three robust z-scores for a value, before it is learnt:

    * **residual**: distance from the expected value;
    * **change**: distance from the previous value as the baseline accepted it
      (winsorised), against the spread of such changes; so the return from an
      empty window or a spike is not a new change;
    * **shift**: a short exponentially weighted mean of the residuals (rate
      ``shift_rate``): a sustained shift that no single residual shows.

    Parameters
    ----------
    level_rate, season_rate, scale_rate
        Learning rates of the level, the seasonal offsets and the spreads.
    clip
        Residuals are winsorised at ``clip`` robust standard deviations.
    shift_rate
        Rate of the short mean of residuals (the shift evidence).
    rel_floor
        Spread floor relative to the mean absolute value (flat series).

    Examples
    --------
    A daily series at 100 with weekends at 40, then a hundredfold outlier:

    >>> base = RobustSeasonalBaseline()
    >>> for i in range(365):
    ...     t = i * 86400.0
    ...     y = 40.0 if base.phase(t) >= 5 else 100.0 + (i % 3)
    ...     base.learn(y, t, base.phase(t))
    >>> round(base.expected(0)), round(base.expected(5))    # Monday, Saturday
    (101, 40)
    >>> monday = 368 * 86400.0
    >>> base.phase(monday)
    0
    >>> base.learn(10_000.0, monday, 0)
    >>> round(base.expected(1))              # Tuesday: the outlier barely moved the level
    101
    >>> z_residual, z_change, z_shift, expected, spread = base.evidence(101.0, 1, up_only=False)
    >>> z_residual < 1.0 and z_change < 1.0  # and the return from it is no new change
    True
    """

    def __init__(
        self,
        level_rate: float = 0.05,
        season_rate: float = 0.1,
        scale_rate: float = 0.02,
        clip: float = 4.0,
        shift_rate: float = 0.2,
        rel_floor: float = 1e-3,
    ):
        for name, rate in (
            ("level_rate", level_rate),
            ("season_rate", season_rate),
            ("scale_rate", scale_rate),
            ("shift_rate", shift_rate),
        ):
            if not 0.0 < rate <= 1.0:
                raise ValueError(f"{name} must be in (0, 1], got {rate}")
        if not clip > 0.0:
            raise ValueError(f"clip must be > 0 (robust standard deviations), got {clip}")
        if not rel_floor >= 0.0:
            raise ValueError(f"rel_floor must be >= 0, got {rel_floor}")
        self.level_rate = level_rate
        self.season_rate = season_rate
        self.scale_rate = scale_rate
        self.clip = clip
        self.shift_rate = shift_rate
        self.rel_floor = rel_floor
        # learned state: plain floats and one short list
        #: number of values learnt
        self.count = 0
        #: smallest positive sampling interval seen, in seconds (0 while unknown)
        self.interval = 0.0
        self._t_prev: float | None = None
        self._season: list[float] = []  # one offset per phase, once the interval is known
        self._level = 0.0
        self._scale = 0.0  # EW mean |clipped residual|
        self._dscale = 0.0  # EW mean |clipped change|
        self._absmean = 0.0
        self._prev = 0.0  # previous value as the baseline accepted it
        self._shift = 0.0  # EW mean of residuals

    # -- reading ----------------------------------------------------------------------
    @staticmethod
    def _n_phases(dt: float) -> int:
        if dt <= 0.0:
            return 0
        if dt <= 2 * _HOUR:
            return 24
        if 0.5 * _DAY <= dt <= _SUB_WEEKLY:
            return 7
        return 0

    def phase(self, t: float | None) -> int:
        """Seasonal phase of time ``t``: hour of day, weekday (Monday = 0), or -1 for none."""
        if t is None:
            return -1
        n_phases = len(self._season)
        if n_phases == 0:
            if self._t_prev is None:
                return -1
            n_phases = self._n_phases(t - self._t_prev)
        if n_phases == 24:
            return int(t // _HOUR) % 24
        if n_phases == 7:
            return int(t // _DAY + 3) % 7  # 1970-01-01 was a Thursday
        return -1

    def expected(self, phase: int) -> float:
        """The ordinary value at ``phase``: level plus that phase's seasonal offset."""
        season = self._season
        return self._level + (season[phase] if 0 <= phase < len(season) else 0.0)

    def evidence(self, y: float, phase: int, up_only: bool) -> tuple[float, float, float, float, float]:
        """``(z residual, z change, z shift, expected, spread)`` of ``y``, before learning it.

        With ``up_only`` falls count as zero evidence (only rises are of interest).
        """
        expected = self.expected(phase)
        floor = self.rel_floor * self._absmean + 1e-12
        spread = _SIGMA_PER_MAD * self._scale + floor
        e = y - expected
        d = y - self._prev
        sh = self._shift + self.shift_rate * (e - self._shift)
        if up_only:
            e, d, sh = max(e, 0.0), max(d, 0.0), max(sh, 0.0)
        else:
            e, d, sh = abs(e), abs(d), abs(sh)
        return e / spread, d / (_SIGMA_PER_MAD * self._dscale + floor), sh / spread, expected, spread

    # -- learning ---------------------------------------------------------------------
    def learn(self, y: float, t: float | None, phase: int) -> None:
        """Learn the finite value ``y`` observed at time ``t`` (phase from :meth:`phase`)."""
        if t is not None:
            if self._t_prev is not None and t > self._t_prev:
                gap = t - self._t_prev
                self.interval = gap if self.interval <= 0.0 else min(self.interval, gap)
                if not self._season:
                    self._season = [0.0] * self._n_phases(self.interval)
            self._t_prev = t
        n = self.count
        self.count = n + 1
        if n == 0:
            self._level = self._prev = y
            self._absmean = abs(y)
            return
        expected = self.expected(phase)
        e = y - expected
        self._shift += self.shift_rate * (e - self._shift)
        # winsorised updates: a spike moves the baseline by at most `clip` spreads
        warm = 1.0 / (n + 1)
        lim = self.clip * _SIGMA_PER_MAD * self._scale if n > _CLIP_AFTER else abs(e)
        ec = -lim if e < -lim else (lim if e > lim else e)
        ar = self.level_rate if self.level_rate > warm else warm
        self._level += ar * ec
        if 0 <= phase < len(self._season):
            self._season[phase] += self.season_rate * (1.0 - ar) * ec
        sr = self.scale_rate if self.scale_rate > warm else warm
        self._scale += sr * (abs(ec) - self._scale)
        d = abs(y - self._prev)
        dlim = self.clip * _SIGMA_PER_MAD * self._dscale if n > _CLIP_AFTER else d
        self._dscale += sr * ((d if d < dlim else dlim) - self._dscale)
        self._absmean += sr * (abs(y) - self._absmean)
        self._prev = expected + ec

    def learn_zeros(self, times: list[float], up_only: bool,
                    evidence_after: int) -> list[tuple[float, float, float, float]]:
        """Learn the value 0 at each of ``times`` (oldest first) in one tight loop.

        The same arithmetic, in the same order, as ``learn(0.0, t, phase(t))`` for each
        ``t`` (so the same floats), without the per-call lookups: a quiet spell of a
        series is learned when the series has data again, once per missed window.
        Returns, for each step that had more than ``evidence_after`` points before it,
        ``(z residual, z change, z shift, interval after the step)``: the
        :meth:`evidence` of the zero before it was learned (``up_only`` as there) and
        the sampling interval, which the spike detector's other parts need.
        """
        out: list[tuple[float, float, float, float]] = []
        if not times:
            return out
        level_rate, season_rate, scale_rate = self.level_rate, self.season_rate, self.scale_rate
        clip, shift_rate, rel_floor = self.clip, self.shift_rate, self.rel_floor
        clip_sigma = clip * _SIGMA_PER_MAD
        n_phases_of = self._n_phases
        count, interval, t_prev = self.count, self.interval, self._t_prev
        season = self._season
        n_season = len(season)
        level, scale, dscale = self._level, self._scale, self._dscale
        absmean, prev, shift = self._absmean, self._prev, self._shift
        append = out.append
        for t in times:
            # phase(t), before learning
            n_ph = n_season
            if n_ph == 0 and t_prev is not None:
                n_ph = n_phases_of(t - t_prev)
            if n_ph == 24:
                phase = int(t // _HOUR) % 24
            elif n_ph == 7:
                phase = int(t // _DAY + 3) % 7
            else:
                phase = -1
            n = count
            if n > evidence_after:
                # evidence(0.0, phase, up_only), before learning
                expected = level + (season[phase] if 0 <= phase < n_season else 0.0)
                floor = rel_floor * absmean + 1e-12
                spread = _SIGMA_PER_MAD * scale + floor
                e = 0.0 - expected
                d = 0.0 - prev
                sh = shift + shift_rate * (e - shift)
                if up_only:  # max(v, 0.0) as the builtin picks
                    e = 0.0 if 0.0 > e else e
                    d = 0.0 if 0.0 > d else d
                    sh = 0.0 if 0.0 > sh else sh
                else:
                    e, d, sh = abs(e), abs(d), abs(sh)
                zs = (e / spread, d / (_SIGMA_PER_MAD * dscale + floor), sh / spread)
            # learn(0.0, t, phase)
            if t_prev is not None and t > t_prev:
                gap = t - t_prev
                interval = gap if interval <= 0.0 or gap < interval else interval
                if not n_season:
                    season = self._season = [0.0] * n_phases_of(interval)
                    n_season = len(season)
            t_prev = t
            count = n + 1
            if n == 0:
                level = prev = 0.0
                absmean = 0.0
            else:
                expected = level + (season[phase] if 0 <= phase < n_season else 0.0)
                e = 0.0 - expected
                shift += shift_rate * (e - shift)
                warm = 1.0 / (n + 1)
                lim = clip_sigma * scale if n > _CLIP_AFTER else abs(e)
                ec = -lim if e < -lim else (lim if e > lim else e)
                ar = level_rate if level_rate > warm else warm
                level += ar * ec
                if 0 <= phase < n_season:
                    season[phase] += season_rate * (1.0 - ar) * ec
                sr = scale_rate if scale_rate > warm else warm
                scale += sr * (abs(ec) - scale)
                d = abs(0.0 - prev)
                dlim = clip_sigma * dscale if n > _CLIP_AFTER else d
                dscale += sr * ((d if d < dlim else dlim) - dscale)
                absmean += sr * (0.0 - absmean)  # abs(0.0) is 0.0
                prev = expected + ec
            if n > evidence_after:
                append((*zs, interval))
        self.count, self.interval, self._t_prev = count, interval, t_prev
        self._level, self._scale, self._dscale = level, scale, dscale
        self._absmean, self._prev, self._shift = absmean, prev, shift
        return out
