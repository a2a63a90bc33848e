"""Window settings: calendar grains, durations instead of window counts, mismatches explained."""

from __future__ import annotations

import pytest

from streams.config import ConfigError, load_settings_text
from streams.config_windows import window_plan


def error_of(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_settings_text(text, env={})
    return info.value


def test_daily_windows_by_default_with_the_old_counts_as_durations() -> None:
    plan = window_plan(load_settings_text("", env={}))
    assert plan.grid.unit == "fixed" and plan.grid.size == 86_400
    assert (plan.cooldown_windows, plan.catchup_windows, plan.idle_series_windows,
            plan.max_empty_windows) == (7, 2, 120, 366)


def test_size_seconds_keeps_working_and_size_takes_a_duration() -> None:
    assert window_plan(load_settings_text("[windows]\nsize_seconds = 3600", env={})).grid.size == 3600
    assert window_plan(load_settings_text('[windows]\nsize = "7d"', env={})).grid.size == 604_800


@pytest.mark.parametrize(("calendar", "cooldown", "catchup"), [
    ("week", 1, 1), ("month", 1, 1), ("day", 7, 2)])
def test_unset_durations_are_at_least_one_window(calendar: str, cooldown: int, catchup: int) -> None:
    plan = window_plan(load_settings_text(f'[windows]\ncalendar = "{calendar}"', env={}))
    assert (plan.cooldown_windows, plan.catchup_windows) == (cooldown, catchup)


def test_durations_are_rounded_to_whole_calendar_windows() -> None:
    plan = window_plan(load_settings_text(
        '[windows]\ncalendar = "month"\nidle_series = "730d"\n'
        '[alerts]\ncooldown = "62d"\ncatchup = "0s"', env={}))
    assert (plan.cooldown_windows, plan.catchup_windows, plan.idle_series_windows) == (2, 0, 24)


@pytest.mark.parametrize(("text", "path", "message"), [
    ('[windows]\ncalendar = "month"\n[alerts]\ncooldown = "1d"', "alerts.cooldown",
     "1d is shorter than one window (month)"),
    ('[windows]\ncalendar = "week"\n[alerts]\ncatchup = "2d"', "alerts.catchup",
     "2d is shorter than one window (week)"),
    ('[windows]\ncalendar = "week"\nidle_series = "0s"', "windows.idle_series",
     "0s is shorter than one window (week); use at least one window"),
    ('[windows]\ncalendar = "day"\ngrace_seconds = 172800', "windows.grace_seconds",
     "2d is longer than one window (day)"),
    ('[windows]\ncalendar = "mnth"', "windows.calendar", "valid: day, week, month"),
    ('[windows]\ncalendar = "day"\ntimezone = "Europe/Berln"', "windows.timezone",
     "unknown time zone 'Europe/Berln'"),
    ('[windows]\nsize = "1d"\ntimezone = "Europe/Berlin"', "windows.timezone",
     "applies to calendar windows only"),
    ('[windows]\nsize_seconds = 86400\ncalendar = "week"', "windows.calendar",
     "give one of windows.size_seconds, windows.size and windows.calendar"),
    ('[windows]\nsize = "1 month"', "windows.size", "not a duration"),
    ('[windows]\nholidays = ["25.12."]', "windows.holidays", "MM-DD"),
    ('[alerts]\ncooldown = "a week"', "alerts.cooldown", "not a duration"),
    ('[windows]\ncalendar = "month"\n[validation]\ndedup_horizon_seconds = 172800',
     "validation.dedup_horizon_seconds", "counted twice; use at least 32d"),
])
def test_mismatches_name_the_key_and_the_window(text: str, path: str, message: str) -> None:
    err = error_of(text)
    assert err.path == path and message in str(err), str(err)


@pytest.mark.parametrize(("old", "new"), [
    ("[alerts]\ncooldown_windows = 7", 'alerts.cooldown = "7d" (7 windows of 1d)'),
    ("[alerts]\ncatchup_windows = 2", 'alerts.catchup = "2d"'),
    ("[windows]\nidle_series_windows = 120", 'windows.idle_series = "120d"'),
    ("[windows]\nmax_empty_windows = 366", 'windows.max_gap = "366d"'),
])
def test_the_old_window_counts_fail_with_their_replacement(old: str, new: str) -> None:
    err = error_of(old)
    assert err.path == old.split("]")[0][1:] + "." + old.split("\n")[1].split(" ")[0]
    assert "renamed" in str(err) and new in str(err), str(err)


def test_the_migration_hint_is_in_the_configured_window() -> None:
    err = error_of('[windows]\ncalendar = "week"\n[alerts]\ncooldown_windows = 2')
    assert 'alerts.cooldown = "14d" (2 windows of week)' in str(err)


def test_an_unset_dedup_horizon_follows_long_windows() -> None:
    settings = load_settings_text('[windows]\ncalendar = "month"', env={})
    assert settings.validation.dedup_horizon_seconds == 32 * 86_400  # 31 days + grace


def test_detector_window_counts_may_be_durations() -> None:
    settings = load_settings_text(
        '[windows]\ncalendar = "week"\n[detectors.volume]\nkind = "volume"\n'
        'params = { warmup = "84d", span = 4 }', env={})
    assert settings.detectors["volume"].params == {"warmup": 12, "span": 4}
    err = error_of('[windows]\ncalendar = "month"\n[detectors.volume]\nkind = "volume"\n'
                   'params = { warmup = "14d" }')
    assert err.path == "detectors.volume.params.warmup"
    assert "14d is shorter than one window (month)" in str(err)


def test_a_weekday_profile_on_weekly_windows_is_explained() -> None:
    err = error_of('[windows]\ncalendar = "week"\n[detectors.volume]\nkind = "volume"\n'
                   'params = { weekday = true }')
    assert err.path == "detectors.volume.params.weekday"
    assert "shorter than half a week, and windows are week" in str(err)
    load_settings_text('[windows]\ncalendar = "day"\n[detectors.volume]\nkind = "volume"\n'
                       'params = { weekday = true }', env={})


def test_the_effective_config_reads_back() -> None:
    settings = load_settings_text(
        '[windows]\ncalendar = "week"\ntimezone = "Europe/Berlin"\n[alerts]\ncooldown = "28d"',
        env={})
    assert load_settings_text(settings.to_toml(), env={}) == settings
