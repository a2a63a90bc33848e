"""The published JSON Schemas match the code, and real JSON Schema validators accept our messages."""

from __future__ import annotations

import json

import jsonschema
import msgspec
import pytest

from streams.events import example_declaration_json
from streams.schemas import SCHEMAS, path_of, render
from tests.factories import spike_stream


@pytest.mark.parametrize("name", SCHEMAS)
def test_published_schema_is_in_sync_with_the_code(name: str) -> None:
    published = json.loads(path_of(name).read_text())
    assert published == render(name), "run `python -m streams.schemas` and commit the result"


def test_a_valid_declaration_validates_against_the_published_schema() -> None:
    schema = json.loads(path_of("trade_declaration").read_text())
    jsonschema.validate(json.loads(example_declaration_json()), schema)


def test_a_declaration_with_negative_mass_fails_the_published_schema() -> None:
    schema = json.loads(path_of("trade_declaration").read_text())
    bad = dict(json.loads(example_declaration_json()), net_mass_kg=-1)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def test_alerts_the_pipeline_emits_validate_against_the_published_schema() -> None:
    from streams.config import DEFAULT_CONFIG_PATH, load_settings
    from streams.offline import run_offline

    records, _ = spike_stream(days=70, spike_day=50)
    alerts = run_offline(records, load_settings(DEFAULT_CONFIG_PATH, env={})).alerts
    assert alerts
    schema = json.loads(path_of("trade_alert").read_text())
    for alert in alerts:
        jsonschema.validate(json.loads(msgspec.json.encode(alert)), schema)
