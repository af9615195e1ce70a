"""Tables printed at the end of a run from what tests recorded, with or without -s and with
pytest-xdist: a test records a row on its own report (``user_properties``), which xdist's
workers send to the controller, where ``pytest_terminal_summary`` reads them back."""

from __future__ import annotations

from typing import Any

import pytest


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
