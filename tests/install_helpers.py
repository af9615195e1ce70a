"""Install memorywatch as a user does, into a fresh virtual environment, without the network.

The dependencies come from a wheel house made of the distributions this test environment
already has installed (``repack``): the same versions, offline, in a second or two. pip then
installs with ``--no-index --find-links``, so nothing outside the house can slip in.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]
PIP_ENV = {"PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1", "PIP_NO_CACHE_DIR": "1"}
_SKIP = {"INSTALLER", "REQUESTED", "direct_url.json", "RECORD"}


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without what points Python or pip at the checkout or this venv."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTHON", "PIP_", "MEMORYWATCH_", "VIRTUAL_ENV"))
    }
    return {**env, **PIP_ENV, **extra}


def pyproject() -> dict[str, object]:
    with (REPO / "pyproject.toml").open("rb") as fh:
        return tomllib.load(fh)


def requirements(*extras: str, build: bool = False) -> list[str]:
    """The project's requirements: core, those of ``extras``, and the build system's."""
    data = pyproject()
    project = data["project"]
    assert isinstance(project, dict)
    found = list(project["dependencies"])
    for extra in extras:
        found += project["optional-dependencies"][extra]
    if build:
        system = data["build-system"]
        assert isinstance(system, dict)
        found += system["requires"]
    return found


def closure(wanted: Iterable[str]) -> list[metadata.Distribution]:
    """The installed distributions that ``wanted`` needs, dependencies of dependencies too."""
    found: dict[str, metadata.Distribution] = {}
    todo = [Requirement(text) for text in wanted]
    while todo:
        req = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        key = re.sub(r"[-_.]+", "-", req.name).lower()
        if key == "memorywatch":
            todo += [Requirement(t) for t in requirements(*req.extras)]
            continue
        dist = metadata.distribution(req.name)
        assert dist.version in req.specifier or not req.specifier, (req, dist.version)
        for text in dist.requires or []:
            dep = Requirement(text)
            marker = dep.marker
            if marker is None or any(
                marker.evaluate({"extra": e}) for e in ("", *sorted(req.extras))
            ):
                dep.marker = None
                todo.append(dep)
        found.setdefault(key, dist)
    return sorted(found.values(), key=lambda d: d.metadata["Name"].lower())


def _digest(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def repack(dist: metadata.Distribution, out: Path) -> Path:
    """A wheel of an installed distribution: its files as installed (scripts are regenerated
    from its entry points by pip), tagged as its WHEEL file says."""
    files = [f for f in dist.files or [] if not str(f).startswith("..") and f.suffix != ".pyc"]
    info = next(f.parts[0] for f in files if f.parts[0].endswith(".dist-info"))
    wheel_file = dist.read_text("WHEEL") or ""
    tags = re.findall(r"^Tag: (\S+)$", wheel_file, re.MULTILINE) or ["py3-none-any"]
    name = re.sub(r"[-_.]+", "_", dist.metadata["Name"])
    target = out / f"{name}-{dist.version}-{tags[0]}.whl"
    record = []
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for path in files:
            if path.parts[0] == info and path.name in _SKIP:
                continue
            data = Path(str(dist.locate_file(path))).read_bytes()
            zf.writestr(str(path), data)
            record.append(f"{path},{_digest(data)},{len(data)}")
        record.append(f"{info}/RECORD,,")
        zf.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return target


def wheelhouse(directory: Path, wanted: Iterable[str]) -> Path:
    """``directory`` holding a wheel of every distribution ``wanted`` needs."""
    directory.mkdir(parents=True, exist_ok=True)
    for dist in closure(wanted):
        repack(dist, directory)
    return directory


SOURCES = ("pyproject.toml", "setup.py", "README.md", "LICENSE", "src", "runbooks")
"""What a build of the package reads (the Dockerfile copies the same)."""


def build_wheel(out: Path) -> Path:
    """The memorywatch wheel, built as a release would build it from a copy of the sources
    (a build writes build/ and *.egg-info beside them; the checkout stays as it is)."""
    source = out / "source"
    for name in SOURCES:
        if (REPO / name).is_dir():
            ignored = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
            shutil.copytree(REPO / name, source / name, ignore=ignored)
        else:
            source.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    command = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    proc = subprocess.run(
        [*command, "-w", str(out), str(source)],
        cwd=out,
        env=clean_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [wheel] = out.glob("memorywatch-*.whl")
    return wheel


def fresh_venv(path: Path) -> Path:
    """A new virtual environment, without pip (this environment's pip installs into it:
    ensurepip alone takes longer than the rest); its ``bin/``."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(path)],
        check=True,
        env=clean_env(),
        capture_output=True,
    )
    return path / "bin"


def pip(bin_dir: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """This environment's pip acting on the venv of ``bin_dir`` (``pip --python``)."""
    return subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(bin_dir / "python"), *args],
        env=clean_env(),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def pip_install(bin_dir: Path, house: Path, *args: str, cwd: Path | None = None) -> None:
    """``pip install ARGS`` offline: from ``house`` only (build requirements too)."""
    proc = pip(bin_dir, "install", "-q", "--no-index", "--find-links", str(house), *args, cwd=cwd)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def installed(bin_dir: Path) -> set[str]:
    """Normalized names of the distributions ``pip list`` shows in that environment."""
    proc = pip(bin_dir, "list", "--format", "freeze")
    assert proc.returncode == 0, proc.stderr
    return {
        re.sub(r"[-_.]+", "-", line.split("==")[0]).lower()
        for line in proc.stdout.splitlines()
        if line
    }
