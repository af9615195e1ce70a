"""close() gives every socket back; bookkeeping errors never hide the caller's own exception."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import redis
from agent_helpers import counters

from harness import RedisServer, wait_until
from memorywatch import schema
from memorywatch.agent import AgentState, LockLost, StateUnavailable, aio


class Boom(Exception):
    """The caller's own error."""


@pytest.fixture
def own_server() -> Iterator[RedisServer]:
    srv = RedisServer().start()
    yield srv
    srv.cleanup()


def connected(admin: redis.Redis) -> int:
    return int(admin.info("clients")["connected_clients"])


def notes(exc: BaseException) -> str:
    return "\n".join(getattr(exc, "__notes__", []))


# -- close() ------------------------------------------------------------------------------------
def test_close_disconnects_the_pool_and_the_heartbeat_connection(own_server: RedisServer) -> None:
    admin = own_server.client()
    baseline = connected(admin)
    state = AgentState.from_url(own_server.url, namespace="c", instance_id="closer")
    state.history("s").append("user", "hi")
    with state.lock("l", ttl=5):
        pass
    assert state.ready().ready
    state.heartbeat()  # opens the side connection of the heartbeat
    assert connected(admin) >= baseline + 2
    state.close()
    wait_until(lambda: connected(admin) == baseline, timeout=5, what="sockets closed")
    admin.close()


def test_aclose_disconnects_the_pool(own_server: RedisServer) -> None:
    admin = own_server.client()
    baseline = connected(admin)

    async def main() -> None:
        state = aio.AgentState.from_url(own_server.url, namespace="c")
        h = state.history("s")
        await asyncio.gather(*(h.append("user", str(i)) for i in range(5)))
        assert (await state.ready()).ready
        await state.heartbeat()
        assert connected(admin) > baseline
        await state.aclose()

    asyncio.run(main())
    wait_until(lambda: connected(admin) == baseline, timeout=5, what="sockets closed")
    admin.close()


# -- turn() -------------------------------------------------------------------------------------
def test_turn_keeps_the_callers_exception_when_redis_is_down(own_server: RedisServer) -> None:
    state = AgentState.from_url(own_server.url, namespace="t", socket_timeout=0.5)
    with state.turn("s"):
        pass  # recorded
    own_server.stop()
    with pytest.raises(Boom) as info, state.turn("s"):
        raise Boom("the model call failed")
    assert "turn.record" in notes(info.value) and "StateUnavailable" in notes(info.value)
    with pytest.raises(StateUnavailable, match=r"turn\.record"), state.turn("s"):
        pass  # nothing in flight: the bookkeeping error is the error
    state.close()


def test_async_turn_keeps_the_callers_exception_when_redis_is_down(
    own_server: RedisServer,
) -> None:
    async def main() -> None:
        state = aio.AgentState.from_url(own_server.url, namespace="t", socket_timeout=0.5)
        async with state.turn("s"):
            pass
        own_server.stop()
        with pytest.raises(Boom) as info:
            async with state.turn("s"):
                raise Boom("the model call failed")
        assert "turn.record" in notes(info.value) and "StateUnavailable" in notes(info.value)
        with pytest.raises(StateUnavailable, match=r"turn\.record"):
            async with state.turn("s"):
                pass
        await state.aclose()

    asyncio.run(main())


# -- leases -------------------------------------------------------------------------------------
def test_lost_lease_does_not_replace_the_exception_in_flight(
    state: AgentState, raw: redis.Redis, namespace: str
) -> None:
    with pytest.raises(Boom) as info, state.lock("job", ttl=0.2):
        wait_until(lambda: not raw.exists(state.schema.lock("job")), what="lock expired")
        raise Boom("the work failed")
    assert "LockLost" in notes(info.value)
    assert counters(raw, namespace, schema.FAMILY_LOCKS_LOST) == {"job": 1}  # still counted
    with pytest.raises(LockLost), state.lock("job", ttl=0.2):  # nothing in flight: LockLost
        wait_until(lambda: not raw.exists(state.schema.lock("job")), what="lock expired")
    assert counters(raw, namespace, schema.FAMILY_LOCKS_LOST) == {"job": 2}


def test_async_lost_lease_does_not_replace_the_exception_in_flight(
    server: RedisServer, raw: redis.Redis, namespace: str
) -> None:
    async def expired(state: aio.AgentState) -> None:
        while raw.exists(state.schema.lock("job")):
            await asyncio.sleep(0.02)

    async def main() -> None:
        state = aio.AgentState.from_url(server.url, namespace=namespace)
        with pytest.raises(Boom) as info:
            async with state.lock("job", ttl=0.2):  # the request form
                await expired(state)
                raise Boom("the work failed")
        assert "LockLost" in notes(info.value)
        lease = await state.lock("job", ttl=0.2)
        with pytest.raises(Boom) as info:
            async with lease:  # the lease form
                await expired(state)
                raise Boom("the work failed")
        assert "LockLost" in notes(info.value)
        with pytest.raises(LockLost):
            async with state.lock("job", ttl=0.2):
                await expired(state)
        await state.aclose()

    asyncio.run(main())
    assert counters(raw, namespace, schema.FAMILY_LOCKS_LOST) == {"job": 3}
