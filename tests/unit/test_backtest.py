"""The backtest: the diff on hand-made alerts, then two shipped configs over the small set."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from evaluation.backtest import (
    SCORECARD_FIGURES,
    BacktestInput,
    diff_alerts,
    diff_incidents,
    file_input,
    format_backtest,
    run_backtest,
    scenario_set_input,
)
from evaluation.scorecard import RecordsWithTruth
from streams.alerts import alert_id, incident_id
from streams.config import DEFAULT_CONFIG_PATH, load_settings
from streams.events import AlertEvidence, AlertSeries, IncidentMember, TradeAlert, TradeIncident
from tests.factories import spike_stream

DAY = 86_400.0
STRICT = Path(DEFAULT_CONFIG_PATH).parent / "examples" / "strict.toml"
#: The documented top-level keys of the JSON (evaluation/backtest.py's docstring).
JSON_KEYS = {"input", "baseline", "candidate", "match", "alerts", "incidents", "scorecard"}
DIFF_KEYS = {"counts", "added", "removed", "severity_changed"}
COUNT_KEYS = {"added", "removed", "severity_changed", "unchanged"}
ALERT_KEYS = {"alert_id", "detector", "series_key", "window_start", "severity_before",
              "severity_after", "surprise", "score", "label", "why"}
INCIDENT_KEYS = {"incident_id", "destination_country", "transit_country", "goods_family",
                 "window_start", "severity_before", "severity_after", "surprise", "detectors",
                 "members"}
SIDE_KEYS = {"config", "config_version", "alerts", "incidents", "rejected", "seconds"}


def at(day: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(day * DAY, tz=dt.UTC)


def alert(key: str, day: int, severity: str = "high", detector: str = "volume",
          surprise: float = 10.0) -> TradeAlert:
    level, route, product = key.split(":")
    origin, dest = route.split(">")
    return TradeAlert(
        alert_id=alert_id(detector, key, day * DAY), detector=detector,
        severity=severity,  # type: ignore[arg-type]
        score=0.999, threshold=0.99, surprise=surprise,
        series=AlertSeries(key=key, level=level, origin_country=origin, destination_country=dest,
                           transit_country="none", product_code=product, chpl_tier="1"),
        window_start=at(day), window_end=at(day + 1),
        evidence=AlertEvidence(observed=1e5, expected=1e3, expected_low=0.0, expected_high=1e4,
                               unit="EUR", declaration_count=5, declaration_ids=[]),
        summary="test", emitted_at=at(day + 1),
    )


def incident(day: int, destination: str, severity: str = "high", surprise: float = 10.0,
             revision: int = 1) -> TradeIncident:
    return TradeIncident(
        incident_id=incident_id(day * DAY, destination, "T1"), revision=revision,
        window_start=at(day), window_end=at(day + 1), destination_country=destination,
        transit_country="none", goods_family="T1", chpl_tier="1",
        severity=severity,  # type: ignore[arg-type]
        surprise=surprise, excess_eur=0.0, detectors=["volume"],
        members=[IncidentMember("a", "volume", "hs6:DE>KG:854231", "hs6",
                                severity, 0.99, surprise, 0.0)],  # type: ignore[arg-type]
        summary="test", emitted_at=at(day + 1),
    )


# --------------------------------------------------------------------------------------
# The diff: pure
# --------------------------------------------------------------------------------------


def test_identical_runs_give_an_empty_diff() -> None:
    run = [alert("hs6:DE>KG:854231", 10), alert("tier:DE>KG:T1", 10, "critical")]
    diff = diff_alerts(run, list(run))
    assert diff.empty
    assert diff.counts() == {"added": 0, "removed": 0, "severity_changed": 0, "unchanged": 2}


def test_added_removed_and_regraded_alerts_are_told_apart() -> None:
    kept = alert("hs6:DE>KG:854231", 10)
    gone = alert("hs6:PL>KZ:851762", 12, surprise=3.0)
    regraded_before = alert("tier:DE>KG:T1", 10, "high")
    regraded_after = alert("tier:DE>KG:T1", 10, "critical", surprise=12.0)
    new = alert("hs6:IT>AM:848210", 14)
    diff = diff_alerts([kept, gone, regraded_before], [kept, regraded_after, new])
    assert diff.added == [new]
    assert diff.removed == [gone]
    assert diff.severity_changed == [(regraded_before, regraded_after)]
    assert diff.unchanged == 1
    assert not diff.empty


def test_the_same_series_in_another_window_or_by_another_detector_is_another_alert() -> None:
    before = [alert("hs6:DE>KG:854231", 10)]
    after = [alert("hs6:DE>KG:854231", 11), alert("hs6:DE>KG:854231", 10, detector="spike")]
    diff = diff_alerts(before, after)
    assert (len(diff.added), len(diff.removed), diff.unchanged) == (2, 1, 0)


def test_changes_are_ranked_by_surprise_largest_first() -> None:
    after = [alert(f"hs6:DE>KG:85423{i}", 10, surprise=s) for i, s in enumerate((2.0, 40.0, 7.5))]
    assert [a.surprise for a in diff_alerts([], after).added] == [40.0, 7.5, 2.0]


def test_a_repeated_id_counts_once_at_its_highest_severity() -> None:
    twice = [alert("hs6:DE>KG:854231", 10, "medium"), alert("hs6:DE>KG:854231", 10, "high")]
    diff = diff_alerts(twice, [alert("hs6:DE>KG:854231", 10, "high")])
    assert diff.empty and diff.unchanged == 1


def test_incidents_match_by_incident_id() -> None:
    before = [incident(10, "KG"), incident(11, "KZ")]
    after = [incident(10, "KG", "critical", revision=2), incident(12, "AM")]
    diff = diff_incidents(before, after)
    assert [i.destination_country for i in diff.added] == ["AM"]
    assert [i.destination_country for i in diff.removed] == ["KZ"]
    assert [(b.severity, a.severity) for b, a in diff.severity_changed] == [("high", "critical")]


# --------------------------------------------------------------------------------------
# Running: a small file, then the small scenario set with two shipped configs
# --------------------------------------------------------------------------------------


def test_a_file_backtest_through_the_cli_writes_the_documented_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from streams.cli import main

    records, _ = spike_stream(days=70, spike_day=50)
    data = tmp_path / "declarations.jsonl"
    data.write_bytes(b"\n".join(records) + b"\n")
    out = tmp_path / "diff.json"
    assert main(["backtest", str(data), "--config", str(STRICT), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"backtest over {data}: {len(records):,} declarations")
    report = json.loads(out.read_text())
    assert set(report) == JSON_KEYS
    assert report["scorecard"] is None  # a file has no labels
    assert report["input"] == {"name": str(data), "declarations": len(records), "labelled": False}
    assert report["candidate"]["config_version"] == "example-strict"


def test_an_input_that_changes_between_the_passes_is_refused() -> None:
    records, _ = spike_stream(days=20)
    passes = iter([records, records[:-1]])
    source = BacktestInput("shrinking", lambda: RecordsWithTruth("x", next(passes), []), False)
    settings = load_settings(DEFAULT_CONFIG_PATH, env={})
    with pytest.raises(RuntimeError, match="input changed"):
        run_backtest(source, ("a", settings), ("b", settings))


def _spike_input() -> BacktestInput:
    records, _ = spike_stream(days=70, spike_day=50)
    return BacktestInput("spike", lambda: RecordsWithTruth("spike", iter(records), []), False)


def _with(settings, **changes):  # type: ignore[no-untyped-def]
    import msgspec

    sections = {name: msgspec.structs.replace(getattr(settings, name), **fields)
                for name, fields in changes.items()}
    return msgspec.structs.replace(settings, **sections)


def test_a_removed_alert_says_which_rule_of_the_candidate_turned_it_down() -> None:
    import msgspec

    baseline = load_settings(DEFAULT_CONFIG_PATH, env={})
    much_evidence = _with(baseline, alerts={"min_declarations": 500,
                                            "persistence_min_declarations": 500})
    result = run_backtest(_spike_input(), ("shipped", baseline), ("evidence", much_evidence))
    removed = result.alerts.removed
    assert removed and not result.alerts.added
    assert {result.why("removed", a) for a in removed} == {"too_few_declarations"}
    assert "too_few_declarations" in format_backtest(result)

    detectors = {n: (msgspec.structs.replace(s, enabled=False) if n == "volume" else s)
                 for n, s in baseline.detectors.items()}
    no_volume = msgspec.structs.replace(baseline, detectors=detectors)
    result = run_backtest(_spike_input(), ("shipped", baseline), ("no volume", no_volume))
    assert {a.detector for a in result.alerts.removed} == {"volume"}
    assert {result.why("removed", a) for a in result.alerts.removed} == {"detector_off"}


def test_an_added_alert_says_why_the_baseline_did_not_publish_it() -> None:
    shipped = load_settings(DEFAULT_CONFIG_PATH, env={})
    immaterial = _with(shipped, alerts={"min_excess_eur_chpl": 1e12})
    result = run_backtest(_spike_input(), ("floor", immaterial), ("shipped", shipped))
    added = [a for a in result.alerts.added if a.series.level != "passthrough"]
    assert added
    assert {result.why("added", a) for a in added} <= {"immaterial", "below_threshold"}
    assert "immaterial" in {result.why("added", a) for a in added}
    assert all(result.why("severity", a) is None for a, _ in result.alerts.severity_changed)


@pytest.fixture(scope="module")
def small_backtest():  # type: ignore[no-untyped-def]
    """The shipped config against deploy/examples/strict.toml on the small scenario set."""
    baseline = load_settings(DEFAULT_CONFIG_PATH, env={})
    candidate = load_settings(STRICT, env={})
    source = scenario_set_input("small", partitions=baseline.topics.partitions)
    return run_backtest(source, (str(DEFAULT_CONFIG_PATH), baseline), (str(STRICT), candidate))


# the fixture runs the small set twice (~1 min alone, several on a busy 2-core machine)
slow = pytest.mark.timeout(1200)


@slow
def test_small_set_diff_counts_match_the_two_runs_alert_sets(small_backtest) -> None:  # type: ignore[no-untyped-def]
    before = {a.alert_id: a for a in small_backtest.baseline.result.alerts}
    after = {a.alert_id: a for a in small_backtest.candidate.result.alerts}
    # alert ids are unique within a run, so the sets below are the runs' alerts
    assert len(before) == len(small_backtest.baseline.result.alerts)
    assert len(after) == len(small_backtest.candidate.result.alerts)
    both = before.keys() & after.keys()
    regraded = {k for k in both if before[k].severity != after[k].severity}
    assert small_backtest.alerts.counts() == {
        "added": len(after.keys() - before.keys()),
        "removed": len(before.keys() - after.keys()),
        "severity_changed": len(regraded),
        "unchanged": len(both) - len(regraded),
    }
    assert {a.alert_id for a in small_backtest.alerts.added} == after.keys() - before.keys()
    assert {a.alert_id for a in small_backtest.alerts.removed} == before.keys() - after.keys()
    assert not small_backtest.alerts.empty, "the example config changes nothing on the small set"


@slow
def test_small_set_incident_diff_matches_the_latest_revisions(small_backtest) -> None:  # type: ignore[no-untyped-def]
    before = {i.incident_id: i for i in small_backtest.baseline.result.latest_incidents()}
    after = {i.incident_id: i for i in small_backtest.candidate.result.latest_incidents()}
    both = before.keys() & after.keys()
    regraded = sum(1 for k in both if before[k].severity != after[k].severity)
    assert small_backtest.incidents.counts() == {
        "added": len(after.keys() - before.keys()),
        "removed": len(before.keys() - after.keys()),
        "severity_changed": regraded,
        "unchanged": len(both) - regraded,
    }


@slow
def test_small_set_json_has_the_documented_keys_and_the_scorecard_delta(small_backtest) -> None:  # type: ignore[no-untyped-def]
    report = json.loads(json.dumps(small_backtest.to_dict()))
    assert set(report) == JSON_KEYS
    assert set(report["baseline"]) == set(report["candidate"]) == SIDE_KEYS
    assert report["input"]["labelled"] is True
    for what, item_keys in (("alerts", ALERT_KEYS), ("incidents", INCIDENT_KEYS)):
        section = report[what]
        assert set(section) == DIFF_KEYS
        assert set(section["counts"]) == COUNT_KEYS
        for change in ("added", "removed", "severity_changed"):
            assert len(section[change]) == section["counts"][change]
            assert all(set(item) == item_keys for item in section[change])
    for item in report["alerts"]["removed"]:
        assert item["severity_after"] is None and item["label"] is not None
    card = report["scorecard"]
    assert set(card) == {"baseline", "candidate", "delta"}
    for figure in SCORECARD_FIGURES:
        b, c, d = card["baseline"][figure], card["candidate"][figure], card["delta"][figure]
        assert d is None if None in (b, c) else d == pytest.approx(c - b)
    assert card["baseline"]["alerts"] == report["baseline"]["alerts"]
    assert card["candidate"]["alerts"] == report["candidate"]["alerts"]


@slow
def test_small_set_table_lists_every_change_with_before_and_after(small_backtest) -> None:  # type: ignore[no-untyped-def]
    text = format_backtest(small_backtest, limit=None)
    c = small_backtest.alerts.counts()
    assert (f"+{c['added']} added, -{c['removed']} removed, "
            f"{c['severity_changed']} severity changed") in text
    for a in small_backtest.alerts.removed:
        assert a.series.key in text
    assert "recall" in text and "false alerts per 100k benign" in text


def test_file_input_counts_the_records_for_the_progress_line(tmp_path: Path) -> None:
    records, _ = spike_stream(days=5)
    data = tmp_path / "d.jsonl"
    data.write_bytes(b"\n".join(records) + b"\n\n")
    source = file_input(data)
    assert source.total == len(records) and not source.labelled
    assert list(source.open().records) == records
