"""A Redis that is loading its dump after a restart: a clear StateLoading, an unready report."""

from __future__ import annotations

import pytest

from harness import RedisServer, wait_until
from memorywatch.agent import AgentState, StateLoading


def test_operations_during_loading_raise_state_loading_and_ready_says_so() -> None:
    server = RedisServer().start()
    try:
        client = server.client()
        client.execute_command("DEBUG", "POPULATE", "5000")
        client.save()
        server.stop()
        server.args = (
            "--key-load-delay",
            "1000",
            "--loading-process-events-interval-bytes",
            "1024",
        )
        server.start(wait=False)
        wait_until(lambda: server.client().info("persistence")["loading"] == 1, 10, what="loading")
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
