"""The tables printed at the end of a run, from what tests recorded on their reports
(tests/summary.py): here, at the top, so that the xdist controller loads the hook."""

from __future__ import annotations

from typing import Any

import pytest

from summary import print_conformance, print_notifications


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    print_notifications(terminalreporter)
    print_conformance(terminalreporter)
