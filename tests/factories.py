"""Builders for declarations and small hand-made streams, shared by unit and integration tests.

Deliberately independent of the generator in ``streams.synth``, so a generator bug
cannot hide a pipeline bug.
"""

from __future__ import annotations

import datetime as dt
import math
import random

from streams.events import TradeDeclaration, encode

START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def declaration(**overrides: object) -> TradeDeclaration:
    fields: dict[str, object] = dict(
        schema_version=1, declaration_id="D0", declared_at=START, exporter_id="DE0001",
        exporter_country="DE", consignee_id="KG0001", consignee_country="KG",
        destination_country="KG", hs_code="85423190", net_mass_kg=2.0,
        statistical_value_eur=10_000.0, customs_procedure="1000", transport_mode=4,
    )
    fields.update(overrides)
    return TradeDeclaration(**fields)  # type: ignore[arg-type]


def spike_stream(days: int = 70, spike_day: int = 50, factor: float = 12.0,
                 seed: int = 1) -> tuple[list[bytes], str]:
    """Daily DE->KG chips and FR->KZ coffee with noise; chips jump ``factor``x from ``spike_day``.

    Returns the encoded records in event-time order and the spiking series key.
    """
    rng = random.Random(seed)
    out: list[bytes] = []
    n = 0
    for day in range(days):
        for hs, origin, dest, base in (("85423190", "DE", "KG", 20_000.0),
                                       ("09011100", "FR", "KZ", 30_000.0)):
            per_day = 3 + rng.randint(0, 2)
            boost = factor if (hs.startswith("8542") and day >= spike_day) else 1.0
            for i in range(per_day):
                n += 1
                value = base * boost * math.exp(rng.gauss(0, 0.25)) / 4
                out.append(encode(declaration(
                    declaration_id=f"D{n:07d}", hs_code=hs, exporter_country=origin,
                    destination_country=dest, consignee_country=dest,
                    exporter_id=f"{origin}{rng.randint(1, 20):04d}",
                    consignee_id=f"{dest}{rng.randint(1, 20):04d}",
                    declared_at=START + dt.timedelta(days=day, hours=8 + i),
                    statistical_value_eur=round(value, 2), net_mass_kg=round(value / 2000, 3),
                )))
    return out, "hs6:DE>KG:854231"
