"""Test helpers: the dashboards' PromQL, and a real Prometheus to run it against.

Not a test module. Tests (and the end-to-end integration test) use it as::

    from tests.prometheus.dashboards import running_prometheus, panel_queries

    with running_prometheus(targets=["127.0.0.1:6066"], rule_files=RULE_FILES) as prom:
        prom.wait_for_targets()
        for q in panel_queries(PIPELINE_HEALTH):
            prom.query(q.expr)

The Prometheus is the ``prometheus`` binary on PATH (``make prometheus`` installs
it), listening on 127.0.0.1 on a free port, scraping the given targets every
second under ``job="tradewatch"`` and evaluating the given rule files every
second, with its TSDB in a temporary directory that is removed on exit. Its HTTP
API is queried with urllib only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "ROOT",
    "DASHBOARD_DIR",
    "PIPELINE_HEALTH",
    "TRADE_ANOMALIES",
    "RULE_FILES",
    "DEFAULT_VARIABLES",
    "PanelQuery",
    "PrometheusError",
    "RunningPrometheus",
    "dashboard_files",
    "panel_queries",
    "substitute",
    "write_config",
    "free_port",
    "running_prometheus",
]

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD_DIR = ROOT / "deploy" / "grafana" / "dashboards"
PIPELINE_HEALTH = DASHBOARD_DIR / "pipeline-health.json"
TRADE_ANOMALIES = DASHBOARD_DIR / "trade-anomalies.json"
RULE_FILES = (
    ROOT / "deploy" / "prometheus" / "recording_rules.yml",
    ROOT / "deploy" / "prometheus" / "alerting_rules.yml",
)

#: Values for Grafana's template and built-in variables. ``$__rate_interval`` is
#: 1m: at the helper's 1 s scrape interval that is 60 samples per rate window.
DEFAULT_VARIABLES: Mapping[str, str] = {
    "transit_country": "KG",
    "chpl_tier": "1",
    "instance": ".*",
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "5m",
}

# $name, ${name}, ${name:format}, [[name]]
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")


@dataclasses.dataclass(frozen=True)
class PanelQuery:
    """One target of one panel, with its template variables substituted."""

    dashboard: str
    panel: str
    ref_id: str
    expr: str
    instant: bool


class PrometheusError(RuntimeError):
    """Prometheus did not start, or its API answered with an error."""


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARD_DIR.glob("*.json"))


def substitute(expr: str, variables: Mapping[str, str] | None = None) -> str:
    """Replace Grafana variables in ``expr``; an unknown variable is an error.

    >>> substitute('rate(x{c=~"$transit_country"}[$__rate_interval])')
    'rate(x{c=~"KG"}[1m])'
    """
    values = {**DEFAULT_VARIABLES, **(variables or {})}

    def replace(match: re.Match[str]) -> str:
        name = next(g for g in match.groups() if g is not None)
        if name not in values:
            raise KeyError(f"no value for Grafana variable ${name} in {expr!r}")
        return values[name]

    return _VARIABLE.sub(replace, expr)


def _panels(panels: Sequence[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", ()))  # rows may nest collapsed panels


def panel_queries(
    dashboard: str | Path, variables: Mapping[str, str] | None = None
) -> list[PanelQuery]:
    """Every PromQL target of every panel of a dashboard JSON, variables substituted."""
    path = Path(dashboard)
    doc = json.loads(path.read_text(encoding="utf-8"))
    out = []
    for panel in _panels(doc.get("panels", ())):
        for t in panel.get("targets", ()):
            if t.get("expr"):
                out.append(PanelQuery(path.name, panel.get("title", ""), t.get("refId", ""),
                                      substitute(t["expr"], variables),
                                      bool(t.get("instant", False))))
    return out


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(
    path: str | Path,
    targets: Sequence[str],
    rule_files: Sequence[str | Path] = RULE_FILES,
    *,
    job: str = "tradewatch",
    interval: str = "1s",
) -> Path:
    """Write a local-run Prometheus config (JSON, which is YAML) and return its path."""
    config = {
        "global": {"scrape_interval": interval, "scrape_timeout": interval,
                   "evaluation_interval": interval},
        "rule_files": [str(Path(f).resolve()) for f in rule_files],
        "scrape_configs": [{"job_name": job, "metrics_path": "/metrics",
                            "static_configs": [{"targets": list(targets)}]}],
    }
    path = Path(path)
    path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return path


class RunningPrometheus:
    """HTTP API of a Prometheus started by :func:`running_prometheus`."""

    def __init__(self, url: str, process: subprocess.Popen[bytes], log: Path) -> None:
        self.url = url
        self.process = process
        self.log = log

    def _get(self, path: str, params: Mapping[str, Any] | None = None, timeout: float = 10) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        try:
            with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=timeout) as resp:
                body = json.load(resp)
        except urllib.error.HTTPError as err:  # 400/422 carry the PromQL error as JSON
            try:
                body = json.load(err)
            except ValueError:
                raise PrometheusError(f"GET {path}: HTTP {err.code}") from None
        if body.get("status") != "success":
            raise PrometheusError(f"GET {path} {dict(params or {})}: "
                                  f"{body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """Instant query; the result vector (or a one-element list for a scalar)."""
        params: dict[str, Any] = {"query": expr}
        if at is not None:
            params["time"] = at
        data = self._get("/api/v1/query", params)
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        return list(data["result"])

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        data = self._get("/api/v1/query_range",
                         {"query": expr, "start": start, "end": end, "step": step})
        return list(data["result"])

    def targets(self) -> list[dict[str, Any]]:
        return list(self._get("/api/v1/targets")["activeTargets"])

    def alerts(self) -> list[dict[str, Any]]:
        """Pending and firing alerts (``labels``, ``annotations``, ``state``, ``value``)."""
        return list(self._get("/api/v1/alerts")["alerts"])

    def rules(self) -> list[dict[str, Any]]:
        return list(self._get("/api/v1/rules")["groups"])

    def wait_for(self, expr: str, timeout: float = 30, poll: float = 0.5) -> list[dict[str, Any]]:
        """Poll an instant query until it returns a non-empty result; return it."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(expr)
            if result:
                return result
            if time.monotonic() > deadline:
                raise PrometheusError(f"no data for {expr!r} after {timeout} s")
            time.sleep(poll)

    def wait_for_targets(self, timeout: float = 30) -> None:
        """Wait until every target has been scraped successfully at least once."""
        deadline = time.monotonic() + timeout
        while True:
            targets = self.targets()
            if targets and all(t.get("health") == "up" for t in targets):
                return
            if time.monotonic() > deadline:
                states = {t.get("scrapeUrl"): (t.get("health"), t.get("lastError"))
                          for t in targets}
                raise PrometheusError(f"targets not up after {timeout} s: {states}")
            time.sleep(0.2)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise PrometheusError(f"{name} is not on PATH: run `make prometheus` "
                              "(bash scripts/install-prometheus.sh)")
    return found


@contextlib.contextmanager
def running_prometheus(
    targets: Sequence[str],
    rule_files: Sequence[str | Path] = RULE_FILES,
    *,
    job: str = "tradewatch",
    interval: str = "1s",
    port: int | None = None,
    ready_timeout: float = 30,
) -> Iterator[RunningPrometheus]:
    """Start Prometheus on 127.0.0.1, wait until ready, yield its API, stop it."""
    binary = _binary("prometheus")
    with tempfile.TemporaryDirectory(prefix="tw-prometheus-") as tmp:
        tmpdir = Path(tmp)
        config = write_config(tmpdir / "prometheus.yml", targets, rule_files,
                              job=job, interval=interval)
        port = port or free_port()
        log = tmpdir / "prometheus.log"
        args = [binary, f"--config.file={config}", f"--storage.tsdb.path={tmpdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"]
        with log.open("wb") as log_fh:
            process = subprocess.Popen(args, stdout=log_fh, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, env={**os.environ})
        prom = RunningPrometheus(f"http://127.0.0.1:{port}", process, log)
        try:
            _wait_ready(prom, ready_timeout)
            yield prom
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


def _wait_ready(prom: RunningPrometheus, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if prom.process.poll() is not None:
            raise PrometheusError(f"prometheus exited with {prom.process.returncode}:\n"
                                  f"{prom.log_tail()}")
        try:
            with urllib.request.urlopen(f"{prom.url}/-/ready", timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            raise PrometheusError(f"prometheus not ready after {timeout} s:\n{prom.log_tail()}")
        time.sleep(0.1)
