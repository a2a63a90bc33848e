"""A worker on another machine resumes from the changelog: no detector starts cold again.

The stream is split in two. A worker processes the first part and is stopped; a
second worker process (same group, its own empty data directory, as on another
machine) restores each partition's state from the group's changelog topic and
processes the rest. The
alerts of both, deduplicated by ``alert_id``, must be exactly the alerts of one
uninterrupted offline run: the spike in the second part is judged against the
history learned in the first.
"""

from __future__ import annotations

import time
from pathlib import Path

import msgspec
import pytest

from streams.config import DEFAULT_CONFIG_PATH, load_settings
from streams.events import TradeAlert
from streams.harness import private_settings, read_topic, running_worker, send_all
from streams.offline import run_offline
from tests.factories import spike_stream

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def _wait_consumed(worker, expected: int, timeout: float = 120) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while worker.sample("tradewatch_declarations_consumed_total") < expected:
        assert time.monotonic() < deadline, worker.log_tail()
        time.sleep(0.3)


def test_a_restarted_worker_raises_the_alerts_of_an_uninterrupted_run(
        kafka_bootstrap: str, tmp_path: Path) -> None:
    records, key = spike_stream(days=80, spike_day=60)
    cut = len(records) * 55 // 80  # about day 55: before the spike
    settings, toml = private_settings(kafka_bootstrap, DEFAULT_CONFIG_PATH.read_text())
    t = settings.topics

    def on_machine(name: str) -> str:
        return toml.replace(f'data_dir = "{settings.worker.data_dir}"',
                            f'data_dir = "{tmp_path / name}"')

    with running_worker(on_machine("machine-a"), settings, tmp_path / "first",
                        keep_topics=True) as first:
        send_all(kafka_bootstrap, t.declarations, records[:cut])
        _wait_consumed(first, cut)
        time.sleep(1.0)
        assert first.sample("tradewatch_state_saves_total", {"outcome": "ok"}) > 0

    with running_worker(on_machine("machine-b"), settings, tmp_path / "second") as second:
        send_all(kafka_bootstrap, t.declarations, records[cut:])
        # records replayed from the checkpoints count again: wait for the idle close
        time.sleep(2.0)
        deadline = time.monotonic() + 60
        while second.sample("tradewatch_windows_closed_total", {"level": "hs6"}) == 0:
            assert time.monotonic() < deadline, second.log_tail()
            time.sleep(0.3)
        time.sleep(settings.windows.idle_timeout_seconds + 3)
        raw = read_topic(kafka_bootstrap, t.alerts, idle=3.0)
        assert "resumed" in second.log_path.read_text()
        assert second.sample("tradewatch_state_restores_total", {"outcome": "changelog"}) > 0
        assert second.sample("tradewatch_state_restores_total", {"outcome": "refused"}) == 0

    online = {a.alert_id: a for a in (msgspec.json.decode(r.value, type=TradeAlert) for r in raw)}
    offline = {a.alert_id: a for a in run_offline(records, load_settings(DEFAULT_CONFIG_PATH, env={})).alerts}
    assert any(a.series.key == key for a in offline.values())
    assert sorted(online) == sorted(offline)
