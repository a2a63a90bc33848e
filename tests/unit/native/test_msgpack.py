"""The native close reads and writes packed series as msgspec does, byte for byte."""

from __future__ import annotations

import random

import msgspec
import pytest

from streams import tradewatch_native
from streams.config import DEFAULT_CONFIG_PATH, load_settings
from streams.scoring import Scoring

from .conftest import close_ops, grid, prototypes


def _blobs() -> list[bytes]:
    """Packed series as the runtime writes them: detectors after pipeline-shaped runs."""
    scoring = Scoring(load_settings(DEFAULT_CONFIG_PATH, env={}))
    packer = scoring._packer
    protos = prototypes("deploy/tradewatch.toml")
    rng = random.Random(9)
    blobs = []
    for density in (1.0, 0.3, 0.05):
        detectors = {name: packer.build(name, "up", packer.values(name, "up", p)) for name, p in protos.items()}
        for op in close_ops(rng, grid("day", 400), density):
            for d in detectors.values():
                if op[0] == "learn_empty":
                    d.learn_empty(list(op[1]))
                else:
                    d.score_then_learn({"value": op[1], "t": op[2], "count": op[3]}, None, op[4])
        blobs.append(packer.pack([1.6e9, 0.3, 400, 7], detectors, "up"))
    return blobs


def test_a_packed_series_comes_back_byte_for_byte() -> None:
    blobs = _blobs()
    assert all(len(b) > 200 for b in blobs)
    for blob in blobs:
        assert tradewatch_native.msgpack_roundtrip(blob) == blob


@pytest.mark.parametrize("value", [
    0, 1, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**63 - 1,
    -1, -32, -33, -128, -129, -32768, -32769, -(2**31), -(2**31) - 1, -(2**63),
    0.0, -0.0, 1.5, float("inf"), float("-inf"), 1e-310, None, True, False,
    "", "x" * 31, "x" * 32, "x" * 255, "x" * 256, "é" * 40, "x" * 70000,
    b"", b"\\x00" * 255, b"\\x01" * 256, b"\\x02" * 70000,
    [], list(range(15)), list(range(16)), list(range(70000)), [[1.0, None], [b"ab", "c"]],
])
def test_every_kind_packing_writes_is_encoded_as_msgspec_encodes_it(value: object) -> None:
    blob = msgspec.msgpack.encode(value)
    assert tradewatch_native.msgpack_roundtrip(blob) == blob


def test_bytes_packing_never_writes_are_refused_not_guessed() -> None:
    with pytest.raises(ValueError, match="msgpack"):
        tradewatch_native.msgpack_roundtrip(msgspec.msgpack.encode({"a": 1}))  # a map
    with pytest.raises(ValueError, match="truncated"):
        tradewatch_native.msgpack_roundtrip(msgspec.msgpack.encode([1.0, 2.0])[:-3])
