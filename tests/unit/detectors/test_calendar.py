"""The window grid: calendar months, ISO weeks and local days, leap years and DST."""

from __future__ import annotations

import datetime as dt

import pytest

from detectors.calendar import (
    HOLIDAY_PHASE,
    WindowGrid,
    format_duration,
    parse_duration,
)

DAY = 86_400.0


def utc(*args: int) -> float:
    return dt.datetime(*args, tzinfo=dt.UTC).timestamp()


def local(zone: str, *args: int) -> float:
    from zoneinfo import ZoneInfo

    return dt.datetime(*args, tzinfo=ZoneInfo(zone)).timestamp()


@pytest.mark.parametrize(("year", "month", "days"), [
    (2023, 2, 28), (2024, 2, 29), (2020, 2, 29), (2100, 2, 28), (2000, 2, 29),
    (2024, 4, 30), (2024, 1, 31), (2024, 12, 31),
])
def test_a_month_window_is_as_long_as_its_month(year: int, month: int, days: int) -> None:
    grid = WindowGrid.calendar("month")
    start = grid.start(utc(year, month, 15, 12))
    assert start == utc(year, month, 1)
    assert grid.length(start) == days * DAY


def test_the_leap_day_belongs_to_february_and_the_next_day_to_march() -> None:
    grid = WindowGrid.calendar("month")
    assert grid.start(utc(2020, 2, 29, 23, 59, 59)) == utc(2020, 2, 1)
    assert grid.start(utc(2020, 3, 1)) == utc(2020, 3, 1)
    day = WindowGrid.calendar("day")
    assert day.next(day.start(utc(2024, 2, 29, 6))) == utc(2024, 3, 1)


def test_months_count_and_shift_across_years() -> None:
    grid = WindowGrid.calendar("month")
    jan = utc(2024, 1, 1)
    assert grid.count(jan, utc(2025, 3, 1)) == 14
    assert grid.count(utc(2025, 3, 1), jan) == -14
    assert grid.shift(jan, 13) == utc(2025, 2, 1)
    assert grid.shift(jan, -1) == grid.previous(jan) == utc(2023, 12, 1)


def test_iso_weeks_start_on_monday_also_across_the_new_year() -> None:
    grid = WindowGrid.calendar("week")
    assert grid.start(utc(2023, 1, 1, 12)) == utc(2022, 12, 26)  # a Sunday: week 52 of 2022
    assert grid.start(utc(2024, 1, 1)) == utc(2024, 1, 1)  # a Monday
    assert grid.length(utc(2024, 1, 1)) == 7 * DAY
    assert grid.count(utc(2022, 12, 26), utc(2024, 1, 1)) == 53


def test_berlin_days_are_23_and_25_hours_long_when_the_clocks_change() -> None:
    grid = WindowGrid.calendar("day", timezone="Europe/Berlin")
    spring = grid.start(utc(2024, 3, 31, 12))
    autumn = grid.start(utc(2024, 10, 27, 12))
    assert spring == local("Europe/Berlin", 2024, 3, 31) == utc(2024, 3, 30, 23)
    assert grid.length(spring) == 23 * 3600
    assert autumn == utc(2024, 10, 26, 22)  # midnight CEST
    assert grid.length(autumn) == 25 * 3600
    assert grid.length(grid.start(utc(2024, 6, 1, 12))) == 24 * 3600
    # a declaration at 23:30 UTC on 30 March is already Easter Sunday in Berlin
    assert grid.start(utc(2024, 3, 30, 23, 30)) == spring
    assert grid.count(grid.start(utc(2024, 3, 1, 12)), autumn) == 240
    assert grid.shift(spring, 1) == utc(2024, 3, 31, 22)


def test_a_berlin_week_with_a_clock_change_has_167_hours() -> None:
    grid = WindowGrid.calendar("week", timezone="Europe/Berlin")
    start = grid.start(utc(2024, 3, 27))
    assert start == local("Europe/Berlin", 2024, 3, 25)
    assert grid.length(start) == 167 * 3600
    assert grid.length(grid.next(start)) == 168 * 3600


def test_fixed_windows_stay_aligned_to_the_epoch() -> None:
    grid = WindowGrid.fixed(7 * DAY)
    assert grid.start(utc(2024, 1, 3)) == utc(2023, 12, 28)  # a Thursday, like 1970-01-01
    assert grid.count(0.0, 70 * DAY) == 10


def test_durations_become_whole_windows_of_the_grid() -> None:
    assert parse_duration("7d") == 7 * DAY and parse_duration("2w") == 14 * DAY
    assert parse_duration(90) == 90.0
    assert format_duration(parse_duration("120d")) == "120d"
    month = WindowGrid.calendar("month")
    assert [month.windows_in(parse_duration(d)) for d in ("28d", "31d", "62d", "90d", "366d")] == [
        1, 1, 2, 3, 12]
    assert WindowGrid.calendar("week").windows_in(parse_duration("28d")) == 4
    assert WindowGrid.fixed(DAY).windows_in(0) == 0
    for bad in ("1 month", "7", "-1d", "d"):
        with pytest.raises(ValueError, match="not a duration"):
            parse_duration(bad)


def test_weekday_phases_only_for_sub_weekly_windows() -> None:
    day = WindowGrid.calendar("day", holidays=("12-25", "2024-05-09"))
    assert day.phase(utc(2024, 1, 1)) == 0 and day.phase(utc(2024, 1, 6)) == 5
    assert day.phase(utc(2024, 12, 25)) == day.phase(utc(2024, 5, 9)) == HOLIDAY_PHASE
    assert day.phase(utc(2025, 5, 9)) == 4  # a one-off holiday is not every year's
    hourly = WindowGrid.fixed(3600)
    assert hourly.phase(utc(2024, 1, 2, 5)) == 1 * 24 + 5
    for grid in (WindowGrid.calendar("week"), WindowGrid.calendar("month"), WindowGrid.fixed(7 * DAY)):
        assert not grid.sub_weekly and grid.phase(utc(2024, 1, 1)) == 0


def test_a_bad_zone_or_holiday_is_refused_with_what_is_valid() -> None:
    with pytest.raises(ValueError, match="unknown time zone 'Europe/Berln'"):
        WindowGrid.calendar("day", timezone="Europe/Berln")
    with pytest.raises(ValueError, match="MM-DD"):
        WindowGrid.calendar("day", holidays=("25.12.",))
