"""Builders for declarations and small hand-made streams, shared by unit and integration tests.

Deliberately independent of the generator in ``evaluation.synth``, so a generator bug
cannot hide a pipeline bug.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Callable

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


#: :func:`spike_stream`'s two daily lanes: (hs code, origin, destination, EUR a day).
TWO_LANES = (("85423190", "DE", "KG", 20_000.0), ("09011100", "FR", "KZ", 30_000.0))


def _two_lanes(days: int, rng: random.Random, boost: Callable[[str, int], float]) -> list[bytes]:
    """3-5 noisy declarations a day on each of :data:`TWO_LANES`, their values times
    ``boost(hs_code, day)``, encoded in event-time order."""
    out: list[bytes] = []
    n = 0
    for day in range(days):
        for hs, origin, dest, base in TWO_LANES:
            per_day = 3 + rng.randint(0, 2)
            factor = boost(hs, day)
            for i in range(per_day):
                n += 1
                value = base * factor * math.exp(rng.gauss(0, 0.25)) / 4
                out.append(encode(declaration(
                    declaration_id=f"D{n:07d}", hs_code=hs, exporter_country=origin,
                    destination_country=dest, consignee_country=dest,
                    exporter_id=f"{origin}{rng.randint(1, 20):04d}",
                    consignee_id=f"{dest}{rng.randint(1, 20):04d}",
                    declared_at=START + dt.timedelta(days=day, hours=8 + i),
                    statistical_value_eur=round(value, 2), net_mass_kg=round(value / 2000, 3),
                )))
    return out


def spike_stream(days: int = 70, spike_day: int = 50, factor: float = 12.0,
                 seed: int = 1) -> tuple[list[bytes], str]:
    """Daily DE->KG chips and FR->KZ coffee with noise; chips jump ``factor``x from ``spike_day``.

    Returns the encoded records in event-time order and the spiking series key.
    """
    records = _two_lanes(days, random.Random(seed),
                         lambda hs, day: factor if hs.startswith("8542") and day >= spike_day else 1.0)
    return records, "hs6:DE>KG:854231"


#: (hs code, origin, destination, daily EUR, surges from the surge day) of :func:`rollup_stream`.
ROLLUP_LANES: tuple[tuple[str, str, str, float, bool], ...] = (
    # chapter 85 goods outside the CHPL: four HS6 codes, three origins, into KG
    ("85183000", "DE", "KG", 12_000.0, True),
    ("85371000", "LT", "KG", 9_000.0, True),
    ("85171200", "PL", "KG", 15_000.0, True),
    ("85441100", "DE", "KG", 7_000.0, True),
    # Tier-1 chips into KG from two origins, and a third origin that starts at the surge
    ("85423100", "DE", "KG", 20_000.0, False),
    ("85423100", "PL", "KG", 18_000.0, False),
    ("85423200", "LT", "KG", 0.0, True),
    # Tier-2 telecom parts into KG (another tier key, another partition)
    ("85176200", "DE", "KG", 8_000.0, False),
    # steady goods elsewhere, on other partitions
    ("09011100", "FR", "KZ", 30_000.0, False),
    ("61091000", "IT", "KZ", 25_000.0, False),
)


def rollup_stream(days: int = 70, surge_day: int = 50, factor: float = 6.0,
                  seed: int = 3) -> list[bytes]:
    """Daily lanes of :data:`ROLLUP_LANES`; the marked ones grow ``factor``x from ``surge_day``.

    The surge is spread over several HS6 codes and origins, so it shows in the HS2
    chapter 85 rollup and in the all-origins (transit) view of KG; LT's Tier-1 chips
    (a lane that did not exist) start at 150k EUR a day.
    """
    rng = random.Random(seed)
    out: list[bytes] = []
    n = 0
    for day in range(days):
        for hs, origin, dest, base, surges in ROLLUP_LANES:
            daily = base * (factor if surges and day >= surge_day else 1.0)
            if base == 0.0:
                daily = 150_000.0 if day >= surge_day else 0.0
            if daily <= 0:
                continue
            per_day = 3 + rng.randint(0, 2)
            for i in range(per_day):
                n += 1
                value = daily * math.exp(rng.gauss(0, 0.25)) / per_day
                out.append(encode(declaration(
                    declaration_id=f"R{n:07d}", hs_code=hs, exporter_country=origin,
                    destination_country=dest, consignee_country=dest,
                    exporter_id=f"{origin}{rng.randint(1, 5):04d}",
                    consignee_id=f"{dest}{rng.randint(1, 5):04d}",
                    declared_at=START + dt.timedelta(days=day, hours=8 + i),
                    statistical_value_eur=round(value, 2), net_mass_kg=round(value / 2000, 3),
                )))
    return out


def one_day_spikes_stream(days: int = 66, spikes: tuple[tuple[str, int], ...] = (
        ("85423190", 45), ("85423190", 60)), factor: float = 12.0,
        seed: int = 3) -> list[bytes]:
    """:func:`spike_stream`'s two lanes, each jumping ``factor``x for single days only.

    ``spikes`` are (hs code, day) pairs: by default DE->KG chips spike on days 45 and
    60, so under the shipped config the lane and its three rollups (tier, all origins)
    raise a spike alert each time: one series alerts again after its first alert,
    others alert beside it (what analyst feedback is tested on).
    """
    return _two_lanes(days, random.Random(seed),
                      lambda hs, day: factor if (hs, day) in spikes else 1.0)
