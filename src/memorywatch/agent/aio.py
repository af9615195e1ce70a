"""The asyncio client: the same sans-I/O operations as :mod:`memorywatch.agent.state`, driven
with ``await`` (redis.asyncio, ``asyncio.sleep``, tasks). Same schema, scripts, errors, spans
and counters: the logic is not repeated here, only how effects are carried out."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import Awaitable, Callable, Generator, Iterable, Mapping
from types import TracebackType
from typing import Any, TypeVar

import redis.asyncio as aredis
import redis.asyncio.sentinel
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider
from redis.asyncio.cluster import PipelineCommand
from redis.asyncio.retry import Retry
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from memorywatch import schema
from memorywatch.agent import _connect, _health, _locks, _memory, _tools, _values
from memorywatch.agent import _effects as fx
from memorywatch.agent._client import StateBase
from memorywatch.agent._context import ensure_schema, prepared
from memorywatch.agent._tools import idempotent_tool
from memorywatch.agent.errors import MOVED_OR_DOWN
from memorywatch.agent.pool import AsyncInstrumentedPool, AsyncInstrumentedSentinelPool, side_client
from memorywatch.agent.telemetry import Telemetry

T = TypeVar("T")
R = TypeVar("R")

__all__ = ["AgentState", "History", "Lease", "Preferences", "Turn", "idempotent_tool"]


class _Loop:
    """A spawned background loop: a task whose pauses end early on stop. It is stopped by
    its event, never cancelled: a cancelled command could leave its connection mid-reply."""

    def __init__(self, loop: fx.Op[None], name: str, handlers: fx.AsyncHandlers) -> None:
        self._stop = asyncio.Event()
        own = {**handlers, fx.Pause: self._pause}
        self._task = asyncio.create_task(fx.adrive(loop, own), name=name)

    async def _pause(self, effect: fx.Pause) -> bool:
        try:
            await asyncio.wait_for(self._stop.wait(), effect.seconds)
        except TimeoutError:
            return False
        return True

    async def join(self) -> None:
        self._stop.set()
        if self._task is not asyncio.current_task():
            await self._task


async def _call(effect: fx.Call) -> Any:
    """The user's function: a coroutine function is awaited, a plain one called."""
    result = effect.fn(*effect.args, **effect.kwargs)
    return await result if inspect.isawaitable(result) else result


async def _sleep(effect: fx.Sleep) -> None:
    await asyncio.sleep(effect.seconds)


async def _join(effect: fx.Join) -> None:
    await effect.handle.join()


async def _not_in_a_loop(effect: fx.Pause) -> bool:
    raise RuntimeError("Pause outside a background loop")


class History(_memory.HistoryBase):
    """The history of one session, on the asyncio client (see the sync ``History``)."""

    _state: AgentState

    async def append(self, role: str, text: str, **extra: Any) -> int:
        return await self._state._drive(_memory.extend(self._core, self, [(role, text, extra)]))

    async def extend(self, messages: Iterable[_memory.Message]) -> int:
        return await self._state._drive(_memory.extend(self._core, self, messages))

    async def load(self) -> list[dict[str, Any]]:
        """Messages oldest first; raises :class:`StateMiss` (counted) if the history is lost."""
        return await self._state._drive(_memory.load(self._core, self))

    async def pop(self) -> dict[str, Any] | None:
        """Remove and return the newest message; :class:`StateMiss` if the history is lost."""
        return await self._state._drive(_memory.pop(self._core, self))

    async def forget(self) -> int:
        return await self._state._drive(_memory.forget_history(self._core, self))


class Preferences(_memory.PreferencesBase):
    _state: AgentState

    async def set(self, name: str, value: Any) -> None:
        await self._state._drive(_memory.update_preferences(self._core, self, {name: value}))

    async def update(self, values: Mapping[str, Any]) -> None:
        await self._state._drive(_memory.update_preferences(self._core, self, values))

    async def get(self, name: str, default: Any = None) -> Any:
        return await self._state._drive(_memory.get_preference(self._core, self, name, default))

    async def all(self) -> dict[str, Any]:
        return await self._state._drive(_memory.all_preferences(self._core, self))

    async def delete(self, *names: str) -> int:
        return await self._state._drive(_memory.delete_preferences(self._core, self, names))


class Lease(_locks.LeaseBase):
    """A held lock (``async with``); see :class:`memorywatch.agent.Lease`."""

    event_type = asyncio.Event
    _state: AgentState
    __slots__ = ()

    async def extend(self, ttl: float | None = None) -> None:
        await self._state._drive(_locks.extend(self.core, self, ttl))

    async def start_renewal(self, interval: float | None = None) -> None:
        await self._state._drive(_locks.start_renewal(self.core, self, interval))

    async def release(self) -> None:
        await self._state._drive(_locks.release(self.core, self))

    async def __aenter__(self) -> Lease:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._state._drive(_locks.release(self.core, self, exc))


AsyncLease = Lease
"""The name before 0.3: ``aio.Lease`` mirrors ``aio.AgentState`` as the sync names do."""


class _LockRequest:
    """``async with state.lock(...) as lease`` or ``lease = await state.lock(...)``."""

    def __init__(self, acquire: Callable[[], Awaitable[Lease]]) -> None:
        self._acquire = acquire
        self._lease: Lease | None = None

    def __await__(self) -> Generator[Any, None, Lease]:
        return self._acquire().__await__()

    async def __aenter__(self) -> Lease:
        self._lease = await self._acquire()
        return self._lease

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._lease is not None:
            await self._lease.__aexit__(kind, exc, tb)


class Turn(_health.TurnBase):
    _state: AgentState

    async def __aenter__(self) -> Turn:
        self.started = time.monotonic()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._state._drive(_health.end_turn(self, exc))


class AgentState(StateBase):
    """Asyncio AgentState over ``redis.asyncio.Redis`` (or ``RedisCluster``).

    Nothing is sent to Redis in the constructor; the first operation writes the schema
    version, whatever it is, so the exporter sees the fleet from its first write."""

    client_type = aredis.Redis
    cluster_type = aredis.RedisCluster
    flavor = _connect.Flavor(
        client=aredis.Redis,
        cluster=aredis.RedisCluster,
        pool=AsyncInstrumentedPool,
        sentinel_pool=AsyncInstrumentedSentinelPool,
        sentinel=redis.asyncio.sentinel.Sentinel,
        retry=Retry,
        cluster_node_pool=False,
    )

    def __init__(
        self,
        client: aredis.Redis | aredis.RedisCluster,
        *,
        namespace: str = schema.DEFAULT_NAMESPACE,
        instance_id: str | None = None,
        shards: int | None = None,
        settings: _values.Settings | None = None,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        telemetry: Telemetry | None = None,
        min_replicas: int | None = None,
        replica_timeout: float | None = None,
    ) -> None:
        telemetry = telemetry or Telemetry(tracer_provider, meter_provider)
        self._init_core(
            client,
            namespace,
            instance_id,
            shards,
            settings,
            telemetry,
            min_replicas,
            replica_timeout,
        )
        self._side: aredis.Redis | aredis.RedisCluster | None = None
        self._handlers: fx.AsyncHandlers = {
            fx.Script: self._script,
            fx.LoadScript: self._load_script,
            fx.Command: self._command,
            fx.Sleep: _sleep,
            fx.Call: _call,
            fx.Spawn: self._spawn,
            fx.Join: _join,
            fx.Deadline: self._deadline,
            fx.Pause: _not_in_a_loop,
        }

    # -- the driver -------------------------------------------------------------------------------
    async def _drive(self, op: fx.Op[T]) -> T:
        if not self._core.schema_checked:
            op = prepared(self._core, op)
        return await fx.adrive(op, self._handlers)

    async def _script(self, effect: fx.Script) -> Any:
        if effect.replicas:
            return await self._replicated(effect)
        client = self._side_client() if effect.side else self.client
        sha = _values.SCRIPT_SHAS[effect.name]
        return await client.execute_command(
            "EVALSHA", sha, len(effect.keys), *effect.keys, *effect.args
        )

    async def _replicated(self, effect: fx.Script) -> fx.Replicated:
        """The script and ``WAIT`` in one pipeline on one connection (of the key's node)."""
        evalsha = ("EVALSHA", _values.SCRIPT_SHAS[effect.name], len(effect.keys), *effect.keys)
        wait = ("WAIT", effect.replicas, effect.replica_timeout_ms)
        client = self.client
        if isinstance(client, aredis.RedisCluster):
            node = client.get_node_from_key(effect.keys[0])
            if node is None:
                raise RedisClusterException(f"no node serves the slot of {effect.op}'s keys")
            commands = [PipelineCommand(0, *evalsha, *effect.args), PipelineCommand(1, *wait)]
            try:
                await node.execute_pipeline(commands)
            except (RedisConnectionError, RedisTimeoutError):
                await self._refresh_slots()
                raise
            replies: list[Any] = [command.result for command in commands]
        else:
            pipe = client.pipeline(transaction=False)
            pipe.execute_command(*evalsha, *effect.args)
            pipe.execute_command(*wait)
            replies = await pipe.execute(raise_on_error=False)
        for reply in replies:
            if isinstance(reply, Exception):
                if isinstance(reply, MOVED_OR_DOWN):
                    await self._refresh_slots()
                raise reply
        return fx.Replicated(replies[0], int(replies[1]))

    async def _refresh_slots(self) -> None:
        """After a failover seen outside redis-py's cluster client: re-read the slot map."""
        if isinstance(self.client, aredis.RedisCluster):
            with contextlib.suppress(RedisError, RedisClusterException):
                await self.client.nodes_manager.initialize()

    async def _load_script(self, effect: fx.LoadScript) -> Any:
        client = self._side_client() if effect.side else self.client
        return await client.script_load(_values.SCRIPT_TEXTS[effect.name])

    async def _command(self, effect: fx.Command) -> Any:
        return await self.client.execute_command(*effect.args)

    async def _spawn(self, effect: fx.Spawn) -> _Loop:
        return _Loop(effect.loop, effect.name, self._handlers)

    async def _deadline(self, effect: fx.Deadline) -> Any:
        try:
            return await asyncio.wait_for(fx.adrive(effect.op, self._handlers), effect.seconds)
        except TimeoutError:
            raise fx.DeadlineExceeded from None

    def _side_client(self) -> aredis.Redis | aredis.RedisCluster:
        """One connection beside the pool for the heartbeat (see ``_health.heartbeat``)."""
        if self._side is None:
            self._side = side_client(self.client, aredis.Redis, aredis.ConnectionPool)
        return self._side

    async def ensure_schema(self) -> None:
        """Write the schema version if absent; raise :class:`SchemaMismatch` if it differs."""
        await fx.adrive(ensure_schema(self._core), self._handlers)

    async def aclose(self) -> None:
        """Stop the heartbeat and close the connections the SDK opened (a pool you passed in
        stays yours; the ones :meth:`from_url` and the heartbeat built are ended here)."""
        await self.stop_heartbeat()
        if isinstance(self._side, aredis.Redis) and self._side is not self.client:
            await self._side.aclose()
            await self._side.connection_pool.disconnect()
        await self.client.aclose()
        for close in self._closers:
            result = close()
            if inspect.isawaitable(result):
                await result

    async def __aenter__(self) -> AgentState:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- memory -----------------------------------------------------------------------------------
    def history(self, session_id: str, user_id: str | None = None) -> History:
        return History(self, session_id, user_id)

    def preferences(self, user_id: str) -> Preferences:
        return Preferences(self, user_id)

    async def link_session(self, user_id: str, session_id: str) -> None:
        await self._drive(_memory.link_session(self._core, user_id, session_id))

    async def forget_user(self, user_id: str) -> int:
        return await self._drive(_memory.forget_user(self._core, user_id))

    def turn(self, session_id: str) -> Turn:
        """``async with state.turn(session_id):`` one user turn, timed into the histogram."""
        return Turn(self, session_id)

    # -- locks and tools --------------------------------------------------------------------------
    def lock(
        self,
        kind: str,
        resource: str | None = None,
        *,
        wait: float = 10.0,
        ttl: float | None = None,
        renew: bool = False,
    ) -> _LockRequest:
        """``async with state.lock("charge", "order-42") as lease:`` (or ``await``)."""

        async def acquire() -> Lease:
            new_lease = lambda *facts: Lease(self, *facts)  # noqa: E731
            lease = await self._drive(
                _locks.acquire(self._core, new_lease, kind, resource, ttl, wait, renew)
            )
            assert isinstance(lease, Lease)
            return lease

        return _LockRequest(acquire)

    async def run_tool(
        self,
        tool_name: str,
        idempotency_key: str,
        fn: Callable[..., Awaitable[R]],
        *args: Any,
        tool_options: _values.ToolOptions | None = None,
        **kwargs: Any,
    ) -> R:
        """Await ``fn(ctx, *args, **kwargs)`` at most once per idempotency key; a concurrent
        call waits up to ``tool_options.wait`` (default 5 s) for the first call's answer, see
        the sync ``run_tool``."""
        options = tool_options or _values.ToolOptions()
        result: R = await self._drive(
            _tools.run_tool(self._core, tool_name, idempotency_key, fn, args, kwargs, options)
        )
        return result

    # -- health -----------------------------------------------------------------------------------
    async def ready(self, deadline: float = 1.0) -> _values.ReadyReport:
        """See the sync ``ready()``; ``bool(report)`` is the verdict."""
        return await fx.adrive(_health.ready(self._core, deadline), self._handlers)

    async def heartbeat(self, ready: bool | None = None) -> None:
        await self._drive(_health.heartbeat(self._core, ready))

    async def start_heartbeat(
        self, interval: float | None = None, ready_deadline: float = 1.0
    ) -> _health.Heartbeat:
        return await fx.adrive(
            _health.start_heartbeat(self._core, interval, ready_deadline), self._handlers
        )

    async def stop_heartbeat(self) -> None:
        await fx.adrive(_health.stop_heartbeat(self._core), self._handlers)
