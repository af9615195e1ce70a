"""The parity scenarios, written once over the asyncio client's API (parity.py runs each on
both clients). They import the SDK, redis and the standard library only, so they also run in a
virtual environment holding ``pip install memorywatch`` alone (tests/agent/parity_light.py)."""

from __future__ import annotations

import asyncio
from typing import Any

from parity import Steps

from memorywatch import schema
from memorywatch.agent import (
    FingerprintMismatch,
    LockLost,
    LockTimeout,
    RetryableToolError,
    SchemaMismatch,
    StateMiss,
    StateNotDurable,
    StateOutOfMemory,
    ToolContext,
    ToolFailed,
    ToolInProgress,
    ToolOptions,
    _values,
)


async def memory(c: Any, s: Steps) -> None:
    h = c.history("session-1", user_id="user-1")
    s.note(await h.load())
    s.note(await h.append("user", "Book a table for two"))
    s.note(await h.extend([("assistant", "For when?"), ("user", "Tonight", {"lang": "en"})]))
    s.note([(m["role"], m["text"]) for m in await h.load()])
    await c.history("session-2", user_id="user-1").append("user", "hi")
    s.raw.delete(c.schema.history("session-2"))
    await s.expect(StateMiss, c.history("session-2").load())
    s.note(await c.history("session-3").forget())
    p = c.preferences("user-1")
    await p.set("language", "en")
    await p.update({"seat": "window", "party": 2})
    s.note([await p.get("language"), await p.get("absent", "dflt"), await p.all()])
    s.note(await p.delete("seat"))
    async with c.turn("session-1"):
        pass

    async def failing_turn() -> None:
        async with c.turn("session-1"):
            raise KeyError("the turn's own error")

    await s.expect(KeyError, failing_turn())  # the turn's own error, not one of the SDK's
    s.note(await c.forget_user("user-1"))
    s.note(await c.history("session-1").load())


async def locks(c: Any, s: Steps) -> None:
    async with c.lock("charge", "order-42", ttl=5) as lease:
        s.note([lease.kind, lease.resource, lease.label, lease.fencing_token])
        first = lease.fencing_token
        await s.expect(LockTimeout, c.lock("charge", "order-42", ttl=5, wait=0.05))
    async with c.lock("order-43") as lease:  # the one-argument form, counted as "order"
        s.note([lease.kind, lease.name, lease.fencing_token > first])
    held = await c.lock("refund", "r-1", ttl=5)
    await held.extend(ttl=2)
    await held.release()
    await held.release()  # a second release is a no-op
    short = await c.lock("charge", "order-44", ttl=0.2)
    await asyncio.sleep(0.3)
    await s.expect(LockLost, short.release())

    async def body_fails() -> None:
        async with c.lock("charge", "order-45", ttl=0.2):
            await asyncio.sleep(0.3)
            raise KeyError("the body's own error")

    await s.expect(KeyError, body_fails())  # the lost release is a note on it, not a LockLost
    async with c.lock("charge", "order-46", ttl=1.5, renew=True) as renewed:
        await asyncio.sleep(2.0)  # past the TTL: only renewal keeps it
        s.note(renewed.lost.is_set())
    for kind in ("k1", "k2", "k3", "k4"):  # the cap of this scenario is 4 (charge, order...)
        async with c.lock(kind, "x"):
            pass
    await s.expect(ValueError, _later(lambda: c.lock("a|b", "x")))


async def _later(make: Any) -> Any:
    result = make()
    return await result


def _tool(ctx: ToolContext, order_id: str) -> dict[str, Any]:
    return {"order": order_id, "fence": ctx.fencing_token, "reclaimed": ctx.reclaimed}


def _final_error(ctx: ToolContext) -> None:
    raise ValueError("card declined")


def _retryable(ctx: ToolContext) -> None:
    raise RetryableToolError("gateway busy")


def _not_json(ctx: ToolContext) -> object:
    return object()


async def tools(c: Any, s: Steps) -> None:
    s.note(await c.run_tool("create_ticket", "idem-1", _tool, "o-1"))
    s.note(await c.run_tool("create_ticket", "idem-1", _tool, "o-1"))  # replay
    await s.expect(FingerprintMismatch, c.run_tool("create_ticket", "idem-1", _tool, "o-2"))
    await s.expect(ValueError, c.run_tool("charge_card", "idem-2", _final_error))
    await s.expect(ToolFailed, c.run_tool("charge_card", "idem-2", _final_error))
    await s.expect(RetryableToolError, c.run_tool("charge_card", "idem-3", _retryable))
    s.note(await c.run_tool("charge_card", "idem-3", _tool, "o-3"))  # the key was freed
    await s.expect(TypeError, c.run_tool("lookup", "idem-4", _not_json))
    # a live claim of another instance, then one past its deadline
    record = c.schema.tool("idem-5")
    now_ms = int(s.raw.time()[0]) * 1000
    fp = _values.fingerprint("send_email", ["o-5"], {})
    claim = {"state": "in_progress", "tool": "send_email", "label": "send_email", "fp": fp}
    claim |= {"owner": "agent-2|x", "instance": "agent-2", "fence": "1"}
    s.raw.hset(record, mapping={**claim, "deadline_ms": now_ms + 60_000})
    s.raw.pexpire(record, 60_000)
    no_wait = ToolOptions(wait=0)
    await s.expect(
        ToolInProgress, c.run_tool("send_email", "idem-5", _tool, "o-5", tool_options=no_wait)
    )
    s.raw.hset(record, "deadline_ms", now_ms - 1)
    s.note(await c.run_tool("send_email", "idem-5", _tool, "o-5"))  # reclaimed
    options = ToolOptions(call_id="call-7", renew=True, deadline=0.6)

    async def slow(ctx: ToolContext) -> str:
        await asyncio.sleep(0.5)
        return "slow done"

    def slow_sync(ctx: ToolContext) -> str:
        import time

        time.sleep(0.5)
        return "slow done"

    fn = slow if asyncio.iscoroutinefunction(c.run_tool) else slow_sync
    s.note(await c.run_tool("report", "idem-6", fn, tool_options=options))
    decorated = c.idempotent_tool("create_ticket", key=lambda order_id: f"dec:{order_id}")(_tool)
    s.note([await decorated("o-9"), await decorated("o-9")])


async def health(c: Any, s: Steps) -> None:
    report = await c.ready()
    s.note([bool(report), report.reachable, report.writable, report.loading, report.error])
    await c.heartbeat()
    beat = await c.start_heartbeat(interval=0.05)
    for _ in range(200):
        if beat.beats >= 2:
            break
        await asyncio.sleep(0.01)
    await c.stop_heartbeat()
    s.note([beat.beats >= 2, beat.last_error])


async def first_write(c: Any, s: Steps) -> None:
    await c.history("s").append("user", "hi")


async def old_schema(c: Any, s: Steps) -> None:
    s.raw.hset(c.schema.schema_key(), mapping={"version": "1", "shards": "1"})
    error = await s.expect(SchemaMismatch, c.history("s").append("user", "hi"))
    assert "version 1" in str(error) and "\n" not in str(error)
    report = await c.ready()
    s.note([bool(report), report.error])


async def out_of_memory(c: Any, s: Steps) -> None:
    h = c.history("session-1")
    await h.append("user", "before the limit")
    config = s.raw.config_get("maxmemory*")
    s.raw.config_set("maxmemory-policy", "noeviction")
    s.raw.config_set("maxmemory", 1)
    try:
        await s.expect(StateOutOfMemory, h.append("user", "refused"))
        await s.expect(StateOutOfMemory, c.lock("charge", "order-1"))
        await s.expect(StateOutOfMemory, c.run_tool("create_ticket", "idem-1", _tool, "o-1"))
        s.note(len(await h.load()))  # reads still answer: the agent keeps its memory
        report = await c.ready()
        s.note([bool(report), report.reachable, report.writable])
    finally:
        s.raw.config_set("maxmemory", config["maxmemory"])
        s.raw.config_set("maxmemory-policy", config["maxmemory-policy"])


def _charge(ran: list[str]) -> Any:
    def charge(ctx: ToolContext, order: str) -> str:
        ran.append(order)
        return f"charged {order}"

    return charge


async def not_durable(c: Any, s: Steps) -> None:
    """Durable mode on a master with no replica: every write that matters is refused, and
    what it took is given back."""
    ran: list[str] = []
    refused = await s.expect(StateNotDurable, c.run_tool("charge", "idem-1", _charge(ran), "o-1"))
    assert isinstance(refused, StateNotDurable)
    s.note([ran, refused.op, refused.acked, refused.wanted, refused.result])
    s.note(s.raw.exists(c.schema.tool("idem-1")))  # the claim was given back
    h = c.history("session-1")
    await s.expect(StateNotDurable, h.append("user", "unreplicated"))
    s.note(await h.load())  # refused is not rolled back: the master has it, a failover may not
    await s.expect(StateNotDurable, c.lock("refund", "order-1"))
    s.note(s.raw.exists(c.schema.lock(schema.lock_id("refund", "order-1"))))  # given back
    s.note(await c.preferences("user-1").set("language", "en"))  # not a durable write
    s.note(bool(await c.ready()))  # reachable and writable: ready, the refusals are counted


CASES: dict[str, tuple[Any, dict[str, Any]]] = {
    "memory": (memory, {}),
    "locks": (locks, {"name_cap": 5}),
    "tools": (tools, {}),
    "health": (health, {}),
    "first_write": (first_write, {}),
    "old_schema": (old_schema, {}),
    "out_of_memory": (out_of_memory, {}),
    "not_durable": (not_durable, {"min_replicas": 1, "replica_timeout": 0.05}),
}
"""Every scenario by name, with the ``Settings`` its test gives it."""
