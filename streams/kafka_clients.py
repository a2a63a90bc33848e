"""Connection settings for every Kafka client the project builds, from one place.

The worker (aiokafka and faust), the tooling (kafka-python: topics, produce, tail)
and the tests all connect through these helpers, so a cluster's address and its
security settings are read from :class:`~streams.config.KafkaSettings` once, and
a secret is read from its environment variable or file only here, only when a
client is built. Nothing in this module logs or formats a secret.

:func:`check_cluster` is the fail-fast probe the commands run first: one
connection per bootstrap address, the TLS handshake, the SASL login and one
metadata request, each failure turned into one line that names the address and
the cause (:class:`KafkaUnreachable`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import time
from pathlib import Path
from typing import Any, Literal

from streams.config import ConfigError, KafkaSettings
from streams.kafka_local import quiet_logger
from streams.redact import mask_credentials

__all__ = [
    "KafkaUnreachable",
    "aiokafka_kwargs",
    "as_kafka",
    "bootstrap_list",
    "check_cluster",
    "faust_broker_credentials",
    "faust_broker_url",
    "kafka_python_kwargs",
    "read_secret",
    "secret_values",
    "ssl_context",
]

Secret = Literal["sasl_password", "ssl_key_password"]


class KafkaUnreachable(RuntimeError):
    """The cluster cannot be used; the message is one line: address and cause, no secret."""


def as_kafka(target: str | KafkaSettings) -> KafkaSettings:
    """``KafkaSettings`` as given, or plain (PLAINTEXT) settings for a bare bootstrap string.

    Lets the tooling keep accepting an address where no security is configured.
    """
    if isinstance(target, KafkaSettings):
        return target
    return KafkaSettings(bootstrap_servers=target)


def bootstrap_list(kafka: KafkaSettings) -> list[str]:
    """``"a:9092, b:9092"`` -> ``["a:9092", "b:9092"]``."""
    return [host.strip() for host in kafka.bootstrap_servers.split(",") if host.strip()]


def read_secret(kafka: KafkaSettings, secret: Secret) -> str | None:
    """The secret named by ``<secret>_env`` or ``<secret>_file``; None if neither is set.

    Raises :class:`~streams.config.ConfigError` naming the key when the variable is
    unset or empty, or the file cannot be read. A file's first line is the secret
    (a trailing newline, as ``echo`` writes, is not part of it).
    """
    env_name = getattr(kafka, f"{secret}_env")
    file_name = getattr(kafka, f"{secret}_file")
    if env_name:
        value = os.environ.get(env_name, "")
        if not value:
            raise ConfigError(f"kafka.{secret}_env",
                              f"environment variable {env_name} is not set or empty")
        return value
    if file_name:
        path = Path(file_name).expanduser()
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as err:
            raise ConfigError(f"kafka.{secret}_file",
                              f"cannot read {path}: {err.strerror}") from None
        if not lines or not lines[0]:
            raise ConfigError(f"kafka.{secret}_file", f"{path} is empty")
        return lines[0]
    return None


def secret_values(kafka: KafkaSettings) -> list[str]:
    """Every secret these settings resolve to (for tests and log scrubbing, never for output)."""
    values = []
    for secret in ("sasl_password", "ssl_key_password"):
        with contextlib.suppress(ConfigError):
            value = read_secret(kafka, secret)  # type: ignore[arg-type]
            if value:
                values.append(value)
    return values


def _uses_tls(kafka: KafkaSettings) -> bool:
    return kafka.security_protocol in ("SSL", "SASL_SSL")


def _uses_sasl(kafka: KafkaSettings) -> bool:
    return kafka.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL")


def ssl_context(kafka: KafkaSettings) -> ssl.SSLContext | None:
    """The TLS context for SSL/SASL_SSL (None otherwise).

    Built with aiokafka's ``create_ssl_context``: TLS client defaults, the CA file
    (or the system's CAs when ``ssl_cafile`` is unset), the client certificate,
    and the hostname check as configured.
    """
    if not _uses_tls(kafka):
        return None
    from aiokafka.helpers import create_ssl_context

    try:
        context = create_ssl_context(
            cafile=kafka.ssl_cafile, certfile=kafka.ssl_certfile, keyfile=kafka.ssl_keyfile,
            password=read_secret(kafka, "ssl_key_password"))
    except ssl.SSLError as err:
        key = "kafka.ssl_certfile" if kafka.ssl_certfile else "kafka.ssl_cafile"
        raise ConfigError(key, f"cannot load it: {err.reason or err}") from None
    except OSError as err:
        raise ConfigError("kafka.ssl_cafile", f"cannot load it: {err.strerror or err}") from None
    context.check_hostname = kafka.ssl_check_hostname
    return context


def _sasl_kwargs(kafka: KafkaSettings) -> dict[str, Any]:
    if not _uses_sasl(kafka):
        return {}
    return {
        "sasl_mechanism": kafka.sasl_mechanism,
        "sasl_plain_username": kafka.sasl_username,
        "sasl_plain_password": read_secret(kafka, "sasl_password"),
    }


def _security_aiokafka(kafka: KafkaSettings) -> dict[str, Any]:
    out: dict[str, Any] = {"security_protocol": kafka.security_protocol, **_sasl_kwargs(kafka)}
    if _uses_tls(kafka):
        out["ssl_context"] = ssl_context(kafka)
    return out


def aiokafka_kwargs(kafka: KafkaSettings) -> dict[str, Any]:
    """Keyword arguments shared by AIOKafkaConsumer/AIOKafkaProducer/AIOKafkaAdminClient:
    the bootstrap list and every security setting (TLS as an ``ssl_context``)."""
    return {"bootstrap_servers": bootstrap_list(kafka), **_security_aiokafka(kafka)}


def kafka_python_kwargs(kafka: KafkaSettings) -> dict[str, Any]:
    """Keyword arguments shared by kafka-python's KafkaConsumer/KafkaProducer/KafkaAdminClient.

    TLS goes as kafka-python's own ``ssl_*`` options (it builds the same kind of
    context: the CA file, else the system's CAs).
    """
    out: dict[str, Any] = {"bootstrap_servers": bootstrap_list(kafka),
                           "security_protocol": kafka.security_protocol, **_sasl_kwargs(kafka)}
    if _uses_tls(kafka):
        out.update(ssl_cafile=kafka.ssl_cafile, ssl_certfile=kafka.ssl_certfile,
                   ssl_keyfile=kafka.ssl_keyfile,
                   ssl_password=read_secret(kafka, "ssl_key_password"),
                   ssl_check_hostname=kafka.ssl_check_hostname)
    return out


def faust_broker_url(kafka: KafkaSettings) -> str:
    """faust's ``broker`` argument: ``kafka://a:9092;kafka://b:9092``."""
    return ";".join(f"kafka://{host}" for host in bootstrap_list(kafka))


def faust_broker_credentials(kafka: KafkaSettings) -> Any:
    """faust's ``broker_credentials``: SASLCredentials, SSLCredentials or None (PLAINTEXT).

    faust hands these to every aiokafka client it makes (producer, consumer, admin).
    """
    import faust

    if _uses_sasl(kafka):
        return faust.SASLCredentials(
            username=kafka.sasl_username, password=read_secret(kafka, "sasl_password"),
            mechanism=kafka.sasl_mechanism, ssl_context=ssl_context(kafka))
    if _uses_tls(kafka):
        return faust.SSLCredentials(ssl_context(kafka))
    return None


# --------------------------------------------------------------------------- fail fast


def check_cluster(kafka: KafkaSettings | str, timeout: float = 10.0) -> None:
    """Connect, handshake, log in and fetch metadata; raise :class:`KafkaUnreachable` if not.

    Returns once one bootstrap address answers a metadata request and the brokers it
    advertises accept a connection. Takes at most about ``timeout`` seconds in all.
    The error is one line (``cannot reach Kafka at 127.0.0.1:1 (connection refused)``)
    with credentials masked; a bad setting found on the way raises ConfigError.
    """
    kafka = as_kafka(kafka)
    security = _security_aiokafka(kafka)  # ConfigError (unset password variable...) first
    secrets = [v for v in (security.get("sasl_plain_password"),) if v]
    deadline = time.monotonic() + timeout
    with quiet_logger("aiokafka"):
        try:
            asyncio.run(_check(kafka, security, deadline))
        except KafkaUnreachable as err:
            raise KafkaUnreachable(_scrub(str(err), secrets)) from None


async def _check(kafka: KafkaSettings, security: dict[str, Any], deadline: float) -> None:
    from aiokafka.errors import SaslAuthenticationFailed, UnsupportedSaslMechanismError

    failures: list[str] = []
    for address in bootstrap_list(kafka):
        try:
            brokers = await _metadata(address, kafka, security, deadline)
        except (SaslAuthenticationFailed, UnsupportedSaslMechanismError) as exc:
            raise KafkaUnreachable(_line(address, _cause(exc, kafka, deadline))) from None
        except Exception as exc:  # noqa: BLE001 - each cause becomes one line
            failures.append(_line(address, _cause(exc, kafka, deadline)))
            continue
        await _check_advertised(address, brokers, kafka, security, deadline)
        return
    raise KafkaUnreachable("; ".join(failures) or "no bootstrap address configured")


def _line(address: str, cause: str) -> str:
    return f"cannot reach Kafka at {mask_credentials(address)} ({cause})"


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


async def _connect(address: str, kafka: KafkaSettings, security: dict[str, Any],
                   deadline: float) -> Any:
    from aiokafka.conn import create_conn

    host, port = _split(address)
    remaining = max(deadline - time.monotonic(), 0.1)
    return await asyncio.wait_for(
        create_conn(host, port, client_id=f"{kafka.client_id}-check",
                    request_timeout_ms=int(remaining * 1000), **security), remaining)


async def _metadata(address: str, kafka: KafkaSettings, security: dict[str, Any],
                    deadline: float) -> list[tuple[str, int]]:
    from aiokafka.protocol.metadata import MetadataRequest

    conn = await _connect(address, kafka, security, deadline)
    try:
        remaining = max(deadline - time.monotonic(), 0.1)
        response = await asyncio.wait_for(conn.send(MetadataRequest([])), remaining)
    finally:
        conn.close()
    return [(broker[1], broker[2]) for broker in response.brokers]


async def _check_advertised(address: str, brokers: list[tuple[str, int]], kafka: KafkaSettings,
                            security: dict[str, Any], deadline: float) -> None:
    """The brokers a cluster advertises are where clients really go: a Docker or cloud
    cluster that advertises an address we cannot reach fails here, not in a retry loop."""
    for host, port in brokers:
        advertised = f"{host}:{port}"
        if _split(address) == (host, port):
            continue
        try:
            conn = await _connect(advertised, kafka, security, deadline)
            conn.close()
        except Exception as exc:  # noqa: BLE001
            raise KafkaUnreachable(
                f"Kafka at {mask_credentials(address)} answered, but the broker it advertises, "
                f"{advertised}, is not reachable ({_cause(exc, kafka, deadline)}); check the "
                "broker's advertised.listeners") from None


def _cause(exc: BaseException, kafka: KafkaSettings, deadline: float) -> str:
    """A short, secret-free description of why a connection failed."""
    from aiokafka.errors import (
        KafkaConnectionError, SaslAuthenticationFailed, UnsupportedSaslMechanismError)

    if isinstance(exc, SaslAuthenticationFailed):
        detail = str(exc.args[0]) if exc.args else ""
        return (f"authentication failed for user {kafka.sasl_username!r} with "
                f"{kafka.sasl_mechanism}: {detail}".rstrip(": "))
    if isinstance(exc, UnsupportedSaslMechanismError):
        return f"authentication failed: the broker does not accept {kafka.sasl_mechanism}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (f"TLS handshake failed: {exc.verify_message}; is kafka.ssl_cafile the CA "
                "that signed the broker's certificate?")
    if isinstance(exc, ssl.SSLError):
        hint = ""
        if "WRONG_VERSION_NUMBER" in str(exc) or "record layer" in str(exc):
            hint = "; does this listener speak TLS?"
        return f"TLS handshake failed: {exc.reason or exc}{hint}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, asyncio.TimeoutError | TimeoutError) or time.monotonic() >= deadline:
        return "timed out"
    if isinstance(exc, socket.gaierror):
        return f"unknown host: {exc.strerror}"
    if isinstance(exc, ConnectionResetError):
        return ("TLS handshake failed: the peer reset the connection; does this listener "
                "speak TLS?") if _uses_tls(kafka) else "connection reset by the peer"
    if isinstance(exc, KafkaConnectionError) and "closed" in str(exc):
        return _closed(exc.__cause__, kafka)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return f"{type(exc).__name__}: {exc}"


def _closed(cause: BaseException | None, kafka: KafkaSettings) -> str:
    """Why the peer hung up, from the first bytes it sent instead of a Kafka response."""
    head = b""
    if isinstance(cause, asyncio.IncompleteReadError) and cause.expected:
        # the client read these 4 bytes as a response length
        head = cause.expected.to_bytes(4, "big") if cause.expected < 2**32 else b""
    if head[:1] in (b"\x15", b"\x16") and head[1:2] == b"\x03":
        return ("the listener speaks TLS: set kafka.security_protocol to SSL or SASL_SSL "
                f"(it is {kafka.security_protocol})")
    if head.startswith(b"HTTP"):
        return "an HTTP server answered, not a Kafka broker"
    if _uses_sasl(kafka):
        return "the broker closed the connection"
    return ("the broker closed the connection: does its listener expect a SASL login? "
            f"kafka.security_protocol is {kafka.security_protocol}")


def _scrub(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return mask_credentials(text)
