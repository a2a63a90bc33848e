"""Static checks of the deployment files: compose, Dockerfile, Prometheus, Grafana.

No Docker, broker or Prometheus needed. What is checked is what breaks silently
in a deployment: an unpinned image, a mount of a path that does not exist, a
scrape target that is not a worker, a dashboard query naming a metric the worker
does not export, an alert without a runbook or without tests.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from streams.metrics import PipelineMetrics

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
PROM_DIR = ROOT / "deploy" / "prometheus"
PROM_CONFIG = PROM_DIR / "prometheus.yml"
RECORDING = PROM_DIR / "recording_rules.yml"
ALERTING = PROM_DIR / "alerting_rules.yml"
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "prometheus.yml"
PROVIDERS = GRAFANA / "provisioning" / "dashboards" / "dashboards.yml"
OPERATORS_DOC = ROOT / "docs" / "operators.md"
POM = ROOT / "deploy" / "kafka" / "pom.xml"

DETECTORS = ["spike", "changepoint", "passthrough", "unit_value", "novelty"]
#: Series Prometheus itself adds to every scrape.
PROMETHEUS_SYNTHETIC = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc = _yaml(COMPOSE)
    assert isinstance(doc, dict) and isinstance(doc.get("services"), dict)
    return doc


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def _command(service: dict[str, Any]) -> list[str]:
    """The service's command without tradewatch's global ``--config FILE`` option."""
    cmd = service.get("command") or []
    words = cmd.split() if isinstance(cmd, str) else [str(c) for c in cmd]
    if words[:1] == ["tradewatch"] and "--config" in words:
        at = words.index("--config")
        config = words[at + 1]
        assert (ROOT / config).exists() or config.startswith("/"), f"{config} does not exist"
        del words[at:at + 2]
    return words


def _workers(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in services.items() if _command(s)[:2] == ["tradewatch", "worker"]}


# ------------------------------------------------------------------ metric names
def exported_names() -> set[str]:
    """Every sample name a worker can export, from a fresh registry.

    Families without samples yet (the alert board's gauges before any alert) are
    named from their type.
    """
    registry = CollectorRegistry()
    PipelineMetrics.create(registry, detectors=DETECTORS)
    names: set[str] = set()
    suffixes = {"counter": ("_total", "_created"), "gauge": ("",), "info": ("_info",),
                "histogram": ("_bucket", "_count", "_sum", "_created")}
    for family in registry.collect():
        names.update(sample.name for sample in family.samples)
        names.update(family.name + s for s in suffixes.get(family.type, ("",)))
    return names


def recording_rule_names() -> set[str]:
    return {r["record"] for g in _yaml(RECORDING)["groups"] for r in g["rules"] if "record" in r}


_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
             "unless", "offset", "inf", "nan", "atan2"}


def promql_metric_names(expr: str) -> set[str]:
    """Metric (and recording rule) names a PromQL expression selects.

    >>> sorted(promql_metric_names('sum by (le) (rate(a_total{x="b c"}[5m])) / on (job) b:c:d > 1'))
    ['a_total', 'b:c:d']
    """
    s = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)
    s = re.sub(r"\{[^}]*\}", "", s)
    s = re.sub(r"\[[^\]]*\]", "", s)
    s = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", s)
    names = set()
    for m in re.finditer(r"(?<![\w.$])[A-Za-z_:][A-Za-z0-9_:]*", s):
        if s[m.end():].lstrip().startswith("(") or m.group(0).lower() in _KEYWORDS:
            continue
        names.add(m.group(0))
    return names


def test_metric_name_extraction_sees_every_selector() -> None:
    expr = ('histogram_quantile(0.99, sum by (job, le) (rate(x_bucket{le!="1"}[10m])))'
            ' > 60 and on (instance) y_total offset 5m unless z')
    assert promql_metric_names(expr) == {"x_bucket", "y_total", "z"}


# ------------------------------------------------------------------ compose
def test_compose_has_the_stack(services: dict[str, dict[str, Any]]) -> None:
    assert {"kafka", "topics", "generator", "prometheus", "grafana"} <= set(services)
    assert len(_workers(services)) >= 1
    commands = {name: _command(s)[:3] for name, s in services.items()}
    assert commands["topics"] == ["tradewatch", "topics", "create"]
    assert commands["generator"][:2] == ["tradewatch", "produce"]
    assert "--generate" in _command(services["generator"])


_PINNED = re.compile(r"^[\w./-]+:(?!latest$)v?\d+(\.\d+)+[\w.-]*$")


def test_every_image_is_pinned(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        image = service.get("image")
        assert image, f"{name}: no image (even built services name their tag)"
        assert _PINNED.match(image), f"{name}: image {image!r} is not pinned to a version"
    stages = re.findall(r"^FROM\s+(\S+)", DOCKERFILE.read_text(encoding="utf-8"), re.M)
    assert stages and all(_PINNED.match(image) for image in stages), stages
    assert re.match(r"^python:3\.11\.\d+-slim", stages[-1]), stages  # the image that runs


def test_the_image_carries_the_native_close_built_for_its_python() -> None:
    """The Rust stage's library lands where `streams` imports it, named for CPython 3.11."""
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert re.search(r"^FROM\s+rust:[\d.]+-slim-bookworm AS native$", text, re.M)
    assert "cargo build --release --locked --manifest-path native/Cargo.toml" in text
    assert re.search(r"COPY --from=native \S+/libtradewatch_native\.so "
                     r"\./streams/tradewatch_native\.cpython-311-x86_64-linux-gnu\.so", text)


def test_kafka_image_matches_the_local_broker_version(services: dict[str, dict[str, Any]]) -> None:
    version = re.search(r"<kafka.version>([^<]+)</kafka.version>", POM.read_text()).group(1)
    assert services["kafka"]["image"] == f"apache/kafka:{version}"


def _bind_mounts(services: dict[str, dict[str, Any]]) -> Iterator[tuple[str, str, str]]:
    for name, service in services.items():
        for volume in service.get("volumes") or []:
            if isinstance(volume, dict):
                if volume.get("type") == "bind":
                    yield name, volume["source"], volume["target"]
                continue
            source, _, rest = volume.partition(":")
            if source.startswith((".", "/")):
                yield name, source, rest.split(":")[0]


def test_every_mounted_host_path_exists(services: dict[str, dict[str, Any]]) -> None:
    mounts = list(_bind_mounts(services))
    assert mounts
    for name, source, _ in mounts:
        assert (ROOT / source).resolve().exists(), f"{name}: mounts missing {source}"
    build = services["topics"].get("build") or {}
    assert (ROOT / build.get("context", ".") / build.get("dockerfile", "Dockerfile")).exists()


def test_named_volumes_are_declared(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    for name, service in compose["services"].items():
        for volume in service.get("volumes") or []:
            source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source", "")
            if source and not source.startswith((".", "/")):
                assert source in declared, f"{name}: volume {source} not declared"


def test_depends_on_names_services(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for dep in service.get("depends_on") or []:
            assert dep in services, f"{name} depends on unknown {dep}"


def test_bootstrap_servers_point_at_the_kafka_listener(services: dict[str, dict[str, Any]]) -> None:
    advertised = _env(services["kafka"])["KAFKA_ADVERTISED_LISTENERS"].split(",")
    addresses = {item.split("://", 1)[1] for item in advertised}
    tradewatch = [n for n, s in services.items() if _command(s)[:1] == ["tradewatch"]]
    assert len(tradewatch) >= 4
    for name in tradewatch:
        bootstrap = _env(services[name]).get("TRADEWATCH_BOOTSTRAP_SERVERS")
        assert bootstrap == "kafka:9092", f"{name}: TRADEWATCH_BOOTSTRAP_SERVERS={bootstrap}"
        assert bootstrap in addresses, f"{name}: {bootstrap} is not an advertised listener"
        assert "kafka" in (services[name].get("depends_on") or {}) or "topics" in (
            services[name].get("depends_on") or {}), f"{name} does not wait for kafka"


def test_scrape_targets_are_the_compose_workers(services: dict[str, dict[str, Any]]) -> None:
    config = _yaml(PROM_CONFIG)
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    targets = [t for sc in jobs["tradewatch"]["static_configs"] for t in sc["targets"]]
    assert jobs["tradewatch"].get("metrics_path", "/metrics") == "/metrics"
    workers = _workers(services)
    assert sorted(t.split(":")[0] for t in targets) == sorted(workers)
    for target in targets:
        host, port = target.split(":")
        env = _env(services[host])
        assert env.get("TRADEWATCH_WEB_PORT") == port, f"{host}: web port is not {port}"
        assert env.get("TRADEWATCH_WEB_HOST") == "0.0.0.0", f"{host}: /metrics bound to loopback"
        published = [p.rsplit(":", 1)[1] for p in services[host].get("ports") or []]
        assert port in published, f"{host}: container port {port} not in ports {published}"
        assert port in str(services[host]["healthcheck"]["test"]), f"{host}: healthcheck port"
    assert sorted(config["rule_files"]) == ["alerting_rules.yml", "recording_rules.yml"]


def test_prometheus_and_grafana_mounts_match_their_config(
    services: dict[str, dict[str, Any]],
) -> None:
    prom_mounts = {src: dst for _, src, dst in _bind_mounts({"p": services["prometheus"]})}
    assert prom_mounts == {"./deploy/prometheus": "/etc/prometheus"}
    assert "--config.file=/etc/prometheus/prometheus.yml" in _command(services["prometheus"])
    graf_mounts = {src: dst for _, src, dst in _bind_mounts({"g": services["grafana"]})}
    provider = _yaml(PROVIDERS)["providers"][0]
    assert graf_mounts["./deploy/grafana/dashboards"] == provider["options"]["path"]
    assert graf_mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    datasource = _yaml(DATASOURCES)["datasources"][0]
    assert datasource["url"] == "http://prometheus:9090"
    assert any(p.endswith(":9090") for p in services["prometheus"]["ports"])


# ------------------------------------------------------------------ rules
def _rules(path: Path) -> list[dict[str, Any]]:
    return [r for g in _yaml(path)["groups"] for r in g["rules"]]


def test_rules_name_only_exported_metrics() -> None:
    allowed = exported_names() | recording_rule_names() | PROMETHEUS_SYNTHETIC
    for rule in _rules(RECORDING) + _rules(ALERTING):
        names = promql_metric_names(rule["expr"])
        assert names, rule
        unknown = names - allowed
        assert not unknown, f"{rule.get('alert') or rule.get('record')}: unknown {unknown}"


def _anchors(markdown: str) -> set[str]:
    """GitHub-style heading anchors."""
    out = set()
    for heading in re.findall(r"^#+\s+(.+?)\s*$", markdown, re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        out.add(slug)
    return out


def test_every_alert_has_severity_annotations_and_runbook() -> None:
    anchors = _anchors(OPERATORS_DOC.read_text(encoding="utf-8"))
    alerts = [r for r in _rules(ALERTING) if "alert" in r]
    assert {a["alert"] for a in alerts} >= {
        "TradewatchWorkerDown", "TradewatchNoEventsProcessed", "TradewatchConsumerLagGrowing",
        "TradewatchDeadLetterRateHigh", "TradewatchHighSeverityTradeAlert"}
    for alert in alerts:
        assert alert["labels"]["severity"] in {"page", "ticket"}, alert["alert"]
        notes = alert["annotations"]
        assert {"summary", "description", "runbook", "dashboard"} <= set(notes), alert["alert"]
        doc, _, anchor = notes["runbook"].partition("#")
        assert doc == "docs/operators.md" and anchor in anchors, f"{alert['alert']}: {anchor}"
        uid = notes["dashboard"].removeprefix("/d/")
        assert uid in {json.loads(p.read_text())["uid"] for p in DASHBOARDS}


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    firing: set[str] = set()
    silent: set[str] = set()
    for path in sorted((PROM_DIR / "tests").glob("*.yml")):
        for test in _yaml(path).get("tests", []):
            for case in test.get("alert_rule_test", []):
                (firing if case.get("exp_alerts") else silent).add(case["alertname"])
    names = {r["alert"] for r in _rules(ALERTING) if "alert" in r}
    assert names <= firing, f"never tested firing: {names - firing}"
    assert names <= silent, f"never tested silent: {names - silent}"


# ------------------------------------------------------------------ dashboards
def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


@pytest.fixture(scope="module")
def dashboards() -> dict[str, dict[str, Any]]:
    assert {p.name for p in DASHBOARDS} >= {"pipeline-health.json", "trade-anomalies.json"}
    return {p.name: json.loads(p.read_text(encoding="utf-8")) for p in DASHBOARDS}


def test_dashboards_are_grafana_dashboards(dashboards: dict[str, dict[str, Any]]) -> None:
    uid = _yaml(DATASOURCES)["datasources"][0]["uid"]
    uids = [d["uid"] for d in dashboards.values()]
    assert len(set(uids)) == len(uids)
    for name, d in dashboards.items():
        assert 36 <= d["schemaVersion"] <= 41, name
        assert d["title"] and re.fullmatch(r"[\w-]{1,40}", d["uid"]), name
        ids = [p["id"] for p in _panels(d["panels"])]
        assert len(set(ids)) == len(ids), f"{name}: duplicate panel ids"
        for panel in _panels(d["panels"]):
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0, (name, panel["title"])
            if panel["type"] == "row":
                continue
            assert panel["datasource"]["uid"] == uid, (name, panel["title"])
            assert panel.get("description"), f"{name}: {panel['title']} has no description"
        for var in d["templating"]["list"]:
            assert var["datasource"]["uid"] == uid, (name, var["name"])


def test_every_panel_has_a_query(dashboards: dict[str, dict[str, Any]]) -> None:
    for name, d in dashboards.items():
        for panel in _panels(d["panels"]):
            if panel["type"] == "row":
                continue
            targets = panel.get("targets") or []
            assert targets and all(t.get("expr", "").strip() for t in targets), (
                f"{name}: panel {panel['title']!r} has no query")
            refs = [t["refId"] for t in targets]
            assert len(set(refs)) == len(refs), (name, panel["title"])


def _substituted(expr: str) -> str:
    return re.sub(r"\$\{?(\w+)(?::\w+)?\}?", lambda m: {
        "__rate_interval": "1m", "__interval": "15s", "__range": "1h"}.get(m.group(1), ".*"), expr)


def test_every_query_names_only_exported_metrics(dashboards: dict[str, dict[str, Any]]) -> None:
    allowed = exported_names() | recording_rule_names() | PROMETHEUS_SYNTHETIC
    for name, d in dashboards.items():
        exprs = [(p["title"], t["expr"])
                 for p in _panels(d["panels"]) for t in p.get("targets", [])]
        exprs += [(f"${v['name']}", v["definition"].replace("label_values(", "").split(",")[0])
                  for v in d["templating"]["list"]]
        for title, expr in exprs:
            names = promql_metric_names(_substituted(expr))
            assert names, f"{name}: {title}: no metric in {expr!r}"
            unknown = names - allowed
            assert not unknown, f"{name}: {title}: not exported nor recorded: {unknown}"


def test_anomaly_panels_filter_on_the_template_variables(
    dashboards: dict[str, dict[str, Any]],
) -> None:
    d = dashboards["trade-anomalies.json"]
    names = {v["name"] for v in d["templating"]["list"]}
    assert names >= {"transit_country", "chpl_tier", "instance"}
    for var in d["templating"]["list"]:
        assert var["query"]["query"].startswith("label_values(")
    labelled = ("tradewatch_alerts_published", "tradewatch_alert_score",
                "tradewatch_alert_surprise",
                "tradewatch_alert_timestamp", "tradewatch_incidents_published")
    checked = 0
    for panel in _panels(d["panels"]):
        for target in panel.get("targets", []):
            if any(m in target["expr"] for m in labelled):
                checked += 1
                for var in ("$transit_country", "$chpl_tier", "$instance"):
                    assert var in target["expr"], f"{panel['title']}: does not use {var}"
    assert checked >= 9
    health = dashboards["pipeline-health.json"]
    assert [v["name"] for v in health["templating"]["list"]] == ["instance"]
