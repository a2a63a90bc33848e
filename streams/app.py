"""The faust worker: declarations topic in, alerts and dead letters out, /metrics beside.

``create_app(settings)`` builds a fresh app each call (no module-level singleton),
so tests and benchmarks can run one in-process. The agent body is thin: it takes
records in batches, and hands each to :class:`~streams.worker.RecordHandler`,
which holds all the logic and never touches faust.

Records are read as raw bytes (``value_serializer="raw"``): decoding with msgspec
in the handler costs microseconds, where faust's validated Records cost ~75 us.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from collections.abc import Awaitable, Callable
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from streams.checkpoint import CheckpointStore
from streams.config import Settings
from streams.kafka_clients import aiokafka_kwargs, faust_broker_credentials
from streams.metrics import PipelineMetrics
from streams.worker import Outgoing, RecordHandler

__all__ = ["create_app"]

log = logging.getLogger(__name__)

#: Records taken per batch and the longest a partial batch waits: large enough to
#: amortise faust's per-batch overhead, short enough that an alert is not held back.
BATCH_MAX = 2000
BATCH_WITHIN_SECONDS = 0.05
#: How often open windows are checked for the idle timeout, and lag is sampled.
TICK_SECONDS = 1.0


def _broker_url(bootstrap_servers: str) -> str:
    return ";".join(f"kafka://{host.strip()}" for host in bootstrap_servers.split(","))


def create_app(
    settings: Settings,
    registry: CollectorRegistry | None = None,
    metrics: PipelineMetrics | None = None,
) -> faust.App:
    """A worker app for ``settings``; metrics go to ``registry`` (a fresh one by default)."""
    registry = registry if registry is not None else CollectorRegistry()
    if metrics is None:
        metrics = PipelineMetrics.create(
            registry, detectors=list(settings.detectors), levels=settings.windows.levels)
        from streams import __version__

        metrics.set_build_info(__version__, settings.config_version)
    Path(settings.worker.data_dir).mkdir(parents=True, exist_ok=True)
    app = faust.App(
        # the batch engine's consumer owns the group name; faust's own consumer (which
        # then has no agent to feed) must not join that group with its own protocol
        settings.kafka.consumer_group if settings.worker.engine == "agent"
        else f"{settings.kafka.consumer_group}-app",
        broker=_broker_url(settings.kafka.bootstrap_servers),
        broker_client_id=settings.kafka.client_id,
        broker_credentials=faust_broker_credentials(settings.kafka),
        store="memory://",
        datadir=settings.worker.data_dir,
        web_bind=settings.worker.web_host,
        web_host=settings.worker.web_host,
        web_port=settings.worker.web_port,
        consumer_auto_offset_reset="earliest",
        topic_allow_declare=True,
        topic_partitions=settings.topics.partitions,
        producer_linger_ms=5,
    )
    declarations = app.topic(settings.topics.declarations, key_serializer="raw",
                             value_serializer="raw", internal=False)
    alerts_topic = app.topic(settings.topics.alerts, key_serializer="raw",
                             value_serializer="raw", internal=False)
    dlq_topic = app.topic(settings.topics.dlq, key_serializer="raw",
                          value_serializer="raw", internal=False)
    handler = RecordHandler(settings, metrics)
    app.tradewatch_handler = handler  # type: ignore[attr-defined]

    async def publish(out: list[Outgoing]) -> None:
        for item in out:
            topic = alerts_topic if item.kind == "alert" else dlq_topic
            try:
                await topic.send(key=item.key, value=item.value, headers=item.headers)
            except Exception:  # noqa: BLE001 - count and log; never kill the agent
                metrics.publish_failures.labels(kind=item.kind).inc()
                log.exception("could not publish %s to %s", item.kind, topic.get_topic_name())
        handler.after_publish(out, time.time())

    if settings.worker.engine == "agent":
        consumer_view = _add_agent(app, declarations, handler, publish)
    else:
        consumer_view = _add_batch_consumer(app, settings, handler, publish)

    @app.timer(interval=TICK_SECONDS)
    async def tick() -> None:
        # an exception escaping a faust timer crashes the whole worker: contain it
        try:
            out = handler.tick()
            if out:
                await publish(out)
            consumer = consumer_view()
            if consumer is None:
                return
            assignment = {tp for tp in consumer.assignment()
                          if tp.topic == settings.topics.declarations}
            handler.sync_assignment({(tp.topic, tp.partition) for tp in assignment})
            for tp in assignment:
                try:
                    highwater = consumer.highwater(tp)
                except Exception:  # noqa: BLE001 - not known yet right after assignment
                    continue
                handler.record_highwater(tp.topic, tp.partition, highwater)
        except Exception:  # noqa: BLE001
            log.exception("tick failed; retrying on the next tick")

    @app.page("/metrics")
    async def metrics_page(web: Any, request: Any) -> Any:
        return web.bytes(generate_latest(registry),
                         headers={"Content-Type": CONTENT_TYPE_LATEST})

    return app


Publish = Callable[[list[Outgoing]], Awaitable[None]]


def _add_agent(app: faust.App, declarations: Any, handler: RecordHandler,
               publish: Publish) -> Callable[[], Any]:
    """Engine "agent": a faust agent takes the records in batches (faust's own stream)."""

    @app.agent(declarations)
    async def detect(stream: Any) -> None:
        async for events in stream.take_events(BATCH_MAX, within=BATCH_WITHIN_SECONDS):
            out: list[Outgoing] = []
            for event in events:
                message = event.message
                out.extend(handler.handle(
                    message.value, key=message.key, topic=message.topic,
                    partition=message.partition, offset=message.offset,
                    timestamp=message.timestamp))
            if out:
                await publish(out)

    return lambda: app.consumer


def _add_batch_consumer(app: faust.App, settings: Settings, handler: RecordHandler,
                        publish: Publish) -> Callable[[], Any]:
    """Engine "batch": an aiokafka consumer in the app's event loop reads whole fetches.

    faust's per-event stream machinery costs a few hundred microseconds per record
    (several tasks and futures each; see ``bench/e2e.py``), ten times the
    pipeline's own work. Reading ``getmany`` batches with the client faust is built
    on removes that, while faust still runs the web server, the timers and the
    producer. Offsets are committed after each batch has been handled and its
    alerts and dead letters handed to the producer: at-least-once, like the agent.
    """
    state: dict[str, Any] = {"consumer": None}
    store = (CheckpointStore(Path(settings.worker.data_dir) / "checkpoints"
                             / settings.kafka.consumer_group)
             if settings.worker.checkpoints else None)
    saved_at: dict[int, int] = {}  # partition -> windows_closed at its last checkpoint

    def checkpoint(topic: str, partition: int) -> None:
        pipeline = handler.pipelines.get(partition)
        position = handler.position(topic, partition)
        if store is None or pipeline is None or position is None:
            return
        store.save(topic, partition, pipeline, next_offset=position)
        saved_at[partition] = pipeline.windows_closed

    class Checkpoints(ConsumerRebalanceListener):  # type: ignore[misc]
        """Resume each newly assigned partition from its checkpoint; save on revoke."""

        def on_partitions_revoked(self, revoked: Any) -> None:
            for tp in revoked:
                checkpoint(tp.topic, tp.partition)

        def on_partitions_assigned(self, assigned: Any) -> None:
            consumer = state["consumer"]
            for tp in assigned:
                loaded = store.load(tp.topic, tp.partition, settings, handler.metrics) if store else None
                if loaded is None:
                    continue
                pipeline, next_offset = loaded
                handler.restore(tp.topic, tp.partition, pipeline, next_offset)
                saved_at[tp.partition] = pipeline.windows_closed
                consumer.seek(tp, next_offset)
                log.info("resumed %s[%d] from its checkpoint at offset %d",
                         tp.topic, tp.partition, next_offset)

    @app.task
    async def consume_batches() -> None:
        consumer = AIOKafkaConsumer(
            **aiokafka_kwargs(settings.kafka),
            group_id=settings.kafka.consumer_group,
            client_id=settings.kafka.client_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        await consumer.start()
        state["consumer"] = consumer
        consumer.subscribe([settings.topics.declarations], listener=Checkpoints())
        try:
            while True:
                batches = await consumer.getmany(timeout_ms=200, max_records=BATCH_MAX)
                if not batches:
                    continue
                out: list[Outgoing] = []
                for tp, records in batches.items():
                    for r in records:
                        out.extend(handler.handle(
                            r.value, key=r.key, topic=tp.topic, partition=tp.partition,
                            offset=r.offset, timestamp=r.timestamp / 1000.0))
                if out:
                    await publish(out)
                await consumer.commit()
                for tp in batches:
                    pipeline = handler.pipelines.get(tp.partition)
                    if pipeline is not None and pipeline.windows_closed > saved_at.get(tp.partition, 0):
                        checkpoint(tp.topic, tp.partition)
        finally:
            state["consumer"] = None
            await consumer.stop()

    return lambda: state["consumer"]
