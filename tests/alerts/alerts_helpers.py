"""Shared paths and the promtool runner for the alert tests."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ALERTS_DIR = REPO / "alerts"
RUNBOOKS_DIR = REPO / "runbooks"
RULES_FILE = ALERTS_DIR / "memorywatch.rules.yaml"
CRD_FILE = ALERTS_DIR / "prometheusrule.yaml"
PROMTOOL = "/usr/bin/promtool"


def promtool_path() -> str:
    """Debian's promtool 2.42; a missing binary fails the test, it never skips it."""
    found = PROMTOOL if Path(PROMTOOL).is_file() else shutil.which("promtool")
    if found is None:
        pytest.fail("promtool not found (apt-get install prometheus, or run scripts/test)")
    return found


def promtool(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool_path(), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


AMTOOL = "/usr/bin/amtool"
ALERTMANAGER_BINARIES = ("/usr/bin/prometheus-alertmanager", "/usr/bin/alertmanager")


def amtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Debian's amtool 0.25; a missing binary fails the test, it never skips it."""
    found = AMTOOL if Path(AMTOOL).is_file() else shutil.which("amtool")
    if found is None:
        pytest.fail("amtool not found (apt-get install prometheus-alertmanager)")
    return subprocess.run([found, *map(str, args)], capture_output=True, text=True, timeout=60)


def alertmanager_path() -> str:
    found = next((p for p in ALERTMANAGER_BINARIES if Path(p).is_file()), None)
    found = found or shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if found is None:
        pytest.fail("alertmanager not found (apt-get install prometheus-alertmanager)")
    return found
