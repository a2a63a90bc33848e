"""One score scale for every detector: z-equivalents, tail calibration and severity.

Each detector reduces its evidence to a *z-equivalent*: a number on the scale of a
one-sided standard-normal deviate, chosen so that the detector's own natural alarm
line sits at ``z = 3``. :func:`z_to_score` then maps it to ``[0, 1]`` with a fixed
logistic, so a threshold means the same thing for every detector:

======  ======  ==========================================================
z       score   reading
======  ======  ==========================================================
0       0.0025  ordinary
1       0.018
2       0.119   a two-sigma wobble: still low
3       0.5     **alarm line**: a 1-in-741 upper tail for Gaussian noise
4       0.881
5       0.982
6       0.9975
======  ======  ==========================================================

Detectors whose raw score has no natural z (for instance HalfSpaceTrees' mass) pass
it through :class:`OnlineTailCalibrator`, which turns it into an upper-tail
probability against recent raw scores, then into a z with the normal quantile, so an
observation in the top 0.135 % of recent ones also scores 0.5.

What reaches the alarm line (0.5), detector by detector:

* ``changepoint``: the CUSUM of persistent residuals reaches its ``threshold``;
* ``spike``: an observation ``alarm_ratio`` (1.6) times as extreme as the most
  extreme one of the series' recent history (:func:`ratio_to_z`), so the alarm line
  adapts to how wild the series is;
* ``passthrough``: both legs 3 sigmas above baseline, outflow no earlier than inflow;
* ``unit_value``: a unit value 3 sigmas from its HS6 code's centre (or HalfSpaceTrees
  mass in the top 0.135 % of recent declarations);
* ``novelty`` has no z: its score is a product of weights, set so that a new
  exporter or consignee of tier 1, 2 or 3A goods at a typical value crosses 0.5 and
  a new pair of known parties does not (see ``detectors.novelty``).

:func:`severity` turns a score and the goods' CHPL tier into an analyst label.
:func:`update_robust_level` is the robust running centre/scale every detector here
uses for its baselines (a few floats of state).

Ranking
-------
Thresholds sit where the logistic is flat (0.99 is ``z = 5.3``), so published
scores all read 0.99-1.00 and cannot order alerts. Every alert therefore also
carries an unsaturated ranking figure, its **surprise**: ``-log10 p`` where ``p``
is the one-sided standard-normal upper tail of the detector's z-equivalent
(:func:`evidence_z`, :func:`surprise_of_z`). Read it as "one in ``10**surprise``":
the alarm line ``z = 3`` is 2.87, ``z = 5`` is 6.54, ``z = 10`` is 23.1. It is a
monotone function of the same evidence the score is (a larger z never ranks
lower) and it keeps growing where the score has long reached 1.00.

>>> round(z_to_score(3.0), 3)
0.5
>>> round(score_to_z(z_to_score(4.2)), 6)
4.2
>>> severity(0.7, "1"), severity(0.7, "4B"), severity(0.7, None)
('high', 'medium', 'low')
"""

from __future__ import annotations

import bisect
import collections
import math
from collections.abc import Mapping
from statistics import NormalDist
from typing import Any, Literal

__all__ = [
    "SIGMA_PER_MEAN_ABS_DEV",
    "SEVERITY_LEVELS",
    "SURPRISE_ALARM",
    "SURPRISE_HIGH",
    "SURPRISE_CRITICAL",
    "MATERIAL_EXCESS_EUR",
    "evidence_z",
    "excess_above",
    "surprise_of_z",
    "Z_ALARM",
    "Z_PER_LOG_RATIO",
    "OnlineTailCalibrator",
    "ratio_to_z",
    "pareto_tail_z",
    "robust_sigma",
    "score_to_z",
    "severity",
    "tail_probability_to_score",
    "update_robust_level",
    "z_to_score",
]

#: The z-equivalent that maps to score 0.5: each detector's alarm line.
Z_ALARM = 3.0
#: Logistic slope per unit of z: 2 puts z=2 at 0.12 and z=4 at 0.88, so the step
#: from "ordinary" to "anomalous" happens within about one sigma of the alarm line.
_SLOPE = 2.0
#: z-equivalent gained per e-fold of a scale-free ratio (:func:`ratio_to_z`). With the
#: logistic slope 2 this makes ``score = q**4 / (1 + q**4)`` for ``q = ratio / alarm_ratio``:
#: a tenth more extreme than the alarm ratio is 0.59, twice as extreme 0.94.
Z_PER_LOG_RATIO = 2.0
#: z is clipped to this range before exp() so extreme inputs cannot overflow.
_Z_CLIP = 50.0
#: For Gaussian noise E|r| = sigma * sqrt(2/pi), so sigma = 1.2533 * mean |r|.
SIGMA_PER_MEAN_ABS_DEV = math.sqrt(math.pi / 2.0)

Severity = Literal["low", "medium", "high", "critical"]
SEVERITY_LEVELS: tuple[Severity, ...] = ("low", "medium", "high", "critical")
#: Tiers whose goods have the strongest official weight (BIS / E5 "highest priority").
_BUMPED_TIERS = frozenset({"1", "2"})
_CHPL_TIERS = frozenset({"1", "2", "3A", "3B", "4A", "4B"})

_NORMAL = NormalDist()
_exp = math.exp
_SQRT2 = math.sqrt(2.0)
_LN10 = math.log(10.0)
_LN_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
#: Above this z the tail comes from its asymptotic series (erfc underflows near 38).
_Z_ASYMPTOTIC = 30.0
#: z beyond which the surprise stops growing: keeps the figure finite.
_Z_SURPRISE_CAP = 1e4


def z_to_score(z: float) -> float:
    """Map a z-equivalent to ``[0, 1]``: ``1 / (1 + exp(-2 (z - 3)))``.

    Monotone and continuous; ``z = 3`` gives 0.5 (see the module table). NaN means
    "no evidence" and gives 0.

    >>> [round(z_to_score(z), 3) for z in (0, 2, 3, 4, 6)]
    [0.002, 0.119, 0.5, 0.881, 0.998]
    """
    # Written without min()/max() calls: this runs once per declaration.
    if z > _Z_CLIP:
        z = _Z_CLIP
    elif z < -_Z_CLIP:
        z = -_Z_CLIP
    elif z != z:  # NaN
        return 0.0
    return 1.0 / (1.0 + _exp(_SLOPE * (Z_ALARM - z)))


def score_to_z(score: float) -> float:
    """Inverse of :func:`z_to_score`, for turning a score threshold back into a z.

    >>> score_to_z(0.5)
    3.0
    """
    score = min(max(score, 1e-300), 1.0 - 1e-16)
    return Z_ALARM + math.log(score / (1.0 - score)) / _SLOPE


def ratio_to_z(ratio: float, alarm_ratio: float) -> float:
    """z-equivalent of a scale-free ratio: ``Z_ALARM + 2 ln(ratio / alarm_ratio)``.

    For evidence of the form "this observation is ``ratio`` times as extreme as a
    reference" (for instance the most extreme one of a series' recent past). Such a
    ratio has no Gaussian z; it goes onto the shared scale on a log axis, so that
    ``ratio == alarm_ratio`` is the alarm line (score 0.5) and each e-fold of the
    ratio adds :data:`Z_PER_LOG_RATIO`. A heavy (power-law) tail has exactly this
    shape: the log of the tail probability falls linearly in ``ln ratio``. The map
    is monotone, so it ranks as the ratio does. ``ratio <= 0`` (no evidence) gives
    ``-inf``.

    >>> ratio_to_z(1.6, alarm_ratio=1.6)
    3.0
    >>> [round(z_to_score(ratio_to_z(r, 1.6)), 2) for r in (0.8, 1.6, 1.76, 3.2)]
    [0.06, 0.5, 0.59, 0.94]
    >>> ratio_to_z(0.0, alarm_ratio=1.6)
    -inf
    """
    if not ratio > 0.0:
        return -math.inf
    return Z_ALARM + Z_PER_LOG_RATIO * math.log(ratio / alarm_ratio)


def tail_probability_to_z(p: float) -> float:
    """The one-sided normal z whose upper tail is ``p`` (``p`` kept in ``[1e-300, 1 - 1e-12]``).

    >>> round(tail_probability_to_z(0.00135), 2), round(tail_probability_to_z(1e-100), 1)
    (3.0, 21.3)
    """
    p = min(max(p, 1e-300), 1.0 - 1e-12)
    return _NORMAL.inv_cdf(1.0 - p) if p > 1e-15 else -_NORMAL.inv_cdf(p)


def tail_probability_to_score(p: float) -> float:
    """Score an upper-tail probability ``p`` through its one-sided normal z.

    >>> round(tail_probability_to_score(0.00135), 2)
    0.5
    >>> tail_probability_to_score(1.0) < 0.01
    True
    """
    return z_to_score(tail_probability_to_z(p))


def surprise_of_z(z: float) -> float:
    """``-log10`` of the one-sided standard-normal upper tail beyond ``z``: the ranking figure.

    Strictly increasing in ``z`` and never saturating: the tail is computed from
    ``erfc`` up to ``z = 30`` and from its asymptotic (Mills-ratio) series beyond,
    where ``erfc`` would underflow. ``-inf`` and NaN (no evidence) give 0; ``z`` is
    capped at ``1e4`` (a surprise of about 2.2e7) so the figure stays finite JSON.

    >>> [round(surprise_of_z(z), 2) for z in (0.0, 3.0, 5.0, 10.0, 40.0)]
    [0.3, 2.87, 6.54, 23.12, 349.44]
    >>> surprise_of_z(-math.inf), surprise_of_z(math.nan)
    (0.0, 0.0)
    """
    if z != z or z == -math.inf:
        return 0.0
    z = min(z, _Z_SURPRISE_CAP)
    if z < _Z_ASYMPTOTIC:
        return -math.log10(0.5 * math.erfc(z / _SQRT2))
    # ln Q(z) = -z^2/2 - ln z - ln sqrt(2 pi) + ln(1 - 1/z^2 + 3/z^4 - 15/z^6 ...)
    inv2 = 1.0 / (z * z)
    series = 1.0 - inv2 + 3.0 * inv2 * inv2 - 15.0 * inv2 ** 3
    ln_q = -0.5 * z * z - math.log(z) - _LN_SQRT_2PI + math.log(series)
    return -ln_q / _LN10


def pareto_tail_z(z: float, knee: float, alpha: float) -> float:
    """``z`` read through a Gaussian tail up to ``knee`` and a Pareto tail beyond it.

    For a detector whose z is a mean/variance deviate of something heavy-tailed (a
    window total that is a sum of a few declarations of log-normal sizes): its
    Gaussian reading is believed near the alarm line, where thresholds sit, but not
    thirty sigmas out, where the normal tail would call a lumpy lane's big week one in
    ``10**1700``. Beyond ``knee`` the upper tail continues as ``Q(knee) *
    (z / knee) ** -alpha`` (continuous at the knee), and the z returned is the normal
    deviate with that tail: the same below the knee, monotone, growing like
    ``sqrt(2 alpha ln z)`` beyond it. So the surprise (:func:`surprise_of_z` of it)
    grows by ``alpha`` per tenfold of ``z`` past the knee instead of quadratically.

    >>> pareto_tail_z(4.0, knee=6.45, alpha=0.9)
    4.0
    >>> round(surprise_of_z(pareto_tail_z(64.5, knee=6.45, alpha=0.9)) - surprise_of_z(6.45), 4)
    0.9
    >>> pareto_tail_z(math.inf, knee=6.45, alpha=0.9) < 40
    True
    """
    if not z > knee:  # includes NaN
        return z
    ln_tail = (math.log(0.5 * math.erfc(knee / _SQRT2))
               - alpha * math.log(min(z, 1e300) / knee))
    # -inv_cdf(p), not inv_cdf(1 - p): 1 - p loses p's digits when p is tiny
    return -_NORMAL.inv_cdf(math.exp(max(ln_tail, -690.0)))


#: Surprise of the alarm line ``z = 3`` (2.87): the lowest "medium".
SURPRISE_ALARM = surprise_of_z(Z_ALARM)
#: Lowest "high": one in 100 000 (``z`` about 4.26).
SURPRISE_HIGH = 5.0
#: Lowest "critical": one in ten billion (``z`` about 6.36).
SURPRISE_CRITICAL = 10.0
#: A non-CHPL observation needs this surprise (about a score of 0.99) to reach "medium".
SURPRISE_NON_CHPL = 7.0
_SURPRISE_BANDS: tuple[tuple[float, Severity], ...] = (
    (SURPRISE_CRITICAL, "critical"),
    (SURPRISE_HIGH, "high"),
    (SURPRISE_ALARM, "medium"),
)
#: Excess value (EUR above the expected range) below which an alert is at most
#: "medium", and at most "high": a surge of a few thousand euros is improbable,
#: perhaps, but not what an analyst should read first.
MATERIAL_EXCESS_EUR: tuple[float, float] = (10_000.0, 100_000.0)


def evidence_z(score: float, details: Mapping[str, Any]) -> float:
    """The z-equivalent behind a detector's score, unsaturated where the detector exposes it.

    Read from the explanation's ``details``, in this order:

    1. ``evidence_z`` (pass-through: the combined evidence of both legs);
    2. ``cusum_up``/``cusum_down`` with ``threshold`` (change point: its score is
       ``z_to_score(3 * cusum / threshold)``, so that is its z);
    3. ``z``, as a magnitude (spike, volume's compound evidence, unit value, whose
       drops and undervaluations are evidence too);

    and never below ``score_to_z(score)``, the z the published score itself
    implies. That inverse is exact until the score saturates near ``z = 21``,
    so it covers detectors without a z of their own (novelty, HalfSpaceTrees on
    unit values) and keeps the figure monotone in the score.

    >>> evidence_z(0.5, {})
    3.0
    >>> evidence_z(1.0, {"z": 40.0})
    40.0
    >>> evidence_z(1.0, {"cusum_up": 50.0, "cusum_down": 0.0, "threshold": 5.0, "z": 2.0})
    30.0
    """
    z = score_to_z(score) if score > 0.0 else -math.inf
    found: Any = details.get("evidence_z")
    if found is None and "threshold" in details and "cusum_up" in details:
        threshold = details["threshold"]
        stat = max(details.get("cusum_up") or 0.0, details.get("cusum_down") or 0.0)
        found = Z_ALARM * stat / threshold if threshold else None
    elif found is None:
        found = details.get("z")
    if isinstance(found, bool) or not isinstance(found, int | float) or found != found:
        return z
    found = float(found)
    if found == -math.inf:  # "no evidence yet" (a detector in its warm-up)
        return z
    return max(z, abs(found))


def excess_above(observed: float, expected_high: float) -> float:
    """How far ``observed`` lies above the upper end of the expected range; 0 inside it.

    Non-negative by construction, and 0 when either number is missing (no
    baseline yet: no range to exceed).

    >>> excess_above(150_000.0, 100_000.0), excess_above(90_000.0, 100_000.0)
    (50000.0, 0.0)
    >>> excess_above(5.0, math.nan)
    0.0
    """
    if not (math.isfinite(observed) and math.isfinite(expected_high)):
        return 0.0
    return max(0.0, observed - expected_high)


def severity(
    score: float,
    chpl_tier: str | None,
    *,
    surprise: float | None = None,
    excess_eur: float | None = None,
) -> Severity:
    """Analyst label from the evidence's magnitude and the goods' CHPL tier together.

    ``surprise`` is the ranking figure (``-log10 p``, see :func:`surprise_of_z`);
    without it, it is derived from ``score``. ``excess_eur`` is the value above the
    expected range, for evidence in EUR (``None`` for unit values, EUR/kg). The
    rule, in order:

    1. Magnitude bands on the surprise: below :data:`SURPRISE_ALARM` (2.87, the
       alarm line ``z = 3``) "low"; then "medium"; "high" from
       :data:`SURPRISE_HIGH` (5: one in 100 000); "critical" from
       :data:`SURPRISE_CRITICAL` (10: one in ten billion).
    2. Tier "1" or "2" goods (the nine highest-priority HS codes): one level up,
       only at or above the alarm line, never above "critical".
    3. Materiality, when the excess is known: below ``MATERIAL_EXCESS_EUR[0]``
       (10 kEUR) at most "medium", below ``MATERIAL_EXCESS_EUR[1]`` (100 kEUR) at
       most "high". Improbable but small money does not page anyone.
    4. Non-CHPL goods (``chpl_tier`` ``None`` or ``""``): "low", or "medium" when
       the surprise reaches :data:`SURPRISE_NON_CHPL` (7, about a score of 0.99).

    Tiers 3A to 4B use the bands unchanged. An unknown tier raises ``ValueError``.

    >>> severity(0.3, "1"), severity(0.85, "3A"), severity(0.96, "2"), severity(0.995, "")
    ('low', 'medium', 'critical', 'medium')
    >>> severity(1.0, "1", surprise=40.0, excess_eur=2e6)
    'critical'
    >>> severity(1.0, "1", surprise=40.0, excess_eur=4e3)
    'medium'
    """
    if surprise is None:
        surprise = surprise_of_z(score_to_z(score)) if score > 0.0 else 0.0
    if chpl_tier is None or chpl_tier == "":
        return "medium" if surprise >= SURPRISE_NON_CHPL else "low"
    if chpl_tier not in _CHPL_TIERS:
        raise ValueError(
            f"unknown CHPL tier {chpl_tier!r}; valid tiers are {sorted(_CHPL_TIERS)} "
            "or None/'' for goods not on the list"
        )
    level = 0
    for bound, name in _SURPRISE_BANDS:
        if surprise >= bound:
            level = SEVERITY_LEVELS.index(name)
            break
    if level > 0 and chpl_tier in _BUMPED_TIERS:
        level = min(level + 1, len(SEVERITY_LEVELS) - 1)
    if excess_eur is not None:
        for bound, cap in zip(MATERIAL_EXCESS_EUR, (1, 2), strict=True):
            if excess_eur < bound:
                level = min(level, cap)
                break
    return SEVERITY_LEVELS[level]


def robust_sigma(mean_abs_dev: float, min_scale: float) -> float:
    """Standard-deviation estimate from a mean absolute deviation, floored at ``min_scale``."""
    return max(SIGMA_PER_MEAN_ABS_DEV * mean_abs_dev, min_scale)


def update_robust_level(
    n: float,
    centre: float,
    mean_abs_dev: float,
    y: float,
    alpha: float,
    clip: float,
    min_scale: float,
) -> tuple[float, float, float]:
    """One step of a robust exponentially weighted centre and scale.

    The residual ``y - centre`` is clipped to ``clip`` sigmas (a Huber-type
    M-estimate, so one wild value moves the baseline by at most
    ``alpha * clip * sigma``) before it updates the centre and the mean absolute
    deviation. The weight is ``max(alpha, 1/n)``: a plain running mean for the
    first ``1/alpha`` observations, then an exponential forget. For symmetric noise
    the centre tracks the median. Returns the new ``(n, centre, mean_abs_dev)``.

    >>> state = (0.0, 0.0, 0.0)
    >>> for y in (10.0, 10.2, 9.8, 10.1, 9.9, 50.0):
    ...     state = update_robust_level(*state, y, alpha=0.1, clip=3.0, min_scale=0.1)
    >>> round(state[1], 2)   # the 50 moved the centre by about one clipped step only
    10.09
    """
    n += 1.0
    if n <= 1.0:
        return n, y, 0.0
    weight = max(alpha, 1.0 / n)
    limit = clip * robust_sigma(mean_abs_dev, min_scale)
    r = min(max(y - centre, -limit), limit)
    centre += weight * r
    mean_abs_dev += weight * (abs(r) - mean_abs_dev)
    return n, centre, mean_abs_dev


class OnlineTailCalibrator:
    """Upper-tail calibration of raw scores against the last ``window`` of them.

    Keeps the last ``window`` raw scores (a ring plus a sorted copy: bounded memory,
    ``O(window)`` memmove per update, about a microsecond for 1000). Inside the body
    of the distribution the tail probability is the empirical one,
    ``(#{past >= raw} + 1) / (n + 1)``. Above the top ``tail_fraction`` it is
    extrapolated with an exponential tail fitted to the mean excess of those top
    values (peaks over threshold), so scores keep rising past the largest value
    seen instead of saturating at ``1 / (n + 1)``. The probability then goes
    through :func:`tail_probability_to_score`, the shared scale.

    Before ``min_samples`` raw scores it returns 0 (no reference yet).

    >>> import random
    >>> rng = random.Random(7)
    >>> cal = OnlineTailCalibrator(window=500)
    >>> for _ in range(500):
    ...     cal.update(rng.random())
    >>> cal.score(0.5) < 0.01, cal.score(1.2) > 0.9
    (True, True)
    """

    def __init__(self, window: int = 1000, tail_fraction: float = 0.05, min_samples: int = 50):
        if window < 2:
            raise ValueError(f"window must be >= 2, got {window}")
        if not 0.0 < tail_fraction < 1.0:
            raise ValueError(f"tail_fraction must be in (0, 1), got {tail_fraction}")
        self.window = window
        self.tail_fraction = tail_fraction
        self.min_samples = min_samples
        self._ring: collections.deque[float] = collections.deque()
        self._sorted: list[float] = []

    def __len__(self) -> int:
        return len(self._sorted)

    def update(self, raw: float) -> None:
        """Add one raw score (drops the oldest when the window is full)."""
        if raw != raw:
            return
        if len(self._ring) >= self.window:
            old = self._ring.popleft()
            del self._sorted[bisect.bisect_left(self._sorted, old)]
        self._ring.append(raw)
        bisect.insort(self._sorted, raw)

    def tail_probability(self, raw: float) -> float:
        """Estimated ``P(next raw score >= raw)``; 1.0 before ``min_samples``."""
        values = self._sorted
        n = len(values)
        if n < self.min_samples or raw != raw:
            return 1.0
        k = max(5, int(self.tail_fraction * n))
        threshold = values[n - k]
        if raw <= threshold:
            return (n - bisect.bisect_left(values, raw) + 1) / (n + 1)
        mean_excess = sum(values[n - k :]) / k - threshold
        mean_excess = max(mean_excess, 1e-9 * (1.0 + abs(threshold)))
        return (k / (n + 1)) * math.exp(-(raw - threshold) / mean_excess)

    def score(self, raw: float) -> float:
        """Calibrated ``[0, 1]`` score of ``raw``; 0 before ``min_samples``."""
        if len(self._sorted) < self.min_samples:
            return 0.0
        return tail_probability_to_score(self.tail_probability(raw))
