"""Shared machinery of the fault tests: the streams, the waits and the accounting.

Every fault test ends with :func:`assert_accounted`, the property issue 8 asks for
after any fault: *count in = processed + dead-lettered*, read back from Kafka:

* the consumer group's committed offsets equal the log-end offsets of every input
  partition (everything was processed; nothing is skipped past);
* every record of the dead-letter topic points (``tw-source-partition`` /
  ``tw-source-offset``) at an input record and carries its original bytes;
* the dead-letter topic holds exactly the records the test made invalid (plus,
  where a test says so, the one record it expects may be dead-lettered), so no
  valid record was dead-lettered and no invalid one is missing;
* the alert ids equal those of the offline run (``streams.offline.run_offline``)
  on the same records with the same config; an alert published twice (at-least-once
  after a crash) must carry the same id and the same window, never a new one.

The streams come from the synthetic small scenario set (the one issue 8 was probed
with), scaled down to :data:`DAILY_DECLARATIONS` a day so the whole fault suite fits
a few minutes on two cores; ``TRADEWATCH_FAULTS_DAILY=1000`` runs the full set.
"""

from __future__ import annotations

import contextlib
import re
import dataclasses
import datetime as dt
import functools
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path

import msgspec

from streams.config import DEFAULT_CONFIG_PATH, Settings, load_settings_text
from streams.events import TradeAlert, TradeDeclaration, decode_declaration, encode
from streams.harness import (
    DeadLetter,
    RunningWorker,
    committed_offsets,
    end_offsets,
    free_port,
    read_dead_letters,
    read_topic,
)
from streams.keys import partition_for, record_key
from streams.offline import OfflineResult, run_offline

__all__ = [
    "FAULT_INJECT_ENV",
    "INSTANCE_ID_ENV",
    "PUBLISH_FAILURES_METRIC",
    "STATE_RESTORES_METRIC",
    "Accounting",
    "FaultStream",
    "PrivateBroker",
    "assert_accounted",
    "fault_stream",
    "private_broker",
    "produce",
    "produce_partition_by_partition",
    "replay",
    "shipped_config",
    "wait_committed",
    "wait_for",
    "wait_windows_flushed",
]

#: The worker SIGKILLs itself the n-th time it reaches a point: "<point>:<n>",
#: point one of mid_batch, after_send, after_commit (counting batches from 1).
FAULT_INJECT_ENV = "TRADEWATCH_FAULT_INJECT"
#: Kafka static membership (group.instance.id): a restarted worker with the same id
#: takes its partitions back at once instead of waiting out the dead one's session.
INSTANCE_ID_ENV = "TRADEWATCH_INSTANCE_ID"
#: Counter the worker raises each time a send of an alert or a dead letter fails.
#: CHECK AT MERGE: the lead's worker loop names this metric.
PUBLISH_FAILURES_METRIC = "tradewatch_publish_failures_total"
#: Counter of partition-state restores by outcome (changelog, cache, cold, refused).
#: CHECK AT MERGE: helper B's changelog names this metric.
STATE_RESTORES_METRIC = "tradewatch_state_restores_total"
PROCESSED_METRIC = "tradewatch_declarations_consumed_total"

#: Background declarations a day in the fault streams (the small set has 1000).
DAILY_DECLARATIONS = float(os.environ.get("TRADEWATCH_FAULTS_DAILY", "150"))


def shipped_config() -> str:
    """deploy/tradewatch.toml, the config the issue's acceptance runs use."""
    return DEFAULT_CONFIG_PATH.read_text()


#: Quiet period before the last windows idle-close in tests whose subject is a fault,
#: not the idle close itself (the undisturbed runs keep the shipped 30 s).
FAST_IDLE_SECONDS = 8


def fault_config() -> str:
    """The shipped config with a short idle close, so a fault test ends sooner."""
    text = shipped_config()
    changed = re.sub(r"^idle_timeout_seconds = \d+", f"idle_timeout_seconds = {FAST_IDLE_SECONDS}",
                     text, count=1, flags=re.M)
    assert changed != text, "deploy/tradewatch.toml has no [windows] idle_timeout_seconds line"
    return changed


# ----------------------------------------------------------------------------- streams


def bad_records() -> dict[str, bytes]:
    """One record per kind of invalid input (see streams/validate.py), keyed by reason.

    Each is invalid whatever its event time, so it is dead-lettered in any stream.
    """
    good = json.loads(decode_and_reencode_example())

    def variant(**changes: object) -> bytes:
        return json.dumps(dict(good, **changes)).encode()

    missing = dict(good)
    del missing["hs_code"]
    return {
        "not_json": b'{"schema_version": 1, "declaration_id": "BAD-1", ',
        "missing_field": json.dumps(dict(missing, declaration_id="BAD-2")).encode(),
        "wrong_type": variant(declaration_id="BAD-3", net_mass_kg="heavy"),
        "negative_quantity": variant(declaration_id="BAD-4", statistical_value_eur=-5),
        "malformed_hs_code": variant(declaration_id="BAD-5", hs_code="85-42"),
        "unknown_country": variant(declaration_id="BAD-6", destination_country="ZZ"),
        # larger than validation.max_message_bytes (65536): dead-lettered as "oversized",
        # and larger than the small max.message.bytes the publish-failure test gives the DLQ
        "oversized": variant(declaration_id="BAD-7", goods_description="x" * 500) + b" " * 70_000,
    }


def decode_and_reencode_example() -> bytes:
    """The schema's example declaration, dated inside the 2022 streams."""
    from streams.events import example_declaration_json

    d = decode_declaration(example_declaration_json())
    return encode(msgspec.structs.replace(
        d, declared_at=dt.datetime(2022, 3, 1, 9, 0, tzinfo=dt.UTC)))


@dataclasses.dataclass(frozen=True)
class FaultStream:
    """Records in production order, and which of them the test made invalid."""

    records: tuple[bytes, ...]
    bad: dict[str, bytes]
    partitions: int
    #: Records that may be dead-lettered without failing the accounting (e.g. the
    #: one declaration dated far ahead of its stream).
    may_dead_letter: frozenset[bytes] = frozenset()

    def __len__(self) -> int:
        return len(self.records)

    def expected_dead(self) -> frozenset[bytes]:
        return frozenset(self.bad.values())

    def parts(self, n: int) -> list[tuple[bytes, ...]]:
        """The stream in ``n`` consecutive parts of about equal size, cut where the
        stream's days turn over: every valid record of a part is dated earlier than
        every valid record of the parts after it.

        A test that pauses its producer between parts (a broker outage, workers
        joining) cuts there, so that a partition which drains its part and goes quiet
        meanwhile may have its windows closed by the idle timer (caught up and quiet,
        as designed) without making a record of the next part late: the pause is the
        end of a day's input, not the middle of it. Cutting mid-day would make the
        outcome depend on how long the pause takes on a busy machine.
        """
        cuts = self._day_boundaries()
        chosen: list[int] = []
        for k in range(1, n):
            target = k * len(self.records) // n
            later = [c for c in cuts if not chosen or c > chosen[-1]]
            assert later, f"the stream has no {n - 1} clean day boundaries"
            chosen.append(min(later, key=lambda c: abs(c - target)))
        edges = [0, *chosen, len(self.records)]
        return [self.records[a:b] for a, b in zip(edges, edges[1:])]

    def _day_boundaries(self) -> list[int]:
        """Indices i where every valid record before i is dated before every one from i on."""
        days: list[dt.date | None] = []
        for raw in self.records:
            try:
                days.append(decode_declaration(raw).declared_at.date())
            except Exception:  # noqa: BLE001 - an invalid record has no day
                days.append(None)
        before_max: list[dt.date | None] = []
        latest: dt.date | None = None
        for day in days:
            before_max.append(latest)
            if day is not None and (latest is None or day > latest):
                latest = day
        after_min: list[dt.date | None] = [None] * (len(days) + 1)
        for i in range(len(days) - 1, -1, -1):
            day, later = days[i], after_min[i + 1]
            after_min[i] = day if later is None or (day is not None and day < later) else later
        return [i for i in range(1, len(days))
                if before_max[i] is not None and after_min[i] is not None
                and before_max[i] < after_min[i]]


@functools.cache
def _background(daily: float) -> tuple[bytes, ...]:
    from evaluation.synth.scenarios import small_scenario_set

    s = small_scenario_set()
    s = dataclasses.replace(s, config=dataclasses.replace(s.config, daily_declarations=daily))
    return tuple(s.stream().records())


def fault_stream(partitions: int = 4, *, far_ahead: bool = False,
                 daily: float | None = None) -> FaultStream:
    """The (scaled) small scenario set with the invalid records of :func:`bad_records`
    spread through it; with ``far_ahead``, one valid declaration dated *now* (years
    ahead of its 2022 neighbours) in the middle of its partition's stream.
    """
    records = list(_background(daily or DAILY_DECLARATIONS))
    bad = bad_records()
    step = len(records) // (len(bad) + 1)
    for i, raw in enumerate(reversed(list(bad.values()))):
        records.insert(step * (len(bad) - i), raw)
    allowed: frozenset[bytes] = frozenset()
    if far_ahead:
        middle = len(records) // 2
        while records[middle] in bad.values():
            middle += 1
        d = decode_declaration(records[middle])
        now = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=1)
        outlier = encode(msgspec.structs.replace(d, declaration_id="FAR-AHEAD-1", declared_at=now))
        records.insert(middle + 1, outlier)
        allowed = frozenset({outlier})
    return FaultStream(tuple(records), bad, partitions, allowed)


def _settings_for(stream: FaultStream, settings: Settings) -> Settings:
    topics = msgspec.structs.replace(settings.topics, partitions=stream.partitions)
    return msgspec.structs.replace(settings, topics=topics)


@functools.cache
def _replay_cached(records: tuple[bytes, ...], settings_json: bytes) -> OfflineResult:
    settings = msgspec.json.decode(settings_json, type=Settings)
    return run_offline(list(records), settings)


def replay(stream: FaultStream, settings: Settings) -> OfflineResult:
    """``tradewatch replay`` of the same records with the same config (cached per session)."""
    s = _settings_for(stream, settings)
    return _replay_cached(stream.records, msgspec.json.encode(s))


# ----------------------------------------------------------------------------- producing


def _producer(bootstrap: str):  # type: ignore[no-untyped-def]
    from kafka import KafkaProducer

    return KafkaProducer(bootstrap_servers=bootstrap.split(","), client_id="tw-faults",
                         acks="all", linger_ms=10, batch_size=256 * 1024,
                         max_request_size=4 * 1024 * 1024)


def _partition_of(raw: bytes, index: int, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a keyed record; unkeyed
    (invalid) records are spread by their index."""
    key = record_key(raw)
    return partition_for(key, partitions) if key else index % partitions


def produce(bootstrap: str, topic: str, stream: FaultStream,
            records: Sequence[bytes] | None = None) -> int:
    """Send records (default: the whole stream) keyed as ``tradewatch produce`` keys them."""
    producer = _producer(bootstrap)
    try:
        rows = stream.records if records is None else records
        for i, raw in enumerate(rows):
            key = record_key(raw) or None
            producer.send(topic, key=key, value=raw,
                          partition=_partition_of(raw, i, stream.partitions))
        producer.flush(60)
    finally:
        producer.close()
    return len(rows)


def produce_partition_by_partition(bootstrap: str, topic: str, stream: FaultStream,
                                   seed: int = 8) -> list[int]:
    """Send one partition's records completely before the next, partitions in a
    shuffled order; per-partition order is kept. Returns the order used."""
    by_partition: dict[int, list[bytes]] = {p: [] for p in range(stream.partitions)}
    for i, raw in enumerate(stream.records):
        by_partition[_partition_of(raw, i, stream.partitions)].append(raw)
    order = list(by_partition)
    random.Random(seed).shuffle(order)
    producer = _producer(bootstrap)
    try:
        for p in order:
            for raw in by_partition[p]:
                producer.send(topic, key=record_key(raw) or None, value=raw, partition=p)
            producer.flush(60)
            time.sleep(1.0)  # the worker sees this partition alone for a moment
    finally:
        producer.close()
    return order


# ----------------------------------------------------------------------------- waiting


def describe(workers: Sequence[RunningWorker], lines: int = 25) -> str:
    """Counts and log tails of ``workers``, for failure messages."""
    out = []
    for i, w in enumerate(workers):
        state = "alive" if w.alive() else f"exited {w.proc.returncode}"
        processed = "?"
        with contextlib.suppress(Exception):
            processed = f"{w.sample(PROCESSED_METRIC):.0f}" if w.alive() else "?"
        log = w.log_path.read_text(errors="replace").splitlines()
        # one warning per dead letter would drown everything else: count them instead
        dead = [line for line in log if "dead-letter " in line]
        rest = [line for line in log if "dead-letter " not in line][-lines:]
        out.append(f"--- worker {i} (pid {w.pid}, {state}, processed {processed}, "
                   f"{len(dead)} dead-letter log lines, last: {dead[-1:]}) {w.log_path} ---\n"
                   + "\n".join(rest))
    return "\n".join(out)


def wait_for(condition, what: str, workers: Sequence[RunningWorker],  # type: ignore[no-untyped-def]
             timeout: float = 180.0, every: float = 0.5):
    """Poll ``condition()`` until truthy; fail naming ``what`` with the workers' logs."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError):
            value = condition()
            if value:
                return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n"
                                 f"{describe(workers)}")
        time.sleep(every)


def wait_committed(settings: Settings, workers: Sequence[RunningWorker],
                   timeout: float = 240.0) -> dict[int, int]:
    """Until the group's committed offsets reach the log end of every input partition."""
    bootstrap, group = settings.kafka.bootstrap_servers, settings.kafka.consumer_group
    topic = settings.topics.declarations
    state: dict[str, object] = {}

    def done() -> bool:
        end = end_offsets(bootstrap, topic)
        committed = committed_offsets(bootstrap, group, topic)
        state.update(end=end, committed=committed)
        return bool(end) and all(committed.get(p, 0) >= e for p, e in end.items())

    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(
                f"committed offsets never reached the log end within {timeout:.0f}s: "
                f"committed {state.get('committed')} end {state.get('end')}\n{describe(workers)}")
        if workers and not any(w.alive() for w in workers):
            raise AssertionError(f"every worker exited before committing everything: "
                                 f"committed {state.get('committed')} end {state.get('end')}\n"
                                 f"{describe(workers)}")
        time.sleep(1.0)
    return state["committed"]  # type: ignore[return-value]


def wait_windows_flushed(settings: Settings, workers: Sequence[RunningWorker]) -> None:
    """After the last record: the quiet period closes the last windows (the offline run
    flushes them at the end), then the alerts of those windows go out."""
    time.sleep(settings.windows.idle_timeout_seconds + 4.0)
    last = None
    for _ in range(20):  # until the windows-closed counters stop moving
        now = tuple(w.sample("tradewatch_windows_closed_total") for w in workers if w.alive())
        if now == last:
            return
        last = now
        time.sleep(1.5)


# ----------------------------------------------------------------------------- accounting


@dataclasses.dataclass
class Accounting:
    """What the accounting read back from Kafka, for tests that assert more."""

    end: dict[int, int]
    committed: dict[int, int]
    dead: list[DeadLetter]
    alerts: list[TradeAlert]
    offline: OfflineResult

    def summary(self) -> str:
        reasons = Counter(d.reason for d in self.dead)
        return (f"records {sum(self.end.values())} committed {sum(self.committed.values())} "
                f"dead-lettered {len(self.dead)} {dict(reasons)} alerts {len(self.alerts)} "
                f"(distinct {len({a.alert_id for a in self.alerts})}, offline "
                f"{len(self.offline.alerts)})")


def read_alerts(bootstrap: str, topic: str) -> list[TradeAlert]:
    decoder = msgspec.json.Decoder(TradeAlert)
    return [decoder.decode(r.value) for r in read_topic(bootstrap, topic, idle=3.0)]


def _alert_line(a: TradeAlert) -> str:
    return f"{a.alert_id[:12]} {a.detector} {a.severity} {a.series.key} {a.window_start}"


def assert_accounted(settings: Settings, stream: FaultStream,
                     workers: Sequence[RunningWorker] = (), *,
                     compare_alerts: bool = True,
                     may_dead_letter: Collection[bytes] = ()) -> Accounting:
    """count in = processed + dead-lettered, and the alerts of the offline run; see the
    module docstring. Returns what it read, for further assertions."""
    bootstrap = settings.kafka.bootstrap_servers
    t = settings.topics
    logs = describe(workers)
    end = end_offsets(bootstrap, t.declarations)
    committed = committed_offsets(bootstrap, settings.kafka.consumer_group, t.declarations)
    dead = read_dead_letters(bootstrap, t.dlq)
    alerts = read_alerts(bootstrap, t.alerts)
    offline = replay(stream, settings)
    acc = Accounting(end, committed, dead, alerts, offline)

    # 1. everything produced is in the input topic, and everything in it was processed
    assert sum(end.values()) == len(stream), (
        f"input topic holds {sum(end.values())} records, {len(stream)} were produced")
    behind = {p: (committed.get(p), e) for p, e in end.items() if committed.get(p, 0) != e}
    assert not behind, (f"committed offsets differ from the log end (partition: (committed, "
                        f"end)): {behind}; {acc.summary()}\n{logs}")

    # 2. every dead letter points at an input record and carries its bytes
    source = {(r.partition, r.offset): r.value
              for r in read_topic(bootstrap, t.declarations, expect=len(stream), timeout=120)}
    dangling = [d for d in dead if not d.carries(source.get(d.source))]
    assert not dangling, (
        f"{len(dangling)} dead letters do not point at an input record with their bytes, "
        f"e.g. {[(d.source, d.reason, d.value[:60]) for d in dangling[:5]]}; {acc.summary()}")

    # 3. the DLQ holds exactly the records made invalid (+ the ones a test allows)
    expected = stream.expected_dead()
    allowed = expected | stream.may_dead_letter | frozenset(may_dead_letter)
    wanted = {pos for pos, value in source.items() if value in expected}
    got = {d.source for d in dead}
    unexpected = [d for d in dead if source.get(d.source) not in allowed]
    missing = sorted(wanted - got)
    assert not unexpected, (
        f"{len(unexpected)} valid records were dead-lettered "
        f"({dict(Counter(d.reason for d in unexpected))}), e.g. "
        f"{[(d.source, d.reason, d.detail[:80]) for d in unexpected[:5]]}; {acc.summary()}\n{logs}")
    assert not missing, (
        f"{len(missing)} invalid records are neither processed nor dead-lettered: "
        f"{[(pos, source[pos][:60]) for pos in missing]}; {acc.summary()}\n{logs}")

    # 4. alerts: the offline run's ids, duplicates only as exact repeats of one alert
    copies: dict[str, set[tuple[object, ...]]] = {}
    for a in alerts:
        copies.setdefault(a.alert_id, set()).add((a.detector, a.series.key, a.window_start))
    inconsistent = {k: v for k, v in copies.items() if len(v) > 1}
    assert not inconsistent, f"one alert id, different alerts: {inconsistent}"
    if compare_alerts:
        online_ids = set(copies)
        offline_by_id = {a.alert_id: a for a in offline.alerts}
        online_by_id = {a.alert_id: a for a in alerts}
        lost = [offline_by_id[k] for k in sorted(set(offline_by_id) - online_ids)]
        extra = [online_by_id[k] for k in sorted(online_ids - set(offline_by_id))]
        assert offline_by_id, "the stream must raise alerts offline for the comparison to mean anything"
        assert not lost and not extra, (
            f"alert ids differ from the offline run: {len(lost)} missing, {len(extra)} extra\n"
            f"missing: {[_alert_line(a) for a in lost]}\nextra: {[_alert_line(a) for a in extra]}\n"
            f"{acc.summary()}\n{logs}")
    return acc


# ----------------------------------------------------------------------------- a private broker


@dataclasses.dataclass
class PrivateBroker:
    """A second local broker (own var dir, own ports) that a test may kill -9.

    It runs ``streams.kafka_local`` in a subprocess with ``TRADEWATCH_VAR_DIR`` and
    ``TRADEWATCH_KAFKA_PORT`` set, so its pid file, data and lock live in its own
    directory and the shared broker is never touched. The jars are not copied:
    ``libs`` is a symlink to the project's (``var/kafka/libs``).
    """

    var_dir: Path
    port: int

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEWATCH_")}
        env.update(TRADEWATCH_VAR_DIR=str(self.var_dir), TRADEWATCH_KAFKA_PORT=str(self.port),
                   TRADEWATCH_KAFKA_HEAP="256m")
        return env

    def _run(self, command: str, timeout: float = 150.0) -> None:
        proc = subprocess.run(
            [sys.executable, "-m", "streams.kafka_local", command, "--timeout", "120"],
            env=self._env(), capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"kafka_local {command} failed ({proc.returncode}):\n"
                               f"{proc.stdout}\n{proc.stderr}")

    def pid(self) -> int | None:
        try:
            return int((self.var_dir / "kafka" / "broker.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def start(self) -> None:
        self._run("start")

    def stop(self) -> None:
        self._run("stop")

    def kill9(self) -> None:
        """SIGKILL the broker JVM (only this broker's pid, from its own pid file)."""
        pid = self.pid()
        assert pid is not None, f"no pid file under {self.var_dir}"
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.1)


def _free_port_pair() -> int:
    """A port whose next port (the KRaft controller's) is free too."""
    import socket

    for _ in range(50):
        port = free_port()
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no free pair of ports")


def project_kafka_libs() -> Path:
    """The broker jars of this checkout (``var/kafka/libs``, fetched by ``make test``)."""
    from streams import kafka_local

    return kafka_local.home_dir() / "libs"


@contextlib.contextmanager
def private_broker(root: Path) -> Iterator[PrivateBroker]:
    """Start a private broker under ``root``, stop it (and only it) at exit."""
    libs = project_kafka_libs()
    if not (libs / ".stamp").exists():
        raise RuntimeError(f"no Kafka jars in {libs}: run `make kafka-jars` (make test does)")
    home = root / "kafka"
    home.mkdir(parents=True, exist_ok=True)
    (home / "libs").symlink_to(libs, target_is_directory=True)
    broker = PrivateBroker(root, _free_port_pair())
    broker.start()
    try:
        yield broker
    finally:
        # its data is thrown away with ``root``: no controlled shutdown to wait for
        if broker.pid() is not None:
            with contextlib.suppress(ProcessLookupError, AssertionError):
                broker.kill9()


def worker_settings(settings_toml: str) -> tuple[Settings, str]:
    """The same settings with a fresh /metrics port: another worker of the same group."""
    import re

    text = re.sub(r"^web_port = \d+$", f"web_port = {free_port()}", settings_toml,
                  count=1, flags=re.M)
    return load_settings_text(text, env={}), text
