"""Bad configuration fails at start with the dotted path of the bad key."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.config import DEFAULT_CONFIG_PATH, ConfigError, load_settings, load_settings_text


def error_of(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_settings_text(text, env={})
    return info.value


def test_the_shipped_config_is_valid() -> None:
    settings = load_settings(DEFAULT_CONFIG_PATH, env={})
    assert settings.windows.size_seconds == 86_400
    # a partition is idle-closed only after being caught up this long; see streams.catchup
    assert settings.windows.idle_timeout_seconds >= 30
    # the duplicate set must outlive a window and its grace to be complete
    assert settings.validation.dedup_horizon_seconds >= (
        settings.windows.size_seconds + settings.windows.grace_seconds)
    assert set(settings.detectors) == {"volume", "spike", "changepoint", "trend", "passthrough", "onset",
                                      "unit_value", "novelty"}


@pytest.mark.parametrize(
    "text,path,hint",
    [
        ("[windows]\nsize_secnds = 3600", "windows.size_secnds", "valid keys: calendar, grace_seconds"),
        ("bogus = 1", "bogus", "valid keys: alerts"),
        ('[windows]\nlevels = ["hs8"]', "windows.levels[0]", "valid: hs6, hs4, hs2, tier"),
        ('[alerts]\nmin_severity = "urgent"', "alerts.min_severity", "valid: low, medium"),
        ("[windows]\nsize_seconds = -1", "windows.size_seconds", "> 0"),
        ("[windows]\nwatermark_confirmations = 0", "windows.watermark_confirmations", ">= 1"),
        ("[windows]\nmax_watermark_lead_seconds = 0", "windows.max_watermark_lead_seconds", "> 0"),
        ("[validation]\nmax_net_mass_kg = 0", "validation.max_net_mass_kg", "> 0"),
        ("[validation]\ndedup_horizon_seconds = -1", "validation.dedup_horizon_seconds", ">= 0"),
        ('[topics]\npartitions = "four"', "topics.partitions", "Expected `int`"),
        ('[detectors.spike]\nkind = "spike"\nthreshold = 2', "detectors.spike.threshold", "<= 1"),
        ('[detectors.spike]\nkind = "spike"\nthreshhold = 0.5', "detectors.spike.threshhold", "valid keys"),
        ('[detectors.x]\nkind = "prophet"', "detectors.x.kind", "spike"),
        ('[detectors.spike]\nkind = "spike"\nparams = { no_such_param = 1 }',
         "detectors.spike.params.no_such_param", "no_such_param"),
        ('[[overrides]]\nmatch = "hs6:*"\ndetector = "nope"', "overrides[0].detector", "configured:"),
    ],
)
def test_errors_name_the_path_and_what_is_valid(text: str, path: str, hint: str) -> None:
    err = error_of(text)
    assert err.path == path
    assert hint in str(err)


def test_invalid_toml_is_reported_as_such() -> None:
    assert "not valid TOML" in str(error_of("[windows\nsize_seconds = 1"))


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "absent.toml", env={})


def test_environment_overrides_the_file() -> None:
    settings = load_settings_text(
        "[kafka]\nbootstrap_servers = 'a:1'",
        env={"TRADEWATCH_BOOTSTRAP_SERVERS": "k1:9092,k2:9092", "TRADEWATCH_WEB_PORT": "7001"},
    )
    assert settings.kafka.bootstrap_servers == "k1:9092,k2:9092"
    assert settings.worker.web_port == 7001


def test_per_series_overrides_change_threshold_or_switch_a_detector_off() -> None:
    settings = load_settings_text(
        """
[detectors.spike]
kind = "spike"
threshold = 0.9

[[overrides]]
match = "hs6:*>KG:8542*"
detector = "spike"
threshold = 0.7

[[overrides]]
match = "tier:*"
detector = "spike"
enabled = false
""",
        env={},
    )
    assert settings.threshold_for("spike", "hs6:DE>KG:854231") == 0.7
    assert settings.threshold_for("spike", "hs6:DE>KZ:854231") == 0.9
    assert settings.threshold_for("spike", "tier:DE>KG:T1") is None


EXAMPLES = Path(DEFAULT_CONFIG_PATH).parent / "examples"


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.toml")))
def test_every_example_config_passes_config_check(
    example: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from streams.cli import main

    assert main(["config", "check", str(EXAMPLES / example)]) == 0
    assert f"OK: {EXAMPLES / example}" in capsys.readouterr().err


def test_the_strict_example_only_ever_raises_the_bar() -> None:
    """deploy/examples/strict.toml is the backtest's second config: same windows, series and
    detectors as the shipped one, and every alerting rule at least as strict."""
    from detectors.calibration import SEVERITY_LEVELS

    shipped = load_settings(DEFAULT_CONFIG_PATH, env={})
    strict = load_settings(EXAMPLES / "strict.toml", env={})
    assert strict.windows.grid() == shipped.windows.grid()
    assert strict.series == shipped.series
    assert set(strict.detectors) == set(shipped.detectors)
    for name, spec in strict.detectors.items():
        assert spec.kind == shipped.detectors[name].kind
        assert spec.threshold > shipped.detectors[name].threshold, name
    assert strict.alerts.min_declarations > shipped.alerts.min_declarations
    rank = SEVERITY_LEVELS.index
    assert rank(strict.alerts.min_severity) > rank(shipped.alerts.min_severity)
