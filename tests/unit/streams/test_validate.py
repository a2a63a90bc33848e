"""Every kind of bad input is rejected with its own reason code and a useful detail."""

from __future__ import annotations

import json

import pytest

from streams.events import example_declaration_json
from streams.validate import REJECT_REASONS, RejectedDeclaration, ValidationLimits, validate_declaration

NOW = 1_800_000_000.0  # 2027-01-15
LIMITS = ValidationLimits(max_message_bytes=4096, max_future_seconds=86_400)
#: Large enough for the deeply nested record.
ROOMY = ValidationLimits(max_message_bytes=1_000_000, max_future_seconds=86_400)


def _with(**changes: object) -> bytes:
    record = json.loads(example_declaration_json())
    for key, value in changes.items():
        if value is _DROP:
            del record[key]
        else:
            record[key] = value
    return json.dumps(record).encode()


_DROP = object()

BAD_INPUT = {
    "not JSON": (b'{"schema_version": 1, "declaration_id": ', "not_json"),
    "not UTF-8": (example_declaration_json().replace(b"Microcontrollers", b"Micro\xff\xfe"), "not_utf8"),
    "JSON but not an object": (b"[1, 2, 3]", "wrong_type"),
    "missing field": (_with(hs_code=_DROP), "missing_field"),
    "mistyped field": (_with(statistical_value_eur="48200"), "wrong_type"),
    "negative mass": (_with(net_mass_kg=-12.5), "negative_quantity"),
    "negative value": (_with(statistical_value_eur=-1.0), "negative_quantity"),
    "malformed HS code": (_with(hs_code="8542.31"), "malformed_hs_code"),
    "unknown country code": (_with(destination_country="XX"), "unknown_country"),
    "lower-case country": (_with(exporter_country="de"), "unknown_country"),
    "unknown transit country": (_with(transit_route=["PL", "QQ"]), "unknown_country"),
    "oversized message": (_with(goods_description="x" * 400) + b" " * 5000, "oversized"),
    "timestamp far in the future": (_with(declared_at="2031-01-01T00:00:00Z"), "future_timestamp"),
    "naive timestamp": (_with(declared_at="2024-03-04T09:30:00"), "invalid_timestamp"),
    "unparseable timestamp": (_with(declared_at="last tuesday"), "invalid_timestamp"),
    "unsupported schema version": (_with(schema_version=2), "unsupported_schema_version"),
    "bad customs procedure": (_with(customs_procedure="10"), "invalid_field"),
    "1e308 EUR": (_with(statistical_value_eur=1e308), "value_out_of_range"),
    "ten million tonnes in one declaration": (_with(net_mass_kg=1e10), "value_out_of_range"),
    "absurd supplementary quantity": (_with(supplementary_quantity=1e15), "value_out_of_range"),
    "a number too large for a float": (
        example_declaration_json().replace(b"48200.0", b"1e999"), "non_finite_value"),
    "100k-deep nesting": (
        example_declaration_json()[:-1] + b',"x":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        "too_deeply_nested"),
}


@pytest.mark.parametrize("raw,reason", BAD_INPUT.values(), ids=BAD_INPUT.keys())
def test_bad_input_is_rejected_with_its_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(RejectedDeclaration) as info:
        validate_declaration(raw, now_ts=NOW, limits=LIMITS if reason == "oversized" else ROOMY)
    assert info.value.reason == reason
    assert info.value.reason in REJECT_REASONS
    assert info.value.detail


def test_detail_names_the_json_path_of_the_bad_field() -> None:
    with pytest.raises(RejectedDeclaration) as info:
        validate_declaration(_with(net_mass_kg=-1), now_ts=NOW, limits=LIMITS)
    assert "$.net_mass_kg" in info.value.detail


def test_a_valid_declaration_passes_and_keeps_its_fields() -> None:
    d = validate_declaration(example_declaration_json(), now_ts=NOW, limits=LIMITS)
    assert (d.hs6, d.destination_country, d.statistical_value_eur) == ("854231", "KG", 48200.0)
    assert d.declared_at.utcoffset() is not None


def test_unknown_extra_fields_are_ignored_for_forward_compatibility() -> None:
    d = validate_declaration(_with(new_optional_field="x"), now_ts=NOW, limits=LIMITS)
    assert d.declaration_id == "24DE0000000000001A"


def test_timestamp_within_the_skew_tolerance_is_accepted() -> None:
    near_future = _with(declared_at="2027-01-15T12:00:00Z")  # ~4 h after NOW
    assert validate_declaration(near_future, now_ts=NOW, limits=LIMITS)


def test_a_non_finite_value_from_any_decoder_is_rejected() -> None:
    """JSON cannot carry NaN or infinity, but the check does not rely on that."""
    from streams.validate import _check_quantities
    from tests.factories import declaration

    with pytest.raises(RejectedDeclaration) as info:
        _check_quantities(declaration(net_mass_kg=float("nan")), LIMITS)
    assert info.value.reason == "non_finite_value"


def test_the_largest_plausible_values_pass() -> None:
    big = _with(statistical_value_eur=2.5e9, net_mass_kg=4e8, supplementary_quantity=1e9)
    assert validate_declaration(big, now_ts=NOW, limits=LIMITS).statistical_value_eur == 2.5e9


def test_the_maxima_come_from_the_config() -> None:
    from streams.config import load_settings_text

    settings = load_settings_text("[validation]\nmax_statistical_value_eur = 1000", env={})
    limits = ValidationLimits.from_settings(settings.validation)
    with pytest.raises(RejectedDeclaration) as info:
        validate_declaration(_with(statistical_value_eur=1001.0), now_ts=NOW, limits=limits)
    assert info.value.reason == "value_out_of_range" and "1000" in info.value.detail
