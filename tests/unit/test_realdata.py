"""The real background: monthly statistics expanded into declarations, and injection.

Runs on a small CSV written here in the shape of the Comext extract (never on the
17 MB file), so the properties are checked on lanes whose numbers we know.
"""

from __future__ import annotations

import datetime as dt
import gzip
from collections import defaultdict
from pathlib import Path

import pytest

from evaluation.real_scenarios import (
    BASELINE_SOURCE,
    ChplBaseline,
    OneOffShipment,
    TransitSurge,
    inject,
)
from evaluation.realdata import (
    ExpansionConfig,
    RealStream,
    easter_sunday,
    load_comext,
    summarize_counts,
    working_days,
)
from streams.events import encode
from streams.validate import ValidationLimits, validate_declaration

ROWS = [
    # month, reporter, partner, code, value
    ("2021-03", "DE", "RU", "84798997", 2_500_000),
    ("2021-03", "DE", "RU", "8479", 2_500_000),  # heading subtotal of the row above: dropped
    ("2021-03", "IT", "KZ", "33030090", 7),
    ("2021-03", "PL", "UZ", "87032319", 9_000_000),
    ("2021-03", "FR", "AM", "8802", 40_000_000),  # heading only: residual kept as 880200
    ("2021-03", "CZ", "GE", "8471", 800_000),  # heading 8471 (holds CHPL 8471.50): dropped
    ("2021-03", "NL", "KG", "85423190", 50_000),  # a CHPL code: never in the background
    ("2021-04", "DE", "RU", "84798997", 1_234_567.89),
    ("2021-04", "IT", "KZ", "33030090", 45_000),
    ("2021-04", "LT", "BY", "61091000", 123_456),
    ("2021-05", "DE", "RU", "84798997", 3_000_000),
    ("2021-05", "DE", "UZ", "84798997", 400_000),
    ("2021-05", "LT", "BY", "61091000", 99_000),
]


@pytest.fixture
def comext_csv(tmp_path: Path) -> Path:
    path = tmp_path / "comext.csv.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write("month,reporter,partner,code,product,value_eur\n")
        for month, rep, par, code, value in ROWS:
            fh.write(f'{month},{rep},{par},{code},"Label of {code}, cut",{value}\n')
    return path


def lane_sums(decls) -> dict[tuple[str, str, str, str], float]:
    sums: dict[tuple[str, str, str, str], float] = defaultdict(float)
    for d in decls:
        month = d.declared_at.strftime("%Y-%m")
        sums[(month, d.exporter_country, d.destination_country, d.hs_code)] += d.statistical_value_eur
    return sums


def test_heading_subtotals_are_not_counted_twice_and_chpl_goods_stay_out(comext_csv):
    table = load_comext(comext_csv)
    codes = set(table.code.tolist())
    assert "8479" not in codes and "847900" not in codes  # the subtotal equals its CN8 row
    assert "880200" in codes  # a heading reported at that level only
    assert not any(c.startswith("8471") for c in codes)
    assert "85423190" not in codes
    assert table.months == ["2021-03", "2021-04", "2021-05"]


def test_every_lane_month_value_is_conserved_to_the_cent(comext_csv):
    table = load_comext(comext_csv)
    sums = lane_sums(RealStream(table).declarations())
    expected = {
        (table.months[m], r, p, c): v
        for m, r, p, c, v in zip(table.month, table.reporter, table.partner, table.code, table.value)
    }
    assert sums.keys() == expected.keys()
    for key, value in expected.items():
        assert sums[key] == pytest.approx(value, abs=0.011), key


def test_declarations_fall_on_working_days_only():
    for month in ("2020-04", "2021-04", "2020-12", "2021-05", "2021-01"):
        for day in working_days(month):
            assert day.weekday() < 5
    assert easter_sunday(2021) == dt.date(2021, 4, 4)
    april = working_days("2021-04")
    assert dt.date(2021, 4, 2) not in april and dt.date(2021, 4, 5) not in april  # Easter
    assert dt.date(2021, 5, 1) not in working_days("2021-05")


def test_the_stream_uses_only_working_days(comext_csv):
    holidays = {dt.date(2021, 4, 2), dt.date(2021, 4, 5)}
    for d in RealStream(load_comext(comext_csv), ExpansionConfig(scale=4)).declarations():
        assert d.declared_at.weekday() < 5
        assert d.declared_at.date() not in holidays


def test_every_declaration_validates_and_the_stream_is_in_time_order(comext_csv):
    limits = ValidationLimits()
    previous = None
    stream = RealStream(load_comext(comext_csv))
    for raw in stream.records():
        d = validate_declaration(raw, now_ts=2e9, limits=limits)
        assert d.net_mass_kg > 0 and d.statistical_value_eur >= 0
        assert previous is None or previous <= d.declared_at
        previous = d.declared_at
    assert stream.count > 0


def test_the_expansion_is_deterministic_for_a_seed(comext_csv):
    table = load_comext(comext_csv)
    first = list(RealStream(table, ExpansionConfig(seed=7)).records())
    again = list(RealStream(table, ExpansionConfig(seed=7)).records())
    other = list(RealStream(table, ExpansionConfig(seed=8)).records())
    assert first == again
    assert first != other


def test_scale_multiplies_the_number_of_declarations(comext_csv):
    table = load_comext(comext_csv)
    one = RealStream(table, ExpansionConfig(scale=1))
    four = RealStream(table, ExpansionConfig(scale=4))
    n1, n4 = sum(1 for _ in one.declarations()), sum(1 for _ in four.declarations())
    assert n4 == 4 * n1
    assert sum(summarize_counts(table, ExpansionConfig(scale=4)).values()) == n4
    assert lane_sums(four.declarations()).keys() == lane_sums(one.declarations()).keys()


def test_series_keep_their_regular_exporters(comext_csv):
    decls = [d for d in RealStream(load_comext(comext_csv)).declarations()
             if d.exporter_country == "PL" and d.destination_country == "UZ"]
    counts: dict[str, int] = defaultdict(int)
    for d in decls:
        counts[d.exporter_id] += 1
    assert max(counts.values()) >= len(decls) / 3  # a regular exporter lodges most of them


def test_a_chpl_baseline_is_sparse_and_lumpy():
    months = [f"2020-{m:02d}" for m in range(1, 13)] + [f"2021-{m:02d}" for m in range(1, 13)]
    values = ChplBaseline("DE", "KG", "85423190", 30_000, active_share=0.5).monthly(months, seed=1)
    assert 4 <= len(values) <= 20
    assert max(values.values()) > 2 * min(values.values())


def test_a_transit_surge_injects_its_stated_magnitude(comext_csv):
    table = load_comext(comext_csv)
    surge = TransitSurge("chips", "2021-04", origin="NL", hub="KG", code="85423190", factor=20.0,
                         base_mean_eur=30_000.0, pass_through=0.9)
    injected = inject(table, [surge])
    decls = list(injected.declarations())
    truth = injected.truths[0]
    ids = set(truth.declaration_ids)
    injected_sums = lane_sums(d for d in decls if d.declaration_id in ids)
    planned = surge.surge(table.months, seed=ExpansionConfig().seed)
    for month, value in planned.items():
        assert injected_sums[(month, "NL", "KG", "85423190")] == pytest.approx(value, abs=0.05)
    # the surge is (factor - 1) x the baseline mean a month, +-20 % (log-normal sd 0.2)
    for value in planned.values():
        assert 0.5 * 19 * 30_000 < value < 2 * 19 * 30_000
    reexported = sum(v for (m, o, dst, c), v in injected_sums.items() if o == "KG" and dst == "RU")
    assert 0 < reexported <= 0.9 * 1.1 * sum(planned.values()) + 0.05
    assert "2021-03" not in {m for (m, *_rest) in injected_sums}  # nothing before onset
    # the CHPL baseline is background: on the lane, before onset too, and not in the truth
    baseline = [d for d in decls if d.hs_code == "85423190" and d.declaration_id not in ids]
    assert baseline
    assert {"hs6:NL>KG:854231", "hs6:KG>RU:854231", "passthrough:KG>RU:854231"} <= truth.series
    assert truth.expect_alert and truth.onset == dt.datetime(2021, 4, 1, tzinfo=dt.UTC).timestamp()


def test_a_route_shift_moves_the_direct_value_to_the_hub():
    months = ["2021-08", "2021-09", "2021-10"]
    direct = ChplBaseline("IT", "RU", "84821010", 1_500_000, 1.0, 0.3, drop=0.71, drop_from="2021-09")
    same = ChplBaseline("IT", "RU", "84821010", 1_500_000, 1.0, 0.3)
    before, after = direct.monthly(months, 3), same.monthly(months, 3)
    assert before["2021-08"] == after["2021-08"]
    assert before["2021-09"] == pytest.approx(0.29 * after["2021-09"])


def test_a_one_off_trap_is_one_declaration_of_the_stated_multiple(comext_csv):
    table = load_comext(comext_csv)
    trap = OneOffShipment("oneoff", "2021-05", origin="DE", destination="RU", code="84798997",
                          multiple=40.0)
    injected = inject(table, [trap])
    decls = list(injected.declarations())
    truth = injected.truths[0]
    assert not truth.expect_alert and truth.max_severity_allowed == "low"
    assert len(truth.declaration_ids) == 1
    (d,) = [d for d in decls if d.declaration_id == truth.declaration_ids[0]]
    mean_before = (2_500_000 + 1_234_567.89) / 2
    assert d.statistical_value_eur == pytest.approx(40 * mean_before, abs=0.01)
    assert BASELINE_SOURCE not in injected.sources


def test_injection_leaves_the_background_unchanged(comext_csv):
    table = load_comext(comext_csv)
    plain = {encode(d) for d in RealStream(table).declarations()}
    surge = TransitSurge("chips", "2021-04", origin="NL", hub="KG", code="85423190")
    with_scenario = {encode(d) for d in inject(table, [surge]).declarations()}
    assert plain <= with_scenario


def test_a_small_declaration_keeps_its_unit_value(tmp_path: Path) -> None:
    """Mass is given to the gram: a month split into small declarations (here 60 EUR of
    instruments, ~300 EUR/kg, as four declarations of a few grams) keeps unit values
    within the declaration price noise (sigma 0.25: a spread of e^1.5 at most), where a
    0.1 kg grid made them outliers (a 4x expansion's unit-value alerts were mostly that)."""
    import math

    path = tmp_path / "small.csv.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write("month,reporter,partner,code,product,value_eur\n")
        fh.write('2021-03,LT,KZ,90261000,"Flow meters",60\n')
    declarations = list(RealStream(load_comext(path), ExpansionConfig(scale=4)).declarations())
    assert len(declarations) >= 3 and min(d.net_mass_kg for d in declarations) < 0.1
    unit_values = [d.statistical_value_eur / d.net_mass_kg for d in declarations]
    assert math.log(max(unit_values) / min(unit_values)) < 1.5
