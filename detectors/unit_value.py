"""Declaration-level unit-value outliers for one HS chapter (misdeclared EUR/kg).

Chips declared at a fraction of their usual EUR per kg (to slip under value
thresholds, or to hide what they are) and goods sold far above market price (the
"overpaying customer" red flag) both show up as a unit value far from what that HS6
code usually costs. The pipeline keeps one instance per HS2 chapter.
"""

from __future__ import annotations

import math
from typing import Any

from detectors.base import Detector, Explanation
from detectors.calibration import (
    SIGMA_PER_MEAN_ABS_DEV,
    Z_ALARM,
    OnlineTailCalibrator,
    robust_sigma,
    z_to_score,
)

__all__ = ["UnitValueDetector"]

#: HalfSpaceTrees shape when it is switched on: river's defaults (height 8, window 250).
_HST_HEIGHT = 8
_HST_WINDOW = 250
_SIGMA_PER_MAD = SIGMA_PER_MEAN_ABS_DEV


class UnitValueDetector(Detector):
    """Robust per-HS6 z-score of log unit value (EUR/kg), with optional HalfSpaceTrees.

    For each HS6 code the detector keeps three floats: a count, a robust running
    centre of ``log(value_eur / net_mass_kg)`` (tracks the median for symmetric
    noise) and its mean absolute deviation
    (:func:`detectors.calibration.update_robust_level`). The primary score is the
    two-sided ``|z|`` of a declaration's log unit value against its code, mapped
    with :func:`detectors.calibration.z_to_score`: 0.5 at three sigmas, i.e. the
    ``expected_low``/``expected_high`` of the explanation.

    That costs about a microsecond per declaration. HalfSpaceTrees over (log unit
    value, log mass, log value, unit-value z), behind a ``MinMaxScaler`` because it
    assumes features in ``[0, 1]``, costs tens of microseconds and ~170 KB of state,
    so it is off by default (``hst_trees=0``). When on, its raw score is calibrated
    with :class:`detectors.calibration.OnlineTailCalibrator` and the final score is
    the larger of the two; ``hst_learn_every=k`` trains it on every k-th
    declaration only (scoring still costs its full price).

    A code with fewer than ``grace_period`` declarations scores 0, as does a
    declaration without a positive value and net mass.

    Learning is Huber-clipped, so one outlier moves its code's centre by at most
    ``alpha * clip * sigma``; but an uninterrupted run of misdeclarations of one
    code is absorbed: with the defaults, of 20 consecutive chips declared at a
    tenth of their usual unit value 17-20 score above 0.5, and the next ones fade
    (``tests/unit/detectors/test_unit_value.py``). Lower ``alpha`` slows this.

    Parameters
    ----------
    alpha
        Per-code exponential weight once the code has ``1/alpha`` declarations.
    grace_period
        Declarations of a code learned before it is scored.
    clip
        Residuals beyond ``clip`` sigmas are clipped when learning, so a burst of
        misdeclared goods moves its code's baseline only slowly.
    min_scale
        Floor on sigma in log units (0.1 is about +-10 %).
    max_codes
        Most HS6 codes tracked; declarations of further new codes are scored 0 and
        not learned (a chapter has a few hundred codes, so this only guards against
        garbage codes).
    hst_trees
        Number of HalfSpaceTrees; 0 switches HalfSpaceTrees off.
    hst_learn_every
        Train HalfSpaceTrees on one declaration in this many.
    seed
        Seed of HalfSpaceTrees.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(3)
    >>> det = UnitValueDetector()
    >>> for _ in range(200):   # chips at about 2000 EUR/kg
    ...     mass = rng.uniform(1, 50)
    ...     det.learn_one({"value_eur": 2000 * mass * rng.lognormvariate(0, 0.4),
    ...                    "net_mass_kg": mass, "hs6": "854231"})
    >>> ordinary = {"value_eur": 42_000.0, "net_mass_kg": 20.0, "hs6": "854231"}
    >>> cheap = {"value_eur": 4_000.0, "net_mass_kg": 20.0, "hs6": "854231"}
    >>> round(det.score_one(ordinary), 3), round(det.score_one(cheap), 3)
    (0.004, 0.994)
    >>> e = det.explain_one(cheap)
    >>> round(e.observed), e.expected_low < 2000 < e.expected_high, e.details["direction"]
    (200, True, 'below')
    """

    def __init__(
        self,
        alpha: float = 0.01,
        grace_period: int = 20,
        clip: float = 3.0,
        min_scale: float = 0.1,
        max_codes: int = 1000,
        hst_trees: int = 0,
        hst_learn_every: int = 1,
        seed: int = 42,
    ):
        if not 0 < alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        if grace_period < 2:
            raise ValueError(
                f"grace_period must be >= 2 (a scale needs two values), got {grace_period}"
            )
        if not clip > 0:
            raise ValueError(f"clip must be > 0, got {clip}")
        if not min_scale > 0:
            raise ValueError(f"min_scale must be > 0, got {min_scale}")
        if max_codes < 1:
            raise ValueError(f"max_codes must be >= 1, got {max_codes}")
        if hst_trees < 0:
            raise ValueError(f"hst_trees must be >= 0 (0 switches it off), got {hst_trees}")
        if hst_learn_every < 1:
            raise ValueError(f"hst_learn_every must be >= 1, got {hst_learn_every}")
        self.alpha = alpha
        self.grace_period = grace_period
        self.clip = clip
        self.min_scale = min_scale
        self.max_codes = max_codes
        self.hst_trees = hst_trees
        self.hst_learn_every = hst_learn_every
        self.seed = seed
        #: HS6 -> (count, centre, mean absolute deviation) of log unit value.
        self._codes: dict[str, tuple[float, float, float]] = {}
        self._learned = 0
        self._hst: Any = None
        self._hst_calibrator: OnlineTailCalibrator | None = None
        if hst_trees > 0:
            from river import anomaly, preprocessing

            self._hst = preprocessing.MinMaxScaler() | anomaly.HalfSpaceTrees(
                n_trees=hst_trees, height=_HST_HEIGHT, window_size=_HST_WINDOW, seed=seed
            )
            self._hst_calibrator = OnlineTailCalibrator()

    @classmethod
    def _unit_test_params(cls):  # type: ignore[no-untyped-def]
        yield {}
        yield {"hst_trees": 3, "grace_period": 5}
        yield {"max_codes": 1, "grace_period": 2}  # the cap on codes, and scoring early

    @classmethod
    def _unit_test_inputs(cls) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for i in range(30):
            mass = 1.0 + (i * 7) % 13
            wobble = 1.0 + 0.2 * ((i * 5) % 7 - 3) / 3
            out.append({"value_eur": 2000.0 * mass * wobble, "net_mass_kg": mass, "hs6": "854231"})
            out.append({"value_eur": 30.0 * mass * wobble, "net_mass_kg": mass, "hs6": "851762"})
        out.append({"value_eur": 200.0, "net_mass_kg": 1.0, "hs6": "854231"})
        out.append({"value_eur": 0.0, "net_mass_kg": 0.0, "hs6": "854231"})
        out.append({"value_eur": 5e7, "net_mass_kg": 1e-3, "hs6": "999999"})
        out.append({"value_eur": math.nan, "net_mass_kg": 2.0, "hs6": "854231"})
        out.append({"value_eur": 100.0, "net_mass_kg": None, "hs6": "854231"})
        return out

    # -- internals --------------------------------------------------------------------

    @staticmethod
    def _log_unit_value(x: dict[str, Any]) -> float | None:
        value = x.get("value_eur")
        mass = x.get("net_mass_kg")
        if not value or not mass or value <= 0 or mass <= 0:
            return None
        lu = math.log(value / mass)
        return lu if math.isfinite(lu) else None

    def _z(
        self, x: dict[str, Any]
    ) -> tuple[float, tuple[float, float, float] | None, float | None]:
        """(unit-value z or 0, the code's stats if scored, log unit value)."""
        lu = self._log_unit_value(x)
        stats = self._codes.get(x.get("hs6", ""))
        if lu is None or stats is None or stats[0] < self.grace_period:
            return 0.0, None, lu
        return (lu - stats[1]) / robust_sigma(stats[2], self.min_scale), stats, lu

    def _hst_features(self, x: dict[str, Any], lu: float, z: float) -> dict[str, float]:
        return {
            "log_unit_value": lu,
            "log_mass": math.log(x["net_mass_kg"]),
            "log_value": math.log(x["value_eur"]),
            "unit_value_z": max(min(z, 10.0), -10.0),
        }

    def _hst_score(self, x: dict[str, Any], lu: float | None, z: float) -> float:
        calibrator = self._hst_calibrator
        if self._hst is None or lu is None or calibrator is None:
            return 0.0
        if len(calibrator) < calibrator.min_samples:
            # Also keeps score_one pure: river's MinMaxScaler adds an entry to its
            # defaultdicts for every feature it transforms before having learned it.
            return 0.0
        raw = self._hst.score_one(self._hst_features(x, lu, z))
        return calibrator.score(raw)

    # -- contract ---------------------------------------------------------------------

    def learn_one(self, x: dict[str, Any]) -> None:
        lu = self._log_unit_value(x)
        if lu is None:
            return
        hs6 = x.get("hs6", "")
        stats = self._codes.get(hs6)
        if stats is None and len(self._codes) >= self.max_codes:
            return
        if self._hst is not None and self._hst_calibrator is not None:
            self._learned += 1
            if self._learned % self.hst_learn_every == 0:
                features = self._hst_features(x, lu, self._z(x)[0])
                self._hst_calibrator.update(self._hst.score_one(features))
                self._hst.learn_one(features)
        self._update(hs6, stats, lu)

    def _update(self, hs6: str, stats: tuple[float, float, float] | None, lu: float) -> None:
        """Move code ``hs6``'s statistics (``stats``, None for a new code) towards ``lu``."""
        if stats is None:
            self._codes[hs6] = (1.0, lu, 0.0)
            return
        # Inlined update_robust_level (this is the per-declaration hot path).
        n, centre, mad = stats
        n += 1.0
        weight = self.alpha if self.alpha * n > 1.0 else 1.0 / n
        r = lu - centre
        if n > self.grace_period:
            sigma = _SIGMA_PER_MAD * mad
            limit = self.clip * (sigma if sigma > self.min_scale else self.min_scale)
            r = limit if r > limit else (-limit if r < -limit else r)
        self._codes[hs6] = (n, centre + weight * r, mad + weight * (abs(r) - mad))

    def score_then_learn(self, x: dict[str, Any], threshold: float | None,
                         learn: bool = True) -> tuple[float, Explanation | None]:
        """As the base class, reading the code's statistics and the log unit value once.

        Without HalfSpaceTrees (the shipped config) this is the per-declaration hot
        path: the same arithmetic as :meth:`score_one` then :meth:`learn_one`.
        """
        if self._hst is not None:
            return super().score_then_learn(x, threshold, learn)
        hs6 = x.get("hs6", "")
        stats = self._codes.get(hs6)
        lu = self._log_unit_value(x)
        score = self._plain_score(stats, lu)
        explanation = self.explain_one(x) if threshold is not None and score >= threshold else None
        if learn and lu is not None and (stats is not None or len(self._codes) < self.max_codes):
            self._update(hs6, stats, lu)
        return score, explanation

    def score_one(self, x: dict[str, Any]) -> float:
        if self._hst is not None:
            z, stats, lu = self._z(x)
            score = z_to_score(abs(z)) if stats is not None else 0.0
            return max(score, self._hst_score(x, lu, z))
        return self._plain_score(self._codes.get(x.get("hs6", "")), self._log_unit_value(x))

    def _plain_score(self, stats: tuple[float, float, float] | None, lu: float | None) -> float:
        """The score without HalfSpaceTrees from the code's statistics and the log unit
        value: the arithmetic of :meth:`_z`, inlined (the per-declaration hot path)."""
        if stats is None or stats[0] < self.grace_period or lu is None:
            return 0.0
        sigma = _SIGMA_PER_MAD * stats[2]
        return z_to_score(
            abs(lu - stats[1]) / (sigma if sigma > self.min_scale else self.min_scale)
        )

    def explain_one(self, x: dict[str, Any]) -> Explanation:
        z, stats, lu = self._z(x)
        hs6 = x.get("hs6", "")
        known = self._codes.get(hs6)
        observed = math.exp(lu) if lu is not None else math.nan
        if known is None:
            expected = low = high = math.nan
        else:
            sigma = robust_sigma(known[2], self.min_scale)
            expected = math.exp(known[1])
            low = math.exp(known[1] - Z_ALARM * sigma)
            high = math.exp(known[1] + Z_ALARM * sigma)
        details: dict[str, Any] = {
            "hs6": hs6,
            "unit": "EUR/kg",
            "declarations_for_code": int(known[0]) if known else 0,
        }
        if lu is None:
            details["reason"] = "no positive value and net mass"
        elif stats is None:
            details["reason"] = "not enough declarations of this code yet"
        else:
            details.update(
                z=z,
                direction="below" if z < 0 else "above",
                ratio_to_expected=observed / expected,
            )
        if self._hst is not None:
            details["hst_score"] = self._hst_score(x, lu, z)
        return Explanation(observed, expected, low, high, self.score_one(x), details)
