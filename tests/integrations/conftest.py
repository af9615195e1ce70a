"""Fixtures of the framework integration tests (tests/redis_fixtures.py), and the rows of
LangGraph's conformance report, printed at the end of the run by tests/conftest.py."""

from __future__ import annotations

import pytest

# The shared Redis fixtures (a server per module, raw client, namespace, state, spans):
# registered by being names of this conftest module.
from redis_fixtures import metric_reader, namespace, raw, server, spans, state  # noqa: F401
from summary import CONFORMANCE, Recorder


@pytest.fixture
def conformance_reports(request: pytest.FixtureRequest) -> Recorder:
    """Append the text of a conformance report; printed in the terminal summary."""
    return Recorder(request, CONFORMANCE)
