"""Deliver a batch's alerts and dead letters, or block until they can be: never commit past a loss.

The worker's loop per batch is *handle -> deliver -> persist state -> commit*.
:func:`deliver` is the second step: it sends every outgoing message with an
idempotent ``acks=all`` producer, awaits every delivery, and re-sends the ones
that failed with exponential backoff until they are acknowledged. It returns only
when all are: the caller commits afterwards, so a record's offset is committed
only once its alerts (or its dead letter) are on the broker. While it retries, the
``tradewatch_publish_blocked`` gauge is 1, ``tradewatch_publish_failures_total``
counts every failed attempt and the log says why; consumption of that worker
stops, lag grows, and the operator's lag alert fires.

One failure cannot heal by retrying: a dead letter larger than the broker or the
DLQ topic accepts (the original bytes of an oversized record). Such a message is
re-sent as a *truncated* dead letter, keeping the most that fits of
:data:`TRUNCATED_SIZES` bytes, with headers ``tw-value-truncated`` (the original
size) and ``tw-value-sha256`` (of the original bytes), so the record is still
accounted for and can be found in the source topic by its ``tw-source-*``
headers. An alert too large for its topic is retried until the topic is fixed.

A refused batch leaves an idempotent producer's sequence numbers out of step with
the broker's (``OutOfOrderSequenceNumber`` on every later send to that partition);
when a send fails that way the producer is replaced by a fresh one (a new producer
id) before the retry, if the producer given supports ``reset()``
(:class:`ResettableProducer`).

Sending is idempotent and alert ids are deterministic, so a re-send that the broker
had in fact stored before the failure is harmless to consumers that deduplicate on
``alert_id``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from streams.metrics import PipelineMetrics
from streams.worker import Outgoing

__all__ = ["Backoff", "deliver", "ResettableProducer", "Sender", "TRUNCATED_SIZES", "truncated_dead_letter"]

log = logging.getLogger(__name__)

#: How much of an oversized record a truncated dead letter keeps: the largest that the
#: broker accepts, tried in this order (the last keeps only the headers).
TRUNCATED_SIZES = (64 * 1024, 4 * 1024, 0)
#: Errors after which an idempotent producer must start again under a new producer id.
_WEDGED = {"OutOfOrderSequenceNumber", "OutOfOrderSequenceNumberError", "UnknownProducerIdError",
           "InvalidProducerEpochError", "ProducerFenced", "ProducerFencedError"}
#: First retry after this many seconds, doubling up to the cap.
BACKOFF_START_SECONDS = 0.1
BACKOFF_MAX_SECONDS = 5.0


class Sender(Protocol):
    """The part of ``aiokafka.AIOKafkaProducer`` that :func:`deliver` uses."""

    async def send(self, topic: str, value: bytes, key: bytes | None = None,
                   headers: list[tuple[str, bytes]] | None = None) -> Awaitable[Any]: ...


class Backoff:
    """Pacing of retries for output that must not be skipped, with the health gauge.

    Waits 0.1 s, doubling up to 5 s; ``tradewatch_publish_blocked`` is 1 from the
    first wait until :meth:`close`. Shared by the delivery of alerts and dead
    letters and by the worker's state saves, so every blocked output looks alike.
    """

    def __init__(self, metrics: PipelineMetrics,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.metrics = metrics
        self.sleep = sleep
        #: The next wait, in seconds (what a log line announces).
        self.delay = BACKOFF_START_SECONDS
        self.blocked = False

    async def wait(self) -> None:
        if not self.blocked:
            self.blocked = True
            self.metrics.publish_blocked.set(1)
        await self.sleep(self.delay)
        self.delay = min(BACKOFF_MAX_SECONDS, self.delay * 2)

    def close(self) -> None:
        if self.blocked:
            self.blocked = False
            self.metrics.publish_blocked.set(0)


def _too_large(err: BaseException) -> bool:
    """A failure that re-sending the same bytes can never fix."""
    name = type(err).__name__
    return name in {"MessageSizeTooLargeError", "RecordTooLargeError"}


def truncated_dead_letter(item: Outgoing) -> Outgoing | None:
    """The dead letter of an oversized record, one size smaller: its head, size and digest.

    ``None`` when it cannot shrink further (only headers are left).
    """
    size = next((n for n in TRUNCATED_SIZES if n < len(item.value)), None)
    if size is None:
        return None
    headers = dict(item.headers)
    if "tw-value-truncated" not in headers:  # the first cut: describe the original
        headers["tw-value-truncated"] = str(len(item.value)).encode()
        headers["tw-value-sha256"] = hashlib.sha256(item.value).hexdigest().encode()
    return Outgoing(item.kind, item.key, item.value[:size], list(headers.items()),
                    alert=item.alert, arrival=item.arrival)


class ResettableProducer:
    """An aiokafka producer that :func:`deliver` can replace after it is wedged.

    ``factory`` builds an unstarted ``AIOKafkaProducer``; every holder of this
    object (the delivery step, the state store) keeps working after a reset.
    """

    def __init__(self, factory: Callable[[], Any]) -> None:
        self._factory = factory
        self._producer: Any = None
        self.resets = 0

    async def start(self) -> None:
        self._producer = self._factory()
        await self._producer.start()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()

    async def send(self, *args: Any, **kwargs: Any) -> Any:
        return await self._producer.send(*args, **kwargs)

    async def send_and_wait(self, *args: Any, **kwargs: Any) -> Any:
        return await self._producer.send_and_wait(*args, **kwargs)

    async def reset(self) -> None:
        """A fresh producer (new producer id, sequences from 0); the old one is closed."""
        old, self._producer = self._producer, self._factory()
        await self._producer.start()
        self.resets += 1
        try:
            await old.stop()
        except Exception:  # noqa: BLE001 - it is being thrown away
            log.debug("stopping the replaced producer failed", exc_info=True)


async def deliver(
    producer: Sender,
    out: Sequence[Outgoing],
    topic_of: Callable[[Outgoing], str],
    metrics: PipelineMetrics,
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Send ``out`` and return once the broker has acknowledged every message.

    Retries forever with backoff; the only message ever changed is an oversized
    dead letter (see the module doc). ``topic_of`` names each message's topic.
    """
    pending = list(out)
    backoff = Backoff(metrics, sleep)
    try:
        while pending:
            results = await _send_all(producer, pending, topic_of)
            failed: list[Outgoing] = []
            wedged = False
            for item, result in zip(pending, results, strict=True):
                if not isinstance(result, BaseException):
                    continue
                metrics.publish_failures.labels(kind=item.kind).inc()
                wedged = wedged or type(result).__name__ in _WEDGED
                smaller = (truncated_dead_letter(item)
                           if item.kind == "dead_letter" and _too_large(result) else None)
                if smaller is not None:
                    log.error("dead letter of %d bytes is too large for the broker (%s); "
                              "publishing %d bytes of it with its size and sha256",
                              len(item.value), type(result).__name__, len(smaller.value))
                    failed.append(smaller)
                    continue
                log.warning("could not publish %s to %s: %s: %s; retrying in %.1fs "
                            "(offsets stay uncommitted)", item.kind, topic_of(item),
                            type(result).__name__, result, backoff.delay)
                failed.append(item)
            if not failed:
                return
            reset = getattr(producer, "reset", None)
            if wedged and reset is not None:
                log.warning("the producer's sequence is out of step with the broker after a "
                            "refused send; starting a fresh producer")
                await reset()
            pending = failed
            await backoff.wait()
    finally:
        backoff.close()


async def _send_all(producer: Sender, items: Sequence[Outgoing],
                    topic_of: Callable[[Outgoing], str]) -> list[Any]:
    """Enqueue every message, then await every delivery; exceptions are returned, not raised."""
    futures: list[Any] = []
    for item in items:
        try:
            futures.append(await producer.send(topic_of(item), item.value, key=item.key,
                                               headers=item.headers))
        except Exception as err:  # noqa: BLE001 - e.g. too large for the client, no metadata
            futures.append(_failed(err))
    return list(await asyncio.gather(*futures, return_exceptions=True))


def _failed(err: BaseException) -> asyncio.Future[Any]:
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    future.set_exception(err)
    return future
