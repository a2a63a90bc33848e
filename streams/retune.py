"""Live retune: which published configs a running worker may adopt, and why it refuses the others.

An analyst publishes a config (``tradewatch config publish FILE``,
:mod:`streams.config_topic`); every worker of the consumer group reads it and,
if it can adopt it without restarting, each partition switches at its **next
window boundary**: the window that closes next is still judged under the old
config, every later one under the new (:meth:`streams.worker.RecordHandler.retune`).
Detector state is kept: series, windows, cooldowns and every detector whose kind
and parameters did not change go on learning; a detector added (or whose
parameters changed) starts fresh, one removed is dropped
(:meth:`streams.scoring.Scoring.reconfigure`).

What can change live is what only decides what is done with the state:

* ``detectors`` (thresholds, ``enabled``, ``min_series_activity``, parameters,
  detectors added or removed), ``overrides``, ``alerts``;
* ``validation`` limits, except ``dedup_horizon_seconds`` (part of the state);
* ``config_version``, the label.

Everything else is where the worker runs or the shape of its state: ``kafka``,
``topics``, ``worker``, ``windows`` (the grid every window and checkpoint is
cut on) and the series families. A config that changes any of it is rejected
(reason ``not_live``) with the path of the first such key: restart the workers
with it instead (their saved state is refused if the window grid changed).

Every rejection keeps the running config, is logged with its reason and counted in
``tradewatch_config_rejected_total{reason}`` (:data:`REJECT_REASONS`).

>>> from streams.config import load_settings_text
>>> old = load_settings_text('[windows]\\nsize_seconds = 86400')
>>> new = load_settings_text('[windows]\\nsize_seconds = 3600')
>>> try:
...     check_live(old, new)
... except ConfigRejected as err:
...     print(err.reason, err)
not_live windows.size_seconds: 86400.0 -> 3600.0 cannot change in a running worker; restart the workers with it
>>> check_live(old, load_settings_text('[windows]\\nsize_seconds = 86400\\n[alerts]\\nmin_severity = "high"'))
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streams.config import ConfigError, Settings, load_settings_text

__all__ = ["ConfigRejected", "REJECT_REASONS", "LIVE_KEYS", "check_live", "candidate_settings"]

#: Why a worker refused a published config (bounded: a metric label).
#: ``malformed``: not a published-config record; ``invalid``: the TOML fails this
#: worker's validation (e.g. a detector kind its code does not know); ``not_live``:
#: it changes a setting that needs a restart; ``not_persistable``: its state could
#: not be checkpointed.
REJECT_REASONS = ("malformed", "invalid", "not_live", "not_persistable")
#: Dotted config paths (and every key below them) that may differ in a live change.
LIVE_KEYS = ("config_version", "detectors", "overrides", "alerts", "validation")
#: ... except these, below a live key.
_NOT_LIVE_BELOW = ("validation.dedup_horizon_seconds",)


class ConfigRejected(Exception):
    """A published config this worker will not adopt; ``reason`` is in :data:`REJECT_REASONS`."""

    def __init__(self, reason: str, message: str) -> None:
        assert reason in REJECT_REASONS, reason
        super().__init__(message)
        self.reason = reason


def _live(path: str) -> bool:
    """Whether everything at and below ``path`` may change live."""
    def under(prefix: str) -> bool:
        return path == prefix or path.startswith(prefix + ".")
    return (any(under(k) for k in LIVE_KEYS)
            and not any(under(k) or k.startswith(path + ".") for k in _NOT_LIVE_BELOW))


def _differences(a: Any, b: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """Every (dotted path, old, new) where ``a`` and ``b`` differ outside the live keys."""
    if path and _live(path):
        return []
    if isinstance(a, dict) and isinstance(b, dict):
        return [found for key in sorted(set(a) | set(b))
                for found in _differences(a.get(key), b.get(key), f"{path}.{key}".lstrip("."))]
    return [] if a == b else [(path, a, b)]


def check_live(active: Settings, candidate: Settings) -> None:
    """Raise :class:`ConfigRejected` unless ``candidate`` may replace ``active`` in a running worker."""
    from streams.state_codec import StateNotPersistable, check_persistable

    found = _differences(active.to_dict(), candidate.to_dict())
    if found:
        changes = ", ".join(f"{path}: {old!r} -> {new!r}" for path, old, new in found)
        raise ConfigRejected("not_live", f"{changes} cannot change in a running worker; "
                             "restart the workers with it")
    if candidate.worker.checkpoints:
        try:
            check_persistable(candidate)
        except StateNotPersistable as err:
            raise ConfigRejected("not_persistable", str(err)) from None


def candidate_settings(toml: str, env: Mapping[str, str] | None = None,
                       source: str = "<published config>") -> Settings:
    """The settings a published TOML describes, validated as at a worker's start.

    ``env`` is the worker's environment: the overrides it started with apply to
    the published file too (a file says what, the environment where).
    """
    try:
        return load_settings_text(toml, env=env, source=source)
    except ConfigError as err:
        raise ConfigRejected("invalid", str(err)) from None
