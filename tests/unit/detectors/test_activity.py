"""Which empty windows are outages: the partition's usual activity by weekday."""

from __future__ import annotations

from detectors.activity import PartitionActivity
from detectors.calendar import HOLIDAY_PHASE

WORKING_WEEK = [True] * 5 + [False] * 2


def learned(weeks: int = 4) -> PartitionActivity:
    activity = PartitionActivity()
    for _ in range(weeks):
        for weekday, active in enumerate(WORKING_WEEK):
            activity.close(weekday, active)
    return activity


def test_an_empty_weekend_is_not_an_outage_on_a_working_day_partition() -> None:
    activity = learned()
    assert [activity.close(d, active=False) for d in (5, 6)] == [False, False]


def test_an_empty_wednesday_is_an_outage_and_it_lasts_until_records_come_back() -> None:
    activity = learned()
    activity.close(0, True), activity.close(1, True)
    assert activity.close(2, active=False)
    assert activity.close(3, active=False) and activity.close(5, active=False)  # still out
    assert not activity.close(0, active=True)
    assert not activity.close(5, active=False) and not activity.in_outage


def test_the_first_empty_weekend_is_judged_by_the_partition_as_a_whole() -> None:
    """Nothing is known about Saturdays yet: on a busy partition, err on the side of an outage."""
    activity = learned(weeks=0)
    for weekday in range(5):
        activity.close(weekday, True)
    assert activity.close(5, active=False)
    activity.close(0, True)
    assert not activity.close(5, active=False)  # the second Saturday is known to be quiet


def test_a_quiet_holiday_is_learned_apart_from_its_weekday() -> None:
    activity = learned()
    activity.close(HOLIDAY_PHASE, active=False)  # a first holiday: unknown, cautious
    activity.close(0, True)
    assert not activity.close(HOLIDAY_PHASE, active=False)
    assert activity.close(2, active=False)  # an ordinary Wednesday still is an outage


def test_a_sparse_partition_has_no_outages_once_its_weekdays_are_known() -> None:
    activity = PartitionActivity()
    outages = [activity.close(i % 7, active=(i % 3 == 0)) for i in range(90)]
    assert not any(outages[21:])


def test_a_weekday_that_stays_quiet_for_good_stops_being_an_outage() -> None:
    activity = learned(weeks=10)
    outages = []
    for _ in range(12):
        for weekday, active in enumerate([True, True, False, True, True, False, False]):
            outage = activity.close(weekday, active)
            if weekday == 2:
                outages.append(outage)
    assert outages[0] and not outages[-1]
