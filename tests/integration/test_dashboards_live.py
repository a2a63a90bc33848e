"""Operators' view of a real run: worker + broker + Prometheus, every panel has data.

A real worker processes a stream with an injected Tier-1 chip spike (DE -> KG)
and some malformed records through the real broker; a real Prometheus scrapes
the worker every second and evaluates the shipped rules. Every panel query of
both dashboards (template variables substituted) must return data, and the
high-severity trade alert rule must fire for the spike.

Set ``TRADEWATCH_DASHBOARD_PNG=docs/dashboard.png`` to also render the two
dashboard pictures the README shows (``dashboard.png``, ``dashboard-anomalies.png``)
from this run.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from bench import dashboard_png
from streams.config import DEFAULT_CONFIG_PATH
from streams.events import example_declaration_json
from streams.harness import private_settings, running_worker
from streams.produce import produce_records
from tests.factories import spike_stream
from tests.prometheus.dashboards import PIPELINE_HEALTH, TRADE_ANOMALIES, panel_queries, running_prometheus

pytestmark = [pytest.mark.integration, pytest.mark.prometheus, pytest.mark.timeout(240)]


def _stream() -> list[bytes]:
    records, _ = spike_stream(days=90, spike_day=60)
    bad = [b"{not json", json.dumps(dict(json.loads(example_declaration_json()),
                                         net_mass_kg=-3)).encode()]
    return records[:300] + bad + records[300:]


def _wait_nonempty(prom, exprs: list[str], timeout: float) -> dict[str, list]:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        results = {e: prom.query(e) for e in exprs}
        if all(results.values()) or time.monotonic() > deadline:
            return results
        time.sleep(1.0)


def test_every_panel_has_data_and_the_trade_alert_fires(kafka_bootstrap: str, tmp_path: Path) -> None:
    settings, toml = private_settings(kafka_bootstrap, DEFAULT_CONFIG_PATH.read_text())
    with running_worker(toml, settings, tmp_path / "worker") as worker, \
            running_prometheus(targets=[f"127.0.0.1:{settings.worker.web_port}"]) as prom:
        prom.wait_for_targets(timeout=30)
        sender = threading.Thread(target=produce_records, args=(_stream(),), kwargs=dict(
            bootstrap=kafka_bootstrap, topic=settings.topics.declarations, rate=40.0,
            progress=False))
        sender.start()
        firing = []
        deadline = time.monotonic() + 90
        while not firing and time.monotonic() < deadline:
            firing = [a for a in prom.alerts()
                      if a["labels"]["alertname"] == "TradewatchHighSeverityTradeAlert"
                      and a["state"] == "firing"]
            time.sleep(1.0)
        sender.join()
        assert firing, worker.log_tail()
        labels = firing[0]["labels"]
        assert (labels["transit_country"], labels["chpl_tier"]) == ("KG", "1")
        assert labels["trade_severity"] in ("high", "critical")

        queries = panel_queries(PIPELINE_HEALTH) + panel_queries(TRADE_ANOMALIES)
        results = _wait_nonempty(prom, [q.expr for q in queries], timeout=60)
        empty = [f"{q.dashboard}/{q.panel} [{q.ref_id}]: {q.expr}"
                 for q in queries if not results[q.expr]]
        assert not empty, "panels without data:\n" + "\n".join(empty)

        # every record reaches Prometheus once the worker catches up (1 s scrapes)
        assert prom.wait_for(f"sum(tradewatch_declarations_consumed_total) == {len(_stream())}",
                             timeout=30)
        rejected = prom.query('sum(tradewatch_declarations_rejected_total{reason=~"not_json|negative_quantity"})')
        assert float(rejected[0]["value"][1]) == 2

        png = os.environ.get("TRADEWATCH_DASHBOARD_PNG")
        if png:
            dashboard_png.render(prom.url, Path(png), minutes=2)
            dashboard_png.render(prom.url, Path(png).with_name(Path(png).stem + "-anomalies.png"),
                                 minutes=2, dashboard=TRADE_ANOMALIES)
