"""``make demo``: the whole pipeline on the local broker, with a spike you can watch.

Starts the project's Kafka (unless TRADEWATCH_BOOTSTRAP_SERVERS points elsewhere),
creates the topics, starts a worker process, streams generated declarations with
the ``ic_spike_de_kg_ru`` scenario injected (Tier-1 integrated circuits
DE -> KG tenfold, then KG -> RU), and prints alerts as the worker publishes them.
Ctrl-C stops the producer, the worker and the broker it started.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import msgspec

from streams import kafka_local
from streams.config import DEFAULT_CONFIG_PATH, KafkaSettings, Settings
from streams.kafka_clients import check_cluster
from streams.redact import mask_credentials
from streams.harness import private_settings
from streams.tail import format_alert, iter_alerts
from streams.topics import changelog_topic, delete_topics, ensure_topics, pipeline_topic_specs

__all__ = ["run_demo"]

DEMO_SCENARIO = "ic_spike_de_kg_ru"


def _say(msg: str) -> None:
    print(f"\033[1m[demo]\033[0m {msg}", flush=True)


def _wait_http(url: str, timeout: float, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"worker did not serve {url} within {timeout:.0f}s")


def run_demo(settings: Settings, *, days: int = 150, rate: float | None = None,
             duration: float | None = None, config_path: str | None = None) -> int:
    var = kafka_local.var_dir() / "demo"
    var.mkdir(parents=True, exist_ok=True)
    secured = settings.kafka.security_protocol != "PLAINTEXT"
    if secured:  # a cluster with security settings is used as configured, never started
        check_cluster(settings.kafka)
        was_running, kafka = True, settings.kafka
    else:
        was_running = kafka_local.status().get("answering", False)
        kafka = msgspec.structs.replace(settings.kafka, bootstrap_servers=kafka_local.start(
            bootstrap_servers=os.environ.get("TRADEWATCH_BOOTSTRAP_SERVERS")))
    bootstrap = kafka.bootstrap_servers
    _say(f"Kafka answering at {mask_credentials(bootstrap)}")
    # every demo run gets its own topics and consumer group: the generator replays the
    # same event times each run, which a resumed worker would rightly call late
    base = Path(config_path).read_text() if config_path else DEFAULT_CONFIG_PATH.read_text()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    settings, toml = private_settings(kafka, base, prefix=f"demo-{stamp}",
                                      partitions=settings.topics.partitions,
                                      web_port=settings.worker.web_port)
    config_file = var / f"demo-{stamp}.toml"
    config_file.write_text(toml)
    config_path = str(config_file)
    t = settings.topics
    ensure_topics(settings.kafka, pipeline_topic_specs(t))
    _say(f"topics ready: {t.declarations} -> {t.alerts} (dead letters: {t.dlq})")

    log_path = var / "worker.log"
    env = {**os.environ, "TRADEWATCH_BOOTSTRAP_SERVERS": bootstrap}
    cmd = [sys.executable, "-m", "streams.cli"]
    if config_path:
        cmd += ["--config", config_path]
    with log_path.open("ab") as log:
        worker = subprocess.Popen([*cmd, "worker"], stdout=log, stderr=subprocess.STDOUT, env=env,
                                  start_new_session=True)
    metrics_url = f"http://{settings.worker.web_host}:{settings.worker.web_port}/metrics"
    stop = threading.Event()
    started_at = dt.datetime.now(dt.UTC)
    try:
        _wait_http(metrics_url, 90, worker)
        _say(f"worker up (log {log_path}); metrics at {metrics_url}")
        producer = subprocess.Popen(
            [*cmd, "produce", "--generate", "--scenario", DEMO_SCENARIO, "--days", str(days),
             *(["--rate", str(rate)] if rate else [])], env=env)
        _say(f"streaming {days} days of generated declarations with '{DEMO_SCENARIO}' injected")
        _say("alerts appear below as windows close; Ctrl-C stops everything")
        tail_thread = threading.Thread(target=_print_alerts,
                                       args=(settings.kafka, t.alerts, started_at, stop),
                                       daemon=True)
        tail_thread.start()
        deadline = time.monotonic() + duration if duration else None
        while deadline is None or time.monotonic() < deadline:
            if worker.poll() is not None:
                raise RuntimeError(f"worker exited with code {worker.returncode}; see {log_path}")
            if producer.poll() is not None and producer.returncode != 0:
                raise RuntimeError(f"producer failed with code {producer.returncode}")
            time.sleep(0.5)
    except KeyboardInterrupt:
        _say("stopping")
    finally:
        stop.set()
        _terminate(worker)
        with contextlib.suppress(Exception):
            delete_topics(settings.kafka, [t.declarations, t.dlq, t.alerts, t.incidents, t.config,
                                           changelog_topic(settings.kafka.consumer_group)])
            _say("demo topics deleted")
        if not was_running and not secured and not os.environ.get("TRADEWATCH_BOOTSTRAP_SERVERS"):
            kafka_local.stop()
            _say("local Kafka stopped")
    return 0


def _print_alerts(kafka: KafkaSettings, topic: str, since: dt.datetime,
                  stop: threading.Event) -> None:
    count = 0
    for _, alert in iter_alerts(kafka, topic, from_beginning=True, timeout_s=1.0e9):
        if stop.is_set():
            return
        if alert is None or alert.emitted_at < since:
            continue
        count += 1
        print(format_alert(alert), flush=True)


def _terminate(proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

