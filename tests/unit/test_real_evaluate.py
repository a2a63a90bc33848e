"""`evaluate --background real`: monthly figures, provisional incidents and the top-3 share."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path

from evaluation.real_evaluate import INCIDENT_GROUPING, incident_key, real_report
from evaluation.scorecard import main, score
from streams.events import AlertEvidence, AlertSeries, TradeAlert
from evaluation.synth.scenarios import GroundTruth


def alert(key: str, day: dt.date, score_: float = 1.0, severity: str = "medium",
          detector: str = "volume", ids: list[str] | None = None) -> TradeAlert:
    level, route, product = key.split(":")
    origin, destination = route.split(">")
    hub = destination if destination in ("KG", "AM", "KZ", "UZ", "GE") else (
        origin if origin in ("KG", "AM", "KZ", "UZ", "GE") else "none")
    w = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    return TradeAlert(
        alert_id=f"{key}{day}{detector}", detector=detector, severity=severity, score=score_,
        threshold=0.9,
        series=AlertSeries(key=key, level=level, origin_country=origin,
                           destination_country=destination, transit_country=hub,
                           product_code=product, chpl_tier="none"),
        window_start=w, window_end=w + dt.timedelta(days=1),
        evidence=AlertEvidence(observed=1.0, expected=0.0, expected_low=0.0, expected_high=0.5,
                               unit="EUR", declaration_count=3, declaration_ids=ids or []),
        summary="", emitted_at=w,
    )


def truth(name: str, keys: set[str], onset: dt.date, expect: bool = True) -> GroundTruth:
    start = dt.datetime(onset.year, onset.month, onset.day, tzinfo=dt.UTC).timestamp()
    return GroundTruth(scenario=name, kind="TransitSurge", description="", expect_alert=expect,
                       series=frozenset(keys), onset=start, end=start + 30 * 86_400.0,
                       max_severity_allowed=None if expect else "low")


def test_a_hub_inflow_and_its_re_export_leg_are_one_incident():
    day = dt.date(2021, 4, 6)
    a = alert("hs6:DE>KG:854231", day)
    b = alert("hs6:KG>RU:854231", day, detector="changepoint")
    c = alert("passthrough:KG>RU:854231", day, detector="passthrough")
    d = alert("hs6:DE>RU:854231", day)  # a direct flow: its own incident
    assert incident_key(a) == incident_key(b) == incident_key(c) != incident_key(d)


def test_monthly_figures_and_a_pessimistic_top3_rank():
    day = dt.date(2021, 4, 6)
    noise = [alert(f"hs6:DE>RU:{code}", day) for code in ("330300", "610910", "847989")]
    caught = alert("hs6:DE>KG:854231", day)
    quiet_month = alert("hs6:FR>KZ:330300", dt.date(2021, 5, 3), severity="high")
    alerts = [*noise, caught, quiet_month]
    truths = [truth("kg", {"hs6:DE>KG:854231"}, dt.date(2021, 4, 1)),
              truth("trap", {"hs6:FR>KZ:330300"}, dt.date(2021, 5, 1), expect=False)]
    card = score(alerts, truths, declarations=1000, roles={"volume": "series"})
    report = real_report(card, ["2021-04", "2021-05"], {"2021-04": 600, "2021-05": 400})
    assert report["alerts_per_month"] == {"2021-04": 4, "2021-05": 1}
    assert report["incidents_per_month"] == {"2021-04": 4, "2021-05": 1}
    assert report["incident_grouping"] == INCIDENT_GROUPING
    assert report["recall"] == 1.0
    # all four April incidents score 1.00: a tie ranks the scenario 4th, not 1st
    assert report["scenario_incident_rank"] == {"kg": 4}
    assert report["top3_share"] == 0.0
    assert report["high_severity_on_traps"] == 1
    assert report["high_severity_incidents_on_traps"] == 1


def test_a_ranking_figure_above_the_noise_puts_the_scenario_first():
    day = dt.date(2021, 4, 6)
    noise = [alert(f"hs6:DE>RU:{code}", day, score_=0.995) for code in ("330300", "610910")]
    alerts = [*noise, alert("hs6:DE>KG:854231", day, score_=1.0)]
    card = score(alerts, [truth("kg", {"hs6:DE>KG:854231"}, dt.date(2021, 4, 1))],
                 declarations=100, roles={"volume": "series"})
    report = real_report(card, ["2021-04"], {})
    assert report["scenario_incident_rank"] == {"kg": 1} and report["top3_share"] == 1.0


def test_the_cli_runs_the_real_background_and_writes_the_monthly_report(tmp_path: Path):
    csv_path = tmp_path / "comext.csv.gz"
    with gzip.open(csv_path, "wt", encoding="utf-8") as fh:
        fh.write("month,reporter,partner,code,product,value_eur\n")
        for month in ("2021-02", "2021-03", "2021-04"):
            fh.write(f"{month},DE,RU,84798997,Machines,2500000\n")
            fh.write(f"{month},PL,KZ,33030090,Toilet waters,400000\n")
    out = tmp_path / "real.json"
    code = main(["--background", "real", "--realdata", str(csv_path), "--no-scenarios",
                 "--scale", "2", "--months", "2021-02:2021-04", "--json", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    assert set(report["alerts_per_month"]) == {"2021-02", "2021-03", "2021-04"}
    assert report["incident_grouping"] == INCIDENT_GROUPING
    assert report["recall"] is None and report["top3_share"] is None
    assert report["expansion"]["scale"] == 2.0 and report["expansion"]["scope"] == "all"
    assert report["declarations"] == sum(report["declarations_per_month"].values()) > 0
