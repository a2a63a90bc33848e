"""An alert leaves soon after the record that raised it, whatever the size of its fetch.

The worker handles a fetch of up to thousands of records; an alert raised by one
of its first records used to wait for all of them. Now the fetch is walked in the
order its records were produced, across partitions, and an alert is delivered as
soon as it is raised, unless the last delivery was expensive enough that
delivering again so soon would crowd out the records. Everything a fetch produced
is still delivered before the loop goes on to save state and commit.
"""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

from aiokafka import TopicPartition
from prometheus_client import CollectorRegistry

from streams.app import WorkerLoop
from streams.config import DEFAULT_CONFIG_PATH, load_settings
from streams.latency import EarlyDelivery, arrival_order
from streams.metrics import PipelineMetrics
from streams.worker import Outgoing

P0, P1 = TopicPartition("t", 0), TopicPartition("t", 1)


def _record(offset: int, timestamp: int) -> SimpleNamespace:
    return SimpleNamespace(value=b"{}", key=None, offset=offset, timestamp=timestamp)


# -- the order a fetch is walked in -------------------------------------------------------


def test_a_fetch_is_walked_in_the_order_its_records_were_produced() -> None:
    fetch = {P0: [_record(0, 10), _record(1, 30)], P1: [_record(0, 20), _record(1, 40)]}
    walked = [(tp.partition, r.offset) for tp, r in arrival_order(fetch)]
    assert walked == [(0, 0), (1, 0), (0, 1), (1, 1)]


def test_a_partition_keeps_its_offset_order_when_its_timestamps_go_back() -> None:
    fetch = {P0: [_record(0, 50), _record(1, 5), _record(2, 60)], P1: [_record(0, 20)]}
    walked = [(tp.partition, r.offset) for tp, r in arrival_order(fetch)]
    assert [o for p, o in walked if p == 0] == [0, 1, 2]
    assert sorted(walked) == [(0, 0), (0, 1), (0, 2), (1, 0)]


def test_one_partition_is_walked_as_fetched() -> None:
    fetch = {P0: [_record(0, 9), _record(1, 3)]}
    assert [r.offset for _, r in arrival_order(fetch)] == [0, 1]


# -- when an early delivery is due ----------------------------------------------------------


def test_the_first_alert_goes_at_once() -> None:
    assert EarlyDelivery().due(now=0.0)


def test_after_a_delivery_the_next_waits_nine_times_as_long_as_it_took() -> None:
    early = EarlyDelivery()
    early.delivered(started=10.0, ended=10.02)
    assert not early.due(now=10.02 + 0.1)
    assert early.due(now=10.02 + 0.18)


# -- the worker loop ---------------------------------------------------------------------------


class Recorder:
    """A handler and a producer at once: it writes down what happens, in order."""

    def __init__(self, raises: dict[tuple[int, int], str]) -> None:
        self.raises = raises  # (partition, offset) -> kind of output it raises
        self.events: list[tuple[str, Any]] = []

    # the handler's side
    def handle(self, raw: bytes, *, key: bytes | None, topic: str, partition: int, offset: int,
               timestamp: float | None = None) -> list[Outgoing]:
        self.events.append(("handled", (partition, offset)))
        kind = self.raises.get((partition, offset))
        if kind is None:
            return []
        return [Outgoing(kind, None, f"{partition}@{offset}".encode(), [])]

    def after_publish(self, out: list[Outgoing], now: float) -> None:
        pass

    # the producer's side
    async def send(self, topic: str, value: bytes, key: bytes | None = None,
                   headers: list[tuple[str, bytes]] | None = None) -> asyncio.Future[None]:
        self.events.append(("sent", value.decode()))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def _loop(recorder: Recorder, *, last_delivery: float = 0.0) -> WorkerLoop:
    """A loop whose last delivery ended just now and took ``last_delivery`` seconds."""
    settings = load_settings(DEFAULT_CONFIG_PATH)
    metrics = PipelineMetrics.create(CollectorRegistry(), detectors=list(settings.detectors))
    loop = WorkerLoop(settings, recorder, metrics)  # type: ignore[arg-type]
    loop.producer = recorder  # type: ignore[assignment]
    now = time.perf_counter()
    loop._early.delivered(started=now - last_delivery, ended=now)
    return loop


def _fetch() -> dict[TopicPartition, list[SimpleNamespace]]:
    return {P0: [_record(o, 100 + 2 * o) for o in range(5)],
            P1: [_record(o, 101 + 2 * o) for o in range(5)]}


def test_an_alert_raised_mid_fetch_is_published_before_the_rest_of_the_fetch_is_handled() -> None:
    recorder = Recorder({(0, 1): "alert"})
    asyncio.run(_loop(recorder)._handle(_fetch()))
    sent = recorder.events.index(("sent", "0@1"))
    assert recorder.events[sent - 1] == ("handled", (0, 1))
    assert recorder.events[sent + 1:] and all(e[0] == "handled" for e in recorder.events[sent + 1:])


def test_an_incident_goes_early_too_but_a_dead_letter_waits_for_the_end_of_the_fetch() -> None:
    recorder = Recorder({(0, 0): "dead_letter", (1, 2): "incident"})
    asyncio.run(_loop(recorder)._handle(_fetch()))
    sends = [i for i, e in enumerate(recorder.events) if e[0] == "sent"]
    # the pending dead letter goes along with the incident, both right after (1, 2)
    assert [recorder.events[i][1] for i in sends] == ["0@0", "1@2"]
    assert recorder.events[sends[0] - 1] == ("handled", (1, 2))
    assert sends[-1] < len(recorder.events) - 1, "the rest of the fetch came after them"


def test_dead_letters_alone_are_delivered_once_the_fetch_is_handled() -> None:
    recorder = Recorder({(0, 0): "dead_letter", (1, 3): "dead_letter"})
    asyncio.run(_loop(recorder)._handle(_fetch()))
    assert [e[0] for e in recorder.events] == ["handled"] * 10 + ["sent"] * 2


def test_after_an_expensive_delivery_an_alert_waits_for_the_end_of_the_fetch() -> None:
    recorder = Recorder({(0, 1): "alert"})
    asyncio.run(_loop(recorder, last_delivery=3600.0)._handle(_fetch()))
    assert [e[0] for e in recorder.events] == ["handled"] * 10 + ["sent"]


def test_everything_a_fetch_raised_is_delivered_before_its_handling_returns() -> None:
    raises = {(0, 1): "alert", (0, 3): "dead_letter", (1, 4): "alert", (1, 2): "incident"}
    recorder = Recorder(raises)
    asyncio.run(_loop(recorder)._handle(_fetch()))
    assert sorted(v for kind, v in recorder.events if kind == "sent") == \
        sorted(f"{p}@{o}" for p, o in raises)
    assert recorder.events[-1][0] == "sent", "the last record's alert is not left behind"
