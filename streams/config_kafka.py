"""The ``[kafka]`` section's rules that span keys: security settings that cannot work.

Kept apart from :mod:`streams.config` (which owns the types and the loading) so
the security rules read in one place. Every error names the key as
``kafka.<key>``, like every other :class:`~streams.config.ConfigError`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from streams.config import ConfigError, KafkaSettings
from streams.redact import mask_credentials

__all__ = ["check_kafka", "refuse_inline_secrets"]

#: Keys people write for a secret; each names where the secret goes instead.
_INLINE_SECRETS = {"sasl_password": "sasl_password", "password": "sasl_password",
                   "ssl_password": "ssl_key_password", "ssl_key_password": "ssl_key_password"}


def refuse_inline_secrets(raw: dict[str, Any]) -> None:
    """A password written into the TOML is refused before anything else is read."""
    kafka = raw.get("kafka")
    if not isinstance(kafka, dict):
        return
    for key, target in _INLINE_SECRETS.items():
        if key in kafka:
            raise ConfigError(
                f"kafka.{key}",
                f"secrets are not read from the config file: set {target}_env (the name of an "
                f"environment variable holding it) or {target}_file (a file holding it)")


_SASL_KEYS = ("sasl_mechanism", "sasl_username", "sasl_password_env", "sasl_password_file")
_SSL_KEYS = ("ssl_cafile", "ssl_certfile", "ssl_keyfile", "ssl_key_password_env",
             "ssl_key_password_file")
_FILE_KEYS = ("sasl_password_file", "ssl_cafile", "ssl_certfile", "ssl_keyfile",
              "ssl_key_password_file")
_ADDRESS = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(?P<port>\d{1,5})$")


def check_kafka(kafka: KafkaSettings) -> None:
    """Refuse security settings that cannot work, naming the key (``kafka.<key>``).

    The SASL keys belong to SASL_PLAINTEXT/SASL_SSL and the TLS keys to SSL/SASL_SSL:
    a CA file next to ``security_protocol = "PLAINTEXT"`` would otherwise silently
    send everything in the clear. Files named must exist now; environment
    variables are read when a client is built (``streams.kafka_clients``).
    """
    addresses = [a.strip() for a in kafka.bootstrap_servers.split(",")]
    for address in addresses:
        if "@" in address:
            raise ConfigError("kafka.bootstrap_servers", (
                f"credentials do not belong in the address ({mask_credentials(address)}); "
                "use sasl_username with sasl_password_env or sasl_password_file"))
        match = _ADDRESS.match(address)
        if not match or not 1 <= int(match.group("port")) <= 65535:
            raise ConfigError("kafka.bootstrap_servers",
                              f"{address!r} is not host:port (e.g. \"kafka-1:9092, kafka-2:9092\")")
    protocol = kafka.security_protocol
    sasl, tls = protocol.startswith("SASL_"), protocol in ("SSL", "SASL_SSL")
    for key in _SASL_KEYS if not sasl else ():
        if getattr(kafka, key) is not None:
            raise ConfigError(f"kafka.{key}", f"only used with security_protocol SASL_PLAINTEXT "
                              f"or SASL_SSL (it is {protocol})")
    for key in _SSL_KEYS if not tls else ():
        if getattr(kafka, key) is not None:
            raise ConfigError(f"kafka.{key}", f"only used with security_protocol SSL or SASL_SSL "
                              f"(it is {protocol})")
    if not tls and not kafka.ssl_check_hostname:
        raise ConfigError("kafka.ssl_check_hostname",
                          f"only used with security_protocol SSL or SASL_SSL (it is {protocol})")
    if sasl:
        for key in ("sasl_mechanism", "sasl_username"):
            if not getattr(kafka, key):
                raise ConfigError(f"kafka.{key}", f"required with security_protocol {protocol}")
        _one_source(kafka, "sasl_password", required=True)
    if kafka.ssl_keyfile and not kafka.ssl_certfile:
        raise ConfigError("kafka.ssl_keyfile", "needs ssl_certfile (the certificate it belongs to)")
    _one_source(kafka, "ssl_key_password", required=False)
    if (kafka.ssl_key_password_env or kafka.ssl_key_password_file) and not kafka.ssl_certfile:
        raise ConfigError("kafka.ssl_key_password_env", "only used with ssl_certfile/ssl_keyfile")
    for key in _FILE_KEYS:
        value = getattr(kafka, key)
        if value is not None and not Path(value).expanduser().is_file():
            raise ConfigError(f"kafka.{key}", f"no such file: {value}")


def _one_source(kafka: KafkaSettings, secret: str, required: bool) -> None:
    env, file = getattr(kafka, f"{secret}_env"), getattr(kafka, f"{secret}_file")
    if env and file:
        raise ConfigError(f"kafka.{secret}_env", f"set one of {secret}_env and {secret}_file")
    if required and not (env or file):
        raise ConfigError(f"kafka.{secret}_env", (
            f"required with security_protocol {kafka.security_protocol}: the name of an "
            f"environment variable holding the password (or set {secret}_file, or "
            "TRADEWATCH_KAFKA_SASL_PASSWORD)"))
