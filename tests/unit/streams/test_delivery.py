"""Delivery: a batch's alerts and dead letters are all acknowledged before the worker may commit."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from prometheus_client import CollectorRegistry

from streams.delivery import TRUNCATED_SIZES, deliver

TRUNCATED_KEEP_BYTES = TRUNCATED_SIZES[0]
from streams.metrics import PipelineMetrics
from streams.worker import Outgoing


class MessageSizeTooLargeError(Exception):
    """Named like aiokafka's: delivery recognises the failure by its class name."""


class FlakyBroker:
    """Fails the first ``failures`` sends (or every send above ``max_bytes``), stores the rest."""

    def __init__(self, failures: int = 0, max_bytes: int | None = None) -> None:
        self.failures = failures
        self.max_bytes = max_bytes
        self.stored: list[tuple[str, bytes, list[tuple[str, bytes]]]] = []
        self.attempts = 0

    async def send(self, topic: str, value: bytes, key: bytes | None = None,
                   headers: list[tuple[str, bytes]] | None = None) -> Any:
        self.attempts += 1
        future = asyncio.get_running_loop().create_future()
        if self.max_bytes is not None and len(value) > self.max_bytes:
            future.set_exception(MessageSizeTooLargeError("too large"))
        elif self.failures > 0:
            self.failures -= 1
            future.set_exception(ConnectionError("broker gone"))
        else:
            self.stored.append((topic, value, list(headers or [])))
            future.set_result(None)
        return future


def _metrics() -> PipelineMetrics:
    return PipelineMetrics.create(CollectorRegistry(), detectors=["volume"], levels=("hs6",))


def _run(broker: FlakyBroker, out: list[Outgoing], metrics: PipelineMetrics) -> list[float]:
    sleeps: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        assert metrics.publish_blocked._value.get() == 1  # blocked while retrying

    asyncio.run(deliver(broker, out, lambda o: "alerts" if o.kind == "alert" else "dlq",
                        metrics, sleep=fake_sleep))
    return sleeps


def test_every_message_is_acknowledged_before_deliver_returns() -> None:
    broker, metrics = FlakyBroker(), _metrics()
    out = [Outgoing("alert", b"k", b"a1", []), Outgoing("dead_letter", None, b"bad", [])]
    assert _run(broker, out, metrics) == []
    assert [(t, v) for t, v, _ in broker.stored] == [("alerts", b"a1"), ("dlq", b"bad")]


def test_a_failed_send_is_retried_with_growing_backoff_until_it_is_stored() -> None:
    broker, metrics = FlakyBroker(failures=3), _metrics()
    sleeps = _run(broker, [Outgoing("alert", b"k", b"a1", [])], metrics)
    assert [v for _, v, _ in broker.stored] == [b"a1"]
    assert sleeps == sorted(sleeps) and len(sleeps) == 3 and sleeps[0] < sleeps[-1]
    assert metrics.publish_failures.labels(kind="alert")._value.get() == 3
    assert metrics.publish_blocked._value.get() == 0  # unblocked once delivered


def test_only_the_failed_messages_are_sent_again() -> None:
    broker, metrics = FlakyBroker(failures=1), _metrics()
    _run(broker, [Outgoing("alert", b"k", b"first", []), Outgoing("alert", b"k", b"second", [])],
         metrics)
    assert sorted(v for _, v, _ in broker.stored) == [b"first", b"second"]
    assert broker.attempts == 3


def test_an_oversized_dead_letter_is_published_truncated_with_its_size_and_digest() -> None:
    original = b"x" * (TRUNCATED_KEEP_BYTES * 3)
    broker, metrics = FlakyBroker(max_bytes=TRUNCATED_KEEP_BYTES), _metrics()
    _run(broker, [Outgoing("dead_letter", b"k", original, [("tw-reason", b"too_large")])], metrics)
    [(topic, value, headers)] = broker.stored
    assert topic == "dlq" and value == original[:TRUNCATED_KEEP_BYTES]
    h = dict(headers)
    assert h["tw-reason"] == b"too_large"
    assert h["tw-value-truncated"] == str(len(original)).encode()
    assert h["tw-value-sha256"] == hashlib.sha256(original).hexdigest().encode()


def test_a_dead_letter_shrinks_until_the_topic_takes_it() -> None:
    original = b"y" * 100_000
    broker, metrics = FlakyBroker(max_bytes=TRUNCATED_SIZES[1]), _metrics()
    _run(broker, [Outgoing("dead_letter", b"k", original, [])], metrics)
    [(_, value, headers)] = broker.stored
    assert value == original[:TRUNCATED_SIZES[1]]
    assert dict(headers)["tw-value-truncated"] == b"100000"  # the original's size, not 64 KiB
    assert dict(headers)["tw-value-sha256"] == hashlib.sha256(original).hexdigest().encode()


class OutOfOrderSequenceNumber(Exception):
    """Named like aiokafka's error after a refused batch of an idempotent producer."""


class WedgedProducer(FlakyBroker):
    """Every send fails out of sequence until reset() gives a fresh producer."""

    def __init__(self) -> None:
        super().__init__()
        self.wedged = True
        self.resets = 0

    async def send(self, topic: str, value: bytes, key: bytes | None = None,
                   headers: list[tuple[str, bytes]] | None = None) -> Any:
        if self.wedged:
            self.attempts += 1
            future = asyncio.get_running_loop().create_future()
            future.set_exception(OutOfOrderSequenceNumber("45"))
            return future
        return await super().send(topic, value, key, headers)

    async def reset(self) -> None:
        self.wedged = False
        self.resets += 1


def test_a_wedged_idempotent_producer_is_replaced_before_the_retry() -> None:
    broker, metrics = WedgedProducer(), _metrics()
    _run(broker, [Outgoing("alert", b"k", b"a1", [])], metrics)
    assert broker.resets == 1
    assert [v for _, v, _ in broker.stored] == [b"a1"]
