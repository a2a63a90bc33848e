"""One set of connection settings for every client library, and the fail-fast probe."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import faust
import pytest

from streams.config import ConfigError, KafkaSettings
from streams.kafka_clients import (
    KafkaUnreachable,
    aiokafka_kwargs,
    as_kafka,
    check_cluster,
    faust_broker_credentials,
    faust_broker_url,
    kafka_python_kwargs,
    read_secret,
    ssl_context,
)

SECRET = "s3cret-value-never-shown"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the block ends


def _sasl(tmp_path: Path, protocol: str = "SASL_SSL") -> KafkaSettings:
    password = tmp_path / "password"
    password.write_text(SECRET + "\n")
    return KafkaSettings(bootstrap_servers="a:9092, b:9093", security_protocol=protocol,
                         sasl_mechanism="SCRAM-SHA-256", sasl_username="bob",
                         sasl_password_file=str(password))


def test_plaintext_clients_get_the_address_and_nothing_else() -> None:
    kafka = as_kafka("a:9092,b:9093")
    assert aiokafka_kwargs(kafka) == {"bootstrap_servers": ["a:9092", "b:9093"],
                                      "security_protocol": "PLAINTEXT"}
    assert kafka_python_kwargs(kafka) == {"bootstrap_servers": ["a:9092", "b:9093"],
                                          "security_protocol": "PLAINTEXT"}
    assert faust_broker_credentials(kafka) is None
    assert faust_broker_url(kafka) == "kafka://a:9092;kafka://b:9093"


def test_sasl_ssl_gives_every_library_the_same_login_and_tls(tmp_path: Path) -> None:
    kafka = _sasl(tmp_path)
    aio = aiokafka_kwargs(kafka)
    assert aio["security_protocol"] == "SASL_SSL"
    assert (aio["sasl_mechanism"], aio["sasl_plain_username"], aio["sasl_plain_password"]) == (
        "SCRAM-SHA-256", "bob", SECRET)  # the file's first line, without its newline
    assert isinstance(aio["ssl_context"], ssl.SSLContext)
    assert aio["ssl_context"].check_hostname and aio["ssl_context"].verify_mode == ssl.CERT_REQUIRED
    kp = kafka_python_kwargs(kafka)
    assert (kp["security_protocol"], kp["sasl_mechanism"], kp["sasl_plain_password"]) == (
        "SASL_SSL", "SCRAM-SHA-256", SECRET)
    assert kp["ssl_check_hostname"] is True and kp["ssl_cafile"] is None
    creds = faust_broker_credentials(kafka)
    assert isinstance(creds, faust.SASLCredentials)
    assert creds.protocol.value == "SASL_SSL" and creds.mechanism.value == "SCRAM-SHA-256"
    assert SECRET not in repr(creds)


def test_sasl_plaintext_has_no_tls(tmp_path: Path) -> None:
    kafka = _sasl(tmp_path, protocol="SASL_PLAINTEXT")
    assert "ssl_context" not in aiokafka_kwargs(kafka)
    assert faust_broker_credentials(kafka).protocol.value == "SASL_PLAINTEXT"


def test_the_hostname_check_can_be_switched_off_but_the_chain_is_still_verified() -> None:
    kafka = KafkaSettings(security_protocol="SSL", ssl_check_hostname=False)
    context = ssl_context(kafka)
    assert context is not None and not context.check_hostname
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert isinstance(faust_broker_credentials(kafka), faust.SSLCredentials)


def test_a_password_variable_that_is_not_set_names_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TW_TEST_KAFKA_PASSWORD", raising=False)
    kafka = KafkaSettings(security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN",
                          sasl_username="bob", sasl_password_env="TW_TEST_KAFKA_PASSWORD")
    with pytest.raises(ConfigError, match="TW_TEST_KAFKA_PASSWORD is not set") as err:
        aiokafka_kwargs(kafka)
    assert err.value.path == "kafka.sasl_password_env"
    monkeypatch.setenv("TW_TEST_KAFKA_PASSWORD", SECRET)
    assert read_secret(kafka, "sasl_password") == SECRET


def test_an_empty_password_file_is_an_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("")
    kafka = KafkaSettings(security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN",
                          sasl_username="bob", sasl_password_file=str(empty))
    with pytest.raises(ConfigError, match="is empty"):
        read_secret(kafka, "sasl_password")


def test_a_closed_port_is_one_line_naming_address_and_cause() -> None:
    port = _closed_port()
    with pytest.raises(KafkaUnreachable) as err:
        check_cluster(f"127.0.0.1:{port}", timeout=5)
    assert str(err.value) == f"cannot reach Kafka at 127.0.0.1:{port} (connection refused)"


def test_the_probe_never_shows_the_password(tmp_path: Path) -> None:
    password = tmp_path / "password"
    password.write_text(SECRET)
    kafka = KafkaSettings(bootstrap_servers=f"127.0.0.1:{_closed_port()}",
                          security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN",
                          sasl_username="bob", sasl_password_file=str(password))
    with pytest.raises(KafkaUnreachable) as err:
        check_cluster(kafka, timeout=5)
    assert SECRET not in str(err.value) and "\n" not in str(err.value)
