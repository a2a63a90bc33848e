"""`alerts tail` / `incidents tail` for a person: ranked, filtered, one incident per line."""

from __future__ import annotations

import io

import msgspec
import pytest

from streams.cli import build_parser
from streams.incidents import build_incident
from streams.tail import AlertFilter, _print_all, format_alert, format_incident, ranked
from tests.unit.streams.test_incidents import DAY, W, alert, kyrgyz_tier1


def test_sort_by_surprise_or_excess_puts_the_largest_first() -> None:
    alerts = kyrgyz_tier1()
    by_surprise = ranked(alerts, "surprise")
    assert [a.surprise for a in by_surprise] == sorted((a.surprise for a in alerts), reverse=True)
    by_excess = ranked(alerts, "excess")
    assert [a.excess_eur for a in by_excess] == sorted((a.excess_eur for a in alerts), reverse=True)
    assert ranked(alerts, "time") == alerts


def test_a_ranked_incident_list_keeps_the_latest_revision() -> None:
    rev1 = build_incident(kyrgyz_tier1()[:1], revision=1, emitted_at=0.0)
    rev2 = build_incident(kyrgyz_tier1(), revision=2, emitted_at=1.0)
    other = build_incident([alert("volume", "tier:DE>KZ:T1", z=30.0)], revision=1, emitted_at=0.0)
    assert ranked([rev1, other, rev2], "surprise") == [other, rev2]


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        (AlertFilter(), 7),
        (AlertFilter(min_severity="critical"), 1),
        (AlertFilter(detectors=frozenset({"spike"})), 2),
        (AlertFilter(destinations=frozenset({"KZ"})), 1),
        # a pass-through alert (KG>RU) belongs to Kyrgyzstan's incident
        (AlertFilter(destinations=frozenset({"KG"}), detectors=frozenset({"passthrough"})), 1),
        (AlertFilter(destinations=frozenset({"RU"})), 1),
    ],
)
def test_alert_filters(where: AlertFilter, expected: int) -> None:
    alerts = [*kyrgyz_tier1(), alert("volume", "tier:DE>KZ:T1")]
    assert sum(where.accepts(a) for a in alerts) == expected


def test_an_unknown_min_severity_is_refused() -> None:
    with pytest.raises(ValueError, match="valid"):
        AlertFilter(min_severity="urgent")


def test_incident_filters() -> None:
    incident = build_incident(kyrgyz_tier1(), revision=1, emitted_at=0.0)
    assert AlertFilter(destinations=frozenset({"KG"})).accepts_incident(incident)
    assert not AlertFilter(destinations=frozenset({"KZ"})).accepts_incident(incident)
    assert AlertFilter(detectors=frozenset({"passthrough"})).accepts_incident(incident)
    assert not AlertFilter(detectors=frozenset({"novelty"})).accepts_incident(incident)


def test_ranked_printing_shows_largest_first_and_undecodable_messages_as_is() -> None:
    a = alert("volume", "tier:DE>KG:T1", z=5.0)
    b = alert("spike", "hs6:DE>KG:854231", z=20.0)
    messages = [(msgspec.json.encode(a), a), (msgspec.json.encode(b), b)]
    out = io.StringIO()
    shown = _print_all(iter(messages), AlertFilter().accepts, format_alert, sort="surprise",
                       as_json=False, out=out)
    lines = out.getvalue().splitlines()
    assert shown == 2 and "spike" in lines[0] and "volume" in lines[2]
    out = io.StringIO()
    _print_all(iter([(b"not json", None), *messages]), AlertFilter().accepts, format_alert,
               sort="time", as_json=False, out=out)
    assert out.getvalue().splitlines()[0] == "not json"


def test_one_line_per_incident_with_everything_a_person_reads_first() -> None:
    line = format_incident(build_incident(kyrgyz_tier1(), revision=1, emitted_at=0.0))
    assert "\n" not in line
    for part in ("2022-01-08", "KG", "T1", "CRIT", "surprise", "excess 500.0k EUR", "6 alerts",
                 "passthrough, spike, volume", "DE>KG 86%"):
        assert part in line, part


def test_cli_flags() -> None:
    args = build_parser().parse_args(
        ["alerts", "tail", "--sort", "surprise", "--min-severity", "high", "--detector", "volume",
         "--detector", "spike", "--destination", "kg"])
    assert (args.sort, args.min_severity, args.detector, args.destination, args.incidents) == (
        "surprise", "high", ["volume", "spike"], ["kg"], False)
    assert build_parser().parse_args(["alerts", "tail", "--incidents"]).incidents
    incidents = build_parser().parse_args(["incidents", "tail", "--sort", "excess"])
    assert incidents.incidents and incidents.sort == "excess"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["alerts", "tail", "--sort", "score"])


def test_windows_are_shown_in_utc_dates() -> None:
    a = alert("volume", "tier:DE>KG:T1", start=W + DAY)
    assert "2022-01-09" in format_alert(a)
