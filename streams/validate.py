"""Turn raw record bytes into a valid declaration, or into a rejection with a reason.

Every failure maps to one code from :data:`REJECT_REASONS`, a bounded set, so
it can be a Prometheus label and a DLQ header that operators filter on. The
human-readable detail keeps the JSON path of the bad field.

>>> from streams.events import example_declaration_json
>>> limits = ValidationLimits()
>>> validate_declaration(example_declaration_json(), now_ts=1.8e9, limits=limits).hs6
'854231'
>>> try:
...     validate_declaration(b'{"schema_version": 1', now_ts=1.8e9, limits=limits)
... except RejectedDeclaration as err:
...     print(err.reason)
not_json
"""

from __future__ import annotations

import dataclasses
import math
import re

import msgspec

from detectors.reference import COUNTRY_CODES
from streams.config import ValidationSettings
from streams.events import TradeDeclaration, decode_declaration

__all__ = ["REJECT_REASONS", "RejectedDeclaration", "ValidationLimits", "validate_declaration"]

#: Every reason a record can be dead-lettered for. The last two are not
#: validation failures but the pipeline's: ``duplicate_declaration`` (its id was
#: already accepted on the partition) and ``late_event`` (valid, but its window
#: had already closed).
REJECT_REASONS: tuple[str, ...] = (
    "oversized",
    "not_utf8",
    "not_json",
    "too_deeply_nested",
    "missing_field",
    "wrong_type",
    "negative_quantity",
    "malformed_hs_code",
    "unknown_country",
    "non_finite_value",
    "value_out_of_range",
    "invalid_timestamp",
    "future_timestamp",
    "unsupported_schema_version",
    "invalid_field",
    "duplicate_declaration",
    "late_event",
)

_COUNTRY_FIELDS = ("exporter_country", "consignee_country", "destination_country")
_PATH = re.compile(r"at `\$\.?([A-Za-z_]*)")


class RejectedDeclaration(ValueError):
    """A record that cannot enter the pipeline; ``reason`` is one of REJECT_REASONS."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclasses.dataclass(frozen=True, slots=True)
class ValidationLimits:
    """Bounds a valid record stays within.

    ``max_future_seconds`` tolerates clock skew between customs systems; a
    declaration lodged further ahead than that is a producer bug, and letting
    it in would push the event-time watermark forward and close every window early.
    The ``max_*`` quantities are the largest plausible per declaration: one record
    of 1e308 EUR would swamp every total it enters and raise critical alerts.
    """

    max_message_bytes: int = 65_536
    max_future_seconds: float = 86_400.0
    max_statistical_value_eur: float = 1e10
    max_net_mass_kg: float = 1e9
    max_supplementary_quantity: float = 1e12

    @classmethod
    def from_settings(cls, v: ValidationSettings) -> ValidationLimits:
        return cls(v.max_message_bytes, v.max_future_seconds, v.max_statistical_value_eur,
                   v.max_net_mass_kg, v.max_supplementary_quantity)


def validate_declaration(raw: bytes, *, now_ts: float, limits: ValidationLimits) -> TradeDeclaration:
    """Decode, type-check and semantically check one record; raise RejectedDeclaration."""
    if len(raw) > limits.max_message_bytes:
        raise RejectedDeclaration(
            "oversized", f"{len(raw)} bytes exceeds max_message_bytes={limits.max_message_bytes}"
        )
    try:
        declaration = decode_declaration(raw)
    except UnicodeDecodeError as err:
        raise RejectedDeclaration("not_utf8", str(err)) from None
    except msgspec.ValidationError as err:
        raise RejectedDeclaration(_classify(str(err)), str(err)) from None
    except msgspec.DecodeError as err:
        raise RejectedDeclaration("not_json", str(err)) from None
    except RecursionError:
        raise RejectedDeclaration(
            "too_deeply_nested", "JSON nested deeper than the decoder's recursion limit") from None
    _check_countries(declaration)
    _check_quantities(declaration, limits)
    if declaration.declared_ts > now_ts + limits.max_future_seconds:
        raise RejectedDeclaration(
            "future_timestamp",
            f"declared_at {declaration.declared_at.isoformat()} is more than "
            f"{limits.max_future_seconds:.0f}s ahead of the worker's clock",
        )
    return declaration


def _check_countries(declaration: TradeDeclaration) -> None:
    for field in _COUNTRY_FIELDS:
        code = getattr(declaration, field)
        if code not in COUNTRY_CODES:
            raise RejectedDeclaration("unknown_country", f"{code!r} at `$.{field}` is not ISO 3166-1")
    for i, code in enumerate(declaration.transit_route):
        if code not in COUNTRY_CODES:
            raise RejectedDeclaration(
                "unknown_country", f"{code!r} at `$.transit_route[{i}]` is not ISO 3166-1"
            )


def _check_quantities(declaration: TradeDeclaration, limits: ValidationLimits) -> None:
    for field, limit in (
        ("statistical_value_eur", limits.max_statistical_value_eur),
        ("net_mass_kg", limits.max_net_mass_kg),
        ("supplementary_quantity", limits.max_supplementary_quantity),
    ):
        value = getattr(declaration, field)
        if value is None:
            continue
        if not math.isfinite(value):  # JSON has no NaN/Infinity; another decoder might
            raise RejectedDeclaration("non_finite_value", f"{value!r} at `$.{field}`")
        if value > limit:
            raise RejectedDeclaration(
                "value_out_of_range", f"{value!r} at `$.{field}` exceeds the configured maximum {limit:g}")


def _classify(message: str) -> str:
    """Map a msgspec validation message to a reason code (messages are stable API text)."""
    match = _PATH.search(message)
    field = match.group(1) if match else ""
    if message.startswith("Object missing required field"):
        return "missing_field"
    if message.startswith("Number out of range"):  # e.g. 1e999: infinite as a float
        return "non_finite_value"
    if field == "schema_version":
        return "unsupported_schema_version"
    if field == "declared_at":
        return "invalid_timestamp" if ", got `" not in message else "wrong_type"
    if ", got `" in message:
        return "wrong_type"
    if ">= 0" in message:
        return "negative_quantity"
    if field == "hs_code":
        return "malformed_hs_code"
    if field.endswith("_country") or field == "transit_route":
        return "unknown_country"
    return "invalid_field"
