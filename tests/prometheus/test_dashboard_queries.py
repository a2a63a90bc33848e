"""The dashboards' queries and the rules against a real Prometheus.

A static target (prometheus_client's HTTP server on a free loopback port, with a
registry from ``PipelineMetrics.create`` fed by a background thread) stands in
for a worker. Prometheus scrapes it every second and evaluates both rule files;
every panel query of both dashboards must then run, and return data.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, start_http_server

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `pytest` (not `python -m pytest`) with --import-mode=importlib
    sys.path.insert(0, str(ROOT))

from bench import dashboard_png  # noqa: E402
from streams.metrics import PipelineMetrics  # noqa: E402
from tests.prometheus.dashboards import (  # noqa: E402
    PIPELINE_HEALTH,
    TRADE_ANOMALIES,
    RunningPrometheus,
    free_port,
    panel_queries,
    running_prometheus,
)

pytestmark = [pytest.mark.prometheus, pytest.mark.timeout(120)]

DETECTORS = ["spike", "changepoint", "passthrough", "unit_value", "novelty"]


def _feed(m: PipelineMetrics, stop: threading.Event) -> None:
    """Keep the metrics moving like a busy worker, ten times a second."""
    m.set_build_info("0.1.0", "test-config")
    m.board.record(series="hs6:DE>KG:854231", detector="spike", severity="critical",
                   transit_country="KG", chpl_tier="1", score=0.99, at=time.time(),
                   surprise=41.5)
    m.board.record(series="hs6:DE>KG:847150", detector="novelty", severity="medium",
                   transit_country="KG", chpl_tier="1", score=0.85, at=time.time() - 30,
                   surprise=3.4)
    m.board.record(series="tier:IT>TR:T2", detector="changepoint", severity="high",
                   transit_country="TR", chpl_tier="2", score=0.93, at=time.time() - 60,
                   surprise=6.2)
    lag = 0
    while not stop.is_set():
        now = time.time()
        m.declarations_consumed.inc(50)
        m.declarations_rejected.labels(reason="not_json").inc()
        m.late_declarations.inc()
        m.windows_closed.labels(level="hs6").inc(3)
        m.series_closes.labels(path="native").inc(40)
        m.series_closes.labels(path="python").inc(2)
        m.windows_closed.labels(level="tier").inc()
        m.data_gap_windows.inc()
        m.alerts_published.labels(detector="spike", severity="critical", transit_country="KG",
                                  chpl_tier="1").inc()
        m.alerts_published.labels(detector="novelty", severity="low", transit_country="TR",
                                  chpl_tier="2").inc()
        m.alerts_suppressed.labels(detector="spike", reason="cooldown").inc()
        m.incidents_published.labels(severity="critical", transit_country="KG",
                                     chpl_tier="1").inc()
        m.event_to_alert_latency.observe(0.3)
        m.event_to_alert_latency.observe(2.0)
        m.record_processing.observe(4e-5)
        for detector in DETECTORS:
            m.detector_processing.labels(detector=detector).observe(2e-5)
            m.detector_state_bytes.labels(detector=detector).set(4096)
        lag = (lag + 7) % 500
        m.consumer_lag.labels(topic="trade.declarations", partition="0").set(lag)
        m.consumer_lag.labels(topic="trade.declarations", partition="1").set(3)
        m.last_event_timestamp.set(now - 120)
        m.watermark_timestamp.set(now - 60)
        m.last_processed_timestamp.set(now)
        m.active_series.labels(level="hs6").set(1200)
        m.active_series.labels(level="tier").set(40)
        stop.wait(0.1)


@pytest.fixture(scope="module")
def prom() -> Iterator[RunningPrometheus]:
    registry = CollectorRegistry()
    metrics = PipelineMetrics.create(registry, detectors=DETECTORS)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    stop = threading.Event()
    feeder = threading.Thread(target=_feed, args=(metrics, stop), daemon=True)
    feeder.start()
    try:
        with running_prometheus(targets=[f"127.0.0.1:{port}"]) as running:
            running.wait_for_targets(timeout=20)
            # the 5m-rate recording rules need two scrapes and one evaluation after them
            running.wait_for("instance_detector:tradewatch_detector_processing_seconds:p99_5m",
                             timeout=20)
            yield running
    finally:
        stop.set()
        feeder.join(timeout=5)
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _wait_all(prom: RunningPrometheus, exprs: list[str], timeout: float = 20) -> dict[str, list]:
    deadline = time.monotonic() + timeout
    while True:
        results = {expr: prom.query(expr) for expr in exprs}
        empty = [e for e, r in results.items() if not r]
        if not empty or time.monotonic() > deadline:
            return results
        time.sleep(0.5)


@pytest.mark.parametrize("dashboard", [PIPELINE_HEALTH, TRADE_ANOMALIES], ids=lambda p: p.stem)
def test_every_panel_query_returns_data(prom: RunningPrometheus, dashboard: Path) -> None:
    queries = panel_queries(dashboard)
    assert len(queries) >= 10
    results = _wait_all(prom, [q.expr for q in queries])
    empty = [f"{q.panel} [{q.ref_id}]: {q.expr}" for q in queries if not results[q.expr]]
    assert not empty, "panels without data:\n" + "\n".join(empty)


def test_pipeline_values_are_sane(prom: RunningPrometheus) -> None:
    up = prom.query('sum(up{job="tradewatch"})')
    assert float(up[0]["value"][1]) == 1
    assert prom.wait_for("job:tradewatch_declarations_consumed:rate1m > 0")
    # a 1m rate over a few seconds of data under-reads; irate sees the real ~500/s
    rate = prom.query('sum(irate(tradewatch_declarations_consumed_total[10s]))')
    assert 100 < float(rate[0]["value"][1]) < 1000
    p99 = prom.wait_for("instance:tradewatch_event_to_alert_latency_seconds:p99_5m")
    assert 1 < float(p99[0]["value"][1]) <= 2.5  # observations of 0.3 s and 2 s
    since = prom.query("time() - tradewatch_last_processed_timestamp_seconds")
    assert float(since[0]["value"][1]) < 30


def test_latest_alerts_table_lists_recorded_series(prom: RunningPrometheus) -> None:
    every = {"transit_country": ".*", "chpl_tier": ".*"}
    latest = [q for q in panel_queries(TRADE_ANOMALIES, every)
              if q.panel == "Latest alerts" and q.ref_id == "A"][0]
    rows = prom.query(latest.expr)
    newest = max(rows, key=lambda r: float(r["value"][1]))
    assert newest["metric"]["series"] == "hs6:DE>KG:854231"
    assert {r["metric"]["series"] for r in rows} == {
        "hs6:DE>KG:854231", "hs6:DE>KG:847150", "tier:IT>TR:T2"}


def test_high_severity_trade_alert_fires_with_trade_labels(prom: RunningPrometheus) -> None:
    deadline = time.monotonic() + 20
    while True:
        firing = [a for a in prom.alerts()
                  if a["labels"]["alertname"] == "TradewatchHighSeverityTradeAlert"
                  and a["state"] == "firing"]
        if firing or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert [a["labels"] for a in firing] == [{
        "alertname": "TradewatchHighSeverityTradeAlert", "severity": "page", "detector": "spike",
        "trade_severity": "critical", "transit_country": "KG", "chpl_tier": "1"}]
    assert "transit KG, CHPL tier 1" in firing[0]["annotations"]["summary"]
    # the pipeline is healthy: none of the pipeline alerts is pending or firing
    names = {a["labels"]["alertname"] for a in prom.alerts()}
    assert names == {"TradewatchHighSeverityTradeAlert"}


def test_dashboard_png_renders_from_prometheus(prom: RunningPrometheus, tmp_path: Path) -> None:
    out = tmp_path / "dashboard.png"
    drawn = dashboard_png.render(prom.url, out, minutes=1)
    assert drawn >= 15
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 50_000
    from PIL import Image

    with Image.open(out) as image:
        assert image.width >= 1000 and image.height >= 1000
        colours = image.convert("RGB").getcolors(maxcolors=1_000_000)
        assert colours is not None and len(colours) > 50  # lines and text, not a blank canvas


def test_dashboard_png_cli(prom: RunningPrometheus, tmp_path: Path) -> None:
    out = tmp_path / "anomalies.png"
    code = dashboard_png.main(["--prometheus", prom.url, "--out", str(out), "--minutes", "1",
                               "--dashboard", str(TRADE_ANOMALIES), "--var", "transit_country=KG"])
    assert code == 0
    assert out.stat().st_size > 20_000
