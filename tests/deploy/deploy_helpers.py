"""What the deploy tests read: the files under deploy/, and the CLI they must agree with."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import click
import yaml

from memorywatch.cli import main
from memorywatch.exporter.config import DEFAULT_LISTEN, ExporterConfig, build_config

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "kubernetes"
EXPORTER = K8S / "base"
"""The exporter stack's kustomization; the overlays (web-config, ...) are its siblings."""
AGENT = K8S / "agent-example"
SYSTEMD = DEPLOY / "systemd"
ALERTS = REPO / "alerts"
DASHBOARDS = REPO / "dashboards"

PASSWORD_ENV = "MEMORYWATCH_REDIS_PASSWORD"
"""The one variable the CLI reads without a flag (the password itself)."""

Doc = dict[str, Any]


def listen_port(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


DEFAULT_PORT = listen_port(DEFAULT_LISTEN)


def load_all(path: Path) -> list[Doc]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def load_one(path: Path) -> Doc:
    docs = load_all(path)
    assert len(docs) == 1, f"{path}: expected one document, found {len(docs)}"
    return docs[0]


def yaml_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml"))


def container(doc: Doc, name: str) -> Doc:
    containers: list[Doc] = doc["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == name)


def exporter_command() -> click.Command:
    return main.commands["exporter"]


def cli_options() -> list[click.Option]:
    return [p for p in exporter_command().params if isinstance(p, click.Option)]


def cli_flags() -> dict[str, click.Option]:
    """Every spelling of every option of `memorywatch exporter` (--fleet and --no-fleet too)."""
    return {flag: opt for opt in cli_options() for flag in (*opt.opts, *opt.secondary_opts)}


def cli_envvars() -> set[str]:
    """The variables `memorywatch exporter --help` names (show_envvar)."""
    out: set[str] = set()
    for opt in cli_options():
        if opt.show_envvar and opt.envvar:
            out.update([opt.envvar] if isinstance(opt.envvar, str) else opt.envvar)
    return out


def parse_exporter_args(argv: Iterable[str]) -> dict[str, list[str]]:
    """`exporter --flag value --flag=value ...` as flag -> values; unknown flags fail here."""
    args = list(argv)
    assert args[:1] == [exporter_command().name], f"not an `exporter` command line: {args}"
    known = cli_flags()
    out: dict[str, list[str]] = {}
    rest = iter(args[1:])
    for token in rest:
        assert token.startswith("--"), f"stray argument {token!r} in {args}"
        flag, eq, value = token.partition("=")
        assert flag in known, f"{flag} is not an option of `memorywatch exporter`"
        if not eq and not known[flag].is_flag:
            value = next(rest)
        out.setdefault(flag, []).append(value)
    return out


def exporter_config(argv: Iterable[str]) -> ExporterConfig:
    """The frozen config `memorywatch exporter` builds from this command line (no environment)."""
    args = list(argv)
    context = exporter_command().make_context("memorywatch exporter", args[1:])
    params = dict(context.params)
    params.pop("check")
    return build_config(**params)


def kustomizations() -> list[Path]:
    return sorted(K8S.rglob("kustomization.yaml"))


def kustomize_references(path: Path) -> Iterator[tuple[str, Path]]:
    """(field, resolved path) of every file or folder a kustomization loads."""
    doc = load_one(path)
    for field in ("resources", "components"):
        for entry in doc.get(field) or []:
            yield field, (path.parent / entry).resolve()
    for patch in doc.get("patches") or []:
        if isinstance(patch, dict) and "path" in patch:
            yield "patches", (path.parent / patch["path"]).resolve()
    for generator in doc.get("configMapGenerator") or []:
        for entry in generator.get("files") or []:
            yield "configMapGenerator", (path.parent / entry.rpartition("=")[2]).resolve()


def sync_module() -> ModuleType:
    """deploy/kubernetes/sync_generated.py, which keeps the generated copies current."""
    spec = importlib.util.spec_from_file_location("sync_generated", K8S / "sync_generated.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SYNC_COMMAND = "python deploy/kubernetes/sync_generated.py"


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def dockerfile_instructions(text: str) -> list[Instruction]:
    """Dockerfile instructions with continuation lines joined and comments dropped."""
    out: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        out.append(Instruction(keyword.upper(), args.strip()))
    return out


def unit_sections(text: str) -> dict[str, list[tuple[str, str]]]:
    """A systemd unit as section -> [(key, value)], keeping repeated keys in order."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line[0] in "#;"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        assert current is not None, f"assignment outside a section: {line!r}"
        key, eq, value = line.partition("=")
        assert eq, f"not a key=value line: {line!r}"
        current.append((key.strip(), value.strip()))
    return sections
