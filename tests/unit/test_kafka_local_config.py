"""The local broker's generated configuration and pid handling, without a broker."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from streams import kafka_local


def _parse(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            assert key not in out, f"duplicate key {key}"
            out[key] = value
    return out


@pytest.fixture
def props() -> dict[str, str]:
    return _parse(kafka_local.render_server_properties(
        port=19092, controller_port=19093, data_dir="/tmp/tw-kafka-data"))


def test_binds_loopback_only(props: dict[str, str]) -> None:
    listeners = props["listeners"].split(",")
    assert listeners == ["PLAINTEXT://127.0.0.1:19092", "CONTROLLER://127.0.0.1:19093"]
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    every_value = " ".join(props.values())
    for wildcard in ("0.0.0.0", "://:", "[::]", "localhost"):
        assert wildcard not in every_value


def test_single_node_kraft(props: dict[str, str]) -> None:
    assert props["process.roles"] == "broker,controller"
    assert props["node.id"] == "1"
    assert props["controller.listener.names"] == "CONTROLLER"
    assert props["inter.broker.listener.name"] == "PLAINTEXT"
    assert props["log.dirs"] == "/tmp/tw-kafka-data"
    assert "controller.quorum.bootstrap.servers" not in props  # static quorum only
    assert not any(k.startswith("zookeeper") for k in props)


def test_every_replication_setting_is_one(props: dict[str, str]) -> None:
    keys = [
        "default.replication.factor",
        "min.insync.replicas",
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
        "share.coordinator.state.topic.replication.factor",
        "share.coordinator.state.topic.min.isr",
    ]
    for key in keys:
        assert props[key] == "1", key
    replication_keys = [k for k in props if "replication.factor" in k or "min.isr" in k
                        or k == "min.insync.replicas"]
    assert all(props[k] == "1" for k in replication_keys), replication_keys


def test_single_node_topic_defaults(props: dict[str, str]) -> None:
    assert props["auto.create.topics.enable"] == "false"
    assert props["num.partitions"] == "1"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert int(props["log.retention.hours"]) > 0
    assert int(props["log.retention.bytes"]) > 0


def test_log4j_config_writes_to_broker_log(tmp_path: Path) -> None:
    text = kafka_local.render_log4j2_config(tmp_path / "broker.log")
    assert f'fileName="{tmp_path / "broker.log"}"' in text
    assert "<Console" not in text


def test_home_and_ports_follow_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEWATCH_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("TRADEWATCH_KAFKA_PORT", "29092")
    monkeypatch.delenv("TRADEWATCH_BOOTSTRAP_SERVERS", raising=False)
    assert kafka_local.home_dir() == tmp_path / "kafka"
    assert kafka_local.bootstrap_address() == "127.0.0.1:29092"
    (tmp_path / "kafka").mkdir()
    kafka_local._write_configs()
    written = _parse((tmp_path / "kafka" / "server.properties").read_text())
    assert written["listeners"] == "PLAINTEXT://127.0.0.1:29092,CONTROLLER://127.0.0.1:29093"
    assert written["log.dirs"] == str(tmp_path / "kafka" / "data")


def test_bad_port_env_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEWATCH_KAFKA_PORT", "kafka")
    with pytest.raises(kafka_local.KafkaLocalError, match="TRADEWATCH_KAFKA_PORT"):
        kafka_local.bootstrap_address()


def test_stale_pid_file_is_cleaned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEWATCH_VAR_DIR", str(tmp_path))
    monkeypatch.delenv("TRADEWATCH_BOOTSTRAP_SERVERS", raising=False)
    home = tmp_path / "kafka"
    home.mkdir()
    # a pid that is alive but is not our broker (this very test process)
    import os

    (home / "broker.pid").write_text(f"{os.getpid()}\n")
    info = kafka_local.status()
    assert info["running"] is False and info["stale_pid_file"] is True
    assert info["answering"] is False
    assert kafka_local.stop() is False, "must not signal a process that is not our broker"
    assert not (home / "broker.pid").exists()
    # a garbage pid file
    (home / "broker.pid").write_text("not a pid\n")
    assert kafka_local.stop() is False


def test_start_refuses_a_port_taken_by_someone_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen(1)
        port = squatter.getsockname()[1]
        monkeypatch.setenv("TRADEWATCH_VAR_DIR", str(tmp_path))
        monkeypatch.setenv("TRADEWATCH_KAFKA_PORT", str(port))
        monkeypatch.delenv("TRADEWATCH_BOOTSTRAP_SERVERS", raising=False)
        with pytest.raises(kafka_local.KafkaLocalError, match=f"127.0.0.1:{port}"):
            kafka_local.start(timeout=5)
    assert not (tmp_path / "kafka" / "broker.pid").exists()


def test_external_cluster_is_never_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRADEWATCH_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("TRADEWATCH_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    assert kafka_local.external_bootstrap() == "127.0.0.1:1"
    assert kafka_local.external_bootstrap("127.0.0.2:9092") == "127.0.0.2:9092"
    assert kafka_local.stop() is False


# --------------------------------------------------------------------------- secure broker


@pytest.fixture
def secure_props(tmp_path: Path) -> dict[str, str]:
    from streams import kafka_secure

    files = kafka_secure.SecureFiles(tmp_path)
    overrides = kafka_secure.security_properties(
        port=19094, controller_port=19095, host="127.0.0.1", files=files,
        passwords={"client": "c", "keystore": "k", "broker": "b"})
    return _parse(kafka_local.render_server_properties(
        port=19094, controller_port=19095, data_dir="/tmp/tw-kafka-data", overrides=overrides))


def test_the_secure_broker_has_one_client_listener_and_it_is_sasl_ssl_on_loopback(
        secure_props: dict[str, str]) -> None:
    assert secure_props["listeners"].split(",") == [
        "SASL_SSL://127.0.0.1:19094", "CONTROLLER://127.0.0.1:19095"]
    assert secure_props["advertised.listeners"] == "SASL_SSL://127.0.0.1:19094"
    assert secure_props["inter.broker.listener.name"] == "SASL_SSL"
    assert "PLAINTEXT://" not in secure_props["listeners"]
    assert set(secure_props["sasl.enabled.mechanisms"].split(",")) == {
        "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"}
    assert secure_props["ssl.endpoint.identification.algorithm"] == "https"
    every_value = " ".join(secure_props.values())
    for wildcard in ("0.0.0.0", "://:", "[::]"):
        assert wildcard not in every_value
    # everything else is the plain broker's single-node setup
    assert secure_props["process.roles"] == "broker,controller"
    assert secure_props["auto.create.topics.enable"] == "false"


def test_secrets_are_created_once_and_readable_by_the_owner_only(tmp_path: Path) -> None:
    from streams import kafka_secure

    files = kafka_secure.SecureFiles(tmp_path)
    first = kafka_secure.ensure_secrets(files)
    assert kafka_secure.ensure_secrets(files) == first
    assert len(set(first.values())) == 3 and all(len(v) >= 24 for v in first.values())
    assert files.client_password.stat().st_mode & 0o777 == 0o600
    assert files.secrets.stat().st_mode & 0o777 == 0o700


def test_generated_certificates_chain_to_the_local_ca_for_127_0_0_1(tmp_path: Path) -> None:
    import ssl
    import subprocess

    from streams import kafka_secure

    files = kafka_secure.SecureFiles(tmp_path)
    kafka_secure.ensure_certificates(files, keystore_password="k" * 24)
    assert files.keystore.exists() and files.keystore.stat().st_mode & 0o777 == 0o600
    cert = files.tls / "broker.pem"
    verify = subprocess.run(["openssl", "verify", "-CAfile", str(files.ca_cert), str(cert)],
                            capture_output=True, text=True)
    assert verify.returncode == 0, verify.stderr
    text = subprocess.run(["openssl", "x509", "-in", str(cert), "-noout", "-ext",
                           "subjectAltName"], capture_output=True, text=True).stdout
    assert "IP Address:127.0.0.1" in text and "DNS:localhost" in text
    ssl.create_default_context(cafile=str(files.ca_cert))  # a CA clients can load


def test_the_client_settings_name_the_password_file_never_the_password(tmp_path: Path) -> None:
    from streams import kafka_secure

    files = kafka_secure.SecureFiles(tmp_path)
    password = kafka_secure.ensure_secrets(files)["client"]
    settings = kafka_secure.client_settings(files, "127.0.0.1:19094")
    toml = kafka_secure.render_client_toml(settings)
    assert password not in toml
    from streams.config import load_settings_text

    files.ca_cert.parent.mkdir(parents=True, exist_ok=True)
    files.ca_cert.write_text("placeholder")
    kafka = load_settings_text(toml, env={}).kafka
    assert (kafka.security_protocol, kafka.sasl_username) == ("SASL_SSL", "tradewatch")
    assert kafka.sasl_password_file == str(files.client_password)
