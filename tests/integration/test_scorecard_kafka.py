"""The small scenario set end to end: generator -> real broker -> real worker -> scorecard.

The same labelled stream the offline scorecard uses goes through Kafka and a worker
process; the scorecard must meet the targets, and its alerts must be the offline
run's alerts.
"""

from __future__ import annotations

import pytest

from streams.config import DEFAULT_CONFIG_PATH, load_settings
from evaluation.scorecard import TARGETS, evaluate, format_table, labelled_stream

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def cards(kafka_bootstrap: str):  # type: ignore[no-untyped-def]
    settings = load_settings(DEFAULT_CONFIG_PATH, env={})
    return (evaluate(labelled_stream("small"), settings, mode="kafka"),
            evaluate(labelled_stream("small"), settings, mode="offline"))


def test_the_small_set_through_kafka_meets_the_targets(cards) -> None:  # type: ignore[no-untyped-def]
    kafka, _ = cards
    table = format_table(kafka)
    assert kafka.recall >= TARGETS["recall_min"], table
    assert kafka.precision is not None and kafka.precision >= TARGETS["precision_min"], table
    assert kafka.high_severity_alerts_on_traps <= TARGETS["high_severity_alerts_on_traps_max"], table
    assert kafka.median_spike_delay_windows is not None
    assert kafka.median_spike_delay_windows <= TARGETS["median_spike_delay_windows_max"], table


def test_kafka_and_offline_scorecards_agree(cards) -> None:  # type: ignore[no-untyped-def]
    kafka, offline = cards
    assert [(r.scenario, r.detected, r.alerts, r.max_severity) for r in kafka.rows] == [
        (r.scenario, r.detected, r.alerts, r.max_severity) for r in offline.rows]
    assert kafka.precision == offline.precision and kafka.recall == offline.recall
