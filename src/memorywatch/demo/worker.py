"""One demo agent instance: a realistic mix of SDK calls, or one of the incident behaviours.

Run as `python -m memorywatch.demo.worker --redis-url URL --instance-id ID --mode MODE`.
The password (and ACL user) come from the environment (`MEMORYWATCH_DEMO_REDIS_PASSWORD`,
`MEMORYWATCH_DEMO_REDIS_USER`), never from the command line, where `ps` would show them.
Every loop is bounded by `--duration`; SIGTERM stops it at the next step.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from memorywatch.agent import (
    AgentState,
    AgentStateError,
    LockTimeout,
    Settings,
    ToolContext,
    ToolOptions,
)

MODES = ("normal", "pool-hog", "slow-tool", "flood")
QUEUE = "mw-demo:jobs"
GROUP = "agents"
PASSWORD_ENV = "MEMORYWATCH_DEMO_REDIS_PASSWORD"  # noqa: S105 -- a variable name
USER_ENV = "MEMORYWATCH_DEMO_REDIS_USER"
TOOLS = ("create_ticket", "charge_card", "send_email")
SUBJECTS = ("Table for two", "Order 1182", "Refund request", "Invoice copy")
REPLAY_EVERY = 10
"""One tool call in ten is a page-refresh replay: suppressed duplicates the dashboards show,
at 1 per 9 executions well below AgentToolDuplicateCallsHigh's 1 per 4 (a retry storm)."""

_stop = threading.Event()


def _on_term(_signum: int, _frame: object) -> None:
    _stop.set()


def _tool(delay: float) -> Callable[[ToolContext, str], str]:
    def create_ticket(ctx: ToolContext, subject: str) -> str:
        time.sleep(delay)
        return f"ticket {ctx.fencing_token} for {len(subject)} chars"

    return create_ticket


def normal(state: AgentState, rng: random.Random, deadline: float) -> None:
    """Sessions, turns, tool calls with page-refresh replays, contended locks, a work queue."""
    client = state.client
    with contextlib.suppress(Exception):
        client.xgroup_create(QUEUE, GROUP, id="0", mkstream=True)
    recent_calls: list[tuple[str, str, str]] = []  # (idempotency key, tool, subject)
    n = 0
    while not _stop.is_set() and time.monotonic() < deadline:
        n += 1
        session = f"session-{rng.randrange(40)}"
        try:
            with state.turn(session):
                history = state.history(session, user_id=f"user-{rng.randrange(15)}")
                history.append("user", rng.choice(["Book a table", "Cancel my order", "Refund?"]))
                history.load()
                if n % REPLAY_EVERY == 2 and recent_calls:
                    # A page refresh replays the very same call: same key, tool and arguments,
                    # so the SDK suppresses it as a duplicate (no fingerprint mismatch).
                    key, tool, subject = rng.choice(recent_calls)
                else:
                    key = f"{state.instance_id}-call-{n}"
                    tool, subject = rng.choice(TOOLS), rng.choice(SUBJECTS)
                    recent_calls = [*recent_calls[-20:], (key, tool, subject)]
                state.run_tool(tool, key, _tool(rng.uniform(0.005, 0.03)), subject)
                with state.lock("order", str(rng.randrange(4)), ttl=30, wait=2):
                    time.sleep(rng.uniform(0.01, 0.05))
                history.append("assistant", "Done.")
            if rng.random() < 0.5:
                client.xadd(QUEUE, {"session": session}, maxlen=10_000)
            delivered: Any = client.xreadgroup(GROUP, state.instance_id, {QUEUE: ">"}, count=2)
            for _stream, entries in delivered or []:
                for entry_id, _fields in entries:
                    # Done: acknowledged and removed, so the stream's length is the backlog.
                    client.xack(QUEUE, GROUP, entry_id)
                    client.xdel(QUEUE, entry_id)
        except (AgentStateError, LockTimeout):
            time.sleep(0.1)  # the dashboards show it; the demo carries on
        except Exception:
            time.sleep(0.2)
            continue
        _stop.wait(rng.uniform(0.02, 0.08))


def pool_hog(state: AgentState, rng: random.Random, deadline: float) -> None:
    """More threads than pool connections, each holding a connection: the pool runs dry."""

    def hold() -> None:
        while not _stop.is_set() and time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                state.client.blpop(["mw-demo:never"], timeout=1)

    threads = [threading.Thread(target=hold, daemon=True) for _ in range(12)]
    for thread in threads:
        thread.start()
    normal(state, rng, deadline)


def slow_tool(state: AgentState, rng: random.Random, deadline: float) -> None:
    """A tool that outlives its in-progress deadline, and a retry that runs it again. (Only
    that: a lock lost on top of it would be a second incident, and a second page.)"""
    key = f"incident-{int(time.time())}"

    def charge(ctx: ToolContext) -> str:
        time.sleep(3.0)
        return "charged"

    racer = threading.Thread(target=_reclaim_later, args=(state, key), daemon=True)
    racer.start()
    with contextlib.suppress(AgentStateError):
        state.run_tool("charge_card", key, charge, tool_options=ToolOptions(deadline=1.0))
    racer.join(10)
    normal(state, rng, deadline)


def _reclaim_later(state: AgentState, key: str) -> None:
    time.sleep(1.5)  # past the slow holder's deadline: the retry takes the call over
    with contextlib.suppress(AgentStateError):
        state.run_tool(
            "charge_card", key, lambda ctx: "charged again", tool_options=ToolOptions(deadline=10)
        )


FLOOD_BURST = 1500
"""Messages of 4 KiB (about 6 MiB) the flood writes at once: past the 4 MiB of headroom the
eviction incident leaves, so Redis evicts within a second or two."""
FLOOD_RATE = 25.0
"""Messages per second after the burst (100 KiB/s): Redis stays at maxmemory and keeps
evicting, while the replica keeps up (a flood of MiB per second would also be a replication
incident, RedisReplicationLagBytesHigh, on top of the eviction)."""


def flood(state: AgentState, rng: random.Random, deadline: float) -> None:
    """Long conversations until Redis runs into maxmemory and evicts agent state."""
    text = "x" * 4096
    n = 0
    while not _stop.is_set() and time.monotonic() < deadline:
        n += 1
        with contextlib.suppress(Exception):
            state.history(f"long-session-{n % 5000}").append("user", text)
            if n % 7 == 0:
                state.history(f"long-session-{rng.randrange(max(n % 5000, 1))}").load()
        if n > FLOOD_BURST:
            _stop.wait(1 / FLOOD_RATE)
        elif n % 50 == 0:
            _stop.wait(0.01)


def connect(
    url: str,
    instance_id: str,
    *,
    username: str | None = None,
    password: str | None = None,
    max_connections: int = 50,
    pool_timeout: float = 1.0,
) -> AgentState:
    """`AgentState.from_url`, with the credentials given apart from the URL."""
    return AgentState.from_url(
        url,
        instance_id=instance_id,
        username=username,
        password=password,
        max_connections=max_connections,
        pool_timeout=pool_timeout,
        settings=Settings(heartbeat_ttl=3.0, tool_deadline=10.0),
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="memorywatch.demo.worker")
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--instance-id", required=True)
    parser.add_argument("--mode", choices=MODES, default="normal")
    parser.add_argument("--duration", type=float, default=3600.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGINT, _on_term)
    hog = args.mode == "pool-hog"
    state = connect(
        args.redis_url,
        args.instance_id,
        username=os.environ.get(USER_ENV) or None,
        password=os.environ.get(PASSWORD_ENV) or None,
        max_connections=4 if hog else 50,
        pool_timeout=0.05 if hog else 1.0,
    )
    state.start_heartbeat(interval=0.5)
    rng = random.Random(args.seed)
    deadline = time.monotonic() + args.duration
    try:
        {"normal": normal, "pool-hog": pool_hog, "slow-tool": slow_tool, "flood": flood}[args.mode](
            state, rng, deadline
        )
    finally:
        with contextlib.suppress(Exception):
            state.stop_heartbeat()
            state.close()


if __name__ == "__main__":
    main()
