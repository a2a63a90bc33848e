"""Run a real worker process against a real broker, on a private set of topics.

Used by the integration tests, the end-to-end benchmark and ``tradewatch
evaluate --mode kafka``: each run gets its own topic names, consumer group and
metrics port, so runs never see each other's records or offsets.
"""

from __future__ import annotations

import contextlib
import os
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
from streams.topics import changelog_topic, delete_topics, ensure_topics, pipeline_topic_specs

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


@contextlib.contextmanager
def running_worker(settings_toml: str, settings: Settings, workdir: Path,
                   startup_timeout: float = 90.0, keep_topics: bool = False,
                   ) -> Iterator[RunningWorker]:
    """Create the topics, start ``tradewatch worker`` as a process, stop it at exit.

    The topics are deleted afterwards unless ``keep_topics`` (another worker is to
    read the same records next). The worker gets this process's environment without
    its TRADEWATCH_* overrides (the config file is the whole truth), except the
    variables the config names as holding a secret.
    """
    t = settings.topics
    bootstrap = settings.kafka
    ensure_topics(bootstrap, pipeline_topic_specs(t, consumer_group=settings.kafka.consumer_group))
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "tradewatch.toml"
    config_path.write_text(settings_toml)
    log_path = workdir / "worker.log"
    secret_vars = {settings.kafka.sasl_password_env, settings.kafka.ssl_key_password_env}
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("TRADEWATCH_") or k in secret_vars}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "--config", str(config_path), "worker",
             "--loglevel", "info"],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    worker = RunningWorker(settings, proc, log_path)
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
        yield worker
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if not keep_topics:
            with contextlib.suppress(Exception):
                delete_topics(bootstrap, [t.declarations, t.dlq, t.alerts, t.incidents,
                                          changelog_topic(settings.kafka.consumer_group)])


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
