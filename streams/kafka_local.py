"""The project's own local Kafka broker: fetch its jars, start, stop, status.

A single-node KRaft cluster (one JVM that is both broker and controller), bound
to 127.0.0.1 only, living entirely under ``var/kafka/``::

    var/kafka/
      libs/               broker classpath, copied from Maven by deploy/kafka/pom.xml
      libs/.stamp         checksum of the pom the jars came from + the jar list
      data/               the KRaft metadata log and topic data (formatted once)
      server.properties   generated on every start
      log4j2.xml          generated on every start; sends the broker log to broker.log
      broker.log          this run's broker log (the previous run's is broker.log.1)
      broker.pid          pid of the running broker JVM

Use it as ``python -m streams.kafka_local fetch|start|stop|status`` (the
``tradewatch kafka ...`` command delegates to :func:`cli`), or from Python::

    from streams import kafka_local
    bootstrap = kafka_local.start()      # "127.0.0.1:9092"
    ...
    kafka_local.stop()

``start(secure=True)`` (``tradewatch kafka start --secure``) runs the secure broker
instead: home ``var/kafka-secure/`` (same jars), port 9094, one SASL_SSL client
listener with generated certificates and users (see :mod:`streams.kafka_secure`).
It can run beside the plain one; ``stop``/``status`` take the same flag.

Environment:

``TRADEWATCH_VAR_DIR``
    Where ``var/`` is (default: ``<project root>/var``); the broker home is
    ``$TRADEWATCH_VAR_DIR/kafka``.
``TRADEWATCH_KAFKA_PORT``
    Broker (client) port, default 9092 (secure: 9094). The KRaft controller listens
    on the next port.
``TRADEWATCH_BOOTSTRAP_SERVERS``
    An existing cluster to use instead. When set, ``start`` starts nothing: it only
    checks that this cluster answers and returns its address; ``stop`` leaves it alone.
    (Not for the secure broker, which is always local.)
``TRADEWATCH_KAFKA_HEAP``
    JVM heap for the broker, default ``512m``.

Only the standard library, kafka-python and openssl (secure mode) are used here,
so this module works before anything else of the project is importable.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

from streams import kafka_secure
from streams.redact import mask_credentials

__all__ = [
    "KafkaLocalError",
    "bootstrap_address",
    "cli",
    "external_bootstrap",
    "fetch_jars",
    "home_dir",
    "is_answering",
    "render_log4j2_config",
    "render_server_properties",
    "secure_client_settings",
    "start",
    "status",
    "stop",
]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
POM = PROJECT_ROOT / "deploy" / "kafka" / "pom.xml"

HOST = "127.0.0.1"
DEFAULT_PORT = 9092
#: The secure broker's default port: beside the plain one (9092, controller 9093).
DEFAULT_SECURE_PORT = 9094
DEFAULT_HEAP = "512m"
NODE_ID = 1

MAVEN_TIMEOUT_S = 540  # well under a 10 minute foreground budget
STOP_TIMEOUT_S = 45.0  # controlled shutdown of one node takes a few seconds


_STARTED: list[subprocess.Popen] = []


class KafkaLocalError(RuntimeError):
    """The local broker could not be fetched, started, stopped or reached."""


def _say(msg: str) -> None:
    print(f"[kafka] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- paths


def var_dir() -> Path:
    override = os.environ.get("TRADEWATCH_VAR_DIR")
    return Path(override).expanduser().resolve() if override else PROJECT_ROOT / "var"


def home_dir(secure: bool = False) -> Path:
    """``var/kafka`` (the plain broker) or ``var/kafka-secure`` (``start(secure=True)``)."""
    return var_dir() / ("kafka-secure" if secure else "kafka")


def _paths(secure: bool = False) -> dict[str, Path]:
    home = home_dir(secure)
    libs = home_dir() / "libs"  # one set of jars for both kinds of broker
    return {
        "home": home,
        "libs": libs,
        "stamp": libs / ".stamp",
        "data": home / "data",
        "props": home / "server.properties",
        "log4j": home / "log4j2.xml",
        "log": home / "broker.log",
        "pid": home / "broker.pid",
        "lock": home / ".lock",
    }


def broker_port(secure: bool = False) -> int:
    raw = os.environ.get("TRADEWATCH_KAFKA_PORT", "").strip()
    if not raw:
        return DEFAULT_SECURE_PORT if secure else DEFAULT_PORT
    try:
        port = int(raw)
    except ValueError:
        raise KafkaLocalError(f"TRADEWATCH_KAFKA_PORT={raw!r} is not a port number") from None
    if not 1 <= port < 65535:
        raise KafkaLocalError(f"TRADEWATCH_KAFKA_PORT={port} is out of range")
    return port


def controller_port(secure: bool = False) -> int:
    return broker_port(secure) + 1


def bootstrap_address(secure: bool = False) -> str:
    """Address of the project's local broker (whether or not it runs)."""
    return f"{HOST}:{broker_port(secure)}"


def external_bootstrap(explicit: str | None = None) -> str | None:
    """The existing cluster to use instead of the local broker, if any."""
    value = explicit if explicit is not None else os.environ.get("TRADEWATCH_BOOTSTRAP_SERVERS")
    value = (value or "").strip()
    return value or None


# --------------------------------------------------------------------------- config


def render_server_properties(
    *, port: int, controller_port: int, data_dir: Path | str, node_id: int = NODE_ID,
    overrides: list[tuple[str, object]] | None = None,
) -> str:
    """The broker's server.properties: one combined broker+controller on 127.0.0.1.

    ``overrides`` replace the listed keys in place and add the rest at the end (the
    secure broker's listeners, SASL and TLS settings). Pure function (unit-tested
    without a broker).
    """
    settings: list[tuple[str, object]] = [
        # -- KRaft, one node that is broker and controller, static quorum
        ("process.roles", "broker,controller"),
        ("node.id", node_id),
        ("controller.quorum.voters", f"{node_id}@{HOST}:{controller_port}"),
        ("controller.listener.names", "CONTROLLER"),
        # -- loopback only: nothing listens on another interface
        ("listeners", f"PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller_port}"),
        ("advertised.listeners", f"PLAINTEXT://{HOST}:{port}"),
        ("inter.broker.listener.name", "PLAINTEXT"),
        ("listener.security.protocol.map", "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"),
        # -- storage
        ("log.dirs", str(data_dir)),
        ("num.recovery.threads.per.data.dir", 1),
        # -- a single node can only ever have one replica of anything
        ("default.replication.factor", 1),
        ("min.insync.replicas", 1),
        ("offsets.topic.replication.factor", 1),
        ("offsets.topic.num.partitions", 10),
        ("transaction.state.log.replication.factor", 1),
        ("transaction.state.log.min.isr", 1),
        ("transaction.state.log.num.partitions", 10),
        ("share.coordinator.state.topic.replication.factor", 1),
        ("share.coordinator.state.topic.min.isr", 1),
        # -- topics are created explicitly (streams.topics), never by a typo
        ("auto.create.topics.enable", "false"),
        ("delete.topic.enable", "true"),
        ("num.partitions", 1),
        # -- consumers in tests and the demo should not wait 3 s for a first rebalance
        ("group.initial.rebalance.delay.ms", 0),
        # -- retention: a week or 1 GiB per partition, whichever comes first
        ("log.retention.hours", 168),
        ("log.retention.bytes", 1024**3),
        ("log.segment.bytes", 256 * 1024**2),
        ("log.retention.check.interval.ms", 300_000),
        # -- sized for a 2-core machine
        ("num.network.threads", 2),
        ("num.io.threads", 4),
        ("background.threads", 4),
    ]
    extra = dict(overrides or [])
    settings = [(key, extra.pop(key, value)) for key, value in settings] + list(extra.items())
    lines = [
        "# Generated by streams/kafka_local.py on every start; edits here are overwritten.",
        "# Single-node KRaft (broker+controller), bound to 127.0.0.1 only.",
    ]
    lines += [f"{key}={value}" for key, value in settings]
    return "\n".join(lines) + "\n"


def render_log4j2_config(log_file: Path | str) -> str:
    """log4j2 configuration that sends every broker log line to ``log_file``."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by streams/kafka_local.py on every start. -->
<Configuration status="WARN">
  <Appenders>
    <File name="broker" fileName="{log_file}" append="true" immediateFlush="true">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </File>
  </Appenders>
  <Loggers>
    <Root level="INFO"><AppenderRef ref="broker"/></Root>
    <Logger name="kafka.request.logger" level="WARN"/>
    <Logger name="kafka.authorizer.logger" level="WARN"/>
    <Logger name="org.apache.kafka.clients" level="WARN"/>
    <Logger name="org.apache.kafka.common.utils.AppInfoParser" level="WARN"/>
  </Loggers>
</Configuration>
"""


# --------------------------------------------------------------------------- jars


def kafka_version() -> str:
    """The Kafka version pinned in deploy/kafka/pom.xml."""
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    node = ET.parse(POM).getroot().find("m:properties/m:kafka.version", ns)
    return node.text.strip() if node is not None and node.text else "unknown"


def _pom_sha256() -> str:
    return hashlib.sha256(POM.read_bytes()).hexdigest()


def _jars_complete() -> bool:
    p = _paths()
    try:
        stamp = json.loads(p["stamp"].read_text())
    except (OSError, ValueError):
        return False
    if stamp.get("pom_sha256") != _pom_sha256():
        return False
    jars = stamp.get("jars") or {}
    if not jars:
        return False
    for name, size in jars.items():
        try:
            if (p["libs"] / name).stat().st_size != size:
                return False
        except OSError:
            return False
    return True


def fetch_jars(force: bool = False) -> Path:
    """Make var/kafka/libs hold the broker classpath named by deploy/kafka/pom.xml.

    A stamp (the pom's sha256 and every jar's size) makes a second call a no-op.
    """
    p = _paths()
    if not force and _jars_complete():
        n = sum(1 for _ in p["libs"].glob("*.jar"))
        _say(f"jars up to date: Kafka {kafka_version()}, {n} jars in {p['libs']}")
        return p["libs"]
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaLocalError(
            "Maven (mvn) is not on PATH; install it (Debian: apt-get install maven)")
    p["home"].mkdir(parents=True, exist_ok=True)
    staging = p["home"] / "libs.partial"
    shutil.rmtree(staging, ignore_errors=True)
    cmd = [
        mvn, "-q", "-B", "-Dstyle.color=never", "-f", str(POM),
        "dependency:copy-dependencies", "-DincludeScope=runtime",
        f"-DoutputDirectory={staging}",
    ]
    _say(f"fetching Kafka {kafka_version()} broker jars with Maven into {p['libs']} ...")
    t0 = time.monotonic()
    try:
        proc = subprocess.run(
            cmd, cwd=POM.parent, stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=MAVEN_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        shutil.rmtree(staging, ignore_errors=True)
        raise KafkaLocalError(
            f"mvn did not finish within {MAVEN_TIMEOUT_S}s: {' '.join(cmd)}") from None
    if proc.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        out = (proc.stdout + proc.stderr).strip()[-4000:]
        raise KafkaLocalError(f"mvn failed (exit {proc.returncode}): {' '.join(cmd)}\n{out}")
    jars = {j.name: j.stat().st_size for j in sorted(staging.glob("*.jar"))}
    if not any(name.startswith("kafka_2.13-") for name in jars):
        raise KafkaLocalError(f"mvn ran but no kafka_2.13 jar appeared in {staging}")
    stamp = {"pom_sha256": _pom_sha256(), "kafka_version": kafka_version(), "jars": jars}
    (staging / ".stamp").write_text(json.dumps(stamp, indent=1, sort_keys=True) + "\n")
    shutil.rmtree(p["libs"], ignore_errors=True)
    staging.rename(p["libs"])
    _say(f"fetched {len(jars)} jars in {time.monotonic() - t0:.1f}s")
    return p["libs"]


# --------------------------------------------------------------------------- process


def _java() -> str:
    override = os.environ.get("TRADEWATCH_JAVA")
    if override:
        return override
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").exists():
        return str(Path(java_home) / "bin" / "java")
    found = shutil.which("java") or ("/usr/bin/java" if Path("/usr/bin/java").exists() else None)
    if found is None:
        raise KafkaLocalError("java is not on PATH; Kafka 4 needs Java 17+ "
                              "(apt-get install openjdk-17-jre-headless)")
    return found


def _jvm_args(secure: bool = False) -> list[str]:
    p = _paths(secure)
    heap = os.environ.get("TRADEWATCH_KAFKA_HEAP", DEFAULT_HEAP)
    return [
        _java(),
        f"-Xms{min(heap, '256m', key=_mem_bytes)}", f"-Xmx{heap}",
        "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={p['log4j']}",
        # keep logging through the broker's own shutdown (it logs after SIGTERM)
        "-Dlog4j2.shutdownHookEnabled=false",
        f"-Dkafka.logs.dir={p['home']}",
        "-cp", str(p["libs"] / "*"),
    ]


def _mem_bytes(spec: str) -> int:
    units = {"k": 1024, "m": 1024**2, "g": 1024**3}
    spec = spec.strip().lower()
    if spec and spec[-1] in units:
        return int(spec[:-1]) * units[spec[-1]]
    return int(spec)


def _read_pid(secure: bool = False) -> int | None:
    try:
        return int(_paths(secure)["pid"].read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError, OSError):
        done, _ = os.waitpid(pid, os.WNOHANG)  # reap it if it is our own exited child
        if done == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return True


def _is_our_broker(pid: int, secure: bool = False) -> bool:
    """True if pid is a live kafka.Kafka JVM running from our home directory."""
    if not _alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True  # no /proc: trust the pid file
    args = [a.decode(errors="replace") for a in cmdline]
    return "kafka.Kafka" in args and str(_paths(secure)["props"]) in args


def _running_pid(secure: bool = False) -> int | None:
    """Pid of our running broker; removes a stale pid file."""
    pid = _read_pid(secure)
    if pid is None:
        return None
    if _is_our_broker(pid, secure):
        return pid
    _say(f"removing stale pid file (pid {pid} is not a running broker)")
    with contextlib.suppress(FileNotFoundError):
        _paths(secure)["pid"].unlink()
    return None


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((HOST, port)) == 0


def _log_tail(lines: int = 40, secure: bool = False) -> str:
    log = _paths(secure)["log"]
    try:
        text = log.read_text(errors="replace").splitlines()
    except OSError:
        return f"(no {log})"
    return f"--- last {min(lines, len(text))} lines of {log} ---\n" + "\n".join(text[-lines:])


@contextlib.contextmanager
def _lock(secure: bool = False) -> Iterator[None]:
    """Serialize start/stop between processes (e.g. two test sessions)."""
    p = _paths(secure)
    p["home"].mkdir(parents=True, exist_ok=True)
    with open(p["lock"], "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextlib.contextmanager
def quiet_logger(name: str = "kafka") -> Iterator[None]:
    """Silence one library logger for a while: a Kafka client logs every refused
    connection at ERROR (a traceback each), which while probing is only noise."""
    logger = logging.getLogger(name)
    old = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(old)


def _probe(bootstrap: str, timeout_s: float = 3.0,
           security: dict | None = None) -> dict | None:
    """Ask the cluster for its metadata; return describe_cluster() or None if it doesn't answer.

    ``security``: kafka-python security keyword arguments (the secure broker's client).
    """
    from kafka.admin import KafkaAdminClient

    ms = max(int(timeout_s * 1000), 500)
    with quiet_logger("kafka"):
        try:
            admin = KafkaAdminClient(
                bootstrap_servers=bootstrap, client_id="tradewatch-kafka-local",
                bootstrap_timeout_ms=ms, request_timeout_ms=ms,
                reconnect_backoff_max_ms=500, **(security or {}),
            )
        except Exception:
            return None
        try:
            info = admin.describe_cluster()
        except Exception:
            return None
        finally:
            with contextlib.suppress(Exception):
                admin.close()
    if not info.get("brokers"):
        return None
    return info


def is_answering(bootstrap: str, timeout_s: float = 3.0, security: dict | None = None) -> bool:
    """True if the cluster at ``bootstrap`` answers a metadata request with at least one broker."""
    return _probe(bootstrap, timeout_s, security) is not None


def _run_storage_tool(args: list[str], secure: bool = False, shown: int | None = None) -> str:
    """Run kafka-storage; ``shown`` arguments at most go into an error (the rest may be secret)."""
    cmd = [*_jvm_args(secure), "kafka.tools.StorageTool", *args]
    proc = subprocess.run(cmd, cwd=_paths(secure)["home"], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise KafkaLocalError(
            f"kafka-storage {' '.join(args[:shown])} failed (exit {proc.returncode}):\n"
            f"{(proc.stdout + proc.stderr).strip()[-4000:]}"
        )
    return proc.stdout.strip()


def _secure_files() -> kafka_secure.SecureFiles:
    return kafka_secure.SecureFiles(home_dir(secure=True))


def _write_configs(secure: bool = False) -> None:
    p = _paths(secure)
    overrides = None
    if secure:
        files = _secure_files()
        passwords = kafka_secure.ensure_secrets(files)
        kafka_secure.ensure_certificates(files, passwords["keystore"])
        overrides = kafka_secure.security_properties(
            port=broker_port(secure), controller_port=controller_port(secure), host=HOST,
            files=files, passwords=passwords)
    fd = os.open(p["props"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:  # the secure broker's holds passwords: owner only
        fh.write(render_server_properties(
            port=broker_port(secure), controller_port=controller_port(secure),
            data_dir=p["data"], overrides=overrides))
    p["log4j"].write_text(render_log4j2_config(p["log"]))


def _format_storage_once(secure: bool = False) -> None:
    p = _paths(secure)
    if (p["data"] / "meta.properties").exists():
        return
    cluster_id = _run_storage_tool(["random-uuid"], secure).splitlines()[-1].strip()
    _say(f"formatting new KRaft storage in {p['data']} (cluster id {cluster_id})")
    args = ["format", "-t", cluster_id, "-c", str(p["props"])]
    shown = len(args)
    if secure:  # the client user's SCRAM credentials must exist before the first login
        client_password = kafka_secure.ensure_secrets(_secure_files())["client"]
        args += kafka_secure.scram_format_args(client_password)
    _run_storage_tool(args, secure, shown=shown)


def _security(secure: bool) -> dict | None:
    """kafka-python arguments for probing the secure broker as its client user."""
    if not secure:
        return None
    files = _secure_files()
    return {
        "security_protocol": "SASL_SSL", "sasl_mechanism": kafka_secure.MECHANISMS[0],
        "sasl_plain_username": kafka_secure.CLIENT_USER,
        "sasl_plain_password": kafka_secure.ensure_secrets(files)["client"],
        "ssl_cafile": str(files.ca_cert), "ssl_check_hostname": True,
    }


def _wait_answering(bootstrap: str, deadline: float, proc: subprocess.Popen | None,
                    pid: int, secure: bool = False) -> None:
    security = _security(secure)
    while True:
        if proc is not None and proc.poll() is not None:
            raise KafkaLocalError(
                f"broker exited with code {proc.returncode} during startup\n"
                f"{_log_tail(secure=secure)}")
        if proc is None and not _alive(pid):
            raise KafkaLocalError(
                f"broker (pid {pid}) exited during startup\n{_log_tail(secure=secure)}")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise KafkaLocalError(
                f"broker (pid {pid}) did not answer on {bootstrap} in time; it is left running "
                f"(stop it with `python -m streams.kafka_local stop`)\n{_log_tail(secure=secure)}")
        if _probe(bootstrap, timeout_s=min(3.0, max(remaining, 0.5)), security=security):
            return
        time.sleep(0.25)


# --------------------------------------------------------------------------- API


def start(timeout: float = 60, bootstrap_servers: str | None = None,
          secure: bool = False) -> str:
    """Start the local broker (or use an existing cluster) and return its bootstrap address.

    Idempotent: a running broker that answers is reused at once. Blocks until the
    broker answers a metadata request; raises :class:`KafkaLocalError` (with the tail
    of broker.log) if it does not within ``timeout`` seconds.

    If ``bootstrap_servers`` is given or ``TRADEWATCH_BOOTSTRAP_SERVERS`` is set, no
    local broker is started: that cluster is checked and its address returned.

    ``secure=True`` starts the secure local broker instead (``var/kafka-secure``,
    port 9094, a SASL_SSL listener only; see :mod:`streams.kafka_secure`). It is
    always local: ``TRADEWATCH_BOOTSTRAP_SERVERS`` does not apply to it.
    """
    external = None if secure else external_bootstrap(bootstrap_servers)
    if external:
        shown = mask_credentials(external)
        _say(f"using existing cluster {shown} (TRADEWATCH_BOOTSTRAP_SERVERS); "
             "no local broker started")
        deadline = time.monotonic() + timeout
        while _probe(external, timeout_s=min(5.0, max(deadline - time.monotonic(), 0.5))) is None:
            if time.monotonic() >= deadline:
                raise KafkaLocalError(
                    f"existing cluster {shown} does not answer a metadata request")
            time.sleep(0.5)
        return external

    bootstrap = bootstrap_address(secure)
    deadline = time.monotonic() + timeout
    with _lock(secure):
        pid = _running_pid(secure)
        if pid is not None:
            _wait_answering(bootstrap, deadline, None, pid, secure)
            _say(f"local broker already running: pid {pid}, {bootstrap}")
            return bootstrap

        for port, what in ((broker_port(secure), "broker"),
                           (controller_port(secure), "controller")):
            if _port_in_use(port):
                raise KafkaLocalError(
                    f"{HOST}:{port} (the {what} port) is already taken by a process this project "
                    "did not start. Stop it, choose other ports with TRADEWATCH_KAFKA_PORT, or "
                    "point TRADEWATCH_BOOTSTRAP_SERVERS at an existing cluster.")

        fetch_jars()
        p = _paths(secure)
        p["data"].mkdir(parents=True, exist_ok=True)
        if p["log"].exists():
            p["log"].replace(p["log"].with_name("broker.log.1"))
        _write_configs(secure)
        _format_storage_once(secure)

        cmd = [*_jvm_args(secure), "kafka.Kafka", str(p["props"])]
        kind = "secure (SASL_SSL) " if secure else ""
        _say(f"starting {kind}local Kafka {kafka_version()} on {bootstrap} (log: {p['log']})")
        with open(p["log"], "ab") as log:
            proc = subprocess.Popen(cmd, cwd=p["home"], stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        p["pid"].write_text(f"{proc.pid}\n")
        _STARTED.append(proc)  # keep a reference: no "still running" warning when it outlives us
        t0 = time.monotonic()
        try:
            _wait_answering(bootstrap, deadline, proc, proc.pid, secure)
        except KafkaLocalError:
            if proc.poll() is not None:
                with contextlib.suppress(FileNotFoundError):
                    p["pid"].unlink()
            raise
        _say(f"local broker up: pid {proc.pid}, {bootstrap}, answered after "
             f"{time.monotonic() - t0:.1f}s")
        return bootstrap


def stop(timeout: float = STOP_TIMEOUT_S, secure: bool = False) -> bool:
    """Stop the local broker (SIGTERM, controlled shutdown; SIGKILL after ``timeout``).

    Idempotent. Returns True if a broker was stopped. While
    ``TRADEWATCH_BOOTSTRAP_SERVERS`` is set it does nothing: that cluster is not ours,
    and neither start nor stop manages the local broker then.
    """
    external = None if secure else external_bootstrap()
    if external:
        _say(f"using existing cluster {mask_credentials(external)} (TRADEWATCH_BOOTSTRAP_SERVERS);"
             " not stopping anything (unset it to manage the local broker)")
        return False
    with _lock(secure):
        pid = _running_pid(secure)
        if pid is None:
            _say("local broker is not running")
            return False
        _say(f"stopping local broker pid {pid} (SIGTERM, controlled shutdown)")
        t0 = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = t0 + timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(pid):
            _say(f"broker pid {pid} still running after {timeout:.0f}s; sending SIGKILL")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            kill_deadline = time.monotonic() + 10
            while _alive(pid) and time.monotonic() < kill_deadline:
                time.sleep(0.1)
            if _alive(pid):
                raise KafkaLocalError(f"broker pid {pid} survived SIGKILL")
        with contextlib.suppress(FileNotFoundError):
            _paths(secure)["pid"].unlink()
        _say(f"local broker stopped in {time.monotonic() - t0:.1f}s")
        return True


def status(secure: bool = False) -> dict:
    """Where Kafka is and whether it answers.

    Keys: mode ("local", "local-secure" or "external"), running, pid, bootstrap,
    answering, plus home/log/kafka_version/jars_ready for the local broker.
    """
    external = None if secure else external_bootstrap()
    if external:
        return {"mode": "external", "running": None, "pid": None,
                "bootstrap": mask_credentials(external), "answering": is_answering(external)}
    p = _paths(secure)
    pid = _read_pid(secure)
    running = pid is not None and _is_our_broker(pid, secure)
    bootstrap = bootstrap_address(secure)
    info = {
        "mode": "local-secure" if secure else "local",
        "running": running,
        "pid": pid if running else None,
        "stale_pid_file": pid is not None and not running,
        "bootstrap": bootstrap,
        "answering": running and is_answering(bootstrap, security=_security(secure)),
        "kafka_version": kafka_version(),
        "jars_ready": _jars_complete(),
        "home": str(p["home"]),
        "log": str(p["log"]),
    }
    if secure:
        info["client_config"] = str(_secure_files().client_toml)
    return info


def secure_client_settings() -> dict[str, str]:
    """The ``[kafka]`` settings for the secure local broker, also written to client.toml.

    No secret among them: the password is named by its file (0600).
    """
    files = _secure_files()
    settings = kafka_secure.client_settings(files, bootstrap_address(secure=True))
    files.client_toml.write_text(kafka_secure.render_client_toml(settings))
    return settings


def _print_secure_client(settings: dict[str, str]) -> None:
    toml = kafka_secure.render_client_toml(settings)
    print(f"# client settings for the secure broker (also in {_secure_files().client_toml}):",
          file=sys.stderr)
    print(toml, end="", file=sys.stderr)
    print("# or from the environment (the password stays in its 0600 file):\n"
          f"#   export TRADEWATCH_BOOTSTRAP_SERVERS={settings['bootstrap_servers']}\n"
          f"#   export TRADEWATCH_KAFKA_SECURITY_PROTOCOL={settings['security_protocol']}\n"
          f"#   export TRADEWATCH_KAFKA_SASL_MECHANISM={settings['sasl_mechanism']}\n"
          f"#   export TRADEWATCH_KAFKA_SASL_USERNAME={settings['sasl_username']}\n"
          f"#   export TRADEWATCH_KAFKA_SASL_PASSWORD_FILE={settings['sasl_password_file']}\n"
          f"#   export TRADEWATCH_KAFKA_SSL_CAFILE={settings['ssl_cafile']}", file=sys.stderr)


# --------------------------------------------------------------------------- CLI


USAGE = """usage: python -m streams.kafka_local {fetch|start|stop|status}
                                         [--secure] [--timeout SECONDS] [--json]

  fetch    download the broker jars with Maven into var/kafka/libs (no-op when up to date)
  start    start the local single-node broker on 127.0.0.1 (or check TRADEWATCH_BOOTSTRAP_SERVERS)
  stop     stop the local broker
  status   print whether it runs and answers; exit 0 if answering, 1 if not

  --secure the secure broker instead (var/kafka-secure, 127.0.0.1:9094, SASL_SSL with
           generated certificates); start prints the client settings it needs"""


def cli(argv: list[str]) -> int:
    """Entry point for ``python -m streams.kafka_local`` and ``tradewatch kafka``."""
    import argparse

    parser = argparse.ArgumentParser(prog="tradewatch kafka", usage=USAGE, add_help=True)
    parser.add_argument("command", choices=["fetch", "start", "stop", "status"])
    parser.add_argument("--timeout", type=float, default=None)
    parser.add_argument("--json", action="store_true", help="status as JSON")
    parser.add_argument("--secure", action="store_true",
                        help="the secure (SASL_SSL) local broker")
    args = parser.parse_args(argv)
    try:
        if args.command == "fetch":
            print(fetch_jars())
            return 0
        if args.command == "start":
            print(start(timeout=args.timeout or 60, secure=args.secure))
            if args.secure:
                _print_secure_client(secure_client_settings())
            return 0
        if args.command == "stop":
            stop(timeout=args.timeout or STOP_TIMEOUT_S, secure=args.secure)
            return 0
        info = status(secure=args.secure)
        if args.json:
            print(json.dumps(info, indent=2))
        else:
            for key, value in info.items():
                print(f"{key:15} {value}")
        return 0 if info["answering"] else 1
    except KafkaLocalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))
