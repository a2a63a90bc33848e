"""Every command that talks to Kafka gives up on a dead address with one line, not a traceback.

The subprocess timeout is a safety net, not a speed assertion: each command's own
budget is 10 s (``streams.cli.CHECK_TIMEOUT_S``); a closed port answers at once.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.faults

ROOT = Path(__file__).resolve().parents[3]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("command", [
    ["worker"],
    ["produce", "--generate", "--days", "1", "--quiet"],
    ["topics", "create"],
    ["alerts", "tail"],
])
def test_an_unreachable_cluster_is_one_clear_line_and_a_failure(command: list[str]) -> None:
    port = _closed_port()
    env = {**os.environ, "TRADEWATCH_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}",
           "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "streams.cli", *command], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [
        f"tradewatch: cannot reach Kafka at 127.0.0.1:{port} (connection refused)"]
