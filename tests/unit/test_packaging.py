"""What `pip install memorywatch` and `memorywatch[exporter]` promise, read from pyproject.toml."""

from __future__ import annotations

from packaging.requirements import Requirement

from install_helpers import pyproject
from memorywatch import console


def _reqs(*texts: str) -> list[Requirement]:
    return [Requirement(t) for t in texts]


def _project() -> dict[str, object]:
    project = pyproject()["project"]
    assert isinstance(project, dict)
    return project


def test_the_sdk_requires_redis_and_opentelemetry_api_only() -> None:
    core = _reqs(*_project()["dependencies"])
    assert sorted(r.name for r in core) == ["opentelemetry-api", "redis"]
    assert all(not r.extras for r in core)


def test_runtime_requirements_are_ranges_never_exact_pins() -> None:
    extras = _project()["optional-dependencies"]
    assert isinstance(extras, dict)
    runtime = _reqs(*_project()["dependencies"], *extras["exporter"])
    for req in runtime:
        assert req.specifier, f"{req}: no version range"
        assert not [s for s in req.specifier if s.operator in ("==", "===")], str(req)


def test_the_console_checks_for_every_module_of_the_exporter_extra() -> None:
    extras = _project()["optional-dependencies"]
    assert isinstance(extras, dict)
    assert {r.name for r in _reqs(*extras["exporter"])} == set(console.EXPORTER_EXTRA)
    assert console.missing() == []  # this environment has the extra
    assert "memorywatch[exporter]" in extras["dev"], "the tests need the command"
