"""The notifications table of tests/e2e/test_incidents.py, printed at the end of the run (with
or without -s): per incident, how many notifications Alertmanager delivered, which alerts, and
when the first came."""

from __future__ import annotations

from typing import Any

import pytest

from summary import Recorder, recorded

KEY = "notification_row"


@pytest.fixture
def notification_rows(request: pytest.FixtureRequest) -> Recorder:
    """Append (incident, notifications, alerts delivered, seconds to first)."""
    return Recorder(request, KEY)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    rows = sorted(tuple(row) for row in recorded(terminalreporter, KEY))
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
