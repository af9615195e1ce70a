"""Fixtures of the framework integration tests, and the LangGraph conformance report printed
at the end of the run (with or without -s), as LangGraph's own suite prints it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from harness import RedisServer, redis_server

REPORTS = pytest.StashKey[list[str]]()


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    """A plain redis-server (no modules) on a free loopback port."""
    with redis_server() as srv:
        yield srv


@pytest.fixture
def conformance_reports(request: pytest.FixtureRequest) -> list[str]:
    """Append the text of a conformance report; printed in the terminal summary."""
    return request.config.stash.setdefault(REPORTS, [])


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    reports = config.stash.get(REPORTS, [])
    if not reports:
        return
    terminalreporter.section("LangGraph checkpoint conformance")
    for report in reports:
        for line in report.splitlines():
            terminalreporter.write_line(line)
