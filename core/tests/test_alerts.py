"""docs/alerts.yml under promtool: the rules load, and docs/alerts_test.yml sees every alert fire and stay quiet."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

DOCS = Path(__file__).resolve().parents[2] / "docs"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool not on PATH: scripts/promtool.sh installs it "
                                    "(from Debian's prometheus package); .ci/run does so")


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=60, cwd=DOCS)


@needs_promtool
def test_the_rules_load() -> None:
    check = _promtool("check", "rules", "alerts.yml")
    assert check.returncode == 0, check.stdout + check.stderr


@needs_promtool
def test_every_alert_behaves_as_its_unit_tests_say() -> None:
    run = _promtool("test", "rules", "alerts_test.yml")
    assert run.returncode == 0, run.stdout + run.stderr


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    rules = yaml.safe_load((DOCS / "alerts.yml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    tests = yaml.safe_load((DOCS / "alerts_test.yml").read_text())
    cases = [c for t in tests["tests"] for c in t.get("alert_rule_test", [])]
    fires = {c["alertname"] for c in cases if c.get("exp_alerts")}
    quiet = {c["alertname"] for c in cases if not c.get("exp_alerts")}
    assert len(alerts) == 9
    assert alerts - fires == set(), "alerts never seen firing"
    assert alerts - quiet == set(), "alerts never seen staying quiet"
