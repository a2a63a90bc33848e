"""The feedback topic: ``tradewatch alerts mark`` writes it, every worker follows it.

One compacted topic (``[topics] feedback``, default ``trade.feedback``, one
partition, :func:`streams.topics.feedback_spec`) holds the newest
:class:`~streams.feedback.FeedbackRecord` of each marked alert, keyed by alert id.
:func:`find_alert` reads the alerts topic for the alert being marked (its series,
detector and window); :func:`publish_feedback` sends the mark; :class:`FeedbackFollower`
is the worker's reader, folding every record into its
:class:`~streams.feedback.FeedbackTable` (a tombstone takes a mark back).
"""

from __future__ import annotations

import logging
import time

import msgspec

from streams.config import Settings
from streams.events import TradeAlert
from streams.feedback import FeedbackRecord, FeedbackTable, decode_feedback, encode_feedback
from streams.follow import TopicFollower
from streams.kafka_clients import kafka_python_kwargs
from streams.metrics import PipelineMetrics

__all__ = ["find_alert", "publish_feedback", "FeedbackFollower"]

log = logging.getLogger(__name__)

_alert_decoder = msgspec.json.Decoder(TradeAlert)


def find_alert(settings: Settings, alert_id: str, timeout: float = 30.0) -> TradeAlert | None:
    """The newest alert with ``alert_id`` on the alerts topic, or None (read to its end)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(**kafka_python_kwargs(settings.kafka),
                             client_id=f"{settings.kafka.client_id}-find-alert",
                             enable_auto_commit=False, consumer_timeout_ms=1000)
    try:
        topic = settings.topics.alerts
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not tps:
            return None
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        wanted = alert_id.encode()
        found: TradeAlert | None = None
        deadline = time.monotonic() + timeout
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic} to its end timed out")
            for records in consumer.poll(timeout_ms=500).values():
                for r in records:
                    # the id is in the value; skip the decode unless the bytes name it
                    if r.value and wanted in r.value:
                        try:
                            alert = _alert_decoder.decode(r.value)
                        except (msgspec.DecodeError, msgspec.ValidationError):
                            continue
                        if alert.alert_id == alert_id:
                            found = alert
        return found
    finally:
        consumer.close()


def publish_feedback(settings: Settings, record: FeedbackRecord, timeout: float = 30.0) -> int:
    """Send ``record`` to the feedback topic (created if missing); its offset."""
    from kafka import KafkaProducer

    from streams.topics import ensure_topics, feedback_spec

    ensure_topics(settings.kafka, [feedback_spec(settings.topics.feedback)])
    producer = KafkaProducer(**kafka_python_kwargs(settings.kafka),
                             client_id=f"{settings.kafka.client_id}-feedback", acks="all")
    try:
        future = producer.send(settings.topics.feedback, key=record.alert_id.encode(),
                               value=encode_feedback(record), partition=0)
        return int(future.get(timeout=timeout).offset)
    finally:
        producer.close(timeout=timeout)


class FeedbackFollower:
    """A worker's reader of the feedback topic, folding it into ``table``."""

    def __init__(self, settings: Settings, table: FeedbackTable,
                 metrics: PipelineMetrics | None = None) -> None:
        self.table = table
        self.metrics = metrics
        self._follower = TopicFollower(settings.kafka, settings.topics.feedback,
                                       f"{settings.kafka.client_id}-feedback")

    async def start(self) -> int:
        """Read the topic to its end; the number of records folded in."""
        return self._apply(await self._follower.start())

    async def poll(self) -> int:
        """Fold in the records published since; their number."""
        return self._apply(await self._follower.poll())

    def _apply(self, records: list) -> int:  # type: ignore[type-arg]
        for r in records:
            if r.value is None:
                self.table.remove(r.key.decode("utf-8", "replace") if r.key else "")
                continue
            try:
                record = decode_feedback(r.value)
            except (msgspec.DecodeError, msgspec.ValidationError) as err:
                log.warning("ignoring a malformed record at %s@%d: %s",
                            self._follower.topic, r.offset, err)
                continue
            self.table.add(record)
            log.info("feedback: alert %s (%s on %s) marked %s by %s", record.alert_id,
                     record.detector, record.series_key, record.verdict, record.marked_by)
        if records and self.metrics is not None:
            for verdict in ("false_positive", "confirmed"):
                self.metrics.feedback_marks.labels(verdict=verdict).set(
                    sum(1 for m in self.table if m.verdict == verdict))
        return len(records)

    async def stop(self) -> None:
        await self._follower.stop()
