"""Two real processes run one LangGraph thread through run_once: a double submit at the same
moment, the conversation continued on the other process, a replay of the first request; and a
process SIGKILLed in the middle of a turn (in its tool).

The checkpointer both processes share is a fixture parameter: memorywatch's AgentStateSaver on
the same Redis, which also lends run_once its AgentState (no ``state=``). Any saver both
processes reach works the same way (add it to the fixture's params)."""

from __future__ import annotations

import multiprocessing
import os
import signal
from typing import Any

import pytest
import redis
from lg_helpers import (
    block_key,
    build_graph,
    effects_key,
    model_calls_key,
    started_key,
    summary,
    turn,
    wait_for,
)

from harness import RedisServer
from memorywatch import schema
from memorywatch.agent import AgentState, Settings
from memorywatch.integrations.langgraph import AgentStateSaver
from memorywatch.integrations.langgraph.runs import RUN_TOOL_NAME, run_once

pytestmark = pytest.mark.slow

SHORT = 1.0
"""Claim deadlines and lock TTL of the crash test (s): what a dead holder costs the retry."""


@pytest.fixture(params=["agentstate"])
def saver_spec(request: pytest.FixtureRequest) -> str:
    """The checkpointer each process opens for itself (on the state it is given)."""
    return str(request.param)


def _open_saver(spec: str, state: AgentState) -> Any:
    assert spec == "agentstate", spec
    return AgentStateSaver(state)


def _worker(url: str, namespace: str, spec: str, short: bool, inbox: Any, outbox: Any,
            go: Any) -> None:  # fmt: skip
    """Serve commands: ("run", thread, request, text) -> (request, pid, messages, lock token,
    claim token, reclaimed, resumed); ("history", thread) -> messages; ("stop",)."""
    settings = Settings(tool_deadline=SHORT, lock_ttl=SHORT) if short else None
    state = AgentState.from_url(url, namespace=namespace, settings=settings)
    raw = redis.Redis.from_url(url, decode_responses=True)
    graph = build_graph(state, raw, namespace, _open_saver(spec, state))
    outbox.put(("ready", os.getpid()))
    for _ in range(100):
        command = inbox.get(timeout=60)
        if command[0] == "stop":
            break
        if command[0] == "history":
            cfg = {"configurable": {"thread_id": command[1]}}
            outbox.put(("history", summary(graph.get_state(cfg).values["messages"])))
            continue
        _, thread, request, text, together = command
        if together:
            go.wait(30)
        cfg = {"configurable": {"thread_id": thread}}
        try:
            out = run_once(graph, turn(text), cfg, request_id=request, wait=20)  # the saver's state
            outbox.put(("ran", request, os.getpid(), summary(out["messages"])))
        except Exception as exc:  # reported to the test, which fails on it
            outbox.put(("error", request, os.getpid(), f"{type(exc).__name__}: {exc}"))
    state.close()


class Fleet:
    """Worker processes (spawned), each with its inbox; one shared outbox per worker."""

    def __init__(self, url: str, namespace: str, spec: str, short: bool = False):
        self.ctx = multiprocessing.get_context("spawn")
        self.go = self.ctx.Event()
        self.args = (url, namespace, spec, short)
        self.procs: list[Any] = []
        self.inboxes: list[Any] = []
        self.outboxes: list[Any] = []

    def start(self, count: int) -> list[int]:
        """Start ``count`` workers at once (their imports overlap), wait until all are ready."""
        for _ in range(count):
            inbox, outbox = self.ctx.Queue(), self.ctx.Queue()
            proc = self.ctx.Process(target=_worker, args=(*self.args, inbox, outbox, self.go))
            proc.start()
            self.procs.append(proc)
            self.inboxes.append(inbox)
            self.outboxes.append(outbox)
        for outbox in self.outboxes[-count:]:
            assert outbox.get(timeout=60)[0] == "ready"
        return list(range(len(self.procs) - count, len(self.procs)))

    def send(self, n: int, *command: Any) -> None:
        self.inboxes[n].put(command)

    def receive(self, n: int) -> Any:
        reply = self.outboxes[n].get(timeout=60)
        assert reply[0] != "error", reply
        return reply

    def run(self, n: int, thread: str, request: str, text: str) -> Any:
        self.send(n, "run", thread, request, text, False)
        return self.receive(n)

    def history(self, n: int, thread: str) -> list[Any]:
        self.send(n, "history", thread)
        return list(self.receive(n)[1])

    def close(self) -> None:
        for n, proc in enumerate(self.procs):
            if proc.is_alive():
                self.inboxes[n].put(("stop",))
                proc.join(10)
            if proc.is_alive():
                os.kill(proc.pid, signal.SIGKILL)
                proc.join(5)


def counters(raw: redis.Redis, namespace: str, family: str) -> dict[str, float]:
    sch = schema.Schema(namespace)
    return schema.merge_counters(raw.hgetall(k) for k in sch.stats_keys(family))


def _effects(raw: redis.Redis, namespace: str) -> list[list[str]]:
    return [e.split("|") for e in raw.lrange(effects_key(namespace), 0, -1)]


def _kinds(history: list[Any]) -> list[str]:
    return [kind for kind, _, _ in history]


def test_double_submit_then_the_other_process_then_a_replay(
    server: RedisServer, raw: redis.Redis, namespace: str, saver_spec: str
) -> None:
    fleet = Fleet(server.url, namespace, saver_spec)
    try:
        a, b = fleet.start(2)
        # the same turn of one thread, submitted to both processes at the same moment
        raw.set(block_key(namespace, "book a table"), "pause")
        fleet.send(a, "run", "t1", "req-1", "book a table", True)
        fleet.send(b, "run", "t1", "req-1", "book a table", True)
        fleet.go.set()
        ran_a, ran_b = fleet.receive(a), fleet.receive(b)
        assert ran_a[3] == ran_b[3]  # both callers got the one run's output
        # the conversation continues on the other process
        second = fleet.run(b, "t1", "req-2", "and a taxi")
        # the page refresh of the first request lands on the first process again
        replay = fleet.run(a, "t1", "req-1", "book a table")
        assert replay[3] == ran_a[3]
        history_a, history_b = fleet.history(a, "t1"), fleet.history(b, "t1")
    finally:
        fleet.close()
    effects = _effects(raw, namespace)
    assert [e[0] for e in effects] == ["book a table", "and a taxi"]  # each side effect once
    tokens = [int(e[1]) for e in effects]
    assert tokens == sorted(tokens) and len(set(tokens)) == 2  # fencing tokens rising
    assert [e[4] for e in effects] == ["req-1", "req-2"]
    assert raw.get(model_calls_key(namespace)) == "4"  # two turns, two model calls each
    assert history_a == history_b == second[3]
    assert _kinds(history_a) == ["human", "ai", "tool", "ai"] * 2
    assert history_a[1][2] == history_a[2][2] and history_a[5][2] == history_a[6][2]
    assert history_a[1][2] != history_a[5][2]  # the model's fresh tool-call ids
    # the second submit found the first in progress and waited for its output; the replay
    # was answered from the record
    assert counters(raw, namespace, schema.FAMILY_TOOL_IN_PROGRESS_CONFLICTS) == {RUN_TOOL_NAME: 1}
    assert counters(raw, namespace, schema.FAMILY_TOOL_DUPLICATES_SUPPRESSED) == {RUN_TOOL_NAME: 2}
    assert counters(raw, namespace, schema.FAMILY_TOOL_EXECUTIONS) == {
        f"{RUN_TOOL_NAME}|completed": 2,
        "record|completed": 2,
    }


def test_processes_killed_in_their_tool_before_and_after_its_side_effect(
    server: RedisServer, raw: redis.Redis, namespace: str, saver_spec: str
) -> None:
    """SIGKILL in the tool, before its side effect (thread ``t-before``) and after it
    (``t-after``). The retry of the same request (the client's retry, on another process)
    waits for the dead run's claim deadline, takes the run over (reclaimed), waits out the
    thread lock's TTL and resumes the request's own checkpoint: the model is not called again
    for the step that was done, the tool call keeps its recorded id and runs again once its
    own claim deadline has passed, with a higher fencing token and ``reclaimed`` set. Killed
    before the effect: the effect happens once. Killed after it: it happened twice, the second
    with the higher token and the same derived idempotency key, which is what the external
    system must use to refuse it."""
    fleet = Fleet(server.url, namespace, saver_spec, short=True)
    texts = {"before": "charge card", "after": "send mail"}
    retries, again, histories = {}, {}, {}
    try:
        *victims, survivor = fleet.start(3)
        for victim, (where, text) in zip(victims, texts.items(), strict=True):
            raw.set(block_key(namespace, text), where)
            fleet.send(victim, "run", f"t-{where}", "req-1", text, False)
        wait_for(lambda: raw.llen(started_key(namespace)) == 2, 30, "both tools to start")
        for victim in victims:
            os.kill(fleet.procs[victim].pid, signal.SIGKILL)
            fleet.procs[victim].join(5)
        for where, text in texts.items():
            retries[where] = fleet.run(survivor, f"t-{where}", "req-1", text)
            again[where] = fleet.run(survivor, f"t-{where}", "req-1", text)  # a replay
            histories[where] = fleet.history(survivor, f"t-{where}")
    finally:
        fleet.close()
    killed = {e.split("|")[0]: e.split("|") for e in raw.lrange(started_key(namespace), 0, -1)}
    effects = _effects(raw, namespace)
    for where, text in texts.items():
        mine = [e for e in effects if e[0] == text]
        final = mine[-1]
        assert final[3] == "1"  # the reclaimed call ran it
        assert int(final[1]) > int(killed[text][1])  # a higher token than the dead claim's
        assert len(mine) == (1 if where == "before" else 2)
        assert mine[0][5] == final[5] == killed[text][5]  # one derived key for the provider
        history = histories[where]
        assert _kinds(history) == ["human", "ai", "tool", "ai"]  # the input applied once
        assert history[1][2] == history[2][2]  # the dead run's tool-call id, answered
        assert history == retries[where][3] == again[where][3]
    assert raw.get(model_calls_key(namespace)) == "4"  # the done steps were not re-run
    # both dead runs and both dead tool calls were taken over, and counted so
    assert counters(raw, namespace, schema.FAMILY_TOOL_RECLAIMS) == {RUN_TOOL_NAME: 2, "record": 2}
