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
"""

from __future__ import annotations

import importlib
import inspect
import re
import warnings
from typing import Any

from detectors.base import Detector
from detectors.changepoint import LevelShiftDetector
from detectors.novelty import EntityNoveltyDetector
from detectors.passthrough import PassThroughDetector
from detectors.volume import VolumeSurgeDetector
from detectors.unit_value import UnitValueDetector

__all__ = ["DETECTOR_KINDS", "DetectorConfigError", "build", "valid_params"]


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
    }
    spike = _spike_class()
    if spike is not None:
        kinds["spike"] = spike
    return kinds


#: Config name -> detector class.
DETECTOR_KINDS: dict[str, type[Detector]] = _kinds()


def valid_params(cls: type[Detector]) -> dict[str, inspect.Parameter]:
    """The keyword parameters of a detector class's ``__init__``."""
    return {
        name: p
        for name, p in inspect.signature(cls.__init__).parameters.items()
        if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }


def build(kind: str, params: dict[str, Any] | None = None) -> Detector:
    """Construct the detector registered as ``kind`` with ``params``.

    Raises :class:`DetectorConfigError` for an unknown kind, an unknown or missing
    parameter, or a value the constructor rejects (its message is kept).
    """
    params = dict(params or {})
    cls = DETECTOR_KINDS.get(kind)
    if cls is None:
        raise DetectorConfigError(
            f"unknown detector kind {kind!r}; valid kinds are {sorted(DETECTOR_KINDS)}",
            kind=kind,
        )
    signature = valid_params(cls)
    for name in params:
        if name not in signature:
            raise DetectorConfigError(
                f"{kind}: unknown parameter {name!r}; valid parameters are {sorted(signature)}",
                kind=kind,
                param=name,
            )
    for name, p in signature.items():
        if p.default is inspect.Parameter.empty and name not in params:
            raise DetectorConfigError(
                f"{kind}: missing required parameter {name!r}", kind=kind, param=name
            )
    try:
        return cls(**params)
    except (TypeError, ValueError) as exc:
        raise DetectorConfigError(
            f"{kind}: {exc}", kind=kind, param=_named_in(exc, params)
        ) from exc


def _named_in(exc: Exception, params: dict[str, Any]) -> str | None:
    """The single given parameter an error message names, if exactly one."""
    message = str(exc)
    named = [name for name in params if re.search(rf"\b{re.escape(name)}\b", message)]
    return named[0] if len(named) == 1 else None
