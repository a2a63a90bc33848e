"""The layout is a contract: the runtime does not depend on the tools, and the
detectors do not touch Kafka or the network.

Checked by importing in a fresh interpreter and looking at what came along, so an
import added deep inside a helper module is caught as surely as one at the top.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def _modules_loaded_by(*modules: str) -> set[str]:
    code = ("import importlib, json, sys\n"
            f"for m in {list(modules)!r}: importlib.import_module(m)\n"
            "print(json.dumps(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True).stdout
    return set(json.loads(out))


def _top_level(names: set[str]) -> set[str]:
    return {n.split(".", 1)[0] for n in names}


@pytest.mark.parametrize("runtime", ["streams.app", "streams.worker", "streams.offline"])
def test_a_worker_never_imports_the_evaluation_tools(runtime: str) -> None:
    loaded = _modules_loaded_by(runtime)
    assert "evaluation" not in _top_level(loaded), sorted(
        n for n in loaded if n.startswith("evaluation"))


def test_the_detectors_import_neither_kafka_nor_the_runtime() -> None:
    import detectors

    names = sorted(p.stem for p in Path(detectors.__file__).parent.glob("*.py")
                   if p.stem != "__init__")
    loaded = _top_level(_modules_loaded_by(*(f"detectors.{n}" for n in names)))
    assert not loaded & {"streams", "evaluation", "kafka", "aiokafka", "faust"}, (
        sorted(loaded & {"streams", "evaluation", "kafka", "aiokafka", "faust"}))
