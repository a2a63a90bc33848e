"""The worker and the tooling against a cluster that wants TLS and a SASL login.

A private secure broker (``tradewatch kafka start --secure``) runs for this module
with its own var directory and ports, beside the shared plain broker. Without
credentials, or with a wrong password, the worker stops at once with one line;
with the right ones, ``topics create``, ``produce``, a worker and ``alerts tail``
work end to end. The password never appears in anything they print, log, serve
on /metrics or publish.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from streams import kafka_local
from streams.config import DEFAULT_CONFIG_PATH, KafkaSettings
from streams.events import TradeAlert
from streams.harness import private_settings, running_worker
from tests.factories import spike_stream

pytestmark = [pytest.mark.integration, pytest.mark.faults]

ROOT = Path(__file__).resolve().parents[2]


def _free_port_pair() -> int:
    """A port p with p+1 also free (the secure broker's controller listens on p+1)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port < 65534 and not kafka_local._port_in_use(port + 1):
            return port
    raise RuntimeError("no free pair of ports")


def _cli(*args: str, config: Path | None = None, env: dict[str, str] | None = None,
         timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``tradewatch [--config FILE] ARGS`` with no TRADEWATCH_* from this process."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("TRADEWATCH_")}
    cmd = [sys.executable, "-m", "streams.cli"]
    if config is not None:
        cmd += ["--config", str(config)]
    return subprocess.run([*cmd, *args], env={**base, "PYTHONPATH": str(ROOT), **(env or {})},
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Start a private secure broker; yield its client settings and password (stop it after)."""
    kafka_local.fetch_jars()  # no-op when the shared jars are up to date
    var = tmp_path_factory.mktemp("secure-var")
    (var / "kafka").mkdir()
    (var / "kafka" / "libs").symlink_to(kafka_local.home_dir() / "libs")
    env = {"TRADEWATCH_VAR_DIR": str(var), "TRADEWATCH_KAFKA_PORT": str(_free_port_pair())}
    started = _cli("kafka", "start", "--secure", env=env, timeout=180)
    try:
        assert started.returncode == 0, started.stderr
        client_toml = var / "kafka-secure" / "client.toml"
        client = tomllib.loads(client_toml.read_text())["kafka"]
        password = Path(client["sasl_password_file"]).read_text().strip()
        assert password not in started.stdout + started.stderr  # printed as a path only
        assert client["sasl_password_file"] in started.stderr
        yield {**client, "password": password}
    finally:
        _cli("kafka", "stop", "--secure", env=env, timeout=120)


def _config(tmp_path: Path, name: str, kafka: dict[str, str]) -> Path:
    lines = [f"{k} = {msgspec.json.encode(v).decode()}" for k, v in kafka.items()]
    path = tmp_path / f"{name}.toml"
    path.write_text("[kafka]\n" + "\n".join(lines) + "\n")
    return path


def _client(secure_broker: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in secure_broker.items() if k != "password"}


def _assert_one_line_failure(proc: subprocess.CompletedProcess[str], *secrets: str) -> str:
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert "Traceback" not in output
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, output
    for secret in secrets:
        assert secret not in output
    return lines[0]


# --------------------------------------------------------------------------- refused


def test_a_worker_without_credentials_is_told_the_listener_wants_tls(
        secure_broker: dict[str, str], tmp_path: Path) -> None:
    config = _config(tmp_path, "plain", {"bootstrap_servers": secure_broker["bootstrap_servers"]})
    line = _assert_one_line_failure(_cli("worker", config=config, timeout=30),
                                    secure_broker["password"])
    address = secure_broker["bootstrap_servers"]
    assert line.startswith(f"tradewatch: cannot reach Kafka at {address}")
    assert "TLS" in line


def test_a_worker_whose_password_variable_is_unset_names_the_key(
        secure_broker: dict[str, str], tmp_path: Path) -> None:
    kafka = {**_client(secure_broker), "sasl_password_env": "TW_TEST_UNSET_PASSWORD"}
    del kafka["sasl_password_file"]
    line = _assert_one_line_failure(_cli("worker", config=_config(tmp_path, "unset", kafka),
                                         timeout=30), secure_broker["password"])
    assert line == ("tradewatch: config error at kafka.sasl_password_env: "
                    "environment variable TW_TEST_UNSET_PASSWORD is not set or empty")


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "PLAIN"])
def test_a_worker_with_a_wrong_password_fails_authentication_without_showing_it(
        secure_broker: dict[str, str], tmp_path: Path, mechanism: str) -> None:
    wrong = "wrong-" + secure_broker["password"][::-1]
    kafka = {**_client(secure_broker), "sasl_mechanism": mechanism,
             "sasl_password_env": "TW_TEST_KAFKA_PASSWORD"}
    del kafka["sasl_password_file"]
    proc = _cli("worker", config=_config(tmp_path, "wrong", kafka), timeout=30,
                env={"TW_TEST_KAFKA_PASSWORD": wrong})
    line = _assert_one_line_failure(proc, wrong, secure_broker["password"])
    assert line.startswith(f"tradewatch: cannot reach Kafka at {secure_broker['bootstrap_servers']}"
                           f" (authentication failed for user 'tradewatch' with {mechanism}")


def test_a_client_that_does_not_trust_the_ca_fails_the_tls_handshake(
        secure_broker: dict[str, str], tmp_path: Path) -> None:
    kafka = _client(secure_broker)
    del kafka["ssl_cafile"]  # the system's CAs do not know the local CA
    proc = _cli("topics", "create", config=_config(tmp_path, "noca", kafka), timeout=30)
    line = _assert_one_line_failure(proc, secure_broker["password"])
    assert "TLS handshake failed" in line and "certificate" in line


# --------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def secure_run(secure_broker: dict[str, str],
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """topics create, produce, a worker and alerts tail, all as the SASL_SSL client user."""
    tmp = tmp_path_factory.mktemp("secure-run")
    kafka = KafkaSettings(**_client(secure_broker))
    settings, toml = private_settings(kafka, DEFAULT_CONFIG_PATH.read_text())
    config = tmp / "tradewatch.toml"
    config.write_text(toml)
    records, key = spike_stream(days=70, spike_day=50)
    source = tmp / "declarations.jsonl"
    source.write_bytes(b"\n".join(records) + b"\n")
    outputs = {"topics": _cli("topics", "create", config=config)}
    with running_worker(toml, settings, tmp / "worker") as worker:
        outputs["produce"] = _cli("produce", str(source), "--quiet", config=config)
        deadline = time.monotonic() + 120
        while worker.sample("tradewatch_declarations_consumed_total") < len(records):
            assert time.monotonic() < deadline, worker.log_tail()
            assert worker.proc.poll() is None, worker.log_tail()
            time.sleep(0.5)
        outputs["tail"] = _cli("alerts", "tail", "--json", "--from-beginning", "--timeout", "15",
                               config=config, timeout=120)
        outputs["config check"] = _cli("config", "check", str(config))
        outputs["config check (password from env)"] = _cli(
            "config", "check", str(config),
            env={"TRADEWATCH_KAFKA_SASL_PASSWORD": secure_broker["password"]})
        metrics = worker.metrics_text()
    yield {"outputs": outputs, "metrics": metrics, "key": key, "records": len(records),
           "log": worker.log_path.read_text(errors="replace"), "config": config.read_text()}


def test_every_command_succeeds_as_the_client_user(secure_run: dict[str, Any]) -> None:
    for name, proc in secure_run["outputs"].items():
        assert proc.returncode == 0, f"{name}: {proc.stderr}"
    assert "created:" in secure_run["outputs"]["topics"].stdout
    assert f"sent {secure_run['records']} records" in secure_run["outputs"]["produce"].stderr


def test_alerts_come_through_the_secured_cluster(secure_run: dict[str, Any]) -> None:
    lines = secure_run["outputs"]["tail"].stdout.splitlines()
    alerts = [msgspec.json.decode(line, type=TradeAlert) for line in lines]
    spikes = [a for a in alerts if a.detector == "spike" and a.series.key == secure_run["key"]]
    assert spikes, secure_run["log"][-4000:]


def test_the_password_appears_nowhere(secure_run: dict[str, Any],
                                      secure_broker: dict[str, str]) -> None:
    secret = secure_broker["password"]
    places = {"worker log": secure_run["log"], "/metrics": secure_run["metrics"],
              "worker config": secure_run["config"]}
    for name, proc in secure_run["outputs"].items():
        places[name] = proc.stdout + proc.stderr
    assert secure_run["outputs"]["tail"].stdout  # alerts are among the places searched
    for name, text in places.items():
        assert secret not in text, f"the password appears in {name}"
