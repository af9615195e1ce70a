"""Tables printed at the end of a run from what tests recorded, with or without -s and with
pytest-xdist: a test records a row on its own report (``user_properties``), which xdist's
workers send to the controller, where ``pytest_terminal_summary`` reads them back. The hook is
in tests/conftest.py: under xdist the controller collects nothing, so it never loads the
conftest files of the folders below."""

from __future__ import annotations

from typing import Any

import pytest

NOTIFICATIONS = "notification_row"
"""tests/e2e: (incident, notifications, alerts delivered, seconds to first)."""
CONFORMANCE = "conformance_report"
"""tests/integrations: the text of LangGraph's conformance report."""


class Recorder:
    """``append(row)``: the row rides on the running test's report under ``key``."""

    def __init__(self, request: pytest.FixtureRequest, key: str) -> None:
        self._node = request.node
        self._key = key

    def append(self, row: Any) -> None:
        self._node.user_properties.append((self._key, row))


def recorded(terminalreporter: Any, key: str) -> list[Any]:
    """Every row recorded under ``key`` by the run's tests, from their call reports."""
    rows: list[Any] = []
    for reports in terminalreporter.stats.values():
        for report in reports:
            if getattr(report, "when", None) != "call":
                continue
            rows += [row for name, row in getattr(report, "user_properties", ()) if name == key]
    return rows


def print_notifications(terminalreporter: Any) -> None:
    """Per incident, how many notifications Alertmanager delivered, which, and when the first
    came."""
    rows = sorted(tuple(row) for row in recorded(terminalreporter, NOTIFICATIONS))
    if not rows:
        return
    header = ("incident", "notifications", "alerts delivered", "seconds to first")
    cells = [header, *((name, str(n), alerts, first) for name, n, alerts, first in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    terminalreporter.section("notifications delivered per incident")
    for row in cells:
        terminalreporter.write_line(
            "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        )


def print_conformance(terminalreporter: Any) -> None:
    """LangGraph's conformance report, as its own suite prints it."""
    reports = recorded(terminalreporter, CONFORMANCE)
    if not reports:
        return
    terminalreporter.section("LangGraph checkpoint conformance")
    for report in reports:
        for line in report.splitlines():
            terminalreporter.write_line(line)
