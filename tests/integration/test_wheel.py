"""The package as a user gets it: a wheel, installed in a fresh virtual environment outside
the checkout, run from an empty directory. Every subcommand's --help, `alerts generate` and
`dashboards generate` into a temporary folder, `runbook` and `runbook --list`, and the
exporter against a real Redis, serving a runbook from the installed package."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import ExporterProcess, RedisServer, redis_server

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """``bin/`` of a fresh venv holding only the wheel; its dependencies come from this
    environment's site-packages (offline), the package itself only from the wheel."""
    base = tmp_path_factory.mktemp("wheel")
    wheels = base / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(wheels),
            str(ROOT),
        ],
        check=True,
        cwd=base,
    )
    [wheel] = wheels.glob("memorywatch-*.whl")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    site = next((venv / "lib").glob("python*/site-packages"))
    # A plain path line: the dependencies, but not this environment's editable memorywatch
    # (its .pth files are not processed through it).
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
    )
    yield venv / "bin"


def run(bin_dir: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "MEMORYWATCH_"))}
    return subprocess.run(
        [str(bin_dir / "memorywatch"), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
        check=False,
    )


def test_the_installed_package_is_the_wheel_not_the_checkout(
    installed: Path, tmp_path: Path
) -> None:
    proc = subprocess.run(
        [str(installed / "python"), "-c", "import memorywatch; print(memorywatch.__file__)"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
    )
    assert str(ROOT) not in proc.stdout and str(installed.parent) in proc.stdout


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["exporter"],
        ["alerts"],
        ["alerts", "generate"],
        ["alerts", "check"],
        ["alerts", "thresholds"],
        ["dashboards"],
        ["dashboards", "generate"],
        ["dashboards", "check"],
        ["runbook"],
        ["demo"],
        ["diagnose"],
    ],
)
def test_every_subcommand_has_help(installed: Path, tmp_path: Path, command: list[str]) -> None:
    proc = run(installed, tmp_path, *command, "--help")
    assert proc.returncode == 0, proc.stderr
    assert "Usage: memorywatch" in proc.stdout


def test_generators_write_into_a_temporary_folder(installed: Path, tmp_path: Path) -> None:
    alerts = run(installed, tmp_path, "alerts", "generate", "--out-dir", str(tmp_path / "a"))
    assert alerts.returncode == 0, alerts.stderr
    for name in ("memorywatch.rules.yaml", "alertmanager.yaml"):
        assert (tmp_path / "a" / name).read_text() == (ROOT / "alerts" / name).read_text()
    boards = run(installed, tmp_path, "dashboards", "generate", "--out-dir", str(tmp_path / "d"))
    assert boards.returncode == 0, boards.stderr
    assert sorted(p.name for p in (tmp_path / "d").glob("*.json")) == sorted(
        p.name for p in (ROOT / "dashboards").glob("*.json")
    )


def test_runbook_from_the_installed_package(installed: Path, tmp_path: Path) -> None:
    page = run(installed, tmp_path, "runbook", "AgentLockLost")
    assert page.returncode == 0, page.stderr
    assert page.stdout == (ROOT / "runbooks" / "AgentLockLost.md").read_text()
    listing = run(installed, tmp_path, "runbook", "--list")
    expected = sorted(p.stem for p in (ROOT / "runbooks").glob("*.md") if p.stem != "README")
    assert listing.stdout.split() == expected
    missing = run(installed, tmp_path, "runbook", "AgentLockLots")
    assert missing.returncode == 1 and "AgentLockLost" in missing.stderr  # a close match
    assert "Traceback" not in missing.stderr


def test_the_installed_exporter_against_a_real_redis(installed: Path, tmp_path: Path) -> None:
    with redis_server() as server:
        check = run(installed, tmp_path, "exporter", "--redis-url", server.url, "--check")
        assert check.returncode == 0, check.stdout + check.stderr
        _serve_runbook(installed, server)


def _serve_runbook(installed: Path, server: RedisServer) -> None:
    exporter = ExporterProcess(
        ["--redis-url", server.url], command=[str(installed / "memorywatch")]
    )
    exporter.start()
    try:
        base = exporter.base
        with urllib.request.urlopen(f"{base}/runbooks/AgentLockLost", timeout=10) as response:  # noqa: S310
            assert response.headers["Content-Type"].startswith("text/markdown")
            assert response.read().decode() == (ROOT / "runbooks" / "AgentLockLost.md").read_text()
        with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:  # noqa: S310
            assert b"redis_up 1" in response.read()
    finally:
        exporter.stop()


def test_the_installed_diagnose_against_a_real_redis(installed: Path, tmp_path: Path) -> None:
    with redis_server("--maxmemory-policy", "volatile-lru") as server:
        proc = run(installed, tmp_path, "diagnose", "--redis-url", server.url, "--format", "json")
    # the policy and the unset maxmemory are risks, not causes: clean, and listed apart
    assert proc.returncode == 0, proc.stderr
    body = json.loads(proc.stdout)
    assert body["causes"] == []
    alerts = [risk["alert"] for risk in body["risks"]]
    assert alerts == ["RedisEvictionPolicyUnsafe", "RedisMaxmemoryNotSet"]
    assert all(risk["runbook"].startswith("memorywatch runbook ") for risk in body["risks"])
    down = run(installed, tmp_path, "diagnose", "--redis-url", "redis://127.0.0.1:1")
    assert down.returncode == 2 and "Traceback" not in down.stderr
