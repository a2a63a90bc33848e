"""A quiet series' detectors as a few hundred bytes of plain data, and back.

A partition holds up to a million series, and most of them are quiet: a series
without a declaration in the last closed window is not touched again until it
has data (:mod:`streams.scoring`, "Quiet series"). Live, a series' detectors are
Python objects (a ``__dict__`` per detector and part, a boxed float per number,
the spike detector's 768-byte bit table): about 8 KB of RSS. Packed, they are the
*learned* values only, as one msgpack array: the parameters are those of the
detector's pristine prototype (the same for every series of a family direction),
so they are not repeated. About 0.5 KB.

:class:`DetectorPacker` is built from the untrained prototypes. For each it
derives a *layout* once: the prototype's attributes in order, each either a
parameter (copied from the prototype when unpacking), a part (a
:class:`detectors.base.Part`, laid out in turn) or a learned value. Packing
writes the learned values in layout order; unpacking builds an instance of the
same class with ``object.__new__``, the prototype's parameters and the decoded
values, in the prototype's attribute order, so an unpacked detector is
indistinguishable from the one packed (river's ``clone()``/``_get_params`` and the
state codec see the same object). Only plain data is ever decoded (numbers,
strings, bytes, lists): like :mod:`streams.state_codec`, a packed series can
never run code. A learned value of another type (an object) makes
:meth:`DetectorPacker.pack` raise :class:`NotPackable`: the series stays live.

Tuples and bytearrays come back as tuples and bytearrays (the prototype's type
says which); a mostly-zero bytearray (a bit table) is written as the positions
and values of its non-zero bytes.
"""

from __future__ import annotations

import copy
import struct
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import msgspec
import numpy as np

from detectors.base import Detector, Part

__all__ = ["DetectorPacker", "NotPackable"]

#: Layout entry kinds.
_PARAM, _PART, _VALUE, _TUPLE, _BYTES = range(5)
#: A bytearray with at most this share of non-zero bytes is written sparse.
_SPARSE_SHARE = 0.3
#: Sparse bytearrays with at most this many non-zero bytes are filled in a Python loop.
_LOOP_BYTES = 48
_IMMUTABLE = (int, float, str, bool, bytes, type(None))
_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder().decode


class NotPackable(ValueError):
    """A detector holds state this packer does not write (it stays live)."""


class _Layout:
    """How one prototype (detector or part) is laid out: class, and per attribute what it is.

    Packing and unpacking run once per touched series and close, and on a close with
    data for thousands of series they were a third of its cost: so each layout is
    compiled once, when the packer is built, into two plain functions (:meth:`_compile`):
    ``values`` lists the learned values in layout order and ``build`` makes the
    instance with one dict display, parts built by their own compiled functions in
    the same call. The source is generated from the prototype's attribute names only
    (as :func:`collections.namedtuple` and :mod:`dataclasses` generate theirs), never
    from packed data; the parameters and classes are bound by name, not written out.
    """

    __slots__ = ("cls", "template", "names", "special", "mutable_params", "values", "build")

    def __init__(self, obj: Any) -> None:
        self.cls = type(obj)
        params = set(obj._get_params()) if hasattr(obj, "_get_params") else set()
        #: The prototype's attributes in order: parameters with their values, learned ones None.
        self.template: dict[str, Any] = {}
        #: Learned attribute names, in layout order, and their positions that need converting.
        names: list[str] = []
        special: list[tuple[int, str, int, Any]] = []
        mutable: list[str] = []
        for attr, value in vars(obj).items():
            if isinstance(value, Part):
                special.append((len(names), attr, _PART, _Layout(value)))
            elif attr in params:
                self.template[attr] = value
                if not isinstance(value, _IMMUTABLE):
                    mutable.append(attr)
                continue
            elif isinstance(value, tuple):
                special.append((len(names), attr, _TUPLE, None))
            elif isinstance(value, bytearray):
                special.append((len(names), attr, _BYTES, None))
            self.template[attr] = None
            names.append(attr)
        self.names = tuple(names)
        self.special = tuple(special)
        self.mutable_params = tuple(mutable)
        #: ``values(obj, memo)``: the learned values of ``obj`` in layout order (parts nested).
        #: ``build(values, memo)``: a new instance with the prototype's parameters and ``values``.
        self.values, self.build = self._compile()

    def spec(self) -> dict[str, Any]:
        """This layout as plain data, for the native close (``native/``): the class name,
        the learned attribute names in packed order, the parameters and the parts' specs."""
        parts = {attr: sub.spec() for _, attr, kind, sub in self.special if kind == _PART}
        params = {attr: value for attr, value in self.template.items() if attr not in self.names}
        return {"class": self.cls.__name__, "names": list(self.names), "params": params, "parts": parts}

    def _compile(self) -> tuple[Callable[..., list[Any]], Callable[..., Any]]:
        """``values`` and ``build`` for this layout, as generated functions (class docstring)."""
        ns: dict[str, Any] = {"cls": self.cls, "new": object.__new__, "deepcopy": copy.deepcopy,
                              "sparse": _sparse_memo, "dense": _dense_memo, "tuple": tuple,
                              "len": len, "ValueError": ValueError}
        kind_of = {attr: (kind, sub) for _, attr, kind, sub in self.special}
        position = {attr: i for i, attr in enumerate(self.names)}
        mutable = set(self.mutable_params)
        read, entries = [], []
        for attr, value in self.template.items():
            key = repr(attr)
            if attr not in position:  # a parameter: the prototype's value (a copy if mutable)
                name = f"param_{len(entries)}"
                ns[name] = value
                entries.append(f"{key}: deepcopy({name})" if attr in mutable else f"{key}: {name}")
                continue
            i = position[attr]
            kind, sub = kind_of.get(attr, (_VALUE, None))
            if kind == _PART:
                ns[f"values_{i}"], ns[f"build_{i}"] = sub.values, sub.build
                read.append(f"values_{i}(d[{key}], memo)")
                entries.append(f"{key}: build_{i}(v[{i}], memo)")
            elif kind == _BYTES:
                read.append(f"sparse(d[{key}], memo)")
                entries.append(f"{key}: dense(v[{i}], memo)")
            elif kind == _TUPLE:
                read.append(f"d[{key}]")
                entries.append(f"{key}: tuple(v[{i}])")
            else:
                read.append(f"d[{key}]")
                entries.append(f"{key}: v[{i}]")
        n = len(self.names)
        message = f"packed {self.cls.__name__}: {{len(v)}} values, expected {n}"
        source = (
            "def values(o, memo=None):\n"
            "    d = o.__dict__\n"
            f"    return [{', '.join(read)}]\n"
            "def build(v, memo=None):\n"
            f"    if len(v) != {n}:\n"
            f"        raise ValueError(f{message!r})\n"
            "    o = new(cls)\n"
            f"    o.__dict__ = {{{', '.join(entries)}}}\n"
            "    return o\n"
        )
        exec(compile(source, f"<packing layout {self.cls.__qualname__}>", "exec"), ns)  # noqa: S102
        return ns["values"], ns["build"]


def _sparse_memo(b: bytearray, memo: _BytesMemo | None) -> Any:
    return _sparse(b) if memo is None else memo.sparse(b)


def _dense_memo(v: Any, memo: _BytesMemo | None) -> bytearray:
    return _dense(v) if memo is None else memo.dense(v)


def _sparse(b: bytearray) -> Any:
    """``b`` as bytes, or ``[size, positions (uint16 LE), values]`` when mostly zeros."""
    a = np.frombuffer(b, dtype=np.uint8)
    nz = a.nonzero()[0]  # (np.flatnonzero is the same index, a few microseconds slower)
    if len(a) > 65535 or len(nz) > _SPARSE_SHARE * len(a):
        return bytes(b)
    return [len(a), nz.astype("<u2").tobytes(), a[nz].tobytes()]


def _dense(v: Any) -> bytearray:
    if type(v) is bytes:
        return bytearray(v)
    size, positions, values = v
    out = bytearray(size)
    if len(values) <= _LOOP_BYTES:  # a few bytes: cheaper than numpy's per-call cost
        positions = struct.unpack(f"<{len(values)}H", positions)
        for position, value in zip(positions, values, strict=True):
            out[position] = value
    else:
        np.frombuffer(out, dtype=np.uint8)[np.frombuffer(positions, dtype="<u2")] = \
            np.frombuffer(values, dtype=np.uint8)
    return out


class _BytesMemo:
    """The packed form of the bytearrays unpacked since they were last packed.

    A quiet series is unpacked, learns one window and is packed again at the next close;
    its bit table rarely changes in one window. Unpacking remembers the table's packed
    form with a copy of its bytes, and packing reuses that form when the table still
    holds the same bytes (compared in full: a reused form is always the right one). The
    memo holds the unpacked tables themselves, so an ``id`` is never reused while
    remembered, and it is cleared when it reaches ``limit`` entries (then forms are
    just computed again).
    """

    __slots__ = ("entries", "limit")

    def __init__(self, limit: int = 1 << 14) -> None:
        self.entries: dict[int, tuple[bytearray, bytes, Any]] = {}
        self.limit = limit

    def dense(self, v: Any) -> bytearray:
        out = _dense(v)
        if len(self.entries) >= self.limit:
            self.entries.clear()
        self.entries[id(out)] = (out, bytes(out), v)
        return out

    def sparse(self, b: bytearray) -> Any:
        entry = self.entries.pop(id(b), None)
        if entry is not None and entry[0] is b and entry[1] == b:
            return entry[2]
        return _sparse(b)


class DetectorPacker:
    """Packs and unpacks a series' detectors against the prototypes they were made from.

    ``prototypes`` maps ``(detector name, direction)`` to the untrained detector a
    series of that direction starts from; ``(name, "up")`` is the fallback, as in
    :meth:`streams.scoring.Scoring._fresh`.
    """

    def __init__(self, prototypes: Mapping[tuple[str, str], Detector]) -> None:
        self._layouts = {key: _Layout(d) for key, d in prototypes.items()}
        self._memo = _BytesMemo()

    def _layout(self, name: str, direction: str) -> _Layout:
        return self._layouts.get((name, direction)) or self._layouts[(name, "up")]

    def pack(self, header: list[Any], detectors: Mapping[str, Detector], direction: str) -> bytes:
        """``header`` (plain values) and the learned state of ``detectors`` as one blob."""
        body = []
        for name, d in detectors.items():
            layout = self._layout(name, direction)
            if type(d) is not layout.cls:
                raise NotPackable(f"{name}: a {type(d).__name__}, not a {layout.cls.__name__}")
            body.append([name, layout.values(d, self._memo)])
        try:
            return _encode([*header, body])
        except TypeError as exc:
            raise NotPackable(str(exc)) from None

    @staticmethod
    def tree(blob: bytes) -> list[Any]:
        """The plain data of ``blob``: ``[*header, [[name, values], ...]]``."""
        return _decode(blob)

    @staticmethod
    def blob(tree: list[Any]) -> bytes:
        """``tree`` (as :meth:`tree` reads it) packed again."""
        return _encode(tree)

    @staticmethod
    def header(blob: bytes) -> list[Any]:
        """The header :meth:`pack` was given (without building any detector)."""
        return _decode(blob)[:-1]

    def unpack(self, blob: bytes, direction: str) -> tuple[list[Any], dict[str, Detector]]:
        """``(header, detectors)`` from a blob :meth:`pack` wrote."""
        tree = _decode(blob)
        memo = self._memo
        return tree[:-1], {name: self._layout(name, direction).build(values, memo)
                           for name, values in tree[-1]}

    def detector_bytes(self, blob: bytes) -> dict[str, int]:
        """Packed bytes per detector in ``blob`` (for the state-size metric)."""
        return {name: len(_encode(values)) for name, values in _decode(blob)[-1]}

    def spec(self, name: str, direction: str) -> dict[str, Any]:
        """The layout of detector ``name`` for ``direction`` as plain data (:meth:`_Layout.spec`)."""
        return self._layout(name, direction).spec()

    def values(self, name: str, direction: str, detector: Detector) -> list[Any]:
        """The packed learned values of ``detector`` (one entry of :meth:`pack`'s body)."""
        return self._layout(name, direction).values(detector)

    def build(self, name: str, direction: str, values: list[Any]) -> Detector:
        """The detector ``values`` (one entry of :meth:`pack`'s body) stand for."""
        return self._layout(name, direction).build(values)

    @staticmethod
    def edit(blob: bytes, keep: Iterable[str], fresh: Mapping[str, list[Any]]) -> bytes:
        """``blob`` with the detectors in ``keep`` kept (in ``fresh``'s order) and the other
        names of ``fresh`` started from their given values; detectors in neither are dropped."""
        tree = _decode(blob)
        old = dict((name, values) for name, values in tree[-1])
        kept = set(keep)
        tree[-1] = [[n, old[n] if n in kept and n in old else v] for n, v in fresh.items()]
        return _encode(tree)
