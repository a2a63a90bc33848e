"""Fault injection for the fault tests: a worker that kills itself at a named point.

``TRADEWATCH_FAULT_INJECT="after_send:3"`` makes the worker SIGKILL itself the third
time it reaches ``after_send``. The points are the seams of the worker's loop where a
crash must lose nothing:

==================  ===========================================================
``mid_batch``       half of a batch's records handled, nothing sent
``after_send``      the batch's alerts and dead letters acknowledged, state not saved,
                    offsets not committed
``after_commit``    offsets committed
==================  ===========================================================

Unset (the default) it costs one attribute check per batch. SIGKILL, not an
exception: nothing of the worker's own shutdown (leaving the group, closing the
producer) may run, exactly as with ``kill -9`` or a machine that loses power.
"""

from __future__ import annotations

import os
import signal

__all__ = ["FaultInjector", "POINTS"]

POINTS = ("mid_batch", "after_send", "after_commit")


class FaultInjector:
    """Counts arrivals at each point; kills the process at the configured one."""

    def __init__(self, spec: str | None = None) -> None:
        spec = os.environ.get("TRADEWATCH_FAULT_INJECT", "") if spec is None else spec
        self.point: str | None = None
        self.at = 0
        self._seen = 0
        if spec:
            point, _, count = spec.partition(":")
            if point not in POINTS:
                raise ValueError(f"TRADEWATCH_FAULT_INJECT: unknown point {point!r} "
                                 f"(valid: {', '.join(POINTS)})")
            self.point, self.at = point, int(count or 1)

    def reached(self, point: str) -> None:
        if point != self.point:
            return
        self._seen += 1
        if self._seen == self.at:
            os.kill(os.getpid(), signal.SIGKILL)
