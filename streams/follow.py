"""A reader of a one-partition compacted topic: everything to its end at start, then what is new.

The worker follows three such topics beside its input: its group's published
config (:mod:`streams.config_topic`), the analysts' feedback
(:mod:`streams.feedback_topic`) and its group's state reverts
(:mod:`streams.snapshots`). None of them is consumed in a group: every worker
reads all of each, from the beginning, with no committed offset.
"""

from __future__ import annotations

import time
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.config import KafkaSettings
from streams.kafka_clients import aiokafka_kwargs

__all__ = ["TopicFollower", "START_TIMEOUT_SECONDS"]

#: How long a worker's start waits to read a followed topic to its end.
START_TIMEOUT_SECONDS = 60.0


class TopicFollower:
    """Partition 0 of ``topic``: :meth:`start` returns its records up to the current end,
    :meth:`poll` the records published since (both in offset order, tombstones included)."""

    def __init__(self, kafka: KafkaSettings, topic: str, client_id: str) -> None:
        self.topic = topic
        self._tp = TopicPartition(topic, 0)
        self._consumer = AIOKafkaConsumer(
            **aiokafka_kwargs(kafka), client_id=client_id, group_id=None,
            enable_auto_commit=False, auto_offset_reset="earliest")

    async def start(self) -> list[Any]:
        await self._consumer.start()
        self._consumer.assign([self._tp])
        await self._consumer.seek_to_beginning(self._tp)
        end = (await self._consumer.end_offsets([self._tp]))[self._tp]
        records: list[Any] = []
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while await self._consumer.position(self._tp) < end:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {self.topic} to offset {end} timed out")
            batch = await self._consumer.getmany(self._tp, timeout_ms=500)
            records += [r for r in batch.get(self._tp, []) if r.offset < end]
        return records

    async def poll(self) -> list[Any]:
        batch = await self._consumer.getmany(self._tp, timeout_ms=0)
        return list(batch.get(self._tp, []))

    async def stop(self) -> None:
        await self._consumer.stop()
