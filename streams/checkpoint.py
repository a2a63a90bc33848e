"""Transitional local checkpoint files, data-only: what the worker used before the changelog.

The worker's state now belongs in the consumer group's changelog topic
(:class:`streams.state_store.PartitionStateStore`), so it moves with its
partitions between machines. Until the worker loop is rewired to it, this
synchronous store keeps the old call sites working, but with the same
versioned, data-only encoding (:mod:`streams.state_codec`): a file is never
unpickled, and a file that is tampered with, from another format version or
another configuration is refused (logged) and the partition starts cold.

>>> import tempfile
>>> from streams.config import Settings
>>> from streams.pipeline import PartitionPipeline
>>> store = CheckpointStore(tempfile.mkdtemp())
>>> store.save("trade.declarations", 3, PartitionPipeline(Settings(), partition=3), next_offset=42)
>>> pipeline, offset = store.load("trade.declarations", 3, Settings())
>>> offset, pipeline.partition
(42, 3)
>>> _ = store.path("trade.declarations", 3).write_bytes(b"not a state")
>>> store.load("trade.declarations", 3, Settings()) is None
True
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from streams.config import Settings
from streams.metrics import PipelineMetrics
from streams.pipeline import PartitionPipeline
from streams.state_codec import FORMAT_VERSION, Refusal, decode_envelope, encode_envelope

__all__ = ["CheckpointStore", "CHECKPOINT_VERSION"]

log = logging.getLogger(__name__)

#: The state encoding's version (files of other versions are refused).
CHECKPOINT_VERSION = FORMAT_VERSION


class CheckpointStore:
    """Checkpoint files under ``directory``, one per (topic, partition)."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def path(self, topic: str, partition: int) -> Path:
        return self.directory / f"{topic}-{partition}.ckpt"

    def save(self, topic: str, partition: int, pipeline: PartitionPipeline, next_offset: int,
             settings: Settings | None = None) -> None:
        """Write atomically (temporary file, then rename)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        raw = encode_envelope(topic, partition, pipeline, next_offset, settings or pipeline.settings)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".ckpt-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(raw)
            os.replace(tmp, self.path(topic, partition))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def load(
        self, topic: str, partition: int, settings: Settings,
        metrics: PipelineMetrics | None = None,
    ) -> tuple[PartitionPipeline, int] | None:
        """The saved pipeline (bound to ``settings`` and ``metrics``) and its next offset.

        ``None`` when there is no usable checkpoint: none saved, or refused
        (the reason is logged and counted).
        """
        try:
            raw = self.path(topic, partition).read_bytes()
        except OSError:
            return None
        result = decode_envelope(raw, topic, partition, settings, metrics)
        if isinstance(result, Refusal):
            log.warning("checkpoint %s refused, cold start: %s", self.path(topic, partition), result)
            if metrics is not None:
                metrics.state_restores.labels(outcome="refused").inc()
                metrics.state_refusals.labels(reason=result.reason).inc()
            return None
        return result.pipeline, result.next_offset
