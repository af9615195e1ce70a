"""``pip install memorywatch`` as an agent's environment gets it: a fresh virtual environment
with the wheel and its two requirements (redis, opentelemetry-api) only. Nothing of the
exporter, CLI or generators is installed or imported; the parity scenarios pass there and
leave what they leave with the full install; the command says in one line what to install."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from parity import FLAVOURS, Outcome, compare, exporter_view, run_both
from parity_scenarios import CASES

from harness import RedisServer
from install_helpers import build_wheel, clean_env, fresh_venv, installed, pip_install, wheelhouse
from install_helpers import requirements as project_requirements
from memorywatch.agent import Settings

HERE = Path(__file__).resolve().parent
NOT_FOR_AGENTS = {"grafanalib", "click", "bcrypt", "prometheus-client", "opentelemetry-sdk"}
SDK_IMPORTS = {"memorywatch", "redis", "opentelemetry", "typing_extensions"}
"""Top-level modules outside the standard library that importing the SDK may load."""

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def light(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """``bin/`` of a fresh venv holding the SDK alone, installed offline from a wheel house of
    this environment's own versions of its requirements."""
    base = tmp_path_factory.mktemp("light")
    wheel = build_wheel(base)
    house = wheelhouse(base / "house", project_requirements())
    bin_dir = fresh_venv(base / "venv")
    pip_install(bin_dir, house, str(wheel))
    yield bin_dir


def run(bin_dir: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=clean_env(PATH=f"{bin_dir}:/usr/bin:/bin"),
        timeout=120,
        check=False,
    )


def test_pip_list_shows_the_sdk_and_its_two_requirements(light: Path) -> None:
    present = installed(light)
    assert {"memorywatch", "redis", "opentelemetry-api"} <= present
    assert not present & NOT_FOR_AGENTS, present & NOT_FOR_AGENTS
    assert not present & {"pyyaml", "hiredis", "attrs"}, present


def test_the_command_names_the_install_that_gives_it(light: Path, tmp_path: Path) -> None:
    for command in (
        [str(light / "memorywatch")],
        [str(light / "memorywatch"), "exporter", "--help"],
        [str(light / "python"), "-m", "memorywatch", "runbook", "--list"],
    ):
        proc = run(light, tmp_path, *command)
        assert proc.returncode == 1, (command, proc.stdout, proc.stderr)
        assert proc.stdout == ""
        (line,) = proc.stderr.splitlines()  # one line, no traceback
        assert line.startswith("memorywatch: the command needs the exporter extra"), line
        assert line.endswith("pip install 'memorywatch[exporter]'"), line


def _parity_in(light: Path, server: RedisServer, cwd: Path, *cases: str) -> dict[str, Any]:
    script = str(HERE / "parity_light.py")
    proc = run(light, cwd, str(light / "python"), script, server.url, *cases)
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def _same(value: Any) -> Any:
    """As it comes back through JSON (tuples are lists)."""
    return json.loads(json.dumps(value))


def test_the_sdk_imports_redis_and_opentelemetry_api_only(
    light: Path, server: RedisServer, tmp_path: Path
) -> None:
    loaded = _parity_in(light, server, tmp_path)["loaded"]
    roots = {m.split(".")[0] for m in loaded} - set(sys.stdlib_module_names)
    assert roots <= SDK_IMPORTS, roots - SDK_IMPORTS
    assert {"memorywatch.agent.aio", "redis", "opentelemetry.trace"} <= set(loaded)
    assert not [m for m in loaded if m.startswith("opentelemetry.sdk")]


@pytest.mark.parametrize("name", sorted(CASES))
def test_parity_scenarios_pass_with_the_sdk_alone(
    light: Path, server: RedisServer, raw: redis.Redis, tmp_path: Path, name: str
) -> None:
    scenario, settings = CASES[name]
    (runs,) = _parity_in(light, server, tmp_path, name)["cases"].values()
    light_runs = [Outcome(r["namespace"], log=r["log"], state=r["state"]) for r in runs]
    assert [o.namespace[1 : 1 + len(f)] for o, f in zip(light_runs, FLAVOURS, strict=True)] == [
        *FLAVOURS
    ]
    for outcome in light_runs:
        outcome.exporter = exporter_view(server.url, outcome.namespace)
    compare(*light_runs)  # the sync and the asyncio client agree (spans aside: no SDK here)
    # ... and leave what they leave with the full install (the OpenTelemetry SDK recording)
    full, _ = run_both(server.url, raw, scenario, Settings(**settings) if settings else None)
    assert light_runs[0].log == _same(full.log)
    assert light_runs[0].state == _same(full.state)
    assert light_runs[0].exporter == full.exporter
