"""A partition's detector state as versioned plain data: never pickle, never code.

State travels through Kafka (:mod:`streams.state_store`) and may sit in files,
so whoever can write the changelog topic or a worker's data directory could hand
a worker a crafted record. Unpickling such a record runs arbitrary code; this
codec cannot: it writes and reads only msgpack data (numbers, strings, bytes,
lists and maps), and the only objects it ever builds are instances of the
classes in :data:`ALLOWLIST`, by ``object.__new__`` plus attribute assignment,
with exactly the attribute names that class has in this version of the code.

Value encoding (every container is a tagged msgpack array, so a decoded value
is never ambiguous)::

    None, bool, int (64-bit), float (incl. inf/nan), str, bytes   as themselves
    ["i", "123..."]               an int beyond 64 bits
    ["l", [v...]] / ["t", [v...]] list / tuple
    ["d", {str: v}]               dict with str keys only
    ["m", [[k, v]...]]            any other dict (tuple or float keys)
    ["s", [v...]] / ["z", [v...]] set / frozenset
    ["q", [v...], maxlen]         collections.deque
    ["y", bytes]                  bytearray
    ["a", typecode, bytes]        array.array, little-endian
    ["n", dtype, shape, bytes]    numpy array of a numeric dtype, C order
    ["g", dtype, bytes]           numpy numeric scalar
    ["o", class tag, {attr: v}]   an instance of an allowlisted class

The envelope (:func:`encode_envelope`) adds the format version, the topic,
partition and next offset, a fingerprint of the state-shaping configuration, a
fingerprint of the classes' attribute layout (so a code change that adds or
renames an attribute refuses old state instead of crashing on it later) and a
SHA-256 over all of it. :func:`decode_envelope` never raises: anything unusable
comes back as a :class:`Refusal` with a reason, and the worker cold-starts.

>>> from streams.config import Settings
>>> from streams.pipeline import PartitionPipeline
>>> settings = Settings()
>>> raw = encode_envelope("trade.declarations", 3, PartitionPipeline(settings, partition=3),
...                       next_offset=42, settings=settings)
>>> state = decode_envelope(raw, "trade.declarations", 3, settings)
>>> state.next_offset, state.pipeline.partition
(42, 3)
>>> decode_envelope(raw[:-1] + bytes([raw[-1] ^ 1]), "trade.declarations", 3, settings).reason
'digest'
"""

from __future__ import annotations

import array
import collections
import dataclasses
import functools
import hashlib
import sys
import time
import zlib
from collections.abc import Callable
from typing import Any

import msgspec
import numpy as np

from streams.config import Settings
from streams.metrics import STATE_REFUSAL_REASONS, PipelineMetrics
from streams.pipeline import PartitionPipeline

__all__ = [
    "FORMAT_VERSION",
    "MAX_STATE_BYTES",
    "ALLOWLIST",
    "Refusal",
    "RestoredState",
    "StateFormatError",
    "StateNotPersistable",
    "check_persistable",
    "config_fingerprint",
    "layout_fingerprint",
    "encode_state",
    "decode_state",
    "encode_object",
    "decode_object",
    "encode_envelope",
    "decode_envelope",
]

#: Bumped whenever the encoding itself changes; other versions are refused.
FORMAT_VERSION = 1
#: Identifies our envelopes among whatever else might be in a topic or a file.
FORMAT_NAME = "tradewatch.partition-state"
#: Largest decompressed payload accepted (a zlib bomb is refused, not inflated).
MAX_STATE_BYTES = 512 * 1024 * 1024
#: zlib level: 1 is several times faster than 6 and the Bloom filters barely care.
ZLIB_LEVEL = 1

_INT_MIN, _INT_MAX = -(1 << 63), (1 << 64) - 1
_NUMPY_KINDS = frozenset("biufc")


class StateFormatError(ValueError):
    """Data that is not a state this code can build (wrong shape, unknown class, ...)."""


class StateNotPersistable(ValueError):
    """A state holds something the codec does not write (e.g. river HalfSpaceTrees)."""


@dataclasses.dataclass(frozen=True)
class Refusal:
    """Why a stored state was not used. ``reason`` is a short metric label value."""

    reason: str
    detail: str

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}"


@dataclasses.dataclass(frozen=True)
class RestoredState:
    pipeline: PartitionPipeline
    next_offset: int


#: Every reason :func:`decode_envelope` can give (bounded: they are metric labels).
REFUSAL_REASONS = STATE_REFUSAL_REASONS


# -- the allowlist ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Kind:
    """How one allowlisted class is written and rebuilt.

    ``transient`` attributes are bound to the process or derived from the current
    settings (clocks, metrics, prototypes): they are not written, and on decode the
    other attributes are laid over a freshly built instance that has them.
    ``sample`` builds an instance whose attribute names are the class's layout
    (classes with ``__slots__``, dataclass slots or msgspec fields need none).
    """

    cls: type
    transient: frozenset[str] = frozenset()
    sample: Callable[[], Any] | None = None


def _allowlist() -> dict[str, _Kind]:
    from detectors.activity import PartitionActivity
    from detectors.calendar import WindowGrid
    from detectors.calibration import OnlineTailCalibrator
    from detectors.novelty import _KeyFilter
    from detectors.registry import DETECTOR_KINDS, part_classes
    from detectors.windows import SeriesAggregate, TumblingWindows
    from streams.dedup import SeenIds
    from streams.events import AlertSeries
    from streams.alert_policy import AlertPolicy
    from streams.features import Features
    from streams.incidents import IncidentGrouper
    from streams.influence import InfluenceTracker
    from streams.scoring import Scoring, _SeriesState

    kinds = [
        _Kind(PartitionPipeline, sample=lambda: PartitionPipeline(Settings()),
              transient=frozenset({"settings", "metrics", "audit"})),
        _Kind(Features, sample=lambda: Features(Settings()), transient=frozenset({"catalog"})),
        _Kind(InfluenceTracker, sample=InfluenceTracker),
        _Kind(Scoring, sample=lambda: Scoring(Settings()), transient=frozenset({
            "settings", "metrics", "catalog", "_timers", "_prototypes", "_pristine",
            "_min_activity", "plan", "_prewarm_windows", "_activity_rate",
            "_eager_families", "_eager_keys", "_packer", "_fresh_packed", "_live_lazy",
            "_by_last", "_native", "native_reason"})),
        _Kind(AlertPolicy, sample=lambda: AlertPolicy(Settings()), transient=frozenset({
            "settings", "metrics", "clock", "_thresholds", "plan", "feedback", "on_suppressed"})),
        _Kind(TumblingWindows, sample=lambda: TumblingWindows(1.0)),
        _Kind(WindowGrid, sample=WindowGrid),
        _Kind(PartitionActivity, sample=PartitionActivity),
        _Kind(SeenIds, sample=lambda: SeenIds(0.0)),
        _Kind(SeriesAggregate),
        _Kind(_SeriesState),
        _Kind(AlertSeries),
        _Kind(_KeyFilter),
        _Kind(OnlineTailCalibrator, sample=OnlineTailCalibrator),
        _Kind(IncidentGrouper, sample=IncidentGrouper),
    ]
    kinds += [_Kind(cls, sample=cls) for cls in DETECTOR_KINDS.values()]
    # detectors composed from parts (the spike detector's baseline, extremity, novelty)
    parts = {part for cls in DETECTOR_KINDS.values() for part in part_classes(cls).values()}
    kinds += [_Kind(part, sample=part) for part in sorted(parts, key=lambda c: c.__qualname__)]
    return {f"{k.cls.__module__}.{k.cls.__qualname__}": k for k in kinds}


#: Class tag -> how to write and rebuild it. Nothing outside this table is ever built.
ALLOWLIST: dict[str, _Kind] = _allowlist()
_TAG_OF: dict[type, str] = {k.cls: tag for tag, k in ALLOWLIST.items()}


def _slot_names(cls: type) -> list[str] | None:
    """Every slot of ``cls`` and its bases, or None when instances have a ``__dict__``."""
    names: list[str] = []
    for klass in cls.__mro__[:-1]:  # all but object
        slots = klass.__dict__.get("__slots__")
        if slots is None:
            return None
        names += [slots] if isinstance(slots, str) else [s for s in slots if s != "__weakref__"]
    return names


@functools.cache
def _layout(tag: str) -> frozenset[str]:
    """The attribute names an instance of ``tag``'s class has in this code (transient ones included)."""
    kind = ALLOWLIST[tag]
    if issubclass(kind.cls, msgspec.Struct):
        return frozenset(kind.cls.__struct_fields__)
    slots = _slot_names(kind.cls)
    if slots is not None and kind.sample is None:
        return frozenset(slots)
    if kind.sample is None:
        raise TypeError(f"{tag}: a class with a __dict__ needs a sample factory")
    return frozenset(vars(kind.sample()))


@functools.cache
def layout_fingerprint() -> str:
    """SHA-256 of every allowlisted class's attribute layout: it changes when the code's does."""
    layout = sorted((tag, sorted(_layout(tag)), sorted(kind.transient))
                    for tag, kind in ALLOWLIST.items())
    return hashlib.sha256(msgspec.msgpack.encode(layout)).hexdigest()


def config_fingerprint(settings: Settings) -> str:
    """SHA-256 of the configuration that shapes the whole state: windows, series, partitions.

    A state saved under another window grid, other series families or another
    partition count cannot be laid over this config's, so it is refused and the
    partition starts cold. The detectors are not in it: each detector's state is
    kept or started fresh on its own, by the kind and parameters it was learned
    under (:meth:`streams.scoring.Scoring.reconfigure`), so a live retune's config
    restores the state saved under the one before it (a new parameter resets
    that detector only). Thresholds, overrides, alert rules and the idle timeout
    only change what is done with the state.
    """
    windows = msgspec.to_builtins(settings.windows)
    windows.pop("idle_timeout_seconds", None)
    series = [msgspec.to_builtins(spec) for spec in settings.series_definitions()]
    shape = {"windows": windows, "partitions": settings.topics.partitions, "series": series}
    return hashlib.sha256(msgspec.json.encode(shape, order="sorted")).hexdigest()


def check_persistable(settings: Settings) -> None:
    """Raise :class:`StateNotPersistable` when the config asks for state the codec cannot write.

    The one case today: ``unit_value`` with ``hst_trees > 0`` holds a river
    HalfSpaceTrees pipeline (trees, scalers, a ``random.Random``), which is not on
    the allowlist. It is opt-in (off by default).
    """
    for name, spec in settings.detectors.items():
        if spec.enabled and spec.kind == "unit_value" and int(spec.params.get("hst_trees", 0)) > 0:
            raise StateNotPersistable(
                f"detectors.{name}: unit_value with hst_trees > 0 (river HalfSpaceTrees) has no "
                f"data-only state encoding; set hst_trees = 0 or worker.checkpoints = false")


# -- values ------------------------------------------------------------------------------


def _enc(v: Any) -> Any:
    t = type(v)
    if t is float or t is str or t is bool or v is None or t is bytes:
        return v
    if t is int:
        return v if _INT_MIN <= v <= _INT_MAX else ["i", str(v)]
    if t is list:
        return ["l", [_enc(x) for x in v]]
    if t is tuple:
        return ["t", [_enc(x) for x in v]]
    if t is dict:
        if all(type(k) is str for k in v):
            return ["d", {k: _enc(x) for k, x in v.items()}]
        return ["m", [[_enc(k), _enc(x)] for k, x in v.items()]]
    if t is set or t is frozenset:
        return ["s" if t is set else "z", [_enc(x) for x in v]]
    if t is collections.deque:
        return ["q", [_enc(x) for x in v], v.maxlen]
    if t is bytearray:
        return ["y", bytes(v)]
    if t is array.array:
        a = v if sys.byteorder == "little" else _swapped(v)
        return ["a", v.typecode, a.tobytes()]
    if t is np.ndarray:
        _check_dtype(v.dtype)
        return ["n", v.dtype.newbyteorder("<").str, list(v.shape),
                np.ascontiguousarray(v, dtype=v.dtype.newbyteorder("<")).tobytes()]
    if isinstance(v, np.generic):
        _check_dtype(v.dtype)
        return ["g", v.dtype.newbyteorder("<").str, np.asarray(v, v.dtype.newbyteorder("<")).tobytes()]
    tag = _TAG_OF.get(t)
    if tag is None:
        raise StateNotPersistable(
            f"cannot write a {t.__module__}.{t.__qualname__}: not on the state codec's allowlist")
    return ["o", tag, _attributes(v, tag)]


def _swapped(a: array.array) -> array.array:  # type: ignore[type-arg]
    b = array.array(a.typecode, a)
    b.byteswap()
    return b


def _check_dtype(dtype: np.dtype) -> None:  # type: ignore[type-arg]
    if dtype.kind not in _NUMPY_KINDS or dtype.hasobject:
        raise StateNotPersistable(f"numpy dtype {dtype} is not a plain numeric dtype")


def _attributes(obj: Any, tag: str) -> dict[str, Any]:
    kind = ALLOWLIST[tag]
    layout = _layout(tag)
    if isinstance(obj, msgspec.Struct):
        present = set(obj.__struct_fields__)
    else:
        present = set(vars(obj)) if hasattr(obj, "__dict__") else set()
        present |= {s for s in _slot_names(type(obj)) or () if hasattr(obj, s)}
    if present != layout:
        raise StateNotPersistable(
            f"{tag}: attributes {sorted(present ^ layout)} differ from the class layout; "
            f"set every attribute in __init__")
    return {name: _enc(getattr(obj, name)) for name in sorted(layout - kind.transient)}


def _dec(v: Any, template: Any = None) -> Any:
    if v is None or type(v) in (float, str, bool, int, bytes):
        return v
    if type(v) is not list or not v or type(v[0]) is not str:
        raise StateFormatError(f"not a tagged value: {type(v).__name__}")
    tag, body = v[0], v[1:]
    try:
        if tag == "l":
            return [_dec(x) for x in _only(body, list)]
        if tag == "t":
            return tuple(_dec(x) for x in _only(body, list))
        if tag == "d":
            return {k: _dec(x) for k, x in _only(body, dict).items()}
        if tag == "m":
            return {_dec(k): _dec(x) for k, x in (_pair(p) for p in _only(body, list))}
        if tag == "s":
            return {_dec(x) for x in _only(body, list)}
        if tag == "z":
            return frozenset(_dec(x) for x in _only(body, list))
        if tag == "q":
            items, maxlen = body
            if maxlen is not None and type(maxlen) is not int:
                raise StateFormatError("deque maxlen must be an int")
            return collections.deque((_dec(x) for x in _only([items], list)), maxlen)
        if tag == "y":
            return bytearray(_only(body, bytes))
        if tag == "a":
            return _dec_array(*body)
        if tag == "n":
            return _dec_ndarray(*body)
        if tag == "g":
            dtype_str, raw = body
            return _dec_ndarray(dtype_str, [], raw)[()]
        if tag == "o":
            cls_tag, attrs = body
            return _dec_object(cls_tag, attrs, template)
        if tag == "i":
            text = _only(body, str)
            if not text.lstrip("-").isdigit() or len(text) > 4000:
                raise StateFormatError("bad big integer")
            return int(text)
    except (TypeError, ValueError) as exc:  # unpacking, unhashable keys, bad dtypes
        if isinstance(exc, StateFormatError):
            raise
        raise StateFormatError(f"bad {tag!r} value: {exc}") from None
    raise StateFormatError(f"unknown value tag {tag!r}")


def _only(body: list[Any], tp: type) -> Any:
    if len(body) != 1 or type(body[0]) is not tp:
        raise StateFormatError(f"expected one {tp.__name__}")
    return body[0]


def _pair(p: Any) -> tuple[Any, Any]:
    if type(p) is not list or len(p) != 2:
        raise StateFormatError("a map entry must be a [key, value] pair")
    return p[0], p[1]


def _dec_array(typecode: Any, raw: Any) -> array.array:  # type: ignore[type-arg]
    if typecode not in array.typecodes or type(raw) is not bytes or typecode == "u":
        raise StateFormatError("bad array")
    a = array.array(typecode)
    if len(raw) % a.itemsize:
        raise StateFormatError("array bytes are not a whole number of items")
    a.frombytes(raw)
    return a if sys.byteorder == "little" else _swapped(a)


def _dec_ndarray(dtype_str: Any, shape: Any, raw: Any) -> np.ndarray:  # type: ignore[type-arg]
    if type(dtype_str) is not str or type(raw) is not bytes or type(shape) is not list:
        raise StateFormatError("bad numpy array")
    dtype = np.dtype(dtype_str)
    if dtype.kind not in _NUMPY_KINDS or dtype.hasobject or not all(type(n) is int and n >= 0 for n in shape):
        raise StateFormatError(f"refused numpy dtype {dtype_str!r} or shape {shape!r}")
    count = 1
    for n in shape:
        count *= n
    if count * dtype.itemsize != len(raw):
        raise StateFormatError("numpy array bytes do not match its shape")
    return np.frombuffer(raw, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def _dec_object(tag: Any, attrs: Any, template: Any) -> Any:
    kind = ALLOWLIST.get(tag) if type(tag) is str else None
    if kind is None:
        raise StateFormatError(f"class {tag!r} is not on the state codec's allowlist")
    if type(attrs) is not dict:
        raise StateFormatError(f"{tag}: attributes must be a map")
    expected = _layout(tag) - kind.transient
    if set(attrs) != expected:
        raise StateFormatError(f"{tag}: attributes {sorted(set(attrs) ^ expected)} do not match")
    values = {name: _dec(v, getattr(template, name, None)) for name, v in attrs.items()}
    if issubclass(kind.cls, msgspec.Struct):
        try:
            return msgspec.convert(values, kind.cls)
        except msgspec.ValidationError as exc:
            raise StateFormatError(f"{tag}: {exc}") from None
    if kind.transient:
        if type(template) is not kind.cls:
            raise StateFormatError(f"{tag}: no freshly built instance to restore it into")
        obj = template
    else:
        obj = object.__new__(kind.cls)
    for name, value in values.items():
        object.__setattr__(obj, name, value)
    return obj


def encode_state(pipeline: PartitionPipeline) -> bytes:
    """The pipeline's learned state as msgpack (uncompressed, no envelope)."""
    return msgspec.msgpack.encode(_enc(pipeline))


def decode_state(payload: bytes, fresh: PartitionPipeline) -> PartitionPipeline:
    """Lay the state in ``payload`` over ``fresh`` (a new pipeline built from the current settings).

    Raises :class:`StateFormatError` for anything that is not a state of this layout.
    """
    try:
        tree = msgspec.msgpack.decode(payload)
    except msgspec.DecodeError as exc:
        raise StateFormatError(f"not msgpack: {exc}") from None
    if not (type(tree) is list and len(tree) == 3 and tree[:2] == ["o", _TAG_OF[PartitionPipeline]]):
        raise StateFormatError("the payload is not a PartitionPipeline")
    try:
        pipeline = _dec(tree, fresh)
    except RecursionError:
        raise StateFormatError("nested too deeply") from None
    if pipeline is not fresh:  # pragma: no cover - _dec_object guarantees it
        raise StateFormatError("the payload is not a PartitionPipeline")
    return pipeline


def encode_object(obj: Any) -> bytes:
    """Any value the codec writes (e.g. one detector) as msgpack: for tests and tools."""
    return msgspec.msgpack.encode(_enc(obj))


def decode_object(raw: bytes) -> Any:
    """The value :func:`encode_object` wrote; objects with transient attributes are refused."""
    try:
        return _dec(msgspec.msgpack.decode(raw))
    except (msgspec.DecodeError, RecursionError) as exc:
        raise StateFormatError(str(exc)) from None


# -- the envelope ------------------------------------------------------------------------


class _Envelope(msgspec.Struct, forbid_unknown_fields=True):
    format: str
    format_version: int
    topic: str
    partition: int
    next_offset: int
    config_fingerprint: str
    layout_fingerprint: str
    codec: str
    saved_at: float
    sha256: str
    payload: bytes


def _digest(e: _Envelope) -> str:
    """SHA-256 over every field but the digest itself, so no header field can be swapped either."""
    signed = [e.format, e.format_version, e.topic, e.partition, e.next_offset,
              e.config_fingerprint, e.layout_fingerprint, e.codec, e.saved_at]
    h = hashlib.sha256(msgspec.msgpack.encode(signed))
    h.update(e.payload)
    return h.hexdigest()


def encode_envelope(topic: str, partition: int, pipeline: PartitionPipeline, next_offset: int,
                    settings: Settings, saved_at: float | None = None) -> bytes:
    """The bytes a changelog record or cache file holds for one partition's state."""
    payload = zlib.compress(encode_state(pipeline), ZLIB_LEVEL)
    e = _Envelope(FORMAT_NAME, FORMAT_VERSION, topic, partition, next_offset,
                  config_fingerprint(settings), layout_fingerprint(), "zlib",
                  time.time() if saved_at is None else saved_at, "", payload)
    e.sha256 = _digest(e)
    return msgspec.msgpack.encode(e)


def decode_envelope(raw: bytes, topic: str, partition: int, settings: Settings,
                    metrics: PipelineMetrics | None = None,
                    clock: Callable[[], float] = time.time) -> RestoredState | Refusal:
    """The state in ``raw`` bound to this process, or why it is refused. Never raises."""
    try:
        return _decode_envelope(raw, topic, partition, settings, metrics, clock)
    except Exception as exc:  # noqa: BLE001 - a refusal, whatever the bytes were
        return Refusal("malformed", f"{type(exc).__name__}: {exc}")


def _decode_envelope(raw: bytes, topic: str, partition: int, settings: Settings,
                     metrics: PipelineMetrics | None,
                     clock: Callable[[], float]) -> RestoredState | Refusal:
    try:
        head = msgspec.msgpack.decode(raw)
    except msgspec.DecodeError as exc:
        return Refusal("malformed", f"not msgpack: {exc}")
    if type(head) is not dict or head.get("format") != FORMAT_NAME:
        return Refusal("malformed", "not a tradewatch partition state")
    if head.get("format_version") != FORMAT_VERSION:
        return Refusal("format_version", f"format version {head.get('format_version')!r}; this "
                       f"worker reads version {FORMAT_VERSION} only")
    try:
        e = msgspec.convert(head, _Envelope)
    except msgspec.ValidationError as exc:
        return Refusal("malformed", f"envelope: {exc}")
    if _digest(e) != e.sha256:
        return Refusal("digest", "SHA-256 mismatch: the record was changed or damaged")
    if (e.topic, e.partition) != (topic, partition):
        return Refusal("wrong_partition", f"state of {e.topic}[{e.partition}], wanted {topic}[{partition}]")
    if e.config_fingerprint != config_fingerprint(settings):
        return Refusal("config_changed", "saved under another detector/window configuration")
    if e.layout_fingerprint != layout_fingerprint():
        return Refusal("layout_changed", "saved by a version of the code with other state classes")
    if e.codec != "zlib" or e.next_offset < 0:
        return Refusal("malformed", f"codec {e.codec!r}, next offset {e.next_offset}")
    inflater = zlib.decompressobj()
    payload = inflater.decompress(e.payload, MAX_STATE_BYTES)
    if inflater.unconsumed_tail:
        return Refusal("malformed", f"state larger than {MAX_STATE_BYTES} bytes")
    fresh = PartitionPipeline(settings, metrics, clock, partition=partition)
    try:
        pipeline = decode_state(payload, fresh)
    except StateFormatError as exc:
        return Refusal("shape", str(exc))
    pipeline.rebind(settings, metrics, clock)
    return RestoredState(pipeline, e.next_offset)
