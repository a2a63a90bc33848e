"""Published JSON Schemas of the wire contracts, generated from the msgspec types.

``python -m streams.schemas`` rewrites the ``*.json`` files beside this module;
``tests/unit/streams/test_schemas.py`` fails when they drift from the code, so
the published schema and the validator can never disagree.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec

from streams.events import (
    ALERT_SCHEMA_VERSION,
    DECLARATION_SCHEMA_VERSION,
    INCIDENT_SCHEMA_VERSION,
    TradeAlert,
    TradeDeclaration,
    TradeIncident,
)

HERE = Path(__file__).resolve().parent

SCHEMAS: dict[str, tuple[type, int, str]] = {
    "trade_declaration": (TradeDeclaration, DECLARATION_SCHEMA_VERSION,
                          "One export declaration on trade.declarations (UTF-8 JSON, key = CHPL tier or HS2 chapter)."),
    "trade_alert": (TradeAlert, ALERT_SCHEMA_VERSION,
                    "One alert on trade.alerts (UTF-8 JSON, key = series key). alert_id is "
                    "deterministic per (detector, series, window): deduplicate on it. "
                    "surprise (-log10 p, unsaturated) and excess_eur rank alerts; incident_id "
                    "names the alert's incident on trade.incidents. config_version, "
                    "config_hash and chpl_version say what it was judged with, state_version "
                    "which models scored it (optional additions to v1: older alerts lack "
                    "them)."),
    "trade_incident": (TradeIncident, INCIDENT_SCHEMA_VERSION,
                       "One incident on trade.incidents (UTF-8 JSON, key = incident_id): the "
                       "alerts of one window on one destination and goods family. incident_id is "
                       "deterministic per (window, destination, goods family); keep the highest "
                       "revision of each id. config_version, config_hash and chpl_version as "
                       "on alerts (optional additions to v1)."),
}


def render(name: str) -> dict[str, Any]:
    tp, version, description = SCHEMAS[name]
    schema = msgspec.json.schema(tp)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://tradewatch.example/schemas/{name}.v{version}.json",
        "title": f"{tp.__name__} v{version}",
        "description": description,
        **schema,
    }


def path_of(name: str) -> Path:
    return HERE / f"{name}.v{SCHEMAS[name][1]}.json"


def main() -> None:
    for name in SCHEMAS:
        path_of(name).write_text(json.dumps(render(name), indent=2, sort_keys=True) + "\n")
        print(f"wrote {path_of(name)}")


if __name__ == "__main__":
    main()
