"""The lane-cost tool: a detector's threshold priced in alerts per 1,000 series a month.

Hand-made lanes whose alerts we can reason about, and a tiny Comext file through the
command line, so the figures an analyst quotes come from the gates the docstring names.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from detectors.trend import TrendDetector
from detectors.volume import VolumeSurgeDetector
from evaluation.lane_cost import daily_lanes, main, threshold_cost

DAYS = 400


def _lane(level: float, count: int, jump_at: int | None = None, factor: float = 20.0,
          jump_count: int = 9) -> tuple[np.ndarray, np.ndarray]:
    values, counts = np.full(DAYS, level), np.full(DAYS, count, np.int32)
    if jump_at is not None:
        values[jump_at:] *= factor
        counts[jump_at:] = jump_count
    return values, counts


def test_a_flat_lane_costs_nothing_and_a_lasting_jump_is_counted() -> None:
    cost = threshold_cost({"flat": _lane(1e5, 2), "jump": _lane(1e5, 2, jump_at=300)},
                          0.0, TrendDetector, [4.0])
    assert cost.by_series[4.0]["flat"] == 0
    assert cost.by_series[4.0]["jump"] >= 1
    assert cost.alerts[4.0] == sum(cost.by_month[4.0].values()) == cost.by_series[4.0]["jump"]


def test_a_stricter_threshold_never_costs_more() -> None:
    lanes = {f"l{i}": _lane(1e5 * (i + 1), 2, jump_at=200 + 20 * i, factor=2.0 + i) for i in range(5)}
    cost = threshold_cost(lanes, 0.0, TrendDetector, [2.0, 3.0, 4.0, 6.0])
    counts = [cost.alerts[z] for z in (2.0, 3.0, 4.0, 6.0)]
    assert counts == sorted(counts, reverse=True)
    assert counts[0] > 0


def test_the_cooldown_spaces_a_series_alerts() -> None:
    lanes = {"jump": _lane(1e5, 3, jump_at=250)}
    loose = threshold_cost(lanes, 0.0, VolumeSurgeDetector, [3.0], cooldown_windows=0)
    spaced = threshold_cost(lanes, 0.0, VolumeSurgeDetector, [3.0], cooldown_windows=30)
    assert loose.alerts[3.0] > spaced.alerts[3.0] >= 1


def test_the_materiality_floor_and_the_evidence_gate_suppress() -> None:
    lanes = {"jump": _lane(1e3, 1, jump_at=300, factor=5.0, jump_count=1)}
    assert threshold_cost(lanes, 0.0, VolumeSurgeDetector, [3.0], floor_eur=0.0, min_declarations=1).alerts[3.0] >= 1
    # the excess is a few kEUR: under a 10 kEUR floor
    assert threshold_cost(lanes, 0.0, VolumeSurgeDetector, [3.0], floor_eur=1e4, min_declarations=1).alerts[3.0] == 0
    # one declaration a window: under a 3-declaration gate
    assert threshold_cost(lanes, 0.0, VolumeSurgeDetector, [3.0], floor_eur=0.0, min_declarations=3).alerts[3.0] == 0


def test_the_rate_is_per_series_and_month() -> None:
    cost = threshold_cost({"jump": _lane(1e5, 2, jump_at=300), "flat": _lane(1e5, 2)},
                          dt.datetime(2020, 1, 1, tzinfo=dt.UTC).timestamp(), TrendDetector, [4.0])
    assert cost.months == 14  # 400 days from January 2020: to February 2021
    assert cost.per_1000_series_month(4.0) == 1000.0 * cost.alerts[4.0] / (2 * 14)


class _Declaration:
    def __init__(self, origin: str, destination: str, hs: str, value: float, day: int) -> None:
        self.exporter_country, self.destination_country, self.hs_code = origin, destination, hs
        self.statistical_value_eur = value
        self.declared_at = dt.datetime(2020, 1, 1, 10, tzinfo=dt.UTC) + dt.timedelta(days=day)


def test_lanes_and_their_all_origin_rollup_are_summed_per_day() -> None:
    start = dt.datetime(2020, 1, 1, tzinfo=dt.UTC).timestamp()
    decls = [_Declaration("DE", "KZ", "84713000", 5e5, 0), _Declaration("DE", "KZ", "84713000", 1e6, 0),
             _Declaration("PL", "KZ", "84713000", 2e6, 3), _Declaration("PL", "KZ", "10011900", 10.0, 3)]
    lanes = daily_lanes(decls, start, days=5, min_total_eur=1e5)
    assert set(lanes) == {"hs6:DE>KZ:847130", "hs6:PL>KZ:847130", "hs6:*>KZ:847130"}  # the 10 EUR lane is dropped
    values, counts = lanes["hs6:*>KZ:847130"]
    assert list(values) == [1.5e6, 0, 0, 2e6, 0] and list(counts) == [2, 0, 0, 1, 0]


def test_the_command_prices_a_threshold_on_a_comext_file(tmp_path: Path) -> None:
    path = tmp_path / "comext.csv.gz"
    months = [f"2020-{m:02d}" for m in range(1, 13)] + [f"2021-{m:02d}" for m in range(1, 13)]
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("month,reporter,partner,code,product,value_eur\n")
        for i, month in enumerate(months):
            f.write(f"{month},DE,KZ,84713000,machines,{3e5 if i < 20 else 9e6}\n")
            f.write(f"{month},IT,GE,61091000,t-shirts,{2e5}\n")
    out = tmp_path / "cost.json"
    assert main(["--realdata", str(path), "--z", "2,6", "--min-total", "1e6", "--json", str(out)]) == 0
    figures = json.loads(out.read_text())
    assert figures["series"] == 4 and figures["months"] == 24
    by_z = {row["z"]: row for row in figures["thresholds"]}
    assert by_z[2.0]["alerts"] >= by_z[6.0]["alerts"]
    assert by_z[2.0]["alerts"] >= 1  # the DE->KZ jump in the last four months


@pytest.mark.parametrize("argv, says", [
    (["--detector", "novelty"], "not a series detector"),
    (["--params", '{"horizon": 28'], "Expecting"),
    (["--params", '{"horizn": 28}'], "horizn"),
    (["--z", "3,high"], "high"),
])
def test_a_bad_argument_is_one_line_before_any_replay(argv: list[str], says: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--realdata", "/nonexistent.csv.gz", *argv])
    assert exit_.value.code == 2
    assert says in capsys.readouterr().err
