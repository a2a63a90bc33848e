"""The scaling bench's real-shaped replay compares daily with 30-day windows of the same config."""

from __future__ import annotations

from bench.scale import DAY, _replay_settings
from streams.config import DEFAULT_CONFIG_PATH, load_settings
from streams.config_windows import window_plan


def test_the_daily_replay_runs_the_shipped_config_with_every_product_in_scope() -> None:
    shipped = load_settings(DEFAULT_CONFIG_PATH, env={})
    daily = _replay_settings(DAY)
    assert daily.alerts.scope == "all"
    assert daily.detectors == shipped.detectors
    assert daily.windows == shipped.windows


def test_the_30_day_replay_counts_its_durations_in_30_day_windows() -> None:
    monthly = _replay_settings(30 * DAY)
    plan = window_plan(monthly)  # raises if a duration does not fit the grid
    assert monthly.windows.size_seconds == 30 * DAY
    assert plan.cooldown_windows == plan.persistence_windows == 1
    assert monthly.detectors["trend"].params == {"horizon": 1, "memory": 12, "warmup": 4}
    assert monthly.detectors["onset"].params == {"horizon": 1, "warmup": 6}
