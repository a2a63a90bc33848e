"""A packed series unpacks to exactly the detectors it was packed from, and packed is small."""

from __future__ import annotations

import math
import pickle
import random
from typing import Any

import msgspec
import pytest

from detectors.base import Part
from detectors.registry import build
from streams.packing import DetectorPacker, NotPackable

DAY = 86_400.0
SERIES_KINDS = {"volume": {}, "volume_down": {"direction": "down"}, "spike": {},
                "spike_up_log": {"transform": "log1p", "direction": "up"}, "changepoint": {}}


def _kind(name: str) -> str:
    return name.split("_")[0]


def _trained(name: str, seed: int, days: int) -> Any:
    d = build(_kind(name), SERIES_KINDS[name])
    rng = random.Random(seed)
    for day in range(days):
        d.learn_one({"value": rng.lognormvariate(10, 1) if rng.random() < 0.5 else 0.0, "t": day * DAY})
    return d


def _same(a: Any, b: Any, path: str = "") -> None:
    """Equal values of equal types, attribute by attribute, in the same attribute order."""
    assert type(a) is type(b), path
    if isinstance(a, Part) or hasattr(a, "learn_one"):
        assert list(vars(a)) == list(vars(b)), path
        for k in vars(a):
            _same(vars(a)[k], vars(b)[k], f"{path}.{k}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b), path
    else:
        assert a == b, path


@pytest.fixture(scope="module")
def packer() -> DetectorPacker:
    return DetectorPacker({(name, "up"): build(_kind(name), SERIES_KINDS[name]) for name in SERIES_KINDS})


@pytest.mark.parametrize("days", [0, 1, 5, 40, 200])
def test_unpacking_gives_back_every_learned_value_with_its_type(packer: DetectorPacker, days: int) -> None:
    detectors = {name: _trained(name, seed=days, days=days) for name in SERIES_KINDS}
    header, unpacked = packer.unpack(packer.pack([1.5, 0.25, 7, 3], detectors, "up"), "up")
    assert header == [1.5, 0.25, 7, 3]
    assert list(unpacked) == list(detectors)
    for name in detectors:
        _same(detectors[name], unpacked[name], name)
        # and it carries on alike: same scores and the same state after more data
        x = {"value": 3e5, "t": (days + 1) * DAY}
        assert unpacked[name].score_one(x) == detectors[name].score_one(x)
        unpacked[name].learn_one(x)
        detectors[name].learn_one(x)
        _same(detectors[name], unpacked[name], name)


def test_an_unpacked_detector_keeps_rivers_contract(packer: DetectorPacker) -> None:
    spike = _trained("spike", seed=1, days=30)
    _, unpacked = packer.unpack(packer.pack([], {"spike": spike}, "up"), "up")
    again = unpacked["spike"]
    assert again._get_params() == spike._get_params()
    assert repr(again.clone()) == repr(spike.clone())
    assert again.baseline is not spike.baseline and again.novelty._seen is not spike.novelty._seen


def test_packed_state_is_a_small_fraction_of_the_pickled_one(packer: DetectorPacker) -> None:
    detectors = {name: _trained(name, seed=2, days=60) for name in ("volume", "spike", "changepoint")}
    packed = len(packer.pack([0.0, 0.0, 0, 0], detectors, "up"))
    pickled = sum(len(pickle.dumps(d, protocol=pickle.HIGHEST_PROTOCOL)) for d in detectors.values())
    assert packed < pickled / 2


def test_a_detector_of_another_class_is_not_packed(packer: DetectorPacker) -> None:
    with pytest.raises(NotPackable):
        packer.pack([], {"volume": build("changepoint", {})}, "up")


@pytest.mark.parametrize("days", [3, 400])
def test_a_bit_table_packs_to_the_bytes_it_holds_whether_it_changed_or_not(
        packer: DetectorPacker, days: int) -> None:
    """Unpacking remembers a table's packed form, packing reuses it only for the same bytes."""
    spike = _trained("spike", seed=days, days=days)
    blob = packer.pack([], {"spike": spike}, "up")
    fresh_packer = DetectorPacker({("spike", "up"): build("spike", {})})  # remembers nothing
    _, unpacked = packer.unpack(blob, "up")
    assert packer.pack([], unpacked, "up") == blob  # unchanged: the same bytes
    _, unpacked = packer.unpack(blob, "up")
    table = unpacked["spike"].novelty._seen
    position = next(i for i, b in enumerate(table) if b == 0)
    table[position] = 0x81  # a new transition recorded after unpacking
    changed = packer.pack([], unpacked, "up")
    assert changed != blob
    assert changed == fresh_packer.pack([], unpacked, "up")
    assert packer.unpack(changed, "up")[1]["spike"].novelty._seen == table


def test_sparse_tables_of_any_fill_come_back_byte_for_byte(packer: DetectorPacker) -> None:
    rng = random.Random(5)
    for filled in (0, 1, 20, 48, 49, 200, 230, 231, 768):
        spike = build("spike", {})
        table = spike.novelty._seen
        for position in rng.sample(range(len(table)), filled):
            table[position] = rng.randrange(1, 256)
        _, unpacked = packer.unpack(packer.pack([], {"spike": spike}, "up"), "up")
        assert type(unpacked["spike"].novelty._seen) is bytearray
        assert unpacked["spike"].novelty._seen == table, filled


class _Knob(Part):
    """A part with a mutable parameter (a list), a tuple and a learned float."""

    def __init__(self, weights: list[float] | None = None) -> None:
        self.weights = [1.0, 2.0] if weights is None else weights
        self._last: tuple[float, ...] = ()
        self._level = 0.0


def test_a_compiled_layout_copies_mutable_parameters_and_keeps_tuples() -> None:
    """Unpacked instances never share a mutable parameter with the prototype or each other."""
    proto = build("volume", {})
    proto.knob = _Knob()
    knobbed = DetectorPacker({("volume", "up"): proto})
    d = build("volume", {})
    d.knob = _Knob()
    d.knob._last, d.knob._level = (1.5, 2.5), 3.0
    _, first = knobbed.unpack(knobbed.pack([], {"volume": d}, "up"), "up")
    _, second = knobbed.unpack(knobbed.pack([], {"volume": d}, "up"), "up")
    _same(d, first["volume"])
    assert first["volume"].knob.weights == proto.knob.weights
    assert first["volume"].knob.weights is not second["volume"].knob.weights
    assert first["volume"].knob.weights is not proto.knob.weights
    assert type(first["volume"].knob._last) is tuple


def test_a_packed_detector_with_the_wrong_number_of_values_is_refused(packer: DetectorPacker) -> None:
    blob = packer.pack([], {"volume": build("volume", {})}, "up")
    tree = msgspec.msgpack.decode(blob)
    tree[-1][0][1].append(0.0)
    with pytest.raises(ValueError, match="values, expected"):
        packer.unpack(msgspec.msgpack.encode(tree), "up")
