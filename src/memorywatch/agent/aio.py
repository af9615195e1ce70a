"""The asyncio client: the same sans-I/O operations as :mod:`memorywatch.agent.state`, driven
with ``await`` (redis.asyncio, ``asyncio.sleep``, tasks). Same schema, scripts, errors, spans
and counters: the logic is not repeated here, only how effects are carried out."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Generator, Iterable, Mapping
from types import TracebackType
from typing import Any, TypeVar

import redis.asyncio as aredis
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from memorywatch import schema
from memorywatch.agent import _core, _health, _locks, _memory, _tools
from memorywatch.agent._context import Core, ensure_schema, prepared
from memorywatch.agent._effects import (
    Call,
    Command,
    Deadline,
    DeadlineExceeded,
    Join,
    LoadScript,
    NewEvent,
    Op,
    Pause,
    Run,
    Script,
    Sleep,
    Spawn,
)
from memorywatch.agent._tools import idempotent_tool
from memorywatch.agent.pool import AsyncInstrumentedPool, pool_numbers
from memorywatch.agent.telemetry import Telemetry

T = TypeVar("T")
R = TypeVar("R")
AsyncHandlers = dict[type, Callable[[Any], Awaitable[Any]]]

__all__ = ["AgentState", "AsyncLease", "History", "Preferences", "Turn", "idempotent_tool"]


async def _drive(op: Op[T], handlers: AsyncHandlers) -> T:
    run: Run[T] = Run(op)
    while not run.done:
        effect = run.effect
        try:
            reply = await handlers[type(effect)](effect)
        except BaseException as exc:
            run.throw(exc)
        else:
            run.send(reply)
    result: T = run.value
    return result


class _Loop:
    """A spawned background loop: a task whose pauses end early on stop. It is stopped by
    its event, never cancelled: a cancelled command could leave its connection mid-reply."""

    def __init__(self, loop: Op[None], name: str, handlers: AsyncHandlers) -> None:
        self._stop = asyncio.Event()
        own = {**handlers, Pause: self._pause}
        self._task = asyncio.create_task(_drive(loop, own), name=name)

    async def _pause(self, effect: Pause) -> bool:
        try:
            await asyncio.wait_for(self._stop.wait(), effect.seconds)
        except TimeoutError:
            return False
        return True

    async def join(self) -> None:
        self._stop.set()
        if self._task is not asyncio.current_task():
            await self._task


async def _call(effect: Call) -> Any:
    """The user's function: a coroutine function is awaited, a plain one called."""
    result = effect.fn(*effect.args, **effect.kwargs)
    return await result if inspect.isawaitable(result) else result


async def _sleep(effect: Sleep) -> None:
    await asyncio.sleep(effect.seconds)


async def _join(effect: Join) -> None:
    await effect.handle.join()


async def _event(effect: NewEvent) -> asyncio.Event:
    return asyncio.Event()


async def _not_in_a_loop(effect: Pause) -> bool:
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


class AsyncLease(_locks.LeaseBase):
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

    async def __aenter__(self) -> AsyncLease:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._state._drive(_locks.release(self.core, self, exc))


class _LockRequest:
    """``async with state.lock(...) as lease`` or ``lease = await state.lock(...)``."""

    def __init__(self, acquire: Callable[[], Awaitable[AsyncLease]]) -> None:
        self._acquire = acquire
        self._lease: AsyncLease | None = None

    def __await__(self) -> Generator[Any, None, AsyncLease]:
        return self._acquire().__await__()

    async def __aenter__(self) -> AsyncLease:
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


class AgentState:
    """Asyncio AgentState over ``redis.asyncio.Redis`` (or ``RedisCluster``).

    Nothing is sent to Redis in the constructor; the first operation writes the schema
    version, whatever it is, so the exporter sees the fleet from its first write."""

    def __init__(
        self,
        client: aredis.Redis | aredis.RedisCluster,
        *,
        namespace: str = schema.DEFAULT_NAMESPACE,
        instance_id: str | None = None,
        shards: int | None = None,
        settings: _core.Settings | None = None,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.client = client
        cluster = isinstance(client, aredis.RedisCluster)
        self._core = Core(
            schema=schema.Schema(namespace, shards or schema.default_shards(cluster)),
            instance_id=instance_id or _core.default_instance_id(),
            settings=settings or _core.Settings(),
            telemetry=telemetry or Telemetry(tracer_provider, meter_provider),
            pool_stats=lambda: pool_numbers(client),
        )
        self.schema = self._core.schema
        self.instance_id = self._core.instance_id
        self.settings = self._core.settings
        self.telemetry = self._core.telemetry
        self._side: aredis.Redis | aredis.RedisCluster | None = None
        self._owned_pool: aredis.ConnectionPool | None = None  # built by from_url
        self._handlers: AsyncHandlers = {
            Script: self._script,
            LoadScript: self._load_script,
            Command: self._command,
            Sleep: _sleep,
            Call: _call,
            Spawn: self._spawn,
            Join: _join,
            Deadline: self._deadline,
            NewEvent: _event,
            Pause: _not_in_a_loop,
        }

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        namespace: str = schema.DEFAULT_NAMESPACE,
        instance_id: str | None = None,
        max_connections: int = 50,
        pool_timeout: float = 1.0,
        socket_timeout: float = 5.0,
        pool_name: str | None = None,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> AgentState:
        """Build a client on an :class:`AsyncInstrumentedPool` (name ``memorywatch.{ns}``)."""
        telemetry = Telemetry(tracer_provider, meter_provider)
        pool = AsyncInstrumentedPool.from_url(
            url,
            retry=Retry(NoBackoff(), 0),
            **_core.pool_options(
                namespace=namespace,
                pool_name=pool_name,
                meter=telemetry.meter,
                max_connections=max_connections,
                pool_timeout=pool_timeout,
                socket_timeout=socket_timeout,
                username=username,
                password=password,
            ),
        )
        client = aredis.Redis(connection_pool=pool)
        state = cls(
            client, namespace=namespace, instance_id=instance_id, telemetry=telemetry, **kwargs
        )
        state._owned_pool = pool
        return state

    # -- the driver -------------------------------------------------------------------------------
    async def _drive(self, op: Op[T]) -> T:
        if not self._core.schema_checked:
            op = prepared(self._core, op)
        return await _drive(op, self._handlers)

    async def _script(self, effect: Script) -> Any:
        client = self._side_client() if effect.side else self.client
        sha = _core.SCRIPT_SHAS[effect.name]
        return await client.execute_command(
            "EVALSHA", sha, len(effect.keys), *effect.keys, *effect.args
        )

    async def _load_script(self, effect: LoadScript) -> Any:
        client = self._side_client() if effect.side else self.client
        return await client.script_load(_core.SCRIPT_TEXTS[effect.name])

    async def _command(self, effect: Command) -> Any:
        return await self.client.execute_command(*effect.args)

    async def _spawn(self, effect: Spawn) -> _Loop:
        return _Loop(effect.loop, effect.name, self._handlers)

    async def _deadline(self, effect: Deadline) -> Any:
        try:
            return await asyncio.wait_for(_drive(effect.op, self._handlers), effect.seconds)
        except TimeoutError:
            raise DeadlineExceeded from None

    def _side_client(self) -> aredis.Redis | aredis.RedisCluster:
        """One connection beside the pool for the heartbeat (see ``_health.heartbeat``)."""
        if self._side is None:
            pool = getattr(self.client, "connection_pool", None)
            if isinstance(self.client, aredis.Redis) and isinstance(pool, aredis.ConnectionPool):
                side = aredis.ConnectionPool(
                    connection_class=pool.connection_class,
                    max_connections=1,
                    **pool.connection_kwargs,
                )
                self._side = aredis.Redis(connection_pool=side)
            else:
                self._side = self.client
        return self._side

    async def ensure_schema(self) -> None:
        """Write the schema version if absent; raise :class:`SchemaMismatch` if it differs."""
        await _drive(ensure_schema(self._core), self._handlers)

    async def aclose(self) -> None:
        """Stop the heartbeat and close the connections the SDK opened (a pool you passed in
        stays yours; the ones :meth:`from_url` and the heartbeat built are ended here)."""
        await self.stop_heartbeat()
        if isinstance(self._side, aredis.Redis) and self._side is not self.client:
            await self._side.aclose()
            await self._side.connection_pool.disconnect()
        await self.client.aclose()
        if self._owned_pool is not None:
            await self._owned_pool.disconnect()

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
        ttl: float | None = None,
        wait: float = 10.0,
        renew: bool = False,
    ) -> _LockRequest:
        """``async with state.lock("charge", "order-42") as lease:`` (or ``await``)."""

        async def acquire() -> AsyncLease:
            new_lease = lambda *facts: AsyncLease(self, *facts)  # noqa: E731
            lease = await self._drive(
                _locks.acquire(self._core, new_lease, kind, resource, ttl, wait, renew)
            )
            assert isinstance(lease, AsyncLease)
            return lease

        return _LockRequest(acquire)

    async def run_tool(
        self,
        tool_name: str,
        idempotency_key: str,
        fn: Callable[..., Awaitable[R]],
        *args: Any,
        tool_options: _core.ToolOptions | None = None,
        **kwargs: Any,
    ) -> R:
        """Await ``fn(ctx, *args, **kwargs)`` at most once per idempotency key."""
        options = tool_options or _core.ToolOptions()
        result: R = await self._drive(
            _tools.run_tool(self._core, tool_name, idempotency_key, fn, args, kwargs, options)
        )
        return result

    def idempotent_tool(
        self,
        name: str | None = None,
        *,
        key: Callable[..., str],
        options: _core.ToolOptions | None = None,
    ) -> Any:
        return _tools.idempotent_tool(self, name, key=key, options=options)

    # -- health -----------------------------------------------------------------------------------
    async def ready(self, deadline: float = 1.0) -> _core.ReadyReport:
        """See the sync ``ready()``; ``bool(report)`` is the verdict."""
        return await _drive(_health.ready(self._core, deadline), self._handlers)

    def pool_stats(self) -> dict[str, int]:
        return pool_numbers(self.client)

    async def heartbeat(self, ready: bool | None = None) -> None:
        await self._drive(_health.heartbeat(self._core, ready))

    async def start_heartbeat(
        self, interval: float | None = None, ready_deadline: float = 1.0
    ) -> _health.Heartbeat:
        return await _drive(
            _health.start_heartbeat(self._core, interval, ready_deadline), self._handlers
        )

    async def stop_heartbeat(self) -> None:
        await _drive(_health.stop_heartbeat(self._core), self._handlers)
