"""promtool checks of the Prometheus config, the rule files and their unit tests.

promtool comes with Prometheus (`make prometheus`). A missing promtool fails
these tests: a skip would let broken rules through CI.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `pytest` (not `python -m pytest`) with --import-mode=importlib
    sys.path.insert(0, str(ROOT))

from tests.prometheus.dashboards import RULE_FILES, write_config  # noqa: E402

pytestmark = pytest.mark.prometheus

PROM_DIR = ROOT / "deploy" / "prometheus"


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool is not on PATH: run `make prometheus` "
                    "(scripts/install-prometheus.sh)")
    return subprocess.run([binary, *map(str, args)], capture_output=True, text=True, timeout=120,
                          check=False)


def assert_ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, f"{result.args}:\n{result.stdout}\n{result.stderr}"


def test_compose_config_is_valid() -> None:
    assert_ok(promtool("check", "config", PROM_DIR / "prometheus.yml"))


@pytest.mark.parametrize("rules", ["recording_rules.yml", "alerting_rules.yml"])
def test_rule_files_are_valid(rules: str) -> None:
    result = promtool("check", "rules", PROM_DIR / rules)
    assert_ok(result)
    assert "SUCCESS" in result.stdout


def test_rule_unit_tests_pass() -> None:
    tests = sorted((PROM_DIR / "tests").glob("*.yml"))
    assert len(tests) >= 2
    result = promtool("test", "rules", *tests)
    assert_ok(result)
    assert result.stdout.count("SUCCESS") == len(tests)


def test_rule_unit_tests_can_fail(tmp_path: Path) -> None:
    """A broken threshold makes the unit tests fail: they do test something."""
    broken = tmp_path / "alerting_rules.yml"
    text = (PROM_DIR / "alerting_rules.yml").read_text()
    assert "> 0.05" in text
    broken.write_text(text.replace("> 0.05", "> 0.5"))
    test = (PROM_DIR / "tests" / "alerting_rules_test.yml").read_text()
    (tmp_path / "t.yml").write_text(test.replace("../alerting_rules.yml", str(broken)))
    result = promtool("test", "rules", tmp_path / "t.yml")
    assert result.returncode != 0
    assert "TradewatchDeadLetterRateHigh" in result.stdout + result.stderr


def test_generated_local_run_config_is_valid(tmp_path: Path) -> None:
    config = write_config(tmp_path / "prometheus.yml", ["127.0.0.1:6066"], RULE_FILES)
    result = promtool("check", "config", config)
    assert_ok(result)
    assert "2 rule files found" in result.stdout
