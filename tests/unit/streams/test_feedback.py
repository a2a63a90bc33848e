"""Analyst feedback without a broker: what a mark silences, what it keeps out of learning, and
what a state revert swaps.

The stream is :func:`tests.factories.one_day_spikes_stream`: DE->KG chips spike on days 45
and 60 (2024-02-15 and 2024-03-01); under the shipped config the lane and its three rollups
raise a spike alert each time.
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from evaluation.feedback_effect import effect, simulated_marks
from streams.analyst_cli import compare_published, format_evidence, mark_record
from streams.config import DEFAULT_CONFIG_PATH, ConfigError, Settings, load_settings_text
from streams.events import TradeAlert
from streams.feedback import (
    FeedbackRecord,
    FeedbackTable,
    encode_feedback,
    make_record,
    read_feedback_file,
)
from streams.metrics import PipelineMetrics
from streams.offline import run_offline
from streams.pipeline import PartitionPipeline
from streams.snapshots import SnapshotError, check_name, revert_models
from streams.state_codec import encode_object
from streams.worker import RecordHandler
from tests.factories import one_day_spikes_stream

DAY = 86_400.0
LANE = "hs6:DE>KG:854231"


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings_text(DEFAULT_CONFIG_PATH.read_text(), env={})


@pytest.fixture(scope="module")
def records() -> list[bytes]:
    return one_day_spikes_stream()


@pytest.fixture(scope="module")
def unmarked(settings: Settings, records: list[bytes]) -> list[TradeAlert]:
    return run_offline(records, settings).alerts


def _mark(alert: TradeAlert, verdict: str, suppress_for: str | None = "30d") -> FeedbackRecord:
    return make_record(alert_id=alert.alert_id, series_key=alert.series.key,
                       detector=alert.detector, window_start=alert.window_start.timestamp(),
                       window_end=alert.window_end.timestamp(), verdict=verdict,  # type: ignore[arg-type]
                       suppress_for=suppress_for, marked_by="test", marked_at=0.0)


def _fp(day: float, until: float | None, detector: str = "spike", key: str = LANE,
        alert_id: str = "a1") -> FeedbackRecord:
    return FeedbackRecord(alert_id=alert_id, series_key=key, detector=detector,
                          window_start=day * DAY, window_end=(day + 1) * DAY,
                          verdict="false_positive", until=until)


# -- the table ---------------------------------------------------------------------------


def test_a_false_positive_covers_the_windows_after_the_marked_one_until_its_end() -> None:
    table = FeedbackTable([_fp(10, 20 * DAY)])
    covered = [d for d in range(5, 25) if table.suppresses("spike", LANE, d * DAY)]
    assert covered == list(range(11, 20))


def test_a_false_positive_silences_its_detector_on_its_series_only() -> None:
    table = FeedbackTable([_fp(10, None)])
    assert table.suppresses("spike", LANE, 500 * DAY), "no end: never expires"
    assert not table.suppresses("volume", LANE, 11 * DAY)
    assert not table.suppresses("spike", "tier:DE>KG:T1", 11 * DAY)


def test_a_new_mark_of_the_same_alert_replaces_the_old_and_a_tombstone_takes_it_back() -> None:
    table = FeedbackTable([_fp(10, 40 * DAY)])
    table.add(_fp(10, 15 * DAY))
    assert len(table) == 1 and not table.suppresses("spike", LANE, 20 * DAY)
    table.add(FeedbackRecord(alert_id="a1", series_key=LANE, detector="spike",
                             window_start=10 * DAY, window_end=11 * DAY, verdict="confirmed"))
    assert not table.suppresses("spike", LANE, 12 * DAY)
    assert table.unlearned(10 * DAY) == {LANE}
    table.remove("a1")
    assert len(table) == 0 and table.unlearned(10 * DAY) == frozenset()


def test_two_confirmed_marks_on_one_window_keep_it_unlearned_until_both_are_taken_back() -> None:
    marks = [FeedbackRecord(alert_id=i, series_key=key, detector="spike", window_start=10 * DAY,
                            window_end=11 * DAY, verdict="confirmed")
             for i, key in (("a", LANE), ("b", "tier:DE>KG:T1"))]
    table = FeedbackTable(marks)
    assert table.unlearned(10 * DAY) == {LANE, "tier:DE>KG:T1"}
    table.remove("a")
    assert table.unlearned(10 * DAY) == {"tier:DE>KG:T1"}


def test_expired_false_positives_are_no_longer_active() -> None:
    table = FeedbackTable([_fp(10, 20 * DAY), _fp(10, None, alert_id="a2", detector="volume")])
    assert {m.alert_id for m in table.active(19 * DAY)} == {"a1", "a2"}
    assert {m.alert_id for m in table.active(20 * DAY)} == {"a2"}


def test_a_feedback_file_is_json_lines_and_a_bad_line_is_named(tmp_path: Path) -> None:
    good = tmp_path / "marks.jsonl"
    good.write_bytes(encode_feedback(_fp(10, None)) + b"\n\n" + encode_feedback(
        _fp(11, None, alert_id="a2")) + b"\n")
    assert len(read_feedback_file(good)) == 2
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(encode_feedback(_fp(10, None)) + b'\n{"alert_id": "x"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: not a feedback record"):
        read_feedback_file(bad)


# -- in the pipeline ---------------------------------------------------------------------


def test_a_false_positive_suppresses_the_next_alert_of_that_detector_and_series_and_counts_it(
        settings: Settings, records: list[bytes], unmarked: list[TradeAlert]) -> None:
    first, second = [a for a in unmarked if (a.detector, a.series.key) == ("spike", LANE)]
    registry = CollectorRegistry()
    metrics = PipelineMetrics.create(registry, detectors=list(settings.detectors))
    marked = run_offline(records, settings, metrics,
                         feedback=FeedbackTable([_mark(first, "false_positive")])).alerts
    assert {a.alert_id for a in unmarked} - {a.alert_id for a in marked} == {second.alert_id}
    assert {a.alert_id for a in marked} < {a.alert_id for a in unmarked}
    assert registry.get_sample_value("tradewatch_alerts_suppressed_total",
                                     {"detector": "spike", "reason": "feedback"}) == 1


def test_a_suppression_ends_at_its_until(settings: Settings, records: list[bytes],
                                         unmarked: list[TradeAlert]) -> None:
    first, second = [a for a in unmarked if (a.detector, a.series.key) == ("spike", LANE)]
    short = run_offline(records, settings,
                        feedback=FeedbackTable([_mark(first, "false_positive", "7d")])).alerts
    assert second.window_start - first.window_end > dt.timedelta(days=7)
    assert {a.alert_id for a in short} == {a.alert_id for a in unmarked}


def test_a_confirmed_anomaly_is_scored_but_not_learned(
        settings: Settings, records: list[bytes], unmarked: list[TradeAlert]) -> None:
    first, second = [a for a in unmarked if (a.detector, a.series.key) == ("spike", LANE)]
    confirmed = run_offline(records, settings,
                            feedback=FeedbackTable([_mark(first, "confirmed")])).alerts
    by_id = {a.alert_id: a for a in confirmed}
    # the first spike is alerted as before; the lane's detectors never learned it, so the
    # second surprises them more; the rollups learned both and are unchanged
    assert by_id[first.alert_id].score == first.score
    assert by_id[second.alert_id].surprise > second.surprise
    for a in unmarked:
        if a.series.key != LANE:
            assert (by_id[a.alert_id].score, by_id[a.alert_id].surprise) == (a.score, a.surprise)


def test_every_pipeline_of_a_handler_follows_its_table_restored_ones_too(settings: Settings) -> None:
    handler = RecordHandler(settings, PipelineMetrics.disabled())
    assert handler.pipeline(0).feedback is handler.feedback
    restored = PartitionPipeline(settings, partition=1)
    handler.restore("t", 1, restored, next_offset=5)
    assert restored.feedback is handler.feedback


# -- revert ------------------------------------------------------------------------------


def test_a_revert_swaps_the_models_and_keeps_the_place_in_the_stream(
        settings: Settings, records: list[bytes]) -> None:
    early, late = PartitionPipeline(settings), PartitionPipeline(settings)
    from streams.validate import ValidationLimits, validate_declaration

    limits = ValidationLimits.from_settings(settings.validation)
    for i, raw in enumerate(records[:300]):
        d = validate_declaration(raw, now_ts=2e9, limits=limits)
        late.process(d)
        if i < 150:
            early.process(d)
    windows, seen = encode_object(late.windows), encode_object(late.seen)
    assert late.scoring.state_version() == f"cold+{late.scoring._windows_seen}"  # noqa: SLF001
    revert_models(late, early, "s1")
    assert late.scoring is early.scoring
    assert (encode_object(late.windows), encode_object(late.seen)) == (windows, seen)
    # alerts scored from now on name the snapshot their models came from
    assert late.scoring.state_version() == f"snapshot:s1+{early.scoring._windows_seen}"  # noqa: SLF001


@pytest.mark.parametrize("name", ["a/b", "", "-x", "x" * 101, "a b"])
def test_a_snapshot_name_is_a_plain_word(name: str) -> None:
    with pytest.raises(SnapshotError):
        check_name(name)


# -- the CLI's pure parts ----------------------------------------------------------------


def _mark_args(**kw: object) -> argparse.Namespace:
    base: dict[str, object] = dict(alert_id="f" * 32, verdict="false_positive", note="",
                                   suppress_for="30d", series=None, detector=[], window=None)
    return argparse.Namespace(**(base | kw))


def test_a_mark_without_the_alert_needs_series_detector_and_window(settings: Settings) -> None:
    with pytest.raises(ConfigError, match="give --series, --detector and --window"):
        mark_record(settings, None, _mark_args(series=LANE))
    with pytest.raises(ConfigError, match="no detector named 'nope'"):
        mark_record(settings, None, _mark_args(series=LANE, detector=["nope"], window="2024-02-15"))
    record = mark_record(settings, None, _mark_args(series=LANE, detector=["spike"],
                                                    window="2024-02-15"))
    start = dt.datetime(2024, 2, 15, tzinfo=dt.UTC).timestamp()
    assert (record.window_start, record.window_end, record.until) == (
        start, start + DAY, start + DAY + 30 * DAY)


def test_a_mark_of_a_found_alert_takes_its_series_detector_and_window(
        settings: Settings, unmarked: list[TradeAlert]) -> None:
    alert = unmarked[0]
    record = mark_record(settings, alert, _mark_args(alert_id=alert.alert_id, verdict="confirmed",
                                                     note="case 17"))
    assert (record.series_key, record.detector, record.window_start, record.until, record.note) == (
        alert.series.key, alert.detector, alert.window_start.timestamp(), None, "case 17")


def test_explain_prints_the_evidence_an_analyst_checks(unmarked: list[TradeAlert]) -> None:
    alert = next(a for a in unmarked if a.series.level == "tier")
    text = format_evidence(alert, alert.alert_id[:10])
    assert f"{alert.alert_id}  (matches the given id {alert.alert_id[:10]})" in text
    for fact in (alert.series.key, f"{alert.evidence.observed:,.2f} EUR",
                 f"{alert.evidence.expected_high:,.2f}", str(alert.surprise),
                 f"{alert.excess_eur:,.2f} EUR", f"{alert.config_version}@{alert.config_hash}",
                 alert.evidence.declaration_ids[0], f"lane {LANE}"):
        assert fact in text, fact
    assert "DIFFERS from the given id" in format_evidence(alert, "0" * 32)


def test_simulated_marks_cover_the_alerts_before_the_cut_and_their_effect_is_measured_after(
        unmarked: list[TradeAlert]) -> None:
    labels = ["fp" if a.window_start.day == 15 else "tp" for a in unmarked]
    cut = dt.datetime(2024, 2, 20, tzinfo=dt.UTC).timestamp()
    marks = simulated_marks(unmarked, labels, until_ts=cut)
    assert len(marks) == 4 and {m.verdict for m in marks} == {"false_positive"}

    class Card:  # the few scorecard fields effect() reads
        def __init__(self, alerts: list[TradeAlert], labels: list[str]) -> None:
            self.alerts, self.labels = alerts, labels
            self.precision = self.recall = None
            self.false_alerts_per_100k_benign = 0.0
            self.counts = {"total": len(alerts)}

    after = [a for a in unmarked if a.window_start.day != 1]  # as if March 1st were suppressed
    result = effect(Card(unmarked, labels), Card(after, ["fp"] * 4), marks)
    assert result["before"]["after_marks"]["counts"] == {"tp": 4}
    assert result["after"]["after_marks"]["counts"] == {}


def test_explain_says_whether_the_published_alert_carries_the_replayed_evidence(
        unmarked: list[TradeAlert]) -> None:
    import msgspec

    alert = unmarked[0]
    assert compare_published(alert, alert) == \
        "published: the same evidence (score, surprise, config hash)"
    reverted = msgspec.structs.replace(alert, surprise=alert.surprise + 7)
    assert compare_published(alert, reverted).startswith(
        f"published: DIFFERS, surprise {alert.surprise + 7} vs replayed {alert.surprise}")
    assert "not on the alerts topic" in compare_published(alert, None)
    after_revert = msgspec.structs.replace(reverted, state_version="snapshot:before-spike+40")
    assert compare_published(alert, after_revert).endswith(
        "(scored by the models of snapshot before-spike (snapshot:before-spike+40), which a "
        "replay from the start does not have)")
