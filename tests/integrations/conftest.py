"""Fixtures of the framework integration tests (tests/redis_fixtures.py), and the LangGraph conformance report printed
at the end of the run (with or without -s), as LangGraph's own suite prints it."""

from __future__ import annotations

from typing import Any

import pytest

# The shared Redis fixtures (a server per module, raw client, namespace, state, spans):
# registered by being names of this conftest module.
from redis_fixtures import metric_reader, namespace, raw, server, spans, state  # noqa: F401
from summary import Recorder, recorded

KEY = "conformance_report"


@pytest.fixture
def conformance_reports(request: pytest.FixtureRequest) -> Recorder:
    """Append the text of a conformance report; printed in the terminal summary."""
    return Recorder(request, KEY)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    reports = recorded(terminalreporter, KEY)
    if not reports:
        return
    terminalreporter.section("LangGraph checkpoint conformance")
    for report in reports:
        for line in report.splitlines():
            terminalreporter.write_line(line)
