"""Run a real worker process against a real broker, on a private set of topics.

Used by the integration tests, the end-to-end benchmark and ``tradewatch
evaluate --mode kafka``: each run gets its own topic names, consumer group and
metrics port, so runs never see each other's records or offsets.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

from kafka import KafkaConsumer, TopicPartition

from streams.config import KafkaSettings, Settings, load_settings_text
from streams.kafka_clients import as_kafka, kafka_python_kwargs
from streams.topics import (
    changelog_topic,
    delete_topics,
    ensure_topics,
    pipeline_topic_specs,
    snapshots_topic,
)

__all__ = ["free_port", "private_settings", "running_worker", "read_topic", "RunningWorker"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: ``[kafka]`` keys that say how to connect securely (names of secrets, never secrets).
_SECURITY_KEYS = ("security_protocol", "sasl_mechanism", "sasl_username", "sasl_password_env",
                  "sasl_password_file", "ssl_cafile", "ssl_certfile", "ssl_keyfile",
                  "ssl_key_password_env", "ssl_key_password_file", "ssl_check_hostname")


def _security_toml(kafka: KafkaSettings) -> str:
    from streams.config import _toml_value

    values = ((key, getattr(kafka, key)) for key in _SECURITY_KEYS)
    return "".join(f"{key} = {_toml_value(v)}\n" for key, v in values
                   if v is not None and v != getattr(KafkaSettings(), key))


def private_settings(bootstrap: str | KafkaSettings, base_toml: str = "",
                     prefix: str | None = None, partitions: int = 4,
                     web_port: int | None = None) -> tuple[Settings, str]:
    """Settings with unique topics, group and port; returns (settings, toml text).

    ``bootstrap`` is an address, or ``[kafka]`` settings whose address and security
    options (the names of its secrets, not the secrets) are carried over.
    """
    prefix = prefix or f"tw-{uuid.uuid4().hex[:10]}"
    port = web_port or free_port()
    kafka = as_kafka(bootstrap)
    extra = f"""
[kafka]
bootstrap_servers = "{kafka.bootstrap_servers}"
consumer_group = "{prefix}-worker"
{_security_toml(kafka)}
[topics]
declarations = "{prefix}.declarations"
dlq = "{prefix}.declarations.dlq"
alerts = "{prefix}.alerts"
incidents = "{prefix}.incidents"
config = "{prefix}.config"
feedback = "{prefix}.feedback"
partitions = {partitions}

[worker]
web_host = "127.0.0.1"
web_port = {port}
data_dir = "var/worker/{prefix}"
"""
    text = _merge_toml(base_toml, extra)
    return load_settings_text(text, env={}), text


def _merge_toml(base: str, extra: str) -> str:
    """Append ``extra`` sections, dropping the same sections from ``base``."""
    drop = {line.strip() for line in extra.splitlines() if line.startswith("[")}
    kept, skipping = [], False
    for line in base.splitlines():
        if line.startswith("["):
            skipping = line.strip() in drop
        if not skipping:
            kept.append(line)
    return "\n".join(kept) + "\n" + extra


class RunningWorker:
    def __init__(self, settings: Settings, proc: subprocess.Popen[bytes], log_path: Path) -> None:
        self.settings = settings
        self.proc = proc
        self.log_path = log_path

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.worker.web_port}/metrics"

    def metrics_text(self) -> str:
        with urllib.request.urlopen(self.metrics_url, timeout=5) as response:
            return response.read().decode()

    def sample(self, name: str, labels: dict[str, str] | None = None) -> float:
        """Sum of the samples named ``name`` whose labels include ``labels`` (0.0 if none)."""
        from prometheus_client.parser import text_string_to_metric_families

        total = 0.0
        for family in text_string_to_metric_families(self.metrics_text()):
            for s in family.samples:
                if s.name == name and all(s.labels.get(k) == v for k, v in (labels or {}).items()):
                    total += float(s.value)
        return total

    def log_tail(self, n: int = 60) -> str:
        lines = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(lines[-n:])

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill9(self) -> None:
        """SIGKILL the worker (no shutdown, no leave-group, no final commit) and reap it."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (a clean shutdown), SIGKILL after ``timeout``."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill9()

    def rss_bytes(self) -> int:
        """Resident set size of the worker process, from /proc (0 once it has exited)."""
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0


def with_data_dir(settings_toml: str, data_dir: Path | str) -> str:
    """``settings_toml`` with its ``[worker] data_dir`` pointing at ``data_dir``.

    Two workers with different data directories stand for two machines: nothing
    one writes locally is seen by the other.
    """
    line = f'data_dir = "{data_dir}"'
    if re.search(r'^data_dir = ".*"$', settings_toml, flags=re.M):
        return re.sub(r'^data_dir = ".*"$', lambda _: line, settings_toml, count=1, flags=re.M)
    return settings_toml.replace("[worker]\n", f"[worker]\n{line}\n", 1)


def start_worker(settings_toml: str, settings: Settings, workdir: Path, *,
                 startup_timeout: float = 90.0, extra_env: dict[str, str] | None = None,
                 instance_id: str | None = None, data_dir: Path | str | None = None,
                 wait_ready: bool = True) -> RunningWorker:
    """Start ``tradewatch worker`` as a process on existing topics; the caller stops it.

    The worker sees none of this process's ``TRADEWATCH_*`` variables (its config
    file says everything) but those the config names as holding a secret, and ``extra_env`` (e.g. a fault-injection point) and,
    with ``instance_id``, ``TRADEWATCH_INSTANCE_ID`` (Kafka static group membership).
    With ``wait_ready`` it returns once /metrics answers.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    if data_dir is not None:
        settings_toml = with_data_dir(settings_toml, data_dir)
    config_path = workdir / "tradewatch.toml"
    config_path.write_text(settings_toml)
    log_path = workdir / "worker.log"
    secret_vars = {settings.kafka.sasl_password_env, settings.kafka.ssl_key_password_env}
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("TRADEWATCH_") or k in secret_vars}
    if instance_id is not None:
        env["TRADEWATCH_INSTANCE_ID"] = instance_id
    env.update(extra_env or {})
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "--config", str(config_path), "worker",
             "--loglevel", "info"],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    worker = RunningWorker(settings, proc, log_path)
    if not wait_ready:
        return worker
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited ({proc.returncode}):\n{worker.log_tail()}")
            try:
                worker.metrics_text()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"worker not serving /metrics:\n{worker.log_tail()}") from None
                time.sleep(0.3)
    except BaseException:
        worker.stop(5)
        raise
    return worker


@contextlib.contextmanager
def running_worker(settings_toml: str, settings: Settings, workdir: Path,
                   startup_timeout: float = 90.0, keep_topics: bool = False, *,
                   extra_env: dict[str, str] | None = None, instance_id: str | None = None,
                   data_dir: Path | str | None = None,
                   ) -> Iterator[RunningWorker]:
    """Create the topics, start ``tradewatch worker`` as a process, stop it at exit.

    The topics are deleted afterwards unless ``keep_topics`` (another worker is to
    read the same records next). ``extra_env``, ``instance_id`` and ``data_dir``
    are passed to :func:`start_worker`.
    """
    t = settings.topics
    bootstrap = settings.kafka
    ensure_topics(bootstrap, pipeline_topic_specs(t, consumer_group=settings.kafka.consumer_group))
    worker = start_worker(settings_toml, settings, workdir, startup_timeout=startup_timeout,
                          extra_env=extra_env, instance_id=instance_id, data_dir=data_dir)
    try:
        yield worker
    finally:
        worker.stop(30)
        if not keep_topics:
            with contextlib.suppress(Exception):
                delete_topics(bootstrap, [t.declarations, t.dlq, t.alerts, t.incidents, t.config,
                                          t.feedback, changelog_topic(settings.kafka.consumer_group),
                                          snapshots_topic(settings.kafka.consumer_group)])


def read_topic(bootstrap: str | KafkaSettings, topic: str, *, expect: int | None = None,
               timeout: float = 60.0, idle: float = 5.0) -> list:  # type: ignore[type-arg]
    """All records of ``topic`` from the start: until ``expect`` records, or ``idle`` quiet seconds."""
    consumer = KafkaConsumer(**kafka_python_kwargs(as_kafka(bootstrap)),
                             enable_auto_commit=False, group_id=None, consumer_timeout_ms=500)
    partitions = consumer.partitions_for_topic(topic) or set()
    tps = [TopicPartition(topic, p) for p in partitions]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    records: list = []  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    last_new = time.monotonic()
    try:
        while time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=500)
            for msgs in batch.values():
                records.extend(msgs)
            if batch:
                last_new = time.monotonic()
            if expect is not None and len(records) >= expect:
                break
            if expect is None and time.monotonic() - last_new > idle:
                break
    finally:
        consumer.close()
    return records


def send_all(bootstrap: str | KafkaSettings, topic: str, records: Iterable[bytes]) -> int:
    from streams.produce import produce_records

    return produce_records(records, bootstrap=bootstrap, topic=topic, progress=False)


def end_offsets(bootstrap: str | KafkaSettings, topic: str) -> dict[int, int]:
    """{partition: log-end offset} of every partition of ``topic``."""
    consumer = KafkaConsumer(**kafka_python_kwargs(as_kafka(bootstrap)), enable_auto_commit=False,
                             group_id=None)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        ends = consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
    finally:
        consumer.close()
    return {tp.partition: int(offset) for tp, offset in ends.items()}


def committed_offsets(bootstrap: str | KafkaSettings, group: str, topic: str) -> dict[int, int]:
    """{partition: offset} the consumer ``group`` committed on ``topic`` (absent: none yet)."""
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(**kafka_python_kwargs(as_kafka(bootstrap)), client_id="tw-harness")
    try:
        offsets = admin.list_group_offsets({group: None}).get(group, {})
    finally:
        admin.close()
    return {tp.partition: int(meta.offset) for tp, meta in offsets.items()
            if tp.topic == topic and meta.offset is not None and meta.offset >= 0}


@dataclasses.dataclass(frozen=True)
class DeadLetter:
    """One record of the dead-letter topic, its headers decoded (see streams.worker)."""

    value: bytes
    key: bytes | None
    reason: str
    detail: str
    source_topic: str
    source_partition: int
    source_offset: int
    offset: int  # its own offset in the DLQ
    #: An oversized record's dead letter keeps only its head (streams.delivery):
    #: the original's size and sha256, else None.
    original_size: int | None = None
    original_sha256: str | None = None

    @property
    def source(self) -> tuple[int, int]:
        return (self.source_partition, self.source_offset)

    def carries(self, original: bytes | None) -> bool:
        """True when this dead letter holds ``original``: whole, or its head plus digest."""
        if original is None:
            return False
        if self.original_size is None:
            return self.value == original
        import hashlib

        return (original.startswith(self.value) and len(original) == self.original_size
                and hashlib.sha256(original).hexdigest() == self.original_sha256)


def read_dead_letters(bootstrap: str | KafkaSettings, dlq_topic: str, *, timeout: float = 60.0,
                      idle: float = 3.0) -> list[DeadLetter]:
    """Every record of the dead-letter topic, with its ``tw-*`` headers decoded."""
    out = []
    for r in read_topic(bootstrap, dlq_topic, timeout=timeout, idle=idle):
        h = {k: v.decode("utf-8", "replace") for k, v in (r.headers or [])}
        out.append(DeadLetter(
            value=r.value or b"", key=r.key, reason=h.get("tw-reason", ""),
            detail=h.get("tw-detail", ""), source_topic=h.get("tw-source-topic", ""),
            source_partition=int(h.get("tw-source-partition", "-1")),
            source_offset=int(h.get("tw-source-offset", "-1")), offset=r.offset,
            original_size=(int(h["tw-value-truncated"]) if "tw-value-truncated" in h else None),
            original_sha256=h.get("tw-value-sha256")))
    return out
