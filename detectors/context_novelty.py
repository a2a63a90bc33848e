"""Context novelty: has this series ever moved like this before?

One part of :class:`detectors.spike.SeasonalRobustSpikeDetector`, after the
context-based detector "CAD OSE" of the Numenta Anomaly Benchmark. It catches new
patterns and level changes that are not extreme in z, and gives them a
z-equivalent below the alarm line: novelty ranks observations but never raises an
alarm on its own.
"""

from __future__ import annotations

import math

from detectors.base import Part

__all__ = ["ContextNovelty"]

#: Weights of the order-1, -2 and -3 contexts: an unseen short context is more surprising.
_WEIGHTS = (4, 2, 1)
_TOTAL_WEIGHT = 7.0
#: Knuth's multiplicative hash constant, for the order-3 contexts.
_HASH = 2654435761


class ContextNovelty(Part):
    """Share of never-seen transitions "last 1, 2 or 3 value bins -> this bin".

    Each value is quantised into ``levels`` equal bins of the range seen so far.
    A bit table of ``bits`` bits remembers every transition the series has made
    from its last one, two or three bins to the next (orders 1 and 2 exactly,
    order 3 hashed into the rest of the table). The novelty of a value is the
    weighted share of its three contexts never seen before (weights 4, 2, 1), in
    ``[0, 1]``; its z-equivalent is ``max_z * novelty``. With ``max_z`` below the
    alarm line (3) a new pattern ranks high, which matters to a global threshold
    as on NAB, yet trade alarms are still carried by extremity evidence.

    After a strongly novel value (novelty >= ``trigger``) the part rests for
    ``rest`` values: the aftermath of one change is not reported again and again.
    ``levels = 0`` turns the part off (no table, no evidence).

    Parameters
    ----------
    levels
        Number of value bins (0 turns context novelty off).
    max_z
        z-equivalent of a completely new context (all three orders unseen).
    rest, trigger
        Novelty is muted for ``rest`` values after one of at least ``trigger``.
    bits
        Size of the bit table (at least ``levels**3 + levels**2 + 64``).

    Examples
    --------
    A square wave between 0 and 10, then a value in a bin never visited:

    >>> nov = ContextNovelty()
    >>> for i in range(400):
    ...     nov.learn(10.0 if (i // 20) % 2 else 0.0, scoring=True)
    >>> nov.novelty(10.0), nov.novelty(5.0)
    (0.0, 1.0)
    >>> nov.z(5.0)
    2.9
    """

    def __init__(
        self,
        levels: int = 10,
        max_z: float = 2.9,
        rest: int = 150,
        trigger: float = 0.75,
        bits: int = 6144,
    ):
        if levels < 0 or (levels and bits < levels**3 + levels**2 + 64):
            raise ValueError("levels must be >= 0 and bits >= levels**3 + levels**2 + 64")
        if not max_z >= 0.0:
            raise ValueError(f"max_z must be >= 0, got {max_z}")
        self.levels = levels
        self.max_z = max_z
        self.rest = rest
        self.trigger = trigger
        self.bits = bits
        # learned state: the bit table, the value range, the last bins, the rest counter
        self._seen = bytearray((bits + 7) // 8 if levels else 0)
        self._lo = math.inf
        self._hi = -math.inf
        self._ctx = 0  # last three bins, base `levels`
        self._since = 1 << 30  # values since the last strong novelty

    def _bin(self, y: float) -> int:
        lo, hi, n_bins = self._lo, self._hi, self.levels
        if not hi > lo:
            return 0
        b = int((y - lo) / (hi - lo) * n_bins)
        return 0 if b < 0 else (n_bins - 1 if b >= n_bins else b)

    def _codes(self, b: int) -> tuple[int, int, int]:
        """Bit positions of the order-1, -2 and -3 contexts ending in bin ``b``."""
        n_bins, h = self.levels, self._ctx
        sq = n_bins * n_bins
        base = sq + sq * n_bins  # orders 1 and 2 exactly, order 3 hashed into the rest
        return (
            (h % n_bins) * n_bins + b,
            sq + (h % sq) * n_bins + b,
            base + ((h * n_bins + b) * _HASH) % (self.bits - base),
        )

    def _unseen_weight(self, codes: tuple[int, int, int]) -> int:
        seen = self._seen
        un = 0
        for code, w in zip(codes, _WEIGHTS, strict=True):
            if not (seen[code >> 3] >> (code & 7)) & 1:
                un += w
        return un

    def novelty(self, y: float) -> float:
        """Weighted share (0..1) of the contexts ending in ``y``'s bin never seen before."""
        if not self.levels:
            return 0.0
        return self._unseen_weight(self._codes(self._bin(y))) / _TOTAL_WEIGHT

    @property
    def resting(self) -> bool:
        """True while muted after a strongly novel value."""
        return self._since < self.rest

    def z(self, y: float) -> float:
        """z-equivalent ``max_z * novelty``; ``-inf`` when off, resting or nothing is new."""
        if not self.levels or self._since < self.rest:
            return -math.inf
        nov = self.novelty(y)
        return self.max_z * nov if nov > 0.0 else -math.inf

    def learn(self, y: float, scoring: bool) -> None:
        """Record the transitions ending in ``y``; ``scoring`` counts towards the rest."""
        n_bins = self.levels
        if not n_bins:
            return
        b = self._bin(y)
        codes = self._codes(b)
        if scoring:
            strong = self._unseen_weight(codes) >= _TOTAL_WEIGHT * self.trigger
            self._since = 0 if strong else self._since + 1
        seen = self._seen
        for code in codes:
            seen[code >> 3] |= 1 << (code & 7)
        self._ctx = (self._ctx * n_bins + b) % (n_bins * n_bins * n_bins)
        if y < self._lo:
            self._lo = y
        if y > self._hi:
            self._hi = y

    def learn_zeros(self, steps: int, scoring_from: int) -> None:
        """``learn(0.0, scoring=i >= scoring_from)`` for ``i`` in ``range(steps)``, in one loop.

        The same state as those calls (a quiet spell of the series, learned at once).
        Once a step leaves the bins, the range and the context as they were, every later
        step would record the same, already recorded transitions: only the rest counter
        moves, and it is advanced in one step (exact, not an approximation).
        """
        n_bins = self.levels
        if not n_bins or steps <= 0:
            return
        seen, bits = self._seen, self.bits
        sq = n_bins * n_bins
        cube = sq * n_bins
        base = sq + cube
        strong_at = _TOTAL_WEIGHT * self.trigger
        w1, w2, w3 = _WEIGHTS
        lo, hi, ctx, since = self._lo, self._hi, self._ctx, self._since
        for i in range(steps):
            # _bin(0.0)
            if not hi > lo:
                b = 0
            else:
                b = int((0.0 - lo) / (hi - lo) * n_bins)
                b = 0 if b < 0 else (n_bins - 1 if b >= n_bins else b)
            c1 = (ctx % n_bins) * n_bins + b
            c2 = sq + (ctx % sq) * n_bins + b
            c3 = base + ((ctx * n_bins + b) * _HASH) % (bits - base)
            if i >= scoring_from:
                un = 0
                if not (seen[c1 >> 3] >> (c1 & 7)) & 1:
                    un += w1
                if not (seen[c2 >> 3] >> (c2 & 7)) & 1:
                    un += w2
                if not (seen[c3 >> 3] >> (c3 & 7)) & 1:
                    un += w3
                since = 0 if un >= strong_at else since + 1
            seen[c1 >> 3] |= 1 << (c1 & 7)
            seen[c2 >> 3] |= 1 << (c2 & 7)
            seen[c3 >> 3] |= 1 << (c3 & 7)
            new_ctx = (ctx * n_bins + b) % cube
            new_lo = 0.0 if 0.0 < lo else lo
            new_hi = 0.0 if 0.0 > hi else hi
            fixed = new_ctx == ctx and new_lo == lo and new_hi == hi
            ctx, lo, hi = new_ctx, new_lo, new_hi
            if fixed:
                # every later step: same bin, same (now recorded) codes, nothing unseen
                scored = steps - 1 - max(i + 1, scoring_from) + 1
                if scored > 0:
                    since = 0 if 0 >= strong_at else since + scored
                break
        self._lo, self._hi, self._ctx, self._since = lo, hi, ctx, since
