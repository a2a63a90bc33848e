"""What an alert was judged with: the config's version and hash, and the CHPL list's version.

An analyst who reopens an alert months later must be able to reproduce it: the
same records through the same configuration and the same reference list. Every
alert and incident therefore carries an :class:`AuditStamp`:

* ``config_version``: the free-text label of the config (``config_version`` in
  the TOML), what people say ("the November retune");
* ``config_hash``: the first 16 hex digits of the SHA-256 of the canonical config
  (:func:`config_hash`), what a machine checks: two files with the same hash
  judge the same records the same way, whatever their labels;
* ``chpl_version``: the edition and content hash of ``detectors/data/chpl.csv``
  (:data:`detectors.reference.CHPL_VERSION`), which decides what is in scope.

The hash covers what decides alerts (``validation``, ``windows``, ``alerts``,
``detectors``, ``overrides``, the effective ``series``), in the effective form
``config check`` prints, so defaults spelled out or left implicit hash alike. It
leaves out where and as whom a worker runs (``kafka``, ``worker``, ``topics``)
and the label ``config_version``: the same config published to a test cluster
and to production has one hash.

>>> from streams.config import load_settings_text
>>> a = load_settings_text('config_version = "a"')
>>> b = load_settings_text('config_version = "b"\\n[alerts]\\nmin_severity = "low"')
>>> config_hash(a) == config_hash(b), len(config_hash(a))
(True, 16)
>>> c = load_settings_text('[detectors.spike]\\nkind = "spike"\\nthreshold = 0.995')
>>> config_hash(c) == config_hash(a)
False
"""

from __future__ import annotations

import dataclasses
import hashlib

import msgspec

from detectors.reference import CHPL_VERSION
from streams.config import Settings
from streams.events import TradeAlert, TradeIncident

__all__ = ["AuditStamp", "config_hash", "HASHED_SECTIONS"]

#: Top-level config keys that do not decide alerts (deployment, naming, labels).
_UNHASHED = frozenset({"config_version", "kafka", "worker", "topics"})
#: The sections :func:`config_hash` covers.
HASHED_SECTIONS = tuple(sorted(set(Settings.__struct_fields__) - _UNHASHED))
#: Hex digits kept: 64 bits, ample to tell a deployment's configs apart.
HASH_DIGITS = 16


def config_hash(settings: Settings) -> str:
    """The short SHA-256 of the canonical, alert-deciding part of ``settings``."""
    data = settings.to_dict()
    canonical = {key: data[key] for key in HASHED_SECTIONS}
    return hashlib.sha256(msgspec.json.encode(canonical, order="sorted")).hexdigest()[:HASH_DIGITS]


@dataclasses.dataclass(frozen=True, slots=True)
class AuditStamp:
    """The audit fields every alert and incident of one configuration carries."""

    config_version: str
    config_hash: str
    chpl_version: str = CHPL_VERSION

    @classmethod
    def of(cls, settings: Settings) -> AuditStamp:
        return cls(settings.config_version, config_hash(settings))

    def alert(self, alert: TradeAlert) -> TradeAlert:
        """``alert`` with these audit fields."""
        return msgspec.structs.replace(alert, config_version=self.config_version,
                                       config_hash=self.config_hash,
                                       chpl_version=self.chpl_version)

    def incident(self, incident: TradeIncident) -> TradeIncident:
        """``incident`` with these audit fields."""
        return msgspec.structs.replace(incident, config_version=self.config_version,
                                       config_hash=self.config_hash,
                                       chpl_version=self.chpl_version)

    def label(self) -> str:
        """``version@hash`` as logs and ``alerts tail`` print it."""
        return f"{self.config_version}@{self.config_hash}"
