"""Detector state survives a restart: one checkpoint file per partition, written per closed window.

A checkpoint holds a partition's whole :class:`~streams.pipeline.PartitionPipeline`
(open windows, every series' detectors, cooldowns) and the offset of the next
record it has not seen. On assignment the worker loads it and seeks the partition
there, so the records after the checkpoint are replayed into exactly the state
that first saw them: the replay raises the same alerts with the same
deterministic ``alert_id``, which consumers deduplicate.

Checkpoints are written once per closed window (not per record: a window holds
thousands), atomically (write to a temporary file, then rename), and are trusted
local files of the worker, never input from Kafka: ``pickle`` is fine here and
nowhere else.

>>> import tempfile
>>> from streams.config import Settings
>>> from streams.pipeline import PartitionPipeline
>>> store = CheckpointStore(tempfile.mkdtemp())
>>> store.save("trade.declarations", 3, PartitionPipeline(Settings(), partition=3), next_offset=42)
>>> pipeline, offset = store.load("trade.declarations", 3, Settings())
>>> offset, pipeline.partition
(42, 3)
"""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

from streams.config import Settings
from streams.metrics import PipelineMetrics
from streams.pipeline import PartitionPipeline

__all__ = ["CheckpointStore", "CHECKPOINT_VERSION"]

#: Bumped whenever PartitionPipeline's pickled layout changes; older files are ignored.
CHECKPOINT_VERSION = 1


class CheckpointStore:
    """Checkpoint files under ``directory``, one per (topic, partition)."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def path(self, topic: str, partition: int) -> Path:
        return self.directory / f"{topic}-{partition}.ckpt"

    def save(self, topic: str, partition: int, pipeline: PartitionPipeline, next_offset: int) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        payload: dict[str, Any] = {
            "version": CHECKPOINT_VERSION, "topic": topic, "partition": partition,
            "next_offset": next_offset, "pipeline": pipeline,
        }
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".ckpt-")
        try:
            with os.fdopen(fd, "wb") as fh:
                pickle.dump(payload, fh, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, self.path(topic, partition))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def load(
        self, topic: str, partition: int, settings: Settings,
        metrics: PipelineMetrics | None = None,
    ) -> tuple[PartitionPipeline, int] | None:
        """The saved pipeline (rebound to ``settings`` and ``metrics``) and its next offset.

        ``None`` when there is no usable checkpoint: none saved, another layout
        version, or a pipeline built from a different configuration (its
        detectors would not be the ones the config now asks for).
        """
        path = self.path(topic, partition)
        try:
            with path.open("rb") as fh:
                payload = pickle.load(fh)  # noqa: S301 - the worker's own file
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError):
            return None
        if payload.get("version") != CHECKPOINT_VERSION:
            return None
        pipeline: PartitionPipeline = payload["pipeline"]
        if pipeline.settings.detectors != settings.detectors or pipeline.settings.windows != settings.windows:
            return None
        pipeline.rebind(settings, metrics)
        return pipeline, int(payload["next_offset"])
