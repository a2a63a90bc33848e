"""How many processes an offline replay uses: the ``--jobs`` flag of ``replay``, ``evaluate``
and ``backtest``.

A replay runs partitions in parallel (:mod:`streams.offline`): at most one process
per partition, and by default one per CPU this process may use. Kept apart from
:mod:`streams.offline` so building a command line does not import the pipeline.

>>> import argparse
>>> p = argparse.ArgumentParser()
>>> add_jobs_option(p)
>>> p.parse_args(["--jobs", "3"]).jobs
3
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["add_jobs_option", "default_jobs", "jobs_for"]


def default_jobs(partitions: int) -> int:
    """One process per CPU this process may run on, at most one per partition."""
    return max(1, min(len(os.sched_getaffinity(0)), partitions))


def add_jobs_option(parser: Any) -> None:
    """Add ``--jobs N`` to an ``argparse`` parser (default 0: :func:`default_jobs`)."""
    parser.add_argument("--jobs", type=int, default=0, metavar="N",
                        help="processes to replay the partitions in (default 0: one per CPU, "
                             "at most one per partition; 1: this process only)")


def jobs_for(requested: int, partitions: int) -> int:
    """``--jobs`` resolved: 0 (or less) means :func:`default_jobs`."""
    return default_jobs(partitions) if requested <= 0 else min(requested, partitions)
