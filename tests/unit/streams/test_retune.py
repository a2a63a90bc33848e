"""Live retune, without a broker: which configs a running worker adopts, when, and what it keeps.

The stream is :func:`tests.factories.spike_stream`: DE->KG chips jump twelvefold on
day 50 (2024-02-20); under the shipped config ``spike`` alerts that day, ``volume``
the day after, ``changepoint`` the day after that. A config published on day 45
therefore reaches every one of those windows; one published on day 50, while the
spike's window is open, must leave that window to the old config.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import msgspec
import pytest
from prometheus_client import CollectorRegistry

from detectors.reference import CHPL_EDITION, CHPL_VERSION
from streams.app import WorkerLoop
from streams.audit import config_hash
from streams.config import DEFAULT_CONFIG_PATH, Settings, load_settings, load_settings_text
from streams.config_topic import PublishedConfig
from streams.events import TradeAlert, decode_declaration
from streams.metrics import PipelineMetrics
from streams.offline import run_offline
from streams.pipeline import PartitionPipeline
from streams.retune import ConfigRejected, candidate_settings, check_live
from streams.state_codec import RestoredState, decode_envelope, encode_envelope, encode_object
from streams.worker import RecordHandler
from tests.factories import spike_stream

SHIPPED = DEFAULT_CONFIG_PATH.read_text()
SPIKE_DAY = dt.date(2024, 2, 20)


def _shipped() -> Settings:
    return load_settings_text(SHIPPED, env={})


def _variant(version: str, **sections: str) -> tuple[Settings, str]:
    """The shipped config with another label and ``[section]`` bodies appended or replaced."""
    text = re.sub(r'^config_version = ".*"$', f'config_version = "{version}"', SHIPPED,
                  count=1, flags=re.M)
    for header, body in sections.items():
        name = header.replace("__", ".")
        pattern = rf"^\[{re.escape(name)}\]\n(?:(?!\[).*\n)*"
        replaced = f"[{name}]\n{body}\n\n"
        text = re.sub(pattern, lambda _: replaced, text, count=1, flags=re.M) \
            if re.search(pattern, text, flags=re.M) else text + "\n" + replaced
    return load_settings_text(text, env={}), text


def _spec(settings: Settings, name: str, params: dict[str, object] | None = None,
          **changes: object) -> str:
    """One detector's section as TOML, from the effective settings, with ``changes``
    (and ``params`` merged into its parameters)."""
    from streams.config import _toml_value

    spec = msgspec.to_builtins(settings.detectors[name])
    spec.update(changes)
    spec["params"] = {**spec["params"], **(params or {})}
    return "\n".join(f"{k} = {_toml_value(v)}" for k, v in spec.items())


def _index_on(records: list[bytes], day: dt.date, hour: int = 0) -> int:
    """The index of the first record declared on ``day`` at or after ``hour``."""
    return next(i for i, raw in enumerate(records)
                if (t := decode_declaration(raw).declared_at).date() == day and t.hour >= hour)


def _by(alerts: list[TradeAlert]) -> dict[tuple[str, dt.date], list[TradeAlert]]:
    out: dict[tuple[str, dt.date], list[TradeAlert]] = {}
    for a in alerts:
        out.setdefault((a.detector, a.window_start.date()), []).append(a)
    return out


def _clock() -> float:
    return 1_800_000_000.0


# -- which configs can change live -----------------------------------------------------


@pytest.mark.parametrize(("section", "body"), [
    ("detectors__spike", 'kind = "spike"\nthreshold = 0.5'),
    ("detectors__spike2", 'kind = "spike"\nthreshold = 0.95'),
    ("alerts", 'scope = "all"\ncooldown = "14d"'),
    ("validation", "max_net_mass_kg = 1e8"),
])
def test_thresholds_detectors_and_alert_rules_can_change_live(section: str, body: str) -> None:
    new, _ = _variant("v2", **{section: body})
    check_live(_shipped(), new)


@pytest.mark.parametrize(("section", "body", "path"), [
    ("windows", "size_seconds = 3600\ngrace_seconds = 600", "windows.grace_seconds"),
    ("kafka", 'bootstrap_servers = "elsewhere:9092"', "kafka.bootstrap_servers"),
    ("topics", 'alerts = "other.alerts"', "topics.alerts"),
    ("validation", "dedup_horizon_seconds = 345600", "validation.dedup_horizon_seconds"),
])
def test_where_the_worker_runs_and_the_shape_of_its_state_cannot(
        section: str, body: str, path: str) -> None:
    new, _ = _variant("v2", **{section: body})
    with pytest.raises(ConfigRejected, match=re.escape(path)) as caught:
        check_live(_shipped(), new)
    assert caught.value.reason == "not_live"


def test_other_series_families_cannot_change_live() -> None:
    without_transit = re.sub(r'^\[\[series\]\]\nname = "transit_tier".*\n(?:(?!\[).*\n)*', "",
                             SHIPPED, count=1, flags=re.M)
    new = load_settings_text(without_transit, env={})
    assert len(new.series) == len(_shipped().series) - 1
    with pytest.raises(ConfigRejected, match=r"^series") as caught:
        check_live(_shipped(), new)
    assert caught.value.reason == "not_live"


def test_a_config_this_worker_cannot_validate_is_rejected_naming_the_key() -> None:
    text = SHIPPED + '\n[detectors.mystery]\nkind = "crystal_ball"\n'
    with pytest.raises(ConfigRejected, match=r"detectors\.mystery\.kind") as caught:
        candidate_settings(text, env={})
    assert caught.value.reason == "invalid"


# -- when a partition switches, and what it keeps --------------------------------------


def test_a_config_published_while_a_window_is_open_applies_from_the_next_window() -> None:
    """Published at noon of the spike day: that window is still judged (and stamped) under
    the old config; the next windows are not, so volume, disabled in the new one, is silent."""
    records, _ = spike_stream()
    old = _shipped()
    new, _ = _variant("v2", detectors__volume=_spec(old, "volume", enabled=False))
    before = _by(run_offline(records, old, now=_clock).alerts)
    switched = run_offline(records, old, now=_clock,
                           retunes={_index_on(records, SPIKE_DAY, hour=9): new})
    after = _by(switched.alerts)

    assert after[("spike", SPIKE_DAY)] == before[("spike", SPIKE_DAY)]
    assert {a.config_version for a in after[("spike", SPIKE_DAY)]} == {old.config_version}
    assert ("volume", SPIKE_DAY + dt.timedelta(days=1)) in before
    assert not [k for k in after if k[0] == "volume"]
    later = [a for a in switched.alerts if a.window_start.date() > SPIKE_DAY]
    assert later and {(a.config_version, a.config_hash) for a in later} == {("v2", config_hash(new))}


def test_state_is_kept_across_a_retune_no_detector_starts_cold() -> None:
    """Published five days before the spike, disabling spike only: volume and change-point
    raise exactly their alerts of the unchanged run, which they could not within their
    warm-up had they started cold; only the audit fields differ."""
    records, _ = spike_stream()
    old = _shipped()
    new, _ = _variant("v2", detectors__spike=_spec(old, "spike", enabled=False))
    before = _by(run_offline(records, old, now=_clock).alerts)
    after = _by(run_offline(records, old, now=_clock,
                            retunes={_index_on(records, SPIKE_DAY - dt.timedelta(days=5)): new}).alerts)

    assert not [k for k in after if k[0] == "spike"]
    kept = {k: v for k, v in before.items() if k[0] != "spike"}
    assert kept, "the stream must raise volume or change-point alerts"
    unstamped = {k: [msgspec.structs.replace(a, config_version="", config_hash="") for a in v]
                 for k, v in after.items()}
    assert unstamped == {k: [msgspec.structs.replace(a, config_version="", config_hash="")
                             for a in v] for k, v in kept.items()}


def test_a_detector_with_new_parameters_starts_fresh_and_the_others_keep_their_state() -> None:
    settings = _shipped()
    records, _ = spike_stream()
    pipeline = PartitionPipeline(settings, clock=_clock)
    for raw in records[:300]:
        pipeline.process(decode_declaration(raw))
    scoring = pipeline.scoring
    scoring.settle()  # every series live, to hold its detector objects
    key = next(iter(scoring._series))
    spike = scoring._series[key].detectors["spike"]
    learned = encode_object(scoring._series[key].detectors["volume"])
    series = pipeline.series_counts()

    new, _ = _variant("v2", detectors__volume=_spec(settings, "volume", {"rate": 0.1}), detectors__extra='kind = "volume"')
    assert sorted(pipeline.reconfigure(new)) == ["extra", "volume"]
    state = scoring._series[key]
    assert state.detectors["spike"] is spike  # the same object, learning on
    assert encode_object(state.detectors["volume"]) != learned  # untrained
    assert state.detectors["volume"].rate == 0.1
    assert set(state.detectors) >= {"spike", "volume", "extra", "changepoint"}
    assert pipeline.series_counts() == series
    assert pipeline.reconfigure(new) == []  # the same again changes nothing


def test_state_saved_under_one_config_restores_under_the_next() -> None:
    """Thresholds and parameters are not in the state's config fingerprint: the state
    restores, and only the detector whose parameters changed starts fresh."""
    settings = _shipped()
    records, _ = spike_stream()
    pipeline = PartitionPipeline(settings, clock=_clock)
    for raw in records[:300]:
        pipeline.process(decode_declaration(raw))
    raw = encode_envelope("t", 0, pipeline, 300, settings)
    new, _ = _variant("v2", detectors__spike=_spec(settings, "spike", threshold=0.5),
        detectors__volume=_spec(settings, "volume", {"rate": 0.1}))
    restored = decode_envelope(raw, "t", 0, new, clock=_clock)
    assert isinstance(restored, RestoredState), restored
    pipeline.scoring.settle()  # every series live, to read its detectors
    restored.pipeline.scoring.settle()
    key = next(iter(pipeline.scoring._series))
    before = pipeline.scoring._series[key].detectors
    after = restored.pipeline.scoring._series[key].detectors
    assert encode_object(after["spike"]) == encode_object(before["spike"])
    assert encode_object(after["changepoint"]) == encode_object(before["changepoint"])
    assert after["volume"].rate == 0.1 and encode_object(after["volume"]) != encode_object(before["volume"])
    assert restored.pipeline.audit.config_version == "v2"


# -- the worker's side: adopt or reject, and say so -------------------------------------


def _loop() -> tuple[WorkerLoop, CollectorRegistry]:
    settings = _shipped()
    registry = CollectorRegistry()
    metrics = PipelineMetrics.create(registry, detectors=list(settings.detectors))
    metrics.set_build_info("test", settings.config_version, config_hash(settings))
    handler = RecordHandler(settings, metrics, clock=_clock)
    return WorkerLoop(settings, handler, metrics), registry


def _record(text: str, version: str = "v2") -> bytes:
    return msgspec.json.encode(PublishedConfig(
        consumer_group="g", config_version=version, config_hash="", published_at=0.0,
        source="new.toml", toml=text))


def _rejected(registry: CollectorRegistry, reason: str) -> float | None:
    return registry.get_sample_value("tradewatch_config_rejected_total", {"reason": reason})


def _build_label(registry: CollectorRegistry) -> str:
    for metric in registry.collect():
        for sample in metric.samples:
            if sample.name == "tradewatch_build_info":
                return f"{sample.labels['config_version']}@{sample.labels['config_hash']}"
    raise AssertionError("no tradewatch_build_info")


def test_a_worker_adopts_a_live_config_and_labels_its_build_info() -> None:
    loop, registry = _loop()
    records, _ = spike_stream(days=10)
    for offset, raw in enumerate(records[:20]):
        loop.handler.handle(raw, key=None, topic="t", partition=0, offset=offset)
    new, text = _variant("v2", detectors__spike='kind = "spike"\nthreshold = 0.5')
    assert loop.apply_published(_record(text))
    assert loop.handler.settings is loop.settings and loop.settings.config_version == "v2"
    assert _build_label(registry) == f"v2@{config_hash(new)}"
    # partition 0 has an open window: it switches once that window closes
    assert registry.get_sample_value("tradewatch_config_pending_partitions") == 1
    assert not loop.apply_published(_record(text)), "the same config again is not news"


@pytest.mark.parametrize(("raw", "reason"), [
    (b"{not json", "malformed"),
    (_record('[detectors.x]\nkind = "crystal_ball"\n'), "invalid"),
    (_record(_variant("v2", windows="size_seconds = 3600\ngrace_seconds = 600")[1]), "not_live"),
])
def test_a_rejected_config_keeps_the_old_one_and_moves_the_metric(raw: bytes, reason: str) -> None:
    loop, registry = _loop()
    before = loop.settings
    label = _build_label(registry)
    assert not loop.apply_published(raw)
    assert loop.settings is before and loop.handler.settings is before
    assert _rejected(registry, reason) == 1
    assert _build_label(registry) == label


# -- the audit fields ------------------------------------------------------------------


def test_every_alert_and_incident_carries_the_config_and_chpl_versions() -> None:
    records, _ = spike_stream()
    settings = _shipped()
    result = run_offline(records, settings, now=_clock)
    assert result.alerts and result.incidents
    stamps = {(x.config_version, x.config_hash, x.chpl_version)
              for x in [*result.alerts, *result.incidents]}
    assert stamps == {(settings.config_version, config_hash(settings), CHPL_VERSION)}


def test_the_config_hash_ignores_where_the_worker_runs_and_the_label() -> None:
    base = _shipped()
    elsewhere, _ = _variant("another label", kafka='bootstrap_servers = "far:9092"',
                            topics='alerts = "x.alerts"', worker="web_port = 7000")
    assert config_hash(elsewhere) == config_hash(base)
    retuned, _ = _variant("v2", alerts='min_severity = "high"')
    assert config_hash(retuned) != config_hash(base)


def test_the_chpl_version_names_the_edition_the_sources_state() -> None:
    sources = (Path(DEFAULT_CONFIG_PATH).parents[1] / "detectors" / "data" / "SOURCES.md").read_text()
    edition = dt.date.fromisoformat(CHPL_EDITION)
    assert f"{edition:%B} {edition.day}, {edition.year}" in sources
    assert CHPL_VERSION.startswith(CHPL_EDITION + "+")


# -- publishing ------------------------------------------------------------------------


def test_an_invalid_file_is_never_published(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """It fails validation before any connection: the cluster named is not even there."""
    from streams.cli import main

    bad = tmp_path / "bad.toml"
    bad.write_text('[kafka]\nbootstrap_servers = "127.0.0.1:1"\n[windows]\nsize_secnds = 3600\n')
    assert main(["config", "publish", str(bad)]) == 2
    assert "config error at windows.size_secnds: unknown key" in capsys.readouterr().err


def test_the_shipped_config_loads_as_a_worker_would_load_it_from_the_topic() -> None:
    assert candidate_settings(SHIPPED, env={}).to_dict() == load_settings(
        DEFAULT_CONFIG_PATH, env={}).to_dict()
