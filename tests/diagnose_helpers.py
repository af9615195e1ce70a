"""A healthy fleet on a real Redis for the diagnose tests, and the diagnosis run on it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from harness import RedisServer, redis_server
from memorywatch import thresholds as th
from memorywatch.agent import AgentState
from memorywatch.diagnose.facts import ReadOptions
from memorywatch.diagnose.model import Report
from memorywatch.diagnose.run import diagnose
from memorywatch.exporter.config import build_config
from memorywatch.exporter.fleet_options import FleetOptions

QUICK = ReadOptions(window=0.3)
"""A shorter window than the command's: the seeds that need a rate pass their own."""


HEALTHY = ("--maxmemory", "256mb", "--maxmemory-policy", "noeviction", "--appendonly", "yes")
SECRET_MARKERS = ("sess-SECRET", "user-SECRET", "idem-SECRET", "text-SECRET")


@dataclass
class Fleet:
    """A healthy fleet on a fresh Redis: one ready instance that has talked and run a tool."""

    server: RedisServer
    state: AgentState
    namespace: str
    held: list[Any] = field(default_factory=list)
    """What a seed must keep alive until the diagnosis (open connections, a lease)."""

    def run(
        self,
        table: th.Thresholds | None = None,
        queues: tuple[str, ...] = (),
        budget: ReadOptions = QUICK,
    ) -> Report:
        return run_on(self.server.url, self.namespace, table, queues, budget)

    def other(self, instance_id: str, **options: Any) -> AgentState:
        return AgentState.from_url(
            self.server.url, namespace=self.namespace, instance_id=instance_id, **options
        )


def run_on(
    url: str,
    namespace: str,
    table: th.Thresholds | None = None,
    queues: tuple[str, ...] = (),
    budget: ReadOptions = QUICK,
    **credentials: Any,
) -> Report:
    config = build_config(redis_url=url, namespace=namespace, queues=queues, **credentials)
    options = FleetOptions(namespace=namespace, queues=queues)
    return diagnose(config, options, table or th.Thresholds(), budget=budget)


def first(report: Report) -> str:
    """The first cause; and no risk or symptom may stand among the causes."""
    assert report.causes, f"no cause found; checked {report.checked}; errors {report.errors}"
    kinds = {c.alert for c in report.risks} | {c.alert for c in report.symptoms}
    assert not kinds & {c.alert for c in report.causes}, report.as_dict()
    return report.causes[0].alert


def evidence(report: Report, alert: str) -> str:
    found = [*report.causes, *report.symptoms, *report.risks]
    return " | ".join(line for c in found if c.alert == alert for line in c.evidence)


@pytest.fixture
def fleet() -> Iterator[Fleet]:
    with redis_server(*HEALTHY) as server:
        namespace = f"dx{uuid.uuid4().hex[:6]}"
        state = AgentState.from_url(server.url, namespace=namespace, instance_id="agent-1")
        history = state.history("sess-SECRET-1", user_id="user-SECRET-1")
        history.append("user", "text-SECRET hello")
        state.run_tool("charge", "idem-SECRET-1", lambda ctx: "ok")
        state.heartbeat()
        try:
            yield Fleet(server, state, namespace)
        finally:
            state.close()


def tuned(**values: float) -> th.Thresholds:
    return th.Thresholds().with_overrides(values, "test")
