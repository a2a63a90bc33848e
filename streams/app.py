"""The worker: declarations in, alerts, incidents and dead letters out, state beside, /metrics served.

``create_app(settings)`` builds a fresh faust app each call (no module-level
singleton), so tests and benchmarks can run one in-process. faust runs the web
server (``/metrics``) and the process lifecycle; the records flow through one
loop, :class:`WorkerLoop`, with one set of guarantees. Per batch, as Kafka
Streams' and quix-streams' checkpoints do:

1. **handle**: every record of the fetch goes through
   :class:`~streams.worker.RecordHandler` (validate -> window -> detect -> alert),
   in the order the records were produced across partitions;
2. **deliver**: its alerts, incidents and dead letters are sent with an idempotent
   ``acks=all`` producer and every delivery is awaited; a failed send is retried
   with backoff and blocks the loop (:mod:`streams.delivery`). Alerts and
   incidents go as soon as they are raised, before the rest of the fetch is
   handled, unless early deliveries would cost more than a tenth of the time
   (:mod:`streams.latency`): a fetch's size is not part of an alert's latency;
3. **persist**: the state of a partition that closed a window is saved, and the
   save is awaited: one partition per fetch (the one saved longest ago), so the
   loop never stops for every partition's save at once;
4. **commit**: only then are the offsets committed.

A crash anywhere replays from the last saved state and the last commit: alerts
may be published twice, always with the same deterministic ``alert_id``, and none
is lost (at-least-once; consumers deduplicate on the id). The idle close (the
wall-clock timer that closes the windows of a partition that has caught up) runs
inside the same loop, between batches, so its alerts and state follow the same
order and nothing mutates a partition while a batch of it is being delivered.

Records are read as raw bytes: decoding with msgspec in the handler costs
microseconds, where faust's validated Records cost ~75 us.

Beside the declarations, the loop follows its group's published config
(:mod:`streams.config_topic`): at start it reads the config topic to its end and
starts with the newest config published for its group, then checks the topic once
a tick. A config it can adopt live is handed to the record handler, which
switches each partition at its next window boundary, state kept
(:mod:`streams.retune`); one it cannot is logged and counted, and the running
config stays.

It follows two more compacted topics the same way: the analysts' feedback
(:mod:`streams.feedback_topic`, folded into the record handler's feedback table
at start and each tick) and its group's state reverts (:mod:`streams.snapshots`):
a revert published while it runs is applied at the next tick, under the batch
lock, to every partition it owns; reverts already on the topic at its start were
applied by the workers running then.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import faust
import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from streams.audit import AuditStamp
from streams.config import Settings
from streams.config_topic import decode_published, newest_config
from streams.delivery import Backoff, ResettableProducer, deliver
from streams.faults import FaultInjector
from streams.feedback_topic import FeedbackFollower
from streams.follow import TopicFollower
from streams.kafka_clients import aiokafka_kwargs, faust_broker_credentials
from streams.latency import EarlyDelivery, arrival_order
from streams.metrics import PipelineMetrics
from streams.pipeline import PartitionPipeline
from streams.state_store import PartitionStateStore, producer_kwargs
from streams.retune import ConfigRejected, candidate_settings, check_live
from streams.snapshots import RevertCommand, decode_revert, read_snapshots, revert_key, revert_models
from streams.state_codec import Refusal, decode_envelope
from streams.topics import (
    changelog_spec,
    config_spec,
    ensure_topics,
    feedback_spec,
    incidents_spec,
    snapshots_spec,
)
from streams.worker import Outgoing, RecordHandler

__all__ = ["create_app", "WorkerLoop"]

log = logging.getLogger(__name__)

#: Records taken per fetch: large enough to amortise the commit and the end-of-fetch
#: delivery; an alert is not held back by the rest of its fetch (streams.latency).
BATCH_MAX = 2000
#: How long one fetch waits for records; also the idle close's resolution.
FETCH_TIMEOUT_MS = 200
#: How often windows are checked for the idle close, lag is sampled and gauges set.
TICK_SECONDS = 1.0
#: A partition's lag counts as known only if a fetch for it was answered this recently:
#: while the broker is unreachable nothing is "caught up", so no window idle-closes.
LAG_FRESH_SECONDS = 5.0
#: A clean shutdown waits this long at most to save the state learned since the last save.
SHUTDOWN_SAVE_SECONDS = 10.0
#: A partition is saved again no sooner than this many times the last saves of all
#: partitions took together: saving (a whole state serialised, in the loop) then costs
#: at most about a tenth of the worker's time, however large the state grows.
SAVE_COST_FACTOR = 10.0


def _broker_url(bootstrap_servers: str) -> str:
    return ";".join(f"kafka://{host.strip()}" for host in bootstrap_servers.split(","))


class StateStore(Protocol):
    """Where partition state is saved and restored from (:mod:`streams.state_store`).

    ``settings`` are those restored pipelines are built with: a live retune sets them.
    """

    settings: Settings

    async def load(self, topic: str, partition: int) -> tuple[PartitionPipeline, int] | None: ...
    async def save(self, topic: str, partition: int, pipeline: PartitionPipeline,
                   next_offset: int) -> None: ...
    async def close(self) -> None: ...


class WorkerLoop:
    """handle -> deliver -> persist -> commit, batch after batch (see the module doc)."""

    def __init__(self, settings: Settings, handler: RecordHandler, metrics: PipelineMetrics,
                 faults: FaultInjector | None = None) -> None:
        self.settings = settings
        self.handler = handler
        self.metrics = metrics
        self.faults = faults or FaultInjector()
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: ResettableProducer | None = None
        self.store: StateStore | None = None
        #: partition -> windows_closed of its pipeline at its last saved state
        self._saved_at: dict[int, int] = {}
        #: partition -> monotonic time of its last save
        self._saved_when: dict[int, float] = {}
        #: partition -> seconds its last save took (the floor of the save interval)
        self._save_took: dict[int, float] = {}
        #: When the loop may save a partition again: saves are spaced out (see _persist)
        self._next_save_at = -math.inf
        #: True between handling records and the broker acknowledging their output:
        #: state saved then would hold windows whose alerts may never be published.
        self._undelivered = False
        self._stopping = False
        self.stopped = asyncio.Event()
        #: When an alert raised mid-fetch is delivered at once (streams.latency).
        self._early = EarlyDelivery()
        #: Held from a batch's handling to its commit, and by rebalance callbacks.
        self._lock = asyncio.Lock()
        #: Bumped when a partition is (re)assigned: a fetch that straddles it is dropped.
        self._epoch: dict[TopicPartition, int] = {}
        self._last_tick = 0.0
        #: The config topic: the group's published configs and its state reverts.
        self.control: TopicFollower | None = None
        self.feedback: FeedbackFollower | None = None
        t = settings.topics
        topics = {"alert": t.alerts, "incident": t.incidents}
        self._topic_of: Callable[[Outgoing], str] = lambda item: topics.get(item.kind, t.dlq)

    # -- lifecycle --------------------------------------------------------------------

    async def run(self) -> None:
        s = self.settings
        kafka = aiokafka_kwargs(s.kafka)
        # linger_ms=0: a delivery enqueues all its messages before the producer's sender
        # runs, so they go in one request anyway; lingering only delays every alert
        self.producer = ResettableProducer(lambda: AIOKafkaProducer(
            **kafka, client_id=f"{s.kafka.client_id}-out", acks="all", enable_idempotence=True,
            linger_ms=0, **producer_kwargs()))
        await self.producer.start()
        # created here too, not only by `tradewatch topics create`: the incident topic is
        # newer than most deployments, and a new consumer group is a new changelog (a
        # broker that auto-creates topics would create it on the first save, uncompacted)
        specs = [incidents_spec(s.topics.incidents, s.topics.partitions),
                 config_spec(s.topics.config), feedback_spec(s.topics.feedback)]
        if s.worker.checkpoints:
            specs += [changelog_spec(s.kafka.consumer_group, s.topics.partitions),
                      snapshots_spec(s.kafka.consumer_group)]
        await asyncio.to_thread(ensure_topics, s.kafka, specs)
        # the group's published config before any state is restored: restored state
        # is laid over the config the group runs, not over this worker's file
        self.control = TopicFollower(s.kafka, s.topics.config, f"{s.kafka.client_id}-config")
        control = await self.control.start()
        published = newest_config(control, s.kafka.consumer_group)
        if published is not None:
            self.apply_published(published)
        self.feedback = FeedbackFollower(s, self.handler.feedback, self.metrics)
        await self.feedback.start()
        done = self._revert_commands(control)
        if done:
            log.info("state revert to %r (%s) is on the config topic from before this start: "
                     "taken as applied", done[-1].snapshot, done[-1].revert_id)
        if s.worker.checkpoints:
            self.store = self._make_store()
        self.consumer = AIOKafkaConsumer(
            **kafka, group_id=s.kafka.consumer_group, client_id=s.kafka.client_id,
            group_instance_id=s.worker.instance_id or None,
            session_timeout_ms=int(s.worker.session_timeout_seconds * 1000),
            heartbeat_interval_ms=max(1000, int(s.worker.session_timeout_seconds * 1000) // 4),
            enable_auto_commit=False, auto_offset_reset="earliest",
            max_partition_fetch_bytes=4 * 1024 * 1024)
        await self.consumer.start()
        self.consumer.subscribe([s.topics.declarations], listener=_Rebalance(self))
        try:
            while not self._stopping:
                await self.step()
        finally:
            try:
                if not self._undelivered:
                    try:
                        await asyncio.wait_for(self._save_all(), timeout=SHUTDOWN_SAVE_SECONDS)
                    except Exception:  # noqa: BLE001 - a successor replays from the older state
                        log.exception("could not save state at shutdown")
                consumer, self.consumer = self.consumer, None
                # leaves the group (dynamic membership): a successor need not wait out a session
                await consumer.stop()
                if self.store is not None:
                    await self.store.close()
                for follower in (self.control, self.feedback):
                    if follower is not None:
                        await follower.stop()
                await self.producer.stop()
            finally:
                self.stopped.set()

    async def stop(self, timeout: float = SHUTDOWN_SAVE_SECONDS + 10) -> None:
        """Finish the current batch, save the state, leave the group; then return."""
        log.info("stopping the worker loop after the current batch")
        self._stopping = True
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.stopped.wait(), timeout=timeout)

    def apply_published(self, raw: bytes) -> bool:
        """Adopt a config-topic record if it can change live; log and count it if not.

        Returns whether the handler now runs it (an unchanged config is not news).
        """
        active = self.settings
        try:
            try:
                record = decode_published(raw)
            except (msgspec.DecodeError, msgspec.ValidationError) as err:
                raise ConfigRejected("malformed", f"not a published config: {err}") from None
            candidate = candidate_settings(record.toml, source=record.source)
            if candidate.to_dict() == active.to_dict():
                return False
            check_live(active, candidate)
        except ConfigRejected as err:
            self.metrics.config_rejected.labels(reason=err.reason).inc()
            log.warning("published config rejected (%s): %s; still running %s", err.reason, err,
                        AuditStamp.of(active).label())
            return False
        self.settings = candidate
        self.handler.retune(candidate)
        if self.store is not None:
            self.store.settings = candidate
        stamp = AuditStamp.of(candidate)
        from streams import __version__

        self.metrics.set_build_info(__version__, stamp.config_version, stamp.config_hash)
        log.info("published config %s accepted as %s: %d partition(s) switch at their next "
                 "window boundary", record.source, stamp.label(), self.handler.pending_partitions())
        return True

    def _make_store(self) -> StateStore:
        """The group's changelog store (its topic exists: :meth:`run` made sure)."""
        s = self.settings
        assert self.producer is not None
        return PartitionStateStore(
            s, self.metrics, self.producer,
            cache_dir=Path(s.worker.data_dir) / "state" / s.kafka.consumer_group)

    # -- one iteration ---------------------------------------------------------------

    async def step(self) -> None:
        """One fetch (possibly empty) through handle -> deliver -> persist -> commit, then tick."""
        assert self.consumer is not None
        epochs = dict(self._epoch)
        batches = await self.consumer.getmany(timeout_ms=FETCH_TIMEOUT_MS, max_records=BATCH_MAX)
        # a rebalance runs concurrently with getmany and with our awaits; the lock keeps
        # it out of a batch's handle -> commit
        async with self._lock:
            batches = self._continuing(batches, epochs)
            if batches:
                self._undelivered = True
                await self._handle(batches)
                self._undelivered = False
                self.faults.reached("after_send")
                await self._persist({tp.partition: tp.topic for tp in batches})
                await self.consumer.commit({tp: records[-1].offset + 1
                                            for tp, records in batches.items()})
                self.faults.reached("after_commit")
            if time.monotonic() - self._last_tick >= TICK_SECONDS:
                self._last_tick = time.monotonic()
                await self._tick()

    def _continuing(self, batches: dict[TopicPartition, list[Any]],
                    epochs: dict[TopicPartition, int]) -> dict[TopicPartition, list[Any]]:
        """The fetched records that continue their partition's state.

        A fetch that straddles a (re)assignment may hold records of a partition
        whose state was then restored to an earlier offset: those are dropped and
        the partition sought to where its restored state ends, so they come again.
        """
        kept = {}
        for tp, records in batches.items():
            if self._epoch.get(tp) != epochs.get(tp):
                expected = self.handler.position(tp.topic, tp.partition)
                if expected is not None and records[0].offset != expected:
                    assert self.consumer is not None
                    self.consumer.seek(tp, expected)
                    continue
            kept[tp] = records
        return kept

    async def _handle(self, batches: dict[TopicPartition, list[Any]]) -> None:
        """Handle a fetch and deliver all its output, alerts as soon as they are due.

        Records go in the order they were produced (:func:`~streams.latency.arrival_order`);
        an alert or incident is delivered, with whatever else is pending, as soon as
        :class:`~streams.latency.EarlyDelivery` says so; the rest at the end.
        """
        handle = self.handler.handle
        out: list[Outgoing] = []
        urgent = False  # an alert or incident is waiting in ``out``
        total = sum(len(records) for records in batches.values())
        seen, half = 0, total // 2
        for tp, r in arrival_order(batches):
            produced = handle(r.value, key=r.key, topic=tp.topic, partition=tp.partition,
                              offset=r.offset, timestamp=r.timestamp / 1000.0)
            seen += 1
            if seen == half:
                self.faults.reached("mid_batch")
            if produced:
                out.extend(produced)
                urgent = urgent or any(item.kind != "dead_letter" for item in produced)
            if urgent and seen < total and self._early.due(time.perf_counter()):
                await self._deliver(out)
                out, urgent = [], False
        await self._deliver(out)

    async def _deliver(self, out: list[Outgoing]) -> None:
        if not out:
            return
        assert self.producer is not None
        started = time.perf_counter()
        await deliver(self.producer, out, self._topic_of, self.metrics)
        self._early.delivered(started, time.perf_counter())
        self.handler.after_publish(out, time.time())

    async def _persist(self, partitions: dict[int, str]) -> None:
        """Save one of the given partitions that closed a window since its last save.

        At most once per ``worker.state_save_interval_seconds`` per partition: a
        save serialises the partition's whole state, and a fast stream closes a
        window every few batches. With a large state the interval stretches to
        :data:`SAVE_COST_FACTOR` times what the last saves took, so saving never
        crowds out the records (an interval of 0, saving every partition every
        batch, is kept as set).

        Saves are spaced out, too: of the partitions due, only the one saved
        longest ago is saved now, and the next save of any partition waits
        :data:`SAVE_COST_FACTOR` times as long as this one took.
        The partitions of a stream close their windows together; saving them all
        in a row stopped the loop for the sum of their saves, and the alerts of the
        records arriving meanwhile waited for it. Spaced, one save's pause is
        worked off before the next. Skipping a save is safe: a restart replays the
        records after the last saved state and re-raises their alerts with the same
        ids. The tick offers every partition again, so the last windows of a stream
        are saved once the interval has passed.
        """
        if self.store is None:
            return
        now = time.monotonic()
        interval = self.save_interval()
        if interval > 0 and now < self._next_save_at:
            return
        due = []
        for partition, topic in partitions.items():
            pipeline = self.handler.pipelines.get(partition)
            if pipeline is None or pipeline.windows_closed <= self._saved_at.get(partition, -1):
                continue
            last = self._saved_when.get(partition, -math.inf)
            if now - last < interval:
                continue
            due.append((last, partition, topic))
        if interval > 0:
            due = sorted(due)[:1]
        for _, partition, topic in due:
            await self._save(topic, partition)
            self._next_save_at = time.monotonic() + SAVE_COST_FACTOR * self._save_took.get(
                partition, 0.0)

    def save_interval(self) -> float:
        """Seconds between two saves of a partition: the configured interval, stretched to
        :data:`SAVE_COST_FACTOR` times the last saves of every partition."""
        configured = self.settings.worker.state_save_interval_seconds
        if configured == 0:
            return 0.0
        return max(configured, SAVE_COST_FACTOR * sum(self._save_took.values()))

    async def _save(self, topic: str, partition: int) -> None:
        """Save one partition's state; a failed save is retried and blocks the commit."""
        pipeline = self.handler.pipelines.get(partition)
        position = self.handler.position(topic, partition)
        if self.store is None or pipeline is None or position is None:
            return
        backoff = Backoff(self.metrics)
        try:
            while True:
                try:
                    started = time.monotonic()
                    await self.store.save(topic, partition, pipeline, next_offset=position)
                    self._save_took[partition] = time.monotonic() - started
                    break
                except Exception as err:  # noqa: BLE001 - retried; offsets stay uncommitted
                    self.metrics.publish_failures.labels(kind="state").inc()
                    log.warning("could not save the state of %s[%d]: %s: %s; retrying in "
                                "%.1fs (offsets stay uncommitted)", topic, partition,
                                type(err).__name__, err, backoff.delay)
                    await backoff.wait()
        finally:
            backoff.close()
        self._saved_at[partition] = pipeline.windows_closed
        self._saved_when[partition] = time.monotonic()

    async def _save_all(self) -> None:
        """Save every owned partition that changed since its last save (clean shutdown)."""
        topic = self.settings.topics.declarations
        saved = []
        for partition, pipeline in list(self.handler.pipelines.items()):
            if pipeline.windows_closed != self._saved_at.get(partition):
                await self._save(topic, partition)
                saved.append(partition)
        log.info("saved the state of partitions %s at shutdown", saved)

    async def _tick(self) -> None:
        """Sample lag, forget revoked partitions, idle-close caught-up partitions."""
        consumer = self.consumer
        if consumer is None:
            return
        topic = self.settings.topics.declarations
        assignment = {tp for tp in consumer.assignment() if tp.topic == topic}
        self.handler.sync_assignment({(tp.topic, tp.partition) for tp in assignment})
        now_ms = time.time() * 1000
        for tp in assignment:
            # a highwater from a fetch answered long ago (broker down) says nothing about now
            polled = consumer.last_poll_timestamp(tp)
            fresh = polled is not None and now_ms - polled <= LAG_FRESH_SECONDS * 1000
            self.handler.record_highwater(tp.topic, tp.partition,
                                          consumer.highwater(tp) if fresh else None)
        control: list[Any] = []
        if self.control is not None:
            try:
                control = await self.control.poll()
            except Exception as err:  # noqa: BLE001 - the records flow on; retried next tick
                log.warning("could not read the config topic: %s: %s", type(err).__name__, err)
        published = newest_config(control, self.settings.kafka.consumer_group)
        if published is not None:
            self.apply_published(published)
        await self._follow_analysts(control)
        self._undelivered = True
        out = self.handler.tick()
        await self._deliver(out)
        self._undelivered = False
        # windows closed by the idle timer are state too, and saves skipped by the
        # interval are due now: offer every partition
        await self._persist({p: topic for p in self.handler.pipelines})

    # -- feedback and reverts --------------------------------------------------------

    def _revert_commands(self, records: list[Any]) -> list[RevertCommand]:
        """This group's revert commands among config-topic records (malformed ones logged)."""
        key = revert_key(self.settings.kafka.consumer_group)
        out = []
        for r in records:
            if r.key != key or r.value is None:
                continue
            try:
                out.append(decode_revert(r.value))
            except (msgspec.DecodeError, msgspec.ValidationError) as err:
                log.warning("ignoring a malformed revert command: %s", err)
        return out

    async def _follow_analysts(self, control: list[Any]) -> None:
        """New feedback into the table; a new revert among this tick's config-topic
        records ``control`` applied (once a tick, under the lock)."""
        try:
            if self.feedback is not None:
                await self.feedback.poll()
        except Exception as err:  # noqa: BLE001 - the records flow on; retried next tick
            log.warning("could not read the feedback topic: %s: %s", type(err).__name__, err)
        # the config-topic records are read once a tick: a revert among them is applied
        # now, whatever became of the feedback
        commands = self._revert_commands(control)
        if commands:
            await self.revert(commands[-1])

    async def revert(self, command: RevertCommand) -> None:
        """Put the snapshot's models in every owned partition, keep its offsets, save it."""
        topic = self.settings.topics.declarations
        if self.store is None:
            log.warning("state revert to %r ignored: this worker keeps no state "
                        "(worker.checkpoints = false)", command.snapshot)
            return
        snapshot = (await asyncio.to_thread(read_snapshots, self.settings)).get(command.snapshot, {})
        log.info("state revert to snapshot %r (%s, by %s): partitions %s", command.snapshot,
                 command.revert_id, command.issued_by, sorted(self.handler.pipelines))
        for partition, pipeline in sorted(self.handler.pipelines.items()):
            record = snapshot.get(partition)
            if record is None or record.state is None:
                self.metrics.state_reverts.labels(outcome="missing").inc()
                log.warning("state revert: snapshot %r has no state for %s[%d]; it keeps its "
                            "models", command.snapshot, topic, partition)
                continue
            # bound to the config the partition judges under now (a retune may be pending)
            restored = await asyncio.to_thread(decode_envelope, record.state, topic, partition,
                                               pipeline.settings, self.metrics, self.handler.clock)
            if isinstance(restored, Refusal):
                self.metrics.state_reverts.labels(outcome="refused").inc()
                log.warning("state revert: snapshot %r of %s[%d] refused (%s); it keeps its "
                            "models", command.snapshot, topic, partition, restored)
                continue
            revert_models(pipeline, restored.pipeline, command.snapshot)
            self.metrics.state_reverts.labels(outcome="applied").inc()
            self._saved_when.pop(partition, None)
            await self._save(topic, partition)
            log.info("state revert: %s[%d] runs the models of snapshot %r (saved at offset %s), "
                     "from offset %s on", topic, partition, command.snapshot, record.next_offset,
                     self.handler.position(topic, partition))

    # -- rebalances (called by aiokafka inside getmany) -------------------------------

    async def on_revoked(self, revoked: list[TopicPartition]) -> None:
        """Save what this worker learned since the last save, for the partition's next owner."""
        async with self._lock:
            for tp in revoked:
                if tp.topic != self.settings.topics.declarations or self._undelivered:
                    continue
                try:
                    await asyncio.wait_for(self._save(tp.topic, tp.partition),
                                           timeout=SHUTDOWN_SAVE_SECONDS)
                except Exception:  # noqa: BLE001 - the next owner replays from the older state
                    log.exception("could not save %s[%d] on revoke", tp.topic, tp.partition)
                self._save_took.pop(tp.partition, None)  # no longer ours to save

    async def on_assigned(self, assigned: list[TopicPartition]) -> None:
        """Resume each newly assigned partition from its saved state, or start it cold.

        The partitions are paused first: no record of theirs may be handled (and no
        cold state saved over the changelog) before their saved state is loaded.
        """
        tps = [tp for tp in assigned if tp.topic == self.settings.topics.declarations]
        if not tps or self.consumer is None:
            return
        self.consumer.pause(*tps)
        try:
            async with self._lock:
                for tp in tps:
                    self._epoch[tp] = self._epoch.get(tp, 0) + 1
                    await self._restore(tp)
        finally:
            if self.consumer is not None:
                self.consumer.resume(*tps)

    async def _restore(self, tp: TopicPartition) -> None:
        assert self.consumer is not None
        # whatever this worker held for the partition before is stale now
        self.handler.forget(tp.topic, tp.partition)
        self._saved_at.pop(tp.partition, None)
        if self.store is None:
            return
        loaded = await self.store.load(tp.topic, tp.partition)
        if loaded is None:
            log.info("%s[%d]: no saved state, starting cold", tp.topic, tp.partition)
            return
        pipeline, next_offset = loaded
        self.handler.restore(tp.topic, tp.partition, pipeline, next_offset)
        self._saved_at[tp.partition] = pipeline.windows_closed
        self.consumer.seek(tp, next_offset)
        log.info("resumed %s[%d] from saved state at offset %d",
                 tp.topic, tp.partition, next_offset)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, loop: WorkerLoop) -> None:
        self._loop = loop

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self._loop.on_revoked(list(revoked))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        await self._loop.on_assigned(list(assigned))


def create_app(
    settings: Settings,
    registry: CollectorRegistry | None = None,
    metrics: PipelineMetrics | None = None,
) -> faust.App:
    """A worker app for ``settings``; metrics go to ``registry`` (a fresh one by default)."""
    registry = registry if registry is not None else CollectorRegistry()
    if metrics is None:
        metrics = PipelineMetrics.create(
            registry, detectors=list(settings.detectors), levels=[spec.name for spec in settings.series_definitions()])
        from streams import __version__
        from streams.audit import config_hash

        metrics.set_build_info(__version__, settings.config_version, config_hash(settings))
    Path(settings.worker.data_dir).mkdir(parents=True, exist_ok=True)
    app = faust.App(
        # faust's own consumer has no agent to feed; it must not join the worker's group
        f"{settings.kafka.consumer_group}-app",
        broker=_broker_url(settings.kafka.bootstrap_servers),
        broker_client_id=settings.kafka.client_id,
        broker_credentials=faust_broker_credentials(settings.kafka),
        store="memory://",
        datadir=settings.worker.data_dir,
        web_bind=settings.worker.web_host,
        web_host=settings.worker.web_host,
        web_port=settings.worker.web_port,
        topic_allow_declare=True,
        # faust's own consumer joins its group before the app starts our loop: after a
        # kill -9 it must not wait out the dead process's session (60 s by default)
        broker_session_timeout=settings.worker.session_timeout_seconds,
        consumer_group_instance_id=(f"{settings.worker.instance_id}-app"
                                    if settings.worker.instance_id else None),
    )
    handler = RecordHandler(settings, metrics)
    loop = WorkerLoop(settings, handler, metrics)
    app.tradewatch_handler = handler  # type: ignore[attr-defined]
    app.tradewatch_loop = loop  # type: ignore[attr-defined]

    @app.task
    async def consume() -> None:
        try:
            await loop.run()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("the worker loop failed; stopping the worker")
            with contextlib.suppress(Exception):
                await app.stop()
            raise

    @app.on_before_shutdown.connect
    async def stop_loop(sender: Any, **kwargs: Any) -> None:
        # a graceful stop before faust cancels its tasks: the loop ends between
        # batches, saves what it learned and leaves the group
        await loop.stop()

    @app.page("/metrics")
    async def metrics_page(web: Any, request: Any) -> Any:
        return web.bytes(generate_latest(registry),
                         headers={"Content-Type": CONTENT_TYPE_LATEST})

    return app
