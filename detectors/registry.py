"""Config names of the detectors, and validated construction from config.

``build(kind, params)`` is the one way the pipeline turns a config entry into a
detector. It checks the kind and every parameter name against the class's
``__init__`` signature before constructing, so a typo in a config file fails at
start-up with a message that lists what is valid, instead of being ignored.

>>> build("changepoint", {"threshold": 6.0}).threshold
6.0
>>> try:
...     build("changepoint", {"treshold": 6.0})
... except DetectorConfigError as err:
...     print(err.kind, err.param)
...     print(err)
changepoint treshold
changepoint: unknown parameter 'treshold'; valid parameters are ['allowance', ...]

A detector composed of parts (:class:`detectors.base.Part`, e.g. the spike
detector's ``baseline``) takes each part's parameters as a nested table, checked
the same way; the error names the dotted path inside ``params``:

>>> build("spike", {"novelty": {"levels": 0}}).novelty.levels
0
>>> try:
...     build("spike", {"baseline": {"level_rte": 0.1}})
... except DetectorConfigError as err:
...     print(err.param)
baseline.level_rte
"""

from __future__ import annotations

import importlib
import inspect
import re
import warnings
from collections.abc import Mapping
from typing import Any

from detectors.base import Detector, Part
from detectors.changepoint import LevelShiftDetector
from detectors.novelty import EntityNoveltyDetector
from detectors.onset import OnsetDetector
from detectors.passthrough import PassThroughDetector
from detectors.trend import TrendDetector
from detectors.volume import VolumeSurgeDetector
from detectors.unit_value import UnitValueDetector

__all__ = ["DETECTOR_KINDS", "DetectorConfigError", "build", "part_classes", "valid_params"]


class DetectorConfigError(ValueError):
    """A detector config names an unknown kind or parameter, or a bad value.

    ``kind`` is the config's kind; ``param`` the offending parameter name, or
    ``None`` when the kind itself (or the combination of values) is wrong.
    """

    def __init__(self, message: str, *, kind: str, param: str | None = None):
        super().__init__(message)
        self.kind = kind
        self.param = param


def _spike_class() -> type[Detector] | None:
    """The spike detector class from ``detectors.spike``, if that module exists.

    The module is written separately; it may export ``SPIKE_DETECTOR_CLASS``, else
    its single concrete :class:`Detector` subclass is used. A missing module leaves
    the kind out; an ambiguous one leaves it out with a warning.
    """
    try:
        module = importlib.import_module("detectors.spike")
    except ModuleNotFoundError as exc:
        if exc.name == "detectors.spike":
            return None
        raise
    cls = getattr(module, "SPIKE_DETECTOR_CLASS", None)
    if cls is not None:
        return cls  # type: ignore[no-any-return]
    found = [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj)
        and issubclass(obj, Detector)
        and obj.__module__ == module.__name__
        and not inspect.isabstract(obj)
    ]
    if len(found) != 1:
        names = sorted(c.__name__ for c in found)
        warnings.warn(
            f"detectors.spike defines {len(found)} Detector classes {names} and no "
            "SPIKE_DETECTOR_CLASS; the 'spike' kind is not registered",
            stacklevel=2,
        )
        return None
    return found[0]


def _kinds() -> dict[str, type[Detector]]:
    kinds: dict[str, type[Detector]] = {
        "changepoint": LevelShiftDetector,
        "unit_value": UnitValueDetector,
        "novelty": EntityNoveltyDetector,
        "passthrough": PassThroughDetector,
        "volume": VolumeSurgeDetector,
        "trend": TrendDetector,
        "onset": OnsetDetector,
    }
    spike = _spike_class()
    if spike is not None:
        kinds["spike"] = spike
    return kinds


#: Config name -> detector class.
DETECTOR_KINDS: dict[str, type[Detector]] = _kinds()


def valid_params(cls: type) -> dict[str, inspect.Parameter]:
    """The keyword parameters of a detector (or part) class's ``__init__``."""
    return {
        name: p
        for name, p in inspect.signature(cls.__init__).parameters.items()
        if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }


def build(kind: str, params: Mapping[str, Any] | None = None) -> Detector:
    """Construct the detector registered as ``kind`` with ``params``.

    A parameter whose default is a :class:`~detectors.base.Part` may be given as a
    mapping of that part's parameters (a TOML table); it is checked and built the
    same way. Raises :class:`DetectorConfigError` for an unknown kind, an unknown
    or missing parameter (``param`` is its dotted path, e.g. ``"baseline.clip"``),
    or a value the constructor rejects (its message is kept).
    """
    cls = DETECTOR_KINDS.get(kind)
    if cls is None:
        raise DetectorConfigError(
            f"unknown detector kind {kind!r}; valid kinds are {sorted(DETECTOR_KINDS)}",
            kind=kind,
        )
    return _construct(kind, cls, dict(params or {}), prefix="")  # type: ignore[no-any-return]


def part_classes(cls: type) -> dict[str, type[Part]]:
    """The parameters of ``cls`` whose default value is a part, and the part's class.

    Found on a default-constructed instance, the way river's ``clone``/``mutate``
    recurse into parameters that are estimators themselves.
    """
    try:
        default = cls()
    except Exception:  # noqa: BLE001 - a class without full defaults has no part defaults
        return {}
    return {
        name: type(value)
        for name in valid_params(cls)
        if isinstance(value := getattr(default, name, None), Part)
    }


def _construct(kind: str, cls: type, params: dict[str, Any], prefix: str) -> Any:
    """``cls(**params)`` with every name checked; nested part tables built first."""
    signature = valid_params(cls)
    of = f" of {prefix[:-1]} ({cls.__name__})" if prefix else ""
    parts = part_classes(cls) if any(isinstance(v, Mapping) for v in params.values()) else {}
    for name in params:
        if name not in signature:
            raise DetectorConfigError(
                f"{kind}: unknown parameter {prefix + name!r}; valid parameters{of} are "
                f"{sorted(signature)}{_moved_hint(cls, name, prefix)}",
                kind=kind,
                param=prefix + name,
            )
    for name, p in signature.items():
        if p.default is inspect.Parameter.empty and name not in params:
            raise DetectorConfigError(
                f"{kind}: missing required parameter {prefix + name!r}",
                kind=kind,
                param=prefix + name,
            )
    args = {
        name: _construct(kind, parts[name], dict(value), f"{prefix}{name}.")
        if isinstance(value, Mapping) and name in parts
        else value
        for name, value in params.items()
    }
    try:
        return cls(**args)
    except (TypeError, ValueError) as exc:
        named = _named_in(exc, params)
        # an error inside a part that names no single parameter is the part's own
        param = prefix + named if named is not None else (prefix[:-1] or None)
        raise DetectorConfigError(
            f"{kind}: {prefix[:-1]}: {exc}" if prefix else f"{kind}: {exc}",
            kind=kind,
            param=param,
        ) from exc


def _moved_hint(cls: type, name: str, prefix: str) -> str:
    """``"; 'clip' is a parameter of part 'baseline'"`` when it is one (a flat key)."""
    if prefix:
        return ""
    owners = [part for part, pcls in part_classes(cls).items() if name in valid_params(pcls)]
    if not owners:
        return ""
    return f"; {name!r} is a parameter of part {owners[0]!r}: write {owners[0]} = {{ {name} = ... }}"


def _named_in(exc: Exception, params: dict[str, Any]) -> str | None:
    """The single given parameter an error message names, if exactly one."""
    message = str(exc)
    named = [name for name in params if re.search(rf"\b{re.escape(name)}\b", message)]
    return named[0] if len(named) == 1 else None
