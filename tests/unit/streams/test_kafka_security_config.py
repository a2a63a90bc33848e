"""The [kafka] security settings: what is accepted, what is refused and why.

Secrets never live in the TOML; a setting that cannot work fails at load with
the key's path, before any client tries to connect.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.config import ConfigError, load_settings_text

SECRET = "hunter2-do-not-print"


def _load(text: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return load_settings_text(text, env=env or {})


def _sasl(tmp_path: Path, **extra: str) -> str:
    password = tmp_path / "password"
    password.write_text(SECRET + "\n")
    lines = {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
             "sasl_username": "tradewatch", "sasl_password_file": str(password), **extra}
    return "[kafka]\n" + "".join(f'{k} = "{v}"\n' for k, v in lines.items())


def test_plaintext_is_the_default_and_needs_nothing() -> None:
    kafka = _load("").kafka
    assert kafka.security_protocol == "PLAINTEXT"
    assert kafka.sasl_mechanism is None and kafka.ssl_cafile is None
    assert kafka.ssl_check_hostname is True


def test_a_complete_sasl_ssl_section_loads(tmp_path: Path) -> None:
    kafka = _load(_sasl(tmp_path)).kafka
    assert (kafka.security_protocol, kafka.sasl_mechanism, kafka.sasl_username) == (
        "SASL_SSL", "SCRAM-SHA-512", "tradewatch")
    assert kafka.ssl_cafile is None  # unset: the system's trusted CAs


@pytest.mark.parametrize("key", ["sasl_password", "password", "ssl_key_password"])
def test_an_inline_secret_is_refused_with_where_it_belongs(key: str) -> None:
    with pytest.raises(ConfigError) as err:
        _load(f'[kafka]\n{key} = "{SECRET}"\n')
    assert err.value.path == f"kafka.{key}"
    assert "_env" in str(err.value) and "_file" in str(err.value)
    assert SECRET not in str(err.value)


@pytest.mark.parametrize("missing, path", [
    ("sasl_mechanism", "kafka.sasl_mechanism"),
    ("sasl_username", "kafka.sasl_username"),
    ("sasl_password_file", "kafka.sasl_password_env"),
])
def test_sasl_needs_a_mechanism_a_user_and_a_password_source(
        tmp_path: Path, missing: str, path: str) -> None:
    text = "\n".join(line for line in _sasl(tmp_path).splitlines()
                     if not line.startswith(missing))
    with pytest.raises(ConfigError) as err:
        _load(text)
    assert err.value.path == path


def test_two_password_sources_are_one_too_many(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="set one of") as err:
        _load(_sasl(tmp_path, sasl_password_env="KAFKA_PASSWORD"))
    assert err.value.path == "kafka.sasl_password_env"


@pytest.mark.parametrize("key", ["ssl_cafile", "ssl_certfile"])
def test_tls_files_next_to_plaintext_are_refused_not_ignored(key: str) -> None:
    with pytest.raises(ConfigError, match="only used with security_protocol SSL") as err:
        _load(f'[kafka]\n{key} = "/etc/hostname"\n')
    assert err.value.path == f"kafka.{key}"


def test_sasl_keys_next_to_ssl_only_are_refused() -> None:
    with pytest.raises(ConfigError, match="SASL_PLAINTEXT or SASL_SSL") as err:
        _load('[kafka]\nsecurity_protocol = "SSL"\nsasl_username = "bob"\n')
    assert err.value.path == "kafka.sasl_username"


def test_a_ca_file_that_does_not_exist_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file") as err:
        _load(f'[kafka]\nsecurity_protocol = "SSL"\nssl_cafile = "{tmp_path}/nope.pem"\n')
    assert err.value.path == "kafka.ssl_cafile"


def test_a_key_needs_its_certificate(tmp_path: Path) -> None:
    key = tmp_path / "client.key"
    key.write_text("x")
    with pytest.raises(ConfigError) as err:
        _load(f'[kafka]\nsecurity_protocol = "SSL"\nssl_keyfile = "{key}"\n')
    assert err.value.path == "kafka.ssl_keyfile"


def test_an_unknown_mechanism_lists_the_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="SCRAM-SHA-512") as err:
        _load(_sasl(tmp_path, sasl_mechanism="MD5"))
    assert err.value.path == "kafka.sasl_mechanism"


def test_credentials_in_the_bootstrap_address_are_refused_and_masked() -> None:
    with pytest.raises(ConfigError) as err:
        _load(f'[kafka]\nbootstrap_servers = "bob:{SECRET}@kafka-1:9092"\n')
    assert err.value.path == "kafka.bootstrap_servers"
    assert SECRET not in str(err.value) and "***@kafka-1:9092" in str(err.value)


def test_the_password_from_the_environment_is_kept_by_name_never_by_value(tmp_path: Path) -> None:
    settings = _load(_sasl(tmp_path), env={"TRADEWATCH_KAFKA_SASL_PASSWORD": SECRET})
    # the override replaces the file as the source
    assert settings.kafka.sasl_password_env == "TRADEWATCH_KAFKA_SASL_PASSWORD"
    assert settings.kafka.sasl_password_file is None
    assert SECRET not in settings.to_toml()
    assert SECRET not in repr(settings.to_dict())


def test_every_security_key_can_come_from_the_environment(tmp_path: Path) -> None:
    password = tmp_path / "pw"
    password.write_text(SECRET)
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    kafka = _load("", env={
        "TRADEWATCH_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "TRADEWATCH_KAFKA_SASL_MECHANISM": "PLAIN",
        "TRADEWATCH_KAFKA_SASL_USERNAME": "bob",
        "TRADEWATCH_KAFKA_SASL_PASSWORD_FILE": str(password),
        "TRADEWATCH_KAFKA_SSL_CAFILE": str(ca),
        "TRADEWATCH_KAFKA_SSL_CHECK_HOSTNAME": "false",
    }).kafka
    assert (kafka.security_protocol, kafka.sasl_mechanism, kafka.sasl_username) == (
        "SASL_SSL", "PLAIN", "bob")
    assert kafka.sasl_password_file == str(password) and kafka.ssl_cafile == str(ca)
    assert kafka.ssl_check_hostname is False


def test_the_effective_config_round_trips_through_toml(tmp_path: Path) -> None:
    settings = _load(_sasl(tmp_path))
    assert load_settings_text(settings.to_toml(), env={}) == settings
