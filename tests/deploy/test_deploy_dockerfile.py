"""Dockerfile and .dockerignore: slim, non-root, healthy, and running the real CLI.

No Docker here: the image's build stage is replayed. Exactly the files its COPY lines take
(as .dockerignore lets them into the context) go into an empty directory, a fresh venv gets
its ``pip install`` (offline, from a wheel house of this environment's versions), and the
installed command runs from an empty directory: the exporter, runbooks, diagnose."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from deploy_helpers import (
    DEFAULT_PORT,
    EXPORTER,
    REPO,
    Instruction,
    dockerfile_instructions,
    listen_port,
    load_one,
    parse_exporter_args,
)
from prometheus_client.parser import text_string_to_metric_families

from harness import LOOPBACK, RedisServer, free_port, redis_server, stop_pid, wait_until
from install_helpers import clean_env, fresh_venv, pip_install, requirements, wheelhouse
from memorywatch import names

DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"


def instructions(keyword: str) -> list[Instruction]:
    return [i for i in dockerfile_instructions(DOCKERFILE.read_text()) if i.keyword == keyword]


def build_stage() -> list[Instruction]:
    """The instructions of the stage named ``build`` (after its FROM, before the next)."""
    stages: list[list[Instruction]] = []
    for instruction in dockerfile_instructions(DOCKERFILE.read_text()):
        if instruction.keyword == "FROM":
            stages.append([])
        stages[-1].append(instruction)
    (stage,) = [s for s in stages if s[0].args.split()[-1] == "build"]
    return stage


def pip_installs(stage: list[Instruction]) -> list[list[str]]:
    """The arguments of every ``pip install`` the stage's RUN lines make."""
    found = []
    for run in (i for i in stage if i.keyword == "RUN"):
        for command in run.args.split("&&"):
            words = shlex.split(command)
            if len(words) > 2 and words[0].endswith("pip") and words[1] == "install":
                found.append(words[2:])
    return found


def copies(stage: list[Instruction]) -> list[tuple[list[str], str]]:
    """(sources, destination) of every COPY from the build context."""
    found = []
    for copy in (i for i in stage if i.keyword == "COPY"):
        parts = copy.args.split()
        if not any(p.startswith("--from") for p in parts):
            found.append((parts[:-1], parts[-1]))
    return found


def exec_form(keyword: str) -> list[str]:
    (instruction,) = instructions(keyword)
    value = json.loads(instruction.args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value)
    return value


def pyproject() -> dict[str, object]:
    with (REPO / "pyproject.toml").open("rb") as fh:
        return tomllib.load(fh)


def test_base_images_are_slim_python_pinned_to_the_supported_minor() -> None:
    project = pyproject()["project"]
    assert isinstance(project, dict)
    minor = re.fullmatch(r">=(\d+\.\d+)", project["requires-python"])
    assert minor, project["requires-python"]
    for instruction in instructions("FROM"):
        image = instruction.args.split()[0]
        assert re.fullmatch(rf"python:{re.escape(minor[1])}-slim(-[a-z]+)?", image), image


def test_runs_as_the_non_root_user_the_pod_expects() -> None:
    (user,) = instructions("USER")
    uid = user.args.split(":")[0]
    assert uid not in ("root", "0") and uid.isdigit()
    pod = load_one(EXPORTER / "exporter-deployment.yaml")["spec"]["template"]["spec"]
    assert int(uid) == pod["securityContext"]["runAsUser"]


def test_entrypoint_is_the_project_script_and_cmd_a_real_exporter_command() -> None:
    scripts = pyproject()["project"]
    assert isinstance(scripts, dict)
    assert exec_form("ENTRYPOINT") == list(scripts["scripts"])
    args = parse_exporter_args(exec_form("CMD"))
    (listen,) = args["--listen"]
    assert listen_port(listen) == DEFAULT_PORT
    (expose,) = instructions("EXPOSE")
    assert expose.args == str(DEFAULT_PORT)


def test_healthcheck_asks_healthz_with_python_on_the_served_port() -> None:
    (check,) = instructions("HEALTHCHECK")
    assert "CMD" in check.args
    command = json.loads(check.args.split("CMD", 1)[1])
    assert command[:2] == ["python", "-c"]
    assert "urllib.request" in command[2]
    (url,) = re.findall(r"http://[^'\"]+", command[2])
    assert url == f"http://127.0.0.1:{DEFAULT_PORT}/healthz"


def test_package_is_installed_from_the_tree_with_the_exporter_extra_only() -> None:
    assert pip_installs(build_stage()) == [[".[exporter]"]]


def test_dockerignore_admits_exactly_what_copy_needs() -> None:
    lines = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "an allow-list: nothing enters the context unless named"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    sources = [s.rstrip("/") for found, _ in copies(build_stage()) for s in found]
    assert set(sources) == allowed
    for source in sources:
        assert (REPO / source).exists(), source


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """``bin/`` of the build stage's venv, built from exactly what its COPY lines take."""
    base = tmp_path_factory.mktemp("image")
    stage = build_stage()
    (workdir,) = [i.args for i in stage if i.keyword == "WORKDIR"]
    context = base / "context"
    for sources, destination in copies(stage):
        target = context / Path(workdir, destination).relative_to(workdir)
        for source in sources:
            path = REPO / source
            into = target / path.name if destination.endswith("/") else target
            if path.is_dir():
                ignored = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
                shutil.copytree(path, into, ignore=ignored)
            else:
                into.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, into)
    house = wheelhouse(base / "house", requirements("exporter", build=True))
    bin_dir = fresh_venv(base / "venv")
    for args in pip_installs(stage):
        pip_install(bin_dir, house, *args, cwd=context)
    yield bin_dir


def run_image(bin_dir: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(bin_dir / "memorywatch"), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=clean_env(),
        timeout=120,
        check=False,
    )


RUNBOOKS = sorted(p.stem for p in (REPO / "runbooks").glob("*.md") if p.stem != "README")


@pytest.mark.slow
def test_the_image_lists_every_runbook_and_runs_its_commands(image: Path, tmp_path: Path) -> None:
    listing = run_image(image, tmp_path, "runbook", "--list")
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.split() == RUNBOOKS
    assert len(RUNBOOKS) > 20
    for command in (["diagnose", "--help"], ["exporter", "--help"]):
        proc = run_image(image, tmp_path, *command)
        assert proc.returncode == 0, (command, proc.stderr)
        assert proc.stdout.startswith(f"Usage: memorywatch {command[0]}"), proc.stdout
    alerts = run_image(image, tmp_path, "alerts", "generate", "--out-dir", str(tmp_path / "a"))
    assert alerts.returncode == 0, alerts.stderr
    boards = run_image(image, tmp_path, "dashboards", "generate", "--out-dir", str(tmp_path / "d"))
    assert boards.returncode == 0, boards.stderr
    assert sorted(p.name for p in (tmp_path / "d").glob("*.json")) == sorted(
        p.name for p in (REPO / "dashboards").glob("*.json")
    )


def _get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers["Content-Type"], err.read().decode()


@pytest.mark.slow
def test_the_image_exporter_serves_metrics_and_runbooks(image: Path, tmp_path: Path) -> None:
    port = free_port()
    base = f"http://{LOOPBACK}:{port}"
    log = tmp_path / "exporter.log"
    with redis_server() as server, log.open("w") as out:
        command = [str(image / "memorywatch"), "exporter", "--listen", f"{LOOPBACK}:{port}"]
        proc = subprocess.Popen(
            [*command, "--redis-url", server.url],
            cwd=tmp_path,  # no runbooks/ here: they must come from the installed package
            env=clean_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            _serve(base, proc, log, server)
        finally:
            stop_pid(proc)


def _serve(base: str, proc: subprocess.Popen[bytes], log: Path, server: RedisServer) -> None:
    def healthy() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"exporter exited with {proc.returncode}:\n{log.read_text()}")
        return _get(f"{base}/healthz")[0] == 200

    wait_until(healthy, 20, what="the image's exporter /healthz")
    status, kind, body = _get(f"{base}/runbooks/RedisDown")
    assert (status, kind) == (200, "text/markdown; charset=utf-8"), (status, body)
    assert body == (REPO / "runbooks" / "RedisDown.md").read_text()
    status, _, listing = _get(f"{base}/runbooks")
    assert status == 200 and listing.split() == RUNBOOKS
    status, _, metrics = _get(f"{base}/metrics")
    assert status == 200, metrics
    up = {f.name: f for f in text_string_to_metric_families(metrics)}[names.REDIS_UP]
    assert up.samples[0].value == 1, os.linesep.join(log.read_text().splitlines()[-5:])
