"""Analyst feedback on the real broker: a false-positive mark, made with ``tradewatch alerts
mark`` while a worker runs, suppresses the next alert of that detector on that series and
no other.

The stream is :func:`tests.factories.one_day_spikes_stream`: DE->KG chips spike on days 45
and 60, and each time the lane and its three rollups raise a spike alert. The worker
processes the first 52 days, the lane's day-45 spike alert is marked a false positive,
then the rest is produced: on day 60 the rollups alert and the lane does not. The
expected alerts are an offline replay with the same mark
(:func:`streams.offline.run_offline` with ``feedback``).
"""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from streams.events import decode_declaration
from streams.feedback import FeedbackTable, decode_feedback
from streams.harness import private_settings, read_topic, running_worker
from streams.offline import run_offline
from tests.factories import START, one_day_spikes_stream
from tests.integration.faults import read_alerts, shipped_config, wait_committed, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.analyst, pytest.mark.timeout(300)]

#: Long enough that no window idle-closes while the test marks the alert: the replay it
#: is compared with closes every window on the next record.
IDLE_SECONDS = 45
LANE = "hs6:DE>KG:854231"
SPLIT_DAY = 52
LAST_DAY = 65  # the last window stays open: the worker has no reason to close it


def _config() -> str:
    return re.sub(r"^idle_timeout_seconds = \d+", f"idle_timeout_seconds = {IDLE_SECONDS}",
                  shipped_config(), count=1, flags=re.M)


def _produce(settings, records: list[bytes]) -> None:  # type: ignore[no-untyped-def]
    from streams.produce import produce_records

    produce_records(records, bootstrap=settings.kafka, topic=settings.topics.declarations,
                    progress=False)


def _closed(alerts):  # type: ignore[no-untyped-def]
    """Alerts of the windows a record has closed (not the last, still open in the worker)."""
    last = START + dt.timedelta(days=LAST_DAY)
    return sorted((a.alert_id, a.detector, a.series.key, a.window_start.date().isoformat())
                  for a in alerts if a.window_start < last)


def test_a_false_positive_mark_suppresses_the_next_alert_on_that_series_and_no_other(
        kafka_bootstrap: str, tmp_path: Path) -> None:
    records = one_day_spikes_stream()
    split = next(i for i, raw in enumerate(records)
                 if decode_declaration(raw).declared_at >= START + dt.timedelta(days=SPLIT_DAY))
    settings, toml = private_settings(kafka_bootstrap, _config(), partitions=2)
    unmarked = run_offline(records, settings)
    lane_spikes = [a for a in unmarked.alerts if (a.detector, a.series.key) == ("spike", LANE)]
    assert len(lane_spikes) == 2, "the stream must make the lane alert twice"
    config = tmp_path / "worker.toml"
    config.write_text(toml)

    with running_worker(toml, settings, tmp_path / "worker") as worker:
        _produce(settings, records[:split])
        wait_committed(settings, [worker])
        first = [a for a in read_alerts(kafka_bootstrap, settings.topics.alerts)
                 if (a.detector, a.series.key) == ("spike", LANE)]
        assert [a.alert_id for a in first] == [lane_spikes[0].alert_id]
        marked = subprocess.run(
            [sys.executable, "-m", "streams.cli", "--config", str(config), "alerts", "mark",
             first[0].alert_id, "--false-positive", "--note", "seasonal restock", "--for", "30d"],
            capture_output=True, text=True, timeout=120)
        assert marked.returncode == 0, marked.stderr
        assert f"spike alerts on {LANE} are suppressed" in marked.stderr
        wait_for(lambda: worker.sample("tradewatch_feedback_marks",
                                       {"verdict": "false_positive"}) == 1,
                 "the worker to follow the mark", [worker], timeout=60)
        _produce(settings, records[split:])
        wait_committed(settings, [worker])
        suppressed = worker.sample("tradewatch_alerts_suppressed_total",
                                   {"reason": "feedback", "detector": "spike"})
        alerts = read_alerts(kafka_bootstrap, settings.topics.alerts)
        feedback = [decode_feedback(r.value)
                    for r in read_topic(kafka_bootstrap, settings.topics.feedback, idle=1.0)]

    assert [(f.alert_id, f.series_key, f.detector, f.verdict, f.note) for f in feedback] == [
        (first[0].alert_id, LANE, "spike", "false_positive", "seasonal restock")]
    assert feedback[0].until == first[0].window_end.timestamp() + 30 * 86400
    expected = run_offline(records, settings, feedback=FeedbackTable(feedback))
    assert _closed(alerts) == _closed(expected.alerts)
    # exactly the lane's second spike alert is gone; its rollups still alert that day
    gone = set(_closed(unmarked.alerts)) - set(_closed(alerts))
    assert gone == {(lane_spikes[1].alert_id, "spike", LANE,
                     lane_spikes[1].window_start.date().isoformat())}
    assert set(_closed(alerts)) <= set(_closed(unmarked.alerts))
    second_day = lane_spikes[1].window_start
    assert {a.series.key for a in alerts if a.window_start == second_day} == {
        a.series.key for a in unmarked.alerts if a.window_start == second_day} - {LANE}
    assert suppressed == 1


def test_marking_an_alert_that_is_not_on_the_topic_says_what_to_give(
        kafka_bootstrap: str, tmp_path: Path) -> None:
    settings, toml = private_settings(kafka_bootstrap, _config(), partitions=1)
    config = tmp_path / "worker.toml"
    config.write_text(toml)
    from streams.topics import ensure_topics, pipeline_topic_specs

    ensure_topics(kafka_bootstrap, pipeline_topic_specs(settings.topics))
    try:
        missing = subprocess.run(
            [sys.executable, "-m", "streams.cli", "--config", str(config), "alerts", "mark",
             "0" * 32, "--confirmed"], capture_output=True, text=True, timeout=120)
        assert missing.returncode == 2
        assert f"not on {settings.topics.alerts}; give --series, --detector and --window" in missing.stderr
        given = subprocess.run(
            [sys.executable, "-m", "streams.cli", "--config", str(config), "alerts", "mark",
             "0" * 32, "--confirmed", "--series", LANE, "--detector", "spike",
             "--window", "2024-02-15"], capture_output=True, text=True, timeout=120)
        assert given.returncode == 0, given.stderr
        (record,) = [msgspec.json.decode(r.value) for r in
                     read_topic(kafka_bootstrap, settings.topics.feedback, idle=1.0)]
        assert (record["verdict"], record["series_key"], record["window_start"]) == (
            "confirmed", LANE, dt.datetime(2024, 2, 15, tzinfo=dt.UTC).timestamp())
    finally:
        from streams.topics import delete_topics

        t = settings.topics
        delete_topics(kafka_bootstrap, [t.declarations, t.dlq, t.alerts, t.incidents, t.config,
                                        t.feedback])
