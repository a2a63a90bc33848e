"""Calendar windows through the pipeline: gaps that know the weekday, cooldowns in time, examples."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from streams.config import DEFAULT_CONFIG_PATH, load_settings, load_settings_text
from streams.events import TradeAlert
from streams.keys import partition_for, record_key
from streams.metrics import PipelineMetrics
from streams.offline import run_offline
from streams.pipeline import PartitionPipeline
from tests.factories import declaration, spike_stream

EXAMPLES = Path(DEFAULT_CONFIG_PATH).parent / "examples"
MONDAY = dt.datetime(2024, 1, 8, tzinfo=dt.UTC)  # not a holiday of the shipped config
CHIPS = "hs6:DE>KG:854231"


def _pipeline(settings):  # type: ignore[no-untyped-def]
    registry = CollectorRegistry()
    metrics = PipelineMetrics.create(registry, detectors=list(settings.detectors))
    return PartitionPipeline(settings, metrics), registry


def _feed(pipeline: PartitionPipeline, days: list[int], per_day: int = 12) -> list[TradeAlert]:
    """``per_day`` declarations on each of ``days`` (enough to confirm the jump over a weekend)."""
    alerts: list[TradeAlert] = []
    for day in days:
        for i in range(per_day):
            d = declaration(declaration_id=f"D{day:04d}-{i}",
                            declared_at=MONDAY + dt.timedelta(days=day, hours=8 + i))
            rejected, out = pipeline.process(d)
            assert rejected is None
            alerts.extend(out)
    return alerts


def _gaps(registry: CollectorRegistry) -> float:
    return registry.get_sample_value("tradewatch_data_gap_windows_total") or 0.0


def test_an_empty_weekend_is_not_a_gap_but_an_empty_wednesday_is() -> None:
    pipeline, registry = _pipeline(load_settings(DEFAULT_CONFIG_PATH, env={}))
    working_days = [d for d in range(42) if d % 7 < 5]
    _feed(pipeline, working_days[:10])  # two weeks: the first weekend is not known yet
    first = _gaps(registry)
    _feed(pipeline, working_days[10:])  # four more weeks of quiet weekends
    assert _gaps(registry) == first <= 2
    _feed(pipeline, [42, 43, 45, 46])  # Monday, Tuesday, -, Thursday, Friday
    assert _gaps(registry) == first + 1  # the empty Wednesday is an outage


def test_a_quiet_weekend_is_learned_as_zero_trade() -> None:
    """Series detectors see the weekend (zero), so their windows follow the calendar."""
    pipeline, _ = _pipeline(load_settings(DEFAULT_CONFIG_PATH, env={}))
    working_days = [d for d in range(35) if d % 7 < 5]
    _feed(pipeline, working_days + [35])
    pipeline.scoring.settle()  # a quiet series learns its empty windows lazily
    volume = pipeline.scoring._series[CHIPS].detectors["volume"]  # noqa: SLF001 - the state under test
    assert pipeline.windows_closed == 35
    assert volume._n == 35 - 2  # noqa: SLF001 - every day but the first (cautious) weekend


def test_a_cooldown_in_days_holds_for_whole_weekly_windows() -> None:
    settings = load_settings_text("""
[windows]
calendar = "week"
[alerts]
scope = "all"
cooldown = "14d"
min_declarations = 0
[detectors.volume]
kind = "volume"
threshold = 0.0
params = { warmup = 0 }
""", env={})
    pipeline, _ = _pipeline(settings)
    alerts = _feed(pipeline, list(range(7 * 10))) + pipeline.flush()
    weeks = [(a.window_start - MONDAY).days / 7 for a in alerts if a.series.key == CHIPS]
    assert weeks == [0, 3, 6, 9]  # two weekly windows quiet after each alert
    assert all(a.window_start.weekday() == 0 for a in alerts)
    assert all(a.window_end - a.window_start == dt.timedelta(days=7) for a in alerts)


@pytest.mark.parametrize("name", ["month.toml", "week.toml"])
def test_the_example_configs_are_valid_and_follow_the_calendar(name: str) -> None:
    settings = load_settings(EXAMPLES / name, env={})
    grid = settings.windows.grid()
    assert grid.unit == name.removesuffix(".toml")
    records, _ = spike_stream(days=120, spike_day=1000)
    registry = CollectorRegistry()
    metrics = PipelineMetrics.create(registry, detectors=list(settings.detectors))
    result = run_offline(records, settings, metrics)
    assert result.accepted == len(records) and not result.rejected
    partitions = {partition_for(record_key(r), settings.topics.partitions) for r in records}
    span = (grid.start(dt.datetime(2024, 1, 1, tzinfo=dt.UTC).timestamp()),
            grid.start(dt.datetime(2024, 4, 29, 12, tzinfo=dt.UTC).timestamp()))
    windows = grid.count(*span) + 1
    closed = registry.get_sample_value("tradewatch_windows_closed_total", {"level": "hs6"})
    assert closed == windows * len(partitions)


def test_a_monthly_surge_is_alerted_on_calendar_months() -> None:
    """The volume detector wants a surge that lasts: the second month of it alerts."""
    settings = load_settings(EXAMPLES / "month.toml", env={})
    records, key = spike_stream(days=300, spike_day=213)  # from 1 August 2024
    alerts = [a for a in run_offline(records, settings).alerts if a.series.key in (key, "tier:DE>KG:T1")]
    assert alerts, "the surge raised no alert"
    first = min(alerts, key=lambda a: a.window_start)
    assert first.window_start == dt.datetime(2024, 9, 1, tzinfo=dt.UTC)
    assert first.window_end == dt.datetime(2024, 10, 1, tzinfo=dt.UTC)
    assert first.severity in ("high", "critical")
