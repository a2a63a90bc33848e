"""The fault injector kills its process at the n-th arrival at its point, and nowhere else."""

from __future__ import annotations

import subprocess
import sys

import pytest

from streams.faults import FaultInjector


def test_unset_it_never_fires() -> None:
    injector = FaultInjector("")
    for point in ("mid_batch", "after_send", "after_commit"):
        injector.reached(point)
    assert injector.point is None


def test_an_unknown_point_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown point 'after_lunch'"):
        FaultInjector("after_lunch:1")


def test_it_sigkills_the_process_at_the_nth_arrival() -> None:
    code = ("from streams.faults import FaultInjector\n"
            "f = FaultInjector('after_send:2')\n"
            "f.reached('after_commit'); f.reached('after_send'); print('first', flush=True)\n"
            "f.reached('after_send'); print('never')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -9
    assert proc.stdout.split() == ["first"]
