"""A Redis that is loading its dump after a restart: a clear StateLoading, an unready report."""

from __future__ import annotations

import pytest

from harness import RedisServer, restart_loading
from memorywatch.agent import AgentState, StateLoading


def test_operations_during_loading_raise_state_loading_and_ready_says_so() -> None:
    server = RedisServer().start()
    try:
        restart_loading(server)
        state = AgentState.from_url(server.url, instance_id="a")
        with pytest.raises(StateLoading, match="loading"):
            state.history("s1").append("user", "hello")
        report = state.ready(deadline=2.0)
        assert not report.ready
        assert report.loading
        assert report.reachable
        state.close()
    finally:
        server.cleanup()
