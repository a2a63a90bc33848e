"""Extremity against recent history: is this more extreme than anything lately?

One part of :class:`detectors.spike.SeasonalRobustSpikeDetector`. It turns robust
z-scores (from :class:`detectors.seasonal.RobustSeasonalBaseline`) into one
z-equivalent on the shared scale of :mod:`detectors.calibration`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from detectors.base import Part
from detectors.calibration import ratio_to_z

__all__ = ["RecentExtremity"]

_DAY = 86400.0
#: Kinds of evidence tracked (the baseline's residual, change and shift z-scores).
N_KINDS = 3


class RecentExtremity(Part):
    """How much more extreme an observation is than the series' recent worst.

    A z-score alone judges every series against Gaussian noise; real series have
    heavy tails, and a series that jumps by 6 sigmas every week should not alarm
    every week. So each z (one per kind of evidence: residual, change, shift) is
    divided by the largest z of its kind in the last ``history_blocks`` blocks,
    floored at ``z_floor``. A block is a day for sub-daily series, a week for
    daily or slower ones, ``block_points`` points for series without
    timestamps. The largest of these ratios goes onto the shared scale with
    :func:`detectors.calibration.ratio_to_z`: an observation ``alarm_ratio``
    times as extreme as the recent worst is at the alarm line ``z = 3`` (score
    0.5), one no worse than the recent worst scores at most 0.13.

    One observation raises the recent maximum at most ``history_cap``-fold, so a
    second jump soon after a huge one still stands out.

    Parameters
    ----------
    history_blocks, block_points
        How far back "recently" reaches (see above).
    z_floor
        Lower bound of the recent-maximum z, so a very regular series is not
        alarmed by ordinary noise.
    history_cap
        Largest factor by which one observation can raise the recent maximum.
    alarm_ratio
        Ratio to the recent worst that is the alarm line (score 0.5).

    Examples
    --------
    >>> ext = RecentExtremity()
    >>> for day in range(21):
    ...     ext.learn((2.5, 1.0, 0.5), t=day * 86400.0, interval=86400.0, index=day)
    >>> ext.ratio((2.5, 1.0, 0.5))          # as extreme as the recent worst
    1.0
    >>> ext.z((4.0, 0.0, 0.0))              # 1.6 times the recent worst: the alarm line
    3.0
    """

    def __init__(
        self,
        history_blocks: int = 3,
        block_points: int = 50,
        z_floor: float = 2.0,
        history_cap: float = 5.0,
        alarm_ratio: float = 1.6,
    ):
        if history_blocks < 1 or block_points < 1:
            raise ValueError("history_blocks and block_points must be >= 1")
        if not z_floor > 0.0:
            raise ValueError(f"z_floor must be > 0, got {z_floor}")
        if not history_cap >= 1.0:
            raise ValueError(f"history_cap must be >= 1, got {history_cap}")
        if not alarm_ratio > 0.0:
            raise ValueError(f"alarm_ratio must be > 0, got {alarm_ratio}")
        self.history_blocks = history_blocks
        self.block_points = block_points
        self.z_floor = z_floor
        self.history_cap = history_cap
        self.alarm_ratio = alarm_ratio
        # learned state: the max z of each kind per block, and over all recent blocks
        self._block: int | None = None
        self._blocks = [[0.0] * N_KINDS for _ in range(history_blocks)]
        self._hist = [0.0] * N_KINDS

    def recent_max(self, kind: int) -> float:
        """The floored recent-maximum z of evidence ``kind`` (0 residual, 1 change, 2 shift)."""
        h = self._hist[kind]
        return h if h > self.z_floor else self.z_floor

    def ratio(self, zs: Sequence[float]) -> float:
        """The largest ratio of a z to its kind's floored recent maximum."""
        h, zf = self._hist, self.z_floor
        return max(zs[0] / max(h[0], zf), zs[1] / max(h[1], zf), zs[2] / max(h[2], zf))

    def z(self, zs: Sequence[float]) -> float:
        """z-equivalent on the shared scale (``-inf`` when every z is 0)."""
        return ratio_to_z(self.ratio(zs), self.alarm_ratio)

    def learn(self, zs: Sequence[float], t: float | None, interval: float, index: int) -> None:
        """Remember the z-scores of one observation.

        ``t`` and ``interval`` (the series' sampling interval, 0 if unknown) place
        it in a block; ``index`` (its position in the series) does when there is
        no timestamp.
        """
        if t is not None and interval > 0.0:
            blk = int(t // (_DAY if interval < 0.5 * _DAY else 7 * _DAY))
        else:
            blk = index // self.block_points
        blocks = self._blocks
        new_block = blk != self._block
        if new_block:
            blocks.pop(0)
            blocks.append([0.0] * N_KINDS)
            self._block = blk
        cur = blocks[-1]
        # one outlier raises "recently" at most history_cap-fold, so a second
        # jump right after a huge one still stands out
        # (unrolled over the three kinds, with the builtins' min/max written out as
        # they pick: this runs once per observation)
        hc, zf = self.history_cap, self.z_floor
        h0, h1, h2 = self._hist
        z0, cap = zs[0], hc * (zf if zf > h0 else h0)
        if cap < z0:
            z0 = cap
        z1, cap = zs[1], hc * (zf if zf > h1 else h1)
        if cap < z1:
            z1 = cap
        z2, cap = zs[2], hc * (zf if zf > h2 else h2)
        if cap < z2:
            z2 = cap
        if z0 > cur[0]:
            cur[0] = z0
        if z1 > cur[1]:
            cur[1] = z1
        if z2 > cur[2]:
            cur[2] = z2
        if new_block:
            self._hist = list(map(max, zip(*blocks)))
        else:  # a block's maxima only grow: the recent maxima are the old ones or its own
            c0, c1, c2 = cur
            self._hist = [c0 if c0 > h0 else h0, c1 if c1 > h1 else h1, c2 if c2 > h2 else h2]

    def learn_many(self, steps: Iterable[tuple[float, float, float, float]],
                   times: Sequence[float], first_index: int) -> None:
        """:meth:`learn` of a run of observations in one loop, with the same result.

        ``steps[i]`` is ``(z residual, z change, z shift, interval)`` of the observation
        at ``times[i]`` with index ``first_index + i``. The recent maxima are kept up to
        date incrementally (a block's maxima only grow) and recomputed over the blocks
        when a block starts, as :meth:`learn` does at the end of every call.
        """
        hc, zf, bp = self.history_cap, self.z_floor, self.block_points
        blocks, block = self._blocks, self._block
        h0, h1, h2 = self._hist
        cur = blocks[-1]
        index = first_index
        for (z0, z1, z2, interval), t in zip(steps, times, strict=True):
            if interval > 0.0:
                blk = int(t // (_DAY if interval < 0.5 * _DAY else 7 * _DAY))
            else:
                blk = index // bp
            index += 1
            new_block = blk != block
            if new_block:
                blocks.pop(0)
                cur = [0.0] * N_KINDS
                blocks.append(cur)
                block = blk
            # min(z, hc * max(h, zf)) and the recent maxima, as the builtins pick
            cap = hc * (zf if zf > h0 else h0)
            if cap < z0:
                z0 = cap
            cap = hc * (zf if zf > h1 else h1)
            if cap < z1:
                z1 = cap
            cap = hc * (zf if zf > h2 else h2)
            if cap < z2:
                z2 = cap
            if z0 > cur[0]:
                cur[0] = z0
            if z1 > cur[1]:
                cur[1] = z1
            if z2 > cur[2]:
                cur[2] = z2
            if new_block:
                h0, h1, h2 = map(max, zip(*blocks))
            else:
                c0, c1, c2 = cur
                h0 = c0 if c0 > h0 else h0
                h1 = c1 if c1 > h1 else h1
                h2 = c2 if c2 > h2 else h2
        self._block = block
        self._hist = [h0, h1, h2]
