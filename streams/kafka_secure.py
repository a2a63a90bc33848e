"""What the local broker needs to run secured: certificates, users, listener settings.

``tradewatch kafka start --secure`` runs a second kind of local broker whose only
client listener is SASL_SSL, so the worker's security settings can be proven on a
laptop and in the tests exactly as they are used against a managed cluster. All
of it is generated at run time under ``var/kafka-secure/`` and nothing is
downloaded::

    var/kafka-secure/
      tls/ca.pem, ca.key        a local certificate authority (clients trust ca.pem)
      tls/broker.p12            the broker's key and certificate, for 127.0.0.1 and localhost
      secrets/client.password   the client user's password (0600; printed as a path, never shown)
      secrets/*.password        keystore and inter-broker passwords (0600)
      client.toml               the ``[kafka]`` section a client needs

The client user (``tradewatch``) can log in with SCRAM-SHA-512, SCRAM-SHA-256
or PLAIN. The SCRAM credentials are written into the KRaft metadata when the
storage is formatted (``kafka-storage format --add-scram``), so they exist
before the first client connects; PLAIN users live in the listener's JAAS line.
The KRaft controller listener stays PLAINTEXT on 127.0.0.1: only the broker
itself talks to it.

Only the standard library and the ``openssl`` command are used.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CLIENT_USER",
    "SecureFiles",
    "client_settings",
    "ensure_certificates",
    "ensure_secrets",
    "render_client_toml",
    "scram_format_args",
    "security_properties",
]

CLIENT_USER = "tradewatch"
BROKER_USER = "broker"
#: Mechanisms the secure listener accepts; the client default is the strongest.
MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")
CERT_DAYS = 825  # long enough to forget about, short enough that a leaked CA expires


class SecureBrokerError(RuntimeError):
    """The certificates or secrets of the secure local broker could not be made."""


@dataclass(frozen=True)
class SecureFiles:
    """Where the secure broker's generated files live, under its home directory."""

    home: Path

    @property
    def tls(self) -> Path:
        return self.home / "tls"

    @property
    def ca_cert(self) -> Path:
        return self.tls / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.tls / "ca.key"

    @property
    def keystore(self) -> Path:
        return self.tls / "broker.p12"

    @property
    def secrets(self) -> Path:
        return self.home / "secrets"

    @property
    def client_password(self) -> Path:
        return self.secrets / "client.password"

    @property
    def keystore_password(self) -> Path:
        return self.secrets / "keystore.password"

    @property
    def broker_password(self) -> Path:
        return self.secrets / "broker.password"

    @property
    def client_toml(self) -> Path:
        return self.home / "client.toml"


def _write_private(path: Path, text: str) -> None:
    """Create ``path`` readable by its owner only (0600) before any byte is written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(path, 0o600)


def _secret(path: Path) -> str:
    """The secret in ``path``, generated (random, URL-safe) on first use."""
    if not path.exists():
        _write_private(path, secrets.token_urlsafe(24) + "\n")
    return path.read_text().strip()


def ensure_secrets(files: SecureFiles) -> dict[str, str]:
    """The client, keystore and inter-broker passwords (created once, kept in 0600 files)."""
    return {
        "client": _secret(files.client_password),
        "keystore": _secret(files.keystore_password),
        "broker": _secret(files.broker_password),
    }


def _openssl(*args: str, env: dict[str, str] | None = None) -> None:
    exe = shutil.which("openssl")
    if exe is None:
        raise SecureBrokerError("openssl is not on PATH; it makes the secure broker's "
                                "certificates (Debian: apt-get install openssl)")
    proc = subprocess.run([exe, *args], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})})
    if proc.returncode != 0:
        raise SecureBrokerError(f"openssl {args[0]} failed: {proc.stderr.strip()[-2000:]}")


def ensure_certificates(files: SecureFiles, keystore_password: str) -> None:
    """A local CA and a broker keystore for 127.0.0.1/localhost (made once, then reused).

    EC P-256 keys: generated in milliseconds, and every TLS stack here (Java 17,
    Python's ssl) speaks them. The keystore password reaches openssl through the
    environment, never the command line.
    """
    if files.ca_cert.exists() and files.keystore.exists():
        return
    tls = files.tls
    tls.mkdir(parents=True, exist_ok=True)
    os.chmod(tls, 0o700)
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl("req", "-x509", *ec, "-keyout", str(files.ca_key), "-out", str(files.ca_cert),
             "-days", str(CERT_DAYS), "-subj", "/CN=tradewatch local CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    key, csr, cert = tls / "broker.key", tls / "broker.csr", tls / "broker.pem"
    ext = tls / "broker.ext"
    ext.write_text("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                   "extendedKeyUsage=serverAuth,clientAuth\n"
                   "subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("req", *ec, "-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1")
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(files.ca_cert),
             "-CAkey", str(files.ca_key), "-CAcreateserial", "-out", str(cert),
             "-days", str(CERT_DAYS), "-extfile", str(ext))
    _openssl("pkcs12", "-export", "-in", str(cert), "-inkey", str(key),
             "-certfile", str(files.ca_cert), "-name", "broker", "-out", str(files.keystore),
             "-passout", "env:TW_KEYSTORE_PASSWORD",
             env={"TW_KEYSTORE_PASSWORD": keystore_password})
    for path in (key, csr, ext, files.ca_key, files.keystore):
        os.chmod(path, 0o600)


def _jaas_plain(broker_password: str, client_password: str) -> str:
    return ("org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'username="{BROKER_USER}" password="{broker_password}" '
            f'user_{BROKER_USER}="{broker_password}" '
            f'user_{CLIENT_USER}="{client_password}";')


def security_properties(*, port: int, controller_port: int, host: str, files: SecureFiles,
                        passwords: dict[str, str]) -> list[tuple[str, object]]:
    """server.properties entries for one SASL_SSL client listener (replacing PLAINTEXT).

    The broker's own inter-broker connections use the same listener with PLAIN and a
    broker user, and verify the broker certificate against the local CA like any client.
    """
    scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    return [
        ("listeners", f"SASL_SSL://{host}:{port},CONTROLLER://{host}:{controller_port}"),
        ("advertised.listeners", f"SASL_SSL://{host}:{port}"),
        ("inter.broker.listener.name", "SASL_SSL"),
        ("listener.security.protocol.map", "CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL"),
        ("sasl.enabled.mechanisms", ",".join(MECHANISMS)),
        ("sasl.mechanism.inter.broker.protocol", "PLAIN"),
        ("listener.name.sasl_ssl.plain.sasl.jaas.config",
         _jaas_plain(passwords["broker"], passwords["client"])),
        ("listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config", scram),
        ("listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config", scram),
        ("ssl.keystore.type", "PKCS12"),
        ("ssl.keystore.location", files.keystore),
        ("ssl.keystore.password", passwords["keystore"]),
        ("ssl.key.password", passwords["keystore"]),
        ("ssl.truststore.type", "PEM"),
        ("ssl.truststore.location", files.ca_cert),
        ("ssl.client.auth", "none"),
        ("ssl.endpoint.identification.algorithm", "https"),
    ]


def scram_format_args(client_password: str) -> list[str]:
    """``kafka-storage format`` arguments that create the client user's SCRAM credentials."""
    args: list[str] = []
    for mechanism in ("SCRAM-SHA-512", "SCRAM-SHA-256"):
        args += ["--add-scram", f"{mechanism}=[name={CLIENT_USER},password={client_password}]"]
    return args


def client_settings(files: SecureFiles, bootstrap: str) -> dict[str, str]:
    """The ``[kafka]`` keys a client needs for the secure broker (no secret among them)."""
    return {
        "bootstrap_servers": bootstrap,
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": MECHANISMS[0],
        "sasl_username": CLIENT_USER,
        "sasl_password_file": str(files.client_password),
        "ssl_cafile": str(files.ca_cert),
    }


def render_client_toml(settings: dict[str, str]) -> str:
    """``client_settings`` as a ``[kafka]`` section to paste into tradewatch.toml."""
    lines = ["[kafka]"] + [f'{key} = "{value}"' for key, value in settings.items()]
    return "\n".join(lines) + "\n"
