"""What a partition usually does in a window of each kind: is an empty window an outage?

A window in which a whole partition had no declaration used to be read as an
upstream outage (detectors neither score nor learn on it, and the next windows'
alerts are capped because the backlog arriving late looks like a spike). But
customs offices close at weekends and on holidays: on daily windows an empty
Sunday is ordinary, and treating it as an outage caps every Monday's alerts.

:class:`PartitionActivity` learns, per window phase (the local weekday for daily
windows, a holiday phase, weekday x hour for hourly ones, a single phase for
weekly and monthly windows; see :meth:`detectors.calendar.WindowGrid.phase`),
the exponentially weighted share of windows that had records. An empty window
is an **outage** when windows of its phase usually have records (share >=
``busy_share``), or when it continues an outage (the partition has not come
back since). Otherwise it is an ordinary quiet window: zero trade, learned as
such. A phase not seen ``min_seen`` times yet is judged by the partition's
overall share, which on a partition busy every working day makes the first
empty weekend an outage (cautious), and from the second one on it is known.

Every window, active, quiet or outage, is learned: a partition that stops
trading on Wednesdays for good stops raising outages after a few weeks.

>>> activity = PartitionActivity()
>>> for week in range(4):
...     for weekday in range(7):
...         outage = activity.close(weekday, active=weekday < 5)
>>> activity.close(5, active=False), activity.close(6, active=False)   # an empty weekend
(False, False)
>>> activity.close(0, active=True), activity.close(1, active=True), activity.close(2, active=False)
(False, False, True)
"""

from __future__ import annotations

__all__ = ["PartitionActivity"]


class PartitionActivity:
    """Per-phase share of windows with records; decides whether an empty window is an outage.

    Parameters
    ----------
    rate
        Weight of the newest window of a phase in its share once ``1 / rate``
        windows of it have been seen (before that, a plain mean).
    busy_share
        An empty window is an outage when at least this share of the windows of
        its phase had records: an empty one is then rare (at most 1 in 5), so
        more likely missing data than a quiet day.
    min_seen
        Windows of a phase to see before its own share decides.
    """

    def __init__(self, rate: float = 0.1, busy_share: float = 0.8, min_seen: int = 1) -> None:
        if not 0.0 < rate <= 1.0:
            raise ValueError(f"rate must be in (0, 1], got {rate}")
        if not 0.0 < busy_share <= 1.0:
            raise ValueError(f"busy_share must be in (0, 1], got {busy_share}")
        if min_seen < 1:
            raise ValueError(f"min_seen must be >= 1, got {min_seen}")
        self.rate = rate
        self.busy_share = busy_share
        self.min_seen = min_seen
        #: phase -> EW share of its windows that had records
        self.share: dict[int, float] = {}
        #: phase -> windows of it seen
        self.seen: dict[int, int] = {}
        #: The last window closed was an outage (an outage lasts until records come back).
        self.in_outage = False

    def usual_share(self, phase: int) -> float:
        """The share of windows of ``phase`` that have records (the overall share while unknown)."""
        if self.seen.get(phase, 0) >= self.min_seen:
            return self.share[phase]
        total = sum(self.seen.values())
        if not total:
            return 0.0
        return sum(self.share[p] * n for p, n in self.seen.items()) / total

    def is_outage(self, phase: int) -> bool:
        """Would an empty window of ``phase`` now be an outage (rather than a quiet window)?"""
        return self.in_outage or self.usual_share(phase) >= self.busy_share

    def close(self, phase: int, active: bool) -> bool:
        """Learn one closed window; True when it is an outage (empty where records were due)."""
        outage = not active and self.is_outage(phase)
        n = self.seen.get(phase, 0)
        rate = max(self.rate, 1.0 / (n + 1))
        share = self.share.get(phase, 0.0)
        self.share[phase] = share + rate * ((1.0 if active else 0.0) - share)
        self.seen[phase] = n + 1
        self.in_outage = outage
        return outage
