"""The analyst's offline run and the worker on the real broker raise the same alerts."""

from __future__ import annotations

import pytest

from streams.config import DEFAULT_CONFIG_PATH, load_settings
from evaluation.scorecard_kafka import run_through_kafka
from streams.offline import run_offline
from tests.factories import spike_stream

pytestmark = pytest.mark.integration


def _comparable(alerts):  # type: ignore[no-untyped-def]
    """Everything but emitted_at, which is wall-clock time."""
    return sorted((a.alert_id, a.detector, a.severity, a.score, a.series.key,
                   a.window_start, a.evidence.observed, tuple(a.evidence.declaration_ids))
                  for a in alerts)


def test_offline_and_kafka_modes_give_the_same_alerts(kafka_bootstrap: str) -> None:
    settings = load_settings(DEFAULT_CONFIG_PATH, env={})
    records, _ = spike_stream(days=80, spike_day=55)
    offline = run_offline(records, settings).alerts
    online = run_through_kafka(records, settings)
    assert offline, "the stream must raise alerts for the comparison to mean anything"
    assert _comparable(online) == _comparable(offline)
