"""A replay in several processes publishes what a replay in one process publishes.

Partitions are independent pipelines, so ``run_offline(..., jobs=N)`` hands them to
N processes and merges their output back into the single-process order. Compared
here byte for byte (encoded alerts and incidents, dead letters with their record
index, the accepted count), on a stream that raises alerts on several partitions,
carries bad records, duplicates and late ones, and with a live retune and analyst
feedback in force.
"""

from __future__ import annotations

import datetime as dt

import msgspec
import pytest

from evaluation.synth.generator import StreamConfig, SyntheticStream
from evaluation.synth.scenarios import scenario_by_name
from streams.config import DEFAULT_CONFIG_PATH, Settings, load_settings
from streams.feedback import FeedbackRecord, FeedbackTable
from streams.offline import OfflineResult, run_offline
from streams.replay_jobs import jobs_for
from streams.worker import RecordHandler

_ENCODE = msgspec.json.Encoder().encode


def _settings() -> Settings:
    settings = load_settings(DEFAULT_CONFIG_PATH)
    return msgspec.structs.replace(
        settings, alerts=msgspec.structs.replace(settings.alerts, scope="all"))


@pytest.fixture(scope="module")
def records() -> list[bytes]:
    """Three months of generated trade with a spike and a partition outage, then trouble:
    a malformed record, a duplicate, and a record from a window closed long ago."""
    config = StreamConfig(seed=5, start=dt.date(2022, 1, 10), days=66, daily_declarations=60.0)
    scenarios = [scenario_by_name("ic_spike_de_kg_ru", onset_day=50),
                 scenario_by_name("trap_data_gap_partition", onset_day=58, partitions=4)]
    stream = list(SyntheticStream(config, scenarios).records())
    middle = len(stream) // 2
    return (stream[:middle] + [b'{"schema_version": 1, "declaration_id": 7}', stream[middle - 1]]
            + stream[middle:] + [stream[10]])


def _published(result: OfflineResult) -> tuple[object, ...]:
    return ([_ENCODE(a) for a in result.alerts], [_ENCODE(i) for i in result.incidents],
            result.rejected, result.accepted)


def _clock() -> float:
    return 1.9e9


def test_several_processes_publish_what_one_process_publishes(records: list[bytes]) -> None:
    settings = _settings()
    one = run_offline(records, settings, now=_clock)
    three = run_offline(records, settings, now=_clock, jobs=3)

    assert len(one.alerts) >= 3 and one.incidents  # the comparison means something
    assert {"late_event", "duplicate_declaration"} <= {reason for _, reason, _ in one.rejected}
    assert len({a.series.key for a in one.alerts}) >= 2
    assert _published(three) == _published(one)


def test_a_retune_and_feedback_apply_in_each_process_as_in_one(records: list[bytes]) -> None:
    settings = _settings()
    first = run_offline(records, settings, now=_clock)
    marked = first.alerts[0]
    before = marked.window_start.timestamp() - 30 * 86_400.0  # covers all its later windows
    feedback = FeedbackTable([FeedbackRecord(
        alert_id=marked.alert_id, series_key=marked.series.key, detector=marked.detector,
        window_start=before, window_end=before + 86_400.0, verdict="false_positive")])
    stricter = msgspec.structs.replace(
        settings, config_version="stricter",
        alerts=msgspec.structs.replace(settings.alerts, min_declarations=5))
    retunes = {len(records) * 2 // 3: stricter}

    one = run_offline(records, settings, now=_clock, retunes=retunes, feedback=feedback)
    two = run_offline(records, settings, now=_clock, retunes=retunes, feedback=feedback, jobs=2)

    assert {a.config_version for a in one.alerts} >= {"stricter"}
    assert not [a for a in one.alerts
                if (a.series.key, a.detector) == (marked.series.key, marked.detector)]
    assert _published(two) == _published(one)


def test_a_failing_process_fails_the_replay_with_its_traceback(
        records: list[bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: RecordHandler, *args: object, **kwargs: object) -> list[object]:
        raise ValueError("pipeline bug")

    monkeypatch.setattr(RecordHandler, "flush_partition", broken)
    with pytest.raises(RuntimeError, match="(?s)replay process failed.*pipeline bug"):
        run_offline(records[:500], _settings(), now=_clock, jobs=2)


@pytest.mark.parametrize(("requested", "partitions", "expected"), [
    (3, 4, 3), (8, 4, 4), (1, 4, 1)])
def test_jobs_are_capped_at_one_process_per_partition(
        requested: int, partitions: int, expected: int) -> None:
    assert jobs_for(requested, partitions) == expected


def test_by_default_a_replay_uses_every_cpu_up_to_the_partitions() -> None:
    assert 1 <= jobs_for(0, 4) <= 4
    assert jobs_for(0, 1) == 1
