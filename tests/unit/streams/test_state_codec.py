"""Partition state as data: a stream cut in two by save/restore raises the alerts of one run.

And nothing but data comes back: tampered, older-format, other-config and crafted
records are refused with a reason, never executed.
"""

from __future__ import annotations

import array
import collections
import math
import pickle
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest

from detectors.checks import sample_inputs
from detectors.registry import DETECTOR_KINDS, build
from streams import state_codec
from streams.config import DEFAULT_CONFIG_PATH, Settings, load_settings, load_settings_text
from streams.events import TradeDeclaration
from streams.keys import partition_for, partition_key
from streams.pipeline import PartitionPipeline
from streams.state_codec import (
    FORMAT_VERSION,
    Refusal,
    RestoredState,
    StateFormatError,
    StateNotPersistable,
    decode_envelope,
    decode_object,
    encode_envelope,
    encode_object,
)
from streams.validate import RejectedDeclaration, ValidationLimits, validate_declaration
from tests.factories import spike_stream

TOPIC = "trade.declarations"


def _settings() -> Settings:
    return load_settings(DEFAULT_CONFIG_PATH, env={})


def _clock() -> float:
    return 1_700_000_000.0  # fixed: alerts carry emitted_at, so whole alerts compare equal


def _by_partition(records: list[bytes], partitions: int) -> list[list[TradeDeclaration]]:
    limits = ValidationLimits(65_536, 86_400.0)
    out: list[list[TradeDeclaration]] = [[] for _ in range(partitions)]
    for raw in records:
        try:
            d = validate_declaration(raw, now_ts=2e9, limits=limits)
        except RejectedDeclaration:
            continue
        out[partition_for(partition_key(d.hs_code), partitions)].append(d)
    return out


def _feed(pipeline: PartitionPipeline, declarations: list[TradeDeclaration]) -> list[Any]:
    alerts = []
    for d in declarations:
        alerts += pipeline.process(d)[1]
    return alerts


def _restored(pipeline: PartitionPipeline, partition: int, offset: int,
              settings: Settings) -> PartitionPipeline:
    raw = encode_envelope(TOPIC, partition, pipeline, offset, settings)
    state = decode_envelope(raw, TOPIC, partition, settings, clock=_clock)
    assert isinstance(state, RestoredState), state
    assert state.next_offset == offset
    return state.pipeline


def _assert_cut_changes_nothing(records: list[bytes], settings: Settings,
                                partitions: tuple[int, ...] | None = None) -> int:
    """Per partition: one pipeline runs the whole stream; at half-time a copy is saved and
    restored, and the restored copy must raise exactly the alerts the original raises next."""
    count = settings.topics.partitions
    total = 0
    for p, declarations in enumerate(_by_partition(records, count)):
        if partitions is not None and p not in partitions:
            continue
        cut = len(declarations) // 2
        original = PartitionPipeline(settings, clock=_clock, partition=p)
        total += len(_feed(original, declarations[:cut]))
        restored = _restored(original, p, cut, settings)
        expected = _feed(original, declarations[cut:]) + original.flush()
        got = _feed(restored, declarations[cut:]) + restored.flush()
        assert got == expected, f"partition {p}"
        total += len(expected)
    return total


def test_a_spike_stream_cut_in_two_raises_exactly_the_alerts_of_one_run() -> None:
    records, _ = spike_stream(days=70, spike_day=45)
    assert _assert_cut_changes_nothing(records, _settings()) > 0


@pytest.mark.parametrize("example", ["week.toml", "month.toml"])
def test_calendar_windows_cut_in_two_raise_exactly_the_alerts_of_one_run(example: str) -> None:
    """The grid (Berlin weeks, months) and the weekday activity model travel with the state."""
    settings = load_settings(Path(DEFAULT_CONFIG_PATH).parent / "examples" / example, env={})
    records, _ = spike_stream(days=300, spike_day=213)
    assert _assert_cut_changes_nothing(records, settings) > 0


def test_the_small_scenario_set_cut_in_two_raises_exactly_the_alerts_of_one_run() -> None:
    """One partition of the small scenario set (~30k declarations, cut at day ~60 of 120)."""
    from evaluation.scorecard import labelled_stream

    records = list(labelled_stream("small").records)
    assert _assert_cut_changes_nothing(records, _settings(), partitions=(0,)) > 0


def _cases() -> list[Any]:
    return [pytest.param(cls, params, id=f"{kind}[{i}]")
            for kind, cls in sorted(DETECTOR_KINDS.items())
            for i, params in enumerate(cls._unit_test_params())
            if not params.get("hst_trees")]


@pytest.mark.parametrize(("cls", "params"), _cases())
def test_every_detector_scores_the_same_after_a_round_trip(cls: type, params: dict[str, Any]) -> None:
    detector = cls(**params)
    inputs = sample_inputs(detector)
    for x in inputs[: len(inputs) // 2]:
        detector.learn_one(x)
    restored = decode_object(encode_object(detector))
    assert type(restored) is cls
    for x in inputs:
        before, after = detector.score_one(x), restored.score_one(x)
        assert before == after or (math.isnan(before) and math.isnan(after))
        detector.learn_one(x)
        restored.learn_one(x)


def test_unit_value_with_half_space_trees_is_refused_clearly() -> None:
    with pytest.raises(StateNotPersistable, match="hst_trees"):
        state_codec.check_persistable(load_settings_text(
            '[detectors.uv]\nkind = "unit_value"\nparams = { hst_trees = 3 }\n', env={}))
    with pytest.raises(StateNotPersistable, match="allowlist"):
        encode_object(build("unit_value", {"hst_trees": 3}))
    state_codec.check_persistable(_settings())  # the shipped config is fine


def test_plain_values_keep_their_types() -> None:
    value = {
        ("spike", "hs6:DE>KG:854231"): 1.5, 86_400.0: [math.inf, -math.inf], "s": {1, 2},
        "z": frozenset({"a"}), "q": collections.deque([1, 2], maxlen=5), "b": bytearray(b"xy"),
        "a": array.array("Q", [1, 2**64 - 1]), "n": np.arange(6, dtype=np.uint64).reshape(2, 3),
        "big": 2**80, "t": (1, "x", None, True, b"raw"),
    }
    back = decode_object(encode_object(value))
    assert back.keys() == value.keys()
    for k, v in value.items():
        if isinstance(v, np.ndarray):
            assert back[k].dtype == v.dtype and (back[k] == v).all()
        else:
            assert type(back[k]) is type(v) and back[k] == v, k
    assert back["q"].maxlen == 5
    assert math.isnan(decode_object(encode_object(math.nan)))


def test_objects_off_the_allowlist_are_not_written() -> None:
    with pytest.raises(StateNotPersistable, match="allowlist"):
        encode_object({"x": Path("/")})
    with pytest.raises(StateNotPersistable, match="numpy dtype"):
        encode_object(np.array([object()]))


# -- refusals ------------------------------------------------------------------------


def _envelope(settings: Settings | None = None, partition: int = 1) -> tuple[bytes, Settings]:
    settings = settings or _settings()
    pipeline = PartitionPipeline(settings, clock=_clock, partition=partition)
    records, _ = spike_stream(days=20)
    _feed(pipeline, _by_partition(records, settings.topics.partitions)[partition] or [])
    return encode_envelope(TOPIC, partition, pipeline, 99, settings), settings


def _fields(raw: bytes) -> dict[str, Any]:
    return msgspec.msgpack.decode(raw)


def _resigned(fields: dict[str, Any]) -> bytes:
    """An envelope whose digest matches its (altered) content: only the later checks can refuse it."""
    e = msgspec.convert(fields, state_codec._Envelope)
    e.sha256 = state_codec._digest(e)
    return msgspec.msgpack.encode(e)


def _refusal(raw: bytes, settings: Settings, partition: int = 1) -> Refusal:
    result = decode_envelope(raw, TOPIC, partition, settings)
    assert isinstance(result, Refusal), result
    return result


def test_a_tampered_payload_is_refused_by_its_digest() -> None:
    raw, settings = _envelope()
    fields = _fields(raw)
    payload = bytearray(fields["payload"])
    payload[len(payload) // 2] ^= 0xFF
    fields["payload"] = bytes(payload)
    assert _refusal(msgspec.msgpack.encode(fields), settings).reason == "digest"
    fields = _fields(raw)
    fields["next_offset"] = 0  # a header field is covered too
    assert _refusal(msgspec.msgpack.encode(fields), settings).reason == "digest"


def test_another_format_version_is_refused_with_a_clear_message() -> None:
    raw, settings = _envelope()
    fields = _fields(raw)
    fields["format_version"] = FORMAT_VERSION - 1
    refusal = _refusal(_resigned(fields), settings)
    assert refusal.reason == "format_version"
    assert f"reads version {FORMAT_VERSION} only" in str(refusal)


def test_another_window_grid_or_another_partition_is_refused() -> None:
    raw, settings = _envelope()
    hourly = msgspec.structs.replace(settings, windows=msgspec.structs.replace(
        settings.windows, size_seconds=3600.0, grace_seconds=600.0))
    assert _refusal(raw, hourly).reason == "config_changed"
    assert _refusal(raw, settings, partition=2).reason == "wrong_partition"
    # a detector's parameters shape that detector's state only: restored, and it
    # alone starts fresh (tests/unit/streams/test_retune.py)
    reparameterised = msgspec.structs.replace(settings, detectors={
        **settings.detectors,
        "volume": msgspec.structs.replace(settings.detectors["volume"], params={"rate": 0.1})})
    assert isinstance(decode_envelope(raw, TOPIC, 1, reparameterised), RestoredState)
    # a threshold only changes what is done with the state: kept
    rethresholded = msgspec.structs.replace(settings, detectors={
        **settings.detectors,
        "volume": msgspec.structs.replace(settings.detectors["volume"], threshold=0.5)})
    assert isinstance(decode_envelope(raw, TOPIC, 1, rethresholded), RestoredState)


def test_a_state_from_code_with_another_layout_is_refused() -> None:
    raw, settings = _envelope()
    fields = _fields(raw)
    fields["layout_fingerprint"] = "0" * 64
    assert _refusal(_resigned(fields), settings).reason == "layout_changed"


def _with_payload(raw: bytes, tree: Any) -> bytes:
    import zlib

    fields = _fields(raw)
    fields["payload"] = zlib.compress(msgspec.msgpack.encode(tree))
    return _resigned(fields)


def test_a_class_off_the_allowlist_is_refused_even_with_a_valid_digest() -> None:
    import zlib

    raw, settings = _envelope()
    tree = msgspec.msgpack.decode(zlib.decompress(_fields(raw)["payload"]))
    attrs = tree[2]
    scoring = attrs["scoring"][2]  # the detectors' part of the pipeline
    series = scoring["_series"]
    scoring["_series"] = ["o", "os.system", {"command": "touch /tmp/x"}]
    refusal = _refusal(_with_payload(raw, tree), settings)
    assert refusal.reason == "shape" and "allowlist" in refusal.detail
    scoring["_series"] = series
    attrs["__class__"] = ["d", {}]  # an extra attribute: not this class's layout
    assert _refusal(_with_payload(raw, tree), settings).reason == "shape"


def test_garbage_and_pickles_are_refused_and_never_run(tmp_path: Path) -> None:
    import os

    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return os.system, (f"touch {marker}",)

    raw, settings = _envelope()
    crafted = pickle.dumps({"version": 1, "pipeline": Exploit()})
    for bad in (b"", b"\x00\x01garbage", crafted, msgspec.msgpack.encode({"format": 1}),
                _with_payload(raw, ["o", "streams.pipeline.PartitionPipeline", crafted])):
        assert _refusal(bad, settings).reason in ("malformed", "shape")
    fields = _fields(raw)
    fields["payload"] = crafted
    assert _refusal(_resigned(fields), settings).reason == "malformed"
    assert not marker.exists()


def test_decode_state_refuses_a_wrong_shape_without_raising_elsewhere() -> None:
    with pytest.raises(StateFormatError):
        state_codec.decode_state(msgspec.msgpack.encode(["l", []]), PartitionPipeline(Settings()))
