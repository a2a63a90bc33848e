"""Saving state never crowds out the records: the save interval stretches with the state.

A save serialises a partition's whole state inside the worker loop. With the
configured interval alone, a large state (a million series) saved every few
seconds would leave little time for records; so a partition is saved again no
sooner than ``SAVE_COST_FACTOR`` times what the last saves of all partitions took.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from prometheus_client import CollectorRegistry

from streams.app import SAVE_COST_FACTOR, WorkerLoop
from streams.config import DEFAULT_CONFIG_PATH, Settings, load_settings
from streams.metrics import PipelineMetrics
from streams.worker import RecordHandler
from tests.factories import spike_stream

#: What one save takes in the slow store below (at least: it sleeps this long).
SAVE_SECONDS = 0.05


class SlowStore:
    """A state store whose every save takes ``SAVE_SECONDS``, as a large state would."""

    def __init__(self) -> None:
        self.saved: list[int] = []

    async def save(self, topic: str, partition: int, pipeline: Any, next_offset: int) -> None:
        await asyncio.sleep(SAVE_SECONDS)
        self.saved.append(partition)


def _loop(interval: float) -> WorkerLoop:
    shipped = load_settings(DEFAULT_CONFIG_PATH)
    settings: Settings = msgspec.structs.replace(shipped, worker=msgspec.structs.replace(
        shipped.worker, state_save_interval_seconds=interval))
    metrics = PipelineMetrics.create(CollectorRegistry(), detectors=list(settings.detectors))
    loop = WorkerLoop(settings, RecordHandler(settings, metrics), metrics)
    loop.store = SlowStore()  # type: ignore[assignment]
    records, _ = spike_stream(days=5)
    for offset, raw in enumerate(records[:40]):
        for partition in (0, 1):
            loop.handler.handle(raw, key=None, topic="t", partition=partition, offset=offset)
    return loop


def test_the_configured_interval_holds_while_saves_are_cheap() -> None:
    loop = _loop(interval=60.0)
    asyncio.run(loop._save("t", 0))
    assert loop.save_interval() == 60.0


def test_slow_saves_stretch_the_interval_to_ten_times_what_they_took() -> None:
    loop = _loop(interval=0.1)
    assert loop.save_interval() == 0.1  # nothing saved yet
    asyncio.run(loop._save("t", 0))
    asyncio.run(loop._save("t", 1))
    assert loop.store.saved == [0, 1]  # type: ignore[union-attr]
    assert loop.save_interval() >= SAVE_COST_FACTOR * 2 * SAVE_SECONDS


def test_a_revoked_partition_no_longer_counts() -> None:
    loop = _loop(interval=0.1)
    asyncio.run(loop._save("t", 0))
    asyncio.run(loop._save("t", 1))
    stretched = loop.save_interval()

    class Revoked:
        topic, partition = loop.settings.topics.declarations, 1

    asyncio.run(loop.on_revoked([Revoked()]))  # type: ignore[list-item]
    assert loop.save_interval() < stretched


def test_an_interval_of_zero_still_saves_every_batch() -> None:
    loop = _loop(interval=0.0)
    asyncio.run(loop._save("t", 0))
    assert loop.save_interval() == 0.0



def _due_for_a_save(loop: WorkerLoop) -> None:
    """Both partitions closed a window since their last save."""
    for partition in (0, 1):
        loop.handler.pipelines[partition].windows_closed += 1


def test_one_partition_is_saved_at_a_time_the_one_saved_longest_ago_first() -> None:
    loop = _loop(interval=0.1)
    _due_for_a_save(loop)
    asyncio.run(loop._persist({0: "t", 1: "t"}))
    assert loop.store.saved == [0]  # type: ignore[union-attr]
    loop._next_save_at = 0.0  # the spacing after that save has passed
    asyncio.run(loop._persist({0: "t", 1: "t"}))
    assert loop.store.saved == [0, 1]  # type: ignore[union-attr]
    loop._saved_when[0] -= 3600.0  # partition 0 is now the more overdue
    loop._saved_when[1] -= 1800.0
    loop._next_save_at = 0.0
    _due_for_a_save(loop)
    asyncio.run(loop._persist({0: "t", 1: "t"}))
    assert loop.store.saved == [0, 1, 0]  # type: ignore[union-attr]


def test_the_next_save_waits_ten_times_as_long_as_the_last_one_took() -> None:
    loop = _loop(interval=0.1)
    _due_for_a_save(loop)
    asyncio.run(loop._persist({0: "t", 1: "t"}))
    took = loop._save_took[0]
    assert took >= SAVE_SECONDS
    asyncio.run(loop._persist({0: "t", 1: "t"}))
    assert loop.store.saved == [0], "partition 1 is due, but not so soon after a save"
    assert loop._next_save_at >= loop._saved_when[0] + SAVE_COST_FACTOR * took - 1e-3


def test_an_interval_of_zero_saves_every_partition_every_batch() -> None:
    loop = _loop(interval=0.0)
    _due_for_a_save(loop)
    asyncio.run(loop._persist({0: "t", 1: "t"}))
    asyncio.run(loop._persist({0: "t", 1: "t"}))
    assert sorted(loop.store.saved) == [0, 1]  # type: ignore[union-attr]
    _due_for_a_save(loop)
    asyncio.run(loop._persist({0: "t", 1: "t"}))
    assert sorted(loop.store.saved) == [0, 0, 1, 1]  # type: ignore[union-attr]
