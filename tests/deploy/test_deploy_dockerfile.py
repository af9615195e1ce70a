"""Dockerfile and .dockerignore: slim, non-root, healthy, and running the real CLI."""

from __future__ import annotations

import json
import re
import tomllib

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

DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"


def instructions(keyword: str) -> list[Instruction]:
    return [i for i in dockerfile_instructions(DOCKERFILE.read_text()) if i.keyword == keyword]


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


def test_package_is_installed_from_the_tree_without_dev_extras() -> None:
    installs = [m for i in instructions("RUN") for m in re.findall(r"pip install ([^&;]+)", i.args)]
    assert [i.split() for i in installs] == [["."]]


def test_dockerignore_admits_exactly_what_copy_needs() -> None:
    lines = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "an allow-list: nothing enters the context unless named"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    sources = []
    for copy in instructions("COPY"):
        parts = copy.args.split()
        if not any(p.startswith("--from") for p in parts):
            sources += [s.rstrip("/") for s in parts[:-1]]
    assert set(sources) == allowed
    for source in sources:
        assert (REPO / source).exists(), source
