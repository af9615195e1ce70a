"""The notifications rows of tests/e2e/test_incidents.py, printed at the end of the run (with
or without -s, with or without xdist) by tests/conftest.py."""

from __future__ import annotations

import pytest

from summary import NOTIFICATIONS, Recorder


@pytest.fixture
def notification_rows(request: pytest.FixtureRequest) -> Recorder:
    """Append (incident, notifications, alerts delivered, seconds to first)."""
    return Recorder(request, NOTIFICATIONS)
