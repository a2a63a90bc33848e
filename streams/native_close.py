"""A quiet series' close in native code, where the native module is built and applies.

Why: at a million series a daily close costs about 250 us of Python per series with
data (unpacking some forty learned values into detector objects, the catch-up loops,
four detectors, packing them again). ``native/`` (Rust) does the same on the packed
values in a few microseconds: the series stays packed, its state goes in and out as
the plain tree :class:`streams.packing.DetectorPacker` writes.

The Python detectors stay the reference. Every native detector is a line-by-line port
checked against them to the float bit (``tests/unit/native``), and the native close
never writes a finding: a series where any detector's score reaches its line is left
as it was and closed again on the Python path, which explains it. So the alerts are
the Python path's by construction; what the native close saves is the work on the
series that do not alert, which are nearly all of them.

It applies to the lazily closed families (``direction = "up"``, quiet series packed)
when every series detector of the config has a native twin with these parameters
(:meth:`NativeClose.build` says which does not); otherwise, or without the built
module (``scripts/build-native.sh``, run by ``make``), the close is all Python.

    >>> from streams.config import DEFAULT_CONFIG_PATH, load_settings
    >>> from streams.scoring import Scoring
    >>> Scoring(load_settings(DEFAULT_CONFIG_PATH, env={})).native_reason is None  # built, and applies
    True
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from streams.packing import DetectorPacker

try:
    from streams import tradewatch_native
except ImportError:  # not built: the close stays in Python
    tradewatch_native = None  # type: ignore[assignment]

__all__ = ["NativeClose", "available"]

log = logging.getLogger(__name__)
#: What this process has logged about the native close (once each, not per partition).
_logged: set[str | None] = set()


def _log_once(reason: str | None) -> None:
    if reason not in _logged:
        _logged.add(reason)
        if reason is None:
            log.info("native close: on (quiet series with data are closed in native code)")
        else:
            log.warning("native close: off, windows close in Python (~10x slower per series): %s", reason)


def available() -> bool:
    """Whether the native module is built and importable."""
    return tradewatch_native is not None


class NativeClose:
    """The native closer of one config's series detectors (direction ``up``)."""

    def __init__(self, closer: Any, names: Sequence[str]) -> None:
        self._closer = closer
        #: Detector names, in the order :meth:`close` takes their lines.
        self.names = tuple(names)

    @classmethod
    def build(cls, packer: DetectorPacker, names: Sequence[str], min_activity: Mapping[str, float],
              activity_rate: float) -> tuple[NativeClose | None, str | None]:
        """The closer for ``names`` (the config's series detectors), or None and why not."""
        if tradewatch_native is None:
            reason = "the native module is not built (scripts/build-native.sh)"
            _log_once(reason)
            return None, reason
        specs = [(name, packer.spec(name, "up")) for name in names]
        try:
            closer = tradewatch_native.Closer(specs, dict(min_activity), activity_rate)
        except ValueError as exc:
            _log_once(str(exc))
            return None, str(exc)
        _log_once(None)
        return cls(closer, names), None

    def close(self, blobs: list[bytes], scored: list[float], base: int, index: int, start: float,
              values: list[float], counts: list[int], learn: list[bool],
              line: Callable[[str, str], float | None], keys: Sequence[str]
              ) -> list[tuple[bytes, float, float] | None]:
        """Per packed series, ``(new blob, last window before, last window after)`` after
        closing window ``index``, or None where the Python path must close it (a score
        reached its line). Arguments as ``Closer.close`` in ``native/src/close.rs``;
        ``line(name, key)`` is the alert policy's threshold."""
        names = self.names
        lines = [[line(name, key) for name in names] for key in keys]
        return self._closer.close(blobs, scored, base, index, start, values, counts, learn, lines)
