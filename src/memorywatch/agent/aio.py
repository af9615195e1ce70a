"""The asyncio twin of :mod:`memorywatch.agent`: same schema, same scripts, same semantics."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, TypeVar

import redis.asyncio as aredis
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import SpanKind, Status, StatusCode, TracerProvider
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from memorywatch import __version__, schema
from memorywatch.agent import _core
from memorywatch.agent import attributes as attr
from memorywatch.agent.errors import (
    AgentStateError,
    LockLost,
    LockTimeout,
    StateMiss,
    ToolInProgress,
    add_failure_note,
    redis_errors,
)
from memorywatch.agent.lock import LockKeys, acquire_args, lock_keys
from memorywatch.agent.pool import AsyncInstrumentedPool
from memorywatch.agent.state import _check_schema, _report_for, turn_args
from memorywatch.agent.telemetry import Telemetry
from memorywatch.agent.tools import ToolCall, claim_keys, complete_keys, encode_outcome

R = TypeVar("R")

__all__ = ["AgentState", "AsyncLease", "History", "Preferences"]


class History:
    """Async history of one session (see :class:`memorywatch.agent.History`)."""

    def __init__(self, state: AgentState, session_id: str, user_id: str | None = None) -> None:
        if not session_id:
            raise ValueError("a session id is required")
        self._state = state
        self.session_id = session_id
        self.user_id = user_id
        self._linked = False

    async def append(self, role: str, text: str, **extra: Any) -> int:
        st = self._state
        sch = st.schema
        msg = _core.encode_message(role, text, time.time(), extra)
        ttl_ms = _core.ms(st.settings.session_ttl)
        if self.user_id is not None and not self._linked:
            await st.link_session(self.user_id, self.session_id)
            self._linked = True
        with redis_errors("history.append"):
            n = await st._run(
                "history_append",
                [sch.history(self.session_id), sch.sessions_index(self.session_id)],
                [self.session_id, ttl_ms, st.settings.max_messages, msg],
            )
        return int(n)

    async def load(self) -> list[dict[str, Any]]:
        """Messages oldest first; raises :class:`StateMiss` (counted) if the history is lost."""
        st = self._state
        sch = st.schema
        with redis_errors("history.load"):
            code, raw = await st._run(
                "history_load",
                [sch.history(self.session_id), sch.sessions_index(self.session_id)],
                [self.session_id, _core.ms(st.settings.session_ttl)],
            )
        if int(code) < 0:
            with redis_errors("count.state_miss"):
                await st.client.hincrby(
                    sch.stats(schema.STATE_MISSES, self.session_id), schema.MISS_HISTORY, 1
                )
            raise StateMiss(
                schema.MISS_HISTORY,
                "history.load: the session is in the index but its history is gone "
                "(evicted or deleted before its TTL)",
            )
        return _core.decode_messages(raw)


class Preferences:
    def __init__(self, state: AgentState, user_id: str) -> None:
        self._state = state
        self.user_id = user_id

    async def set(self, name: str, value: Any) -> None:
        st = self._state
        with redis_errors("preferences.set"):
            await st._run(
                "prefs_set",
                [st.schema.preferences(self.user_id)],
                [_core.ms(st.settings.preferences_ttl), name, _core.encode_value(value)],
            )

    async def get(self, name: str, default: Any = None) -> Any:
        with redis_errors("preferences.get"):
            raw = await self._state.client.hget(self._state.schema.preferences(self.user_id), name)
        return default if raw is None else _core.decode_value(raw)


class AsyncLease:
    """A held lock (``async with``); see :class:`memorywatch.agent.Lease`."""

    def __init__(
        self,
        state: AgentState,
        name: str,
        fencing_token: int,
        owner: str,
        ttl: float,
        keys: LockKeys | None = None,
    ) -> None:
        self.name = name
        self.fencing_token = fencing_token
        self.ttl = ttl
        self._state = state
        self._keys = keys or lock_keys(state._lock_keys, state.schema, name)
        self._value = f"{fencing_token}|{owner}"
        self._released = False
        self._renewal: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self.lost = asyncio.Event()

    async def extend(self, ttl: float | None = None) -> None:
        with redis_errors("lock.extend"):
            ok = await self._state._run(
                "lock_extend",
                self._keys.extend,
                [self._value, _core.ms(ttl or self.ttl), self.name],
            )
        if not int(ok):
            self.lost.set()
            raise LockLost(f"lock {self.name!r} expired or was taken before it was extended")

    def start_renewal(self, interval: float | None = None) -> None:
        """Extend every ``ttl / 3`` in a task until release. The task is stopped by an event,
        never cancelled: a cancelled command could leave its connection mid-reply."""
        period = interval or self.ttl / 3

        async def renew() -> None:
            while True:
                try:
                    await asyncio.wait_for(self._stop.wait(), period)
                    return
                except TimeoutError:
                    pass
                try:
                    await self.extend()
                except LockLost:
                    return
                except AgentStateError:
                    continue

        if self._renewal is None:
            self._renewal = asyncio.create_task(renew())

    async def release(self) -> None:
        if self._released:
            return
        self._released = True
        self._stop.set()
        if self._renewal is not None:
            await self._renewal
        with redis_errors("lock.release"):
            ok = await self._state._run(
                "lock_release", self._keys.release, [self._value, self.name]
            )
        if not int(ok):
            self.lost.set()
            raise LockLost(
                f"lock {self.name!r} (fencing token {self.fencing_token}) expired or was taken "
                "by another holder before release: work done under it may have overlapped"
            )

    async def __aenter__(self) -> AsyncLease:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            await self.release()
            return
        try:
            await self.release()
        except Exception as err:  # never replace the exception already in flight
            add_failure_note(exc, "the lock release failed while this propagated", err)


class _LockRequest:
    """``async with state.lock(...) as lease`` or ``lease = await state.lock(...)``."""

    def __init__(self, acquire: Callable[[], Awaitable[AsyncLease]]) -> None:
        self._acquire = acquire
        self._lease: AsyncLease | None = None

    def __await__(self) -> Any:
        return self._acquire().__await__()

    async def __aenter__(self) -> AsyncLease:
        self._lease = await self._acquire()
        return self._lease

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._lease is not None:
            await self._lease.__aexit__(exc_type, exc, tb)


def _is_cluster(client: object) -> bool:
    return isinstance(client, aredis.RedisCluster)


class AgentState:
    """Asyncio AgentState over ``redis.asyncio.Redis`` (or ``RedisCluster``)."""

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
        if shards is None:
            shards = schema.default_shards(_is_cluster(client))
        self.schema = schema.Schema(namespace, shards)
        self.instance_id = instance_id or _core.default_instance_id()
        self.settings = settings or _core.Settings()
        self.telemetry = telemetry or Telemetry(tracer_provider, meter_provider)
        self._scripts = {n: client.register_script(t) for n, t in _core.SCRIPT_TEXTS.items()}
        self._lock_keys: dict[str, LockKeys] = {}
        self._schema_checked = False
        self._ready_flag = True
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._owned_pool: aredis.ConnectionPool | None = None  # built by from_url

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

    async def _run(self, script: str, keys: list[str], args: list[Any]) -> Any:
        return await self._scripts[script](keys=keys, args=args)

    async def ensure_schema(self) -> None:
        key = self.schema.schema_key()
        with redis_errors("schema.check"):
            await self.client.hsetnx(key, schema.SCHEMA_FIELD_VERSION, str(schema.SCHEMA_VERSION))
            await self.client.hsetnx(key, schema.SCHEMA_FIELD_SHARDS, str(self.schema.shards))
            stored = await self.client.hgetall(key)
        _check_schema(stored, self.schema)
        self._schema_checked = True

    async def aclose(self) -> None:
        """Stop the heartbeat and close the connections the SDK opened (redis-py leaves a pool
        passed as ``connection_pool=`` open: the one :meth:`from_url` built is ended here; a
        pool you passed in stays yours)."""
        await self.stop_heartbeat()
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
        with redis_errors("session.link"):
            await self._run(
                "session_link",
                [self.schema.user_sessions(user_id)],
                [session_id, _core.ms(self.settings.session_ttl)],
            )

    async def forget_user(self, user_id: str) -> int:
        usess = self.schema.user_sessions(user_id)
        removed = 0
        with redis_errors("forget_user"):
            for sid in [_core.text(s) for s in await self.client.smembers(usess)]:
                removed += int(
                    await self._run(
                        "forget_session",
                        [self.schema.history(sid), self.schema.sessions_index(sid)],
                        [sid],
                    )
                )
            removed += int(await self.client.delete(self.schema.preferences(user_id)))
            removed += int(await self.client.delete(usess))
        return removed

    @contextlib.asynccontextmanager
    async def turn(self, session_id: str) -> AsyncIterator[None]:
        started = time.monotonic()
        try:
            yield
        except BaseException as exc:
            try:
                await self._record_turn(session_id, time.monotonic() - started)
            except Exception as err:  # never replace the caller's exception with ours
                add_failure_note(exc, "the turn could not be recorded", err)
            raise
        await self._record_turn(session_id, time.monotonic() - started)

    async def _record_turn(self, session_id: str, duration: float) -> None:
        le = schema.bucket_le(duration, schema.TURN_BUCKETS)
        with redis_errors("turn.record"):
            await self._run(
                "turn_end",
                [
                    self.schema.sessions_index(session_id),
                    self.schema.stats(schema.TURN_DURATION, session_id),
                ],
                turn_args(session_id, le, duration),
            )

    # -- locks ------------------------------------------------------------------------------------
    def lock(
        self, name: str, ttl: float | None = None, wait: float = 10.0, renew: bool = False
    ) -> _LockRequest:
        """``async with state.lock(name) as lease:`` (or ``await``); see the sync twin."""
        return _LockRequest(lambda: self._acquire(name, ttl or self.settings.lock_ttl, wait, renew))

    async def _acquire(self, name: str, ttl: float, wait: float, renew: bool) -> AsyncLease:
        owner = _core.owner_token(self.instance_id)
        keys = lock_keys(self._lock_keys, self.schema, name)
        ttl_ms = _core.ms(ttl)
        started = time.monotonic()
        deadline = started + max(0.0, wait)
        attempt = 1
        span = None
        try:
            while True:
                now = time.monotonic()
                final = now >= deadline
                args = acquire_args(name, owner, ttl_ms, attempt == 1, final, now - started)
                with redis_errors("lock.acquire"):
                    fence = int(await self._run("lock_acquire", keys.acquire, args))
                if fence:
                    if span is not None:
                        span.set_attribute(attr.LOCK_OUTCOME, "acquired")
                        span.set_attribute(attr.LOCK_ATTEMPTS, attempt)
                    lease = AsyncLease(self, name, fence, owner, ttl, keys)
                    if renew:
                        lease.start_renewal()
                    return lease
                if span is None:
                    span = self.telemetry.tracer.start_span(
                        attr.SPAN_LOCK_WAIT,
                        kind=SpanKind.INTERNAL,
                        start_time=time.time_ns() - int((time.monotonic() - started) * 1e9),
                        attributes={attr.LOCK_NAME: name},
                    )
                if final:
                    span.set_attribute(attr.LOCK_OUTCOME, "timeout")
                    span.set_attribute(attr.LOCK_ATTEMPTS, attempt)
                    span.set_status(Status(StatusCode.ERROR, "lock wait timed out"))
                    raise LockTimeout(f"lock {name!r} still held by another owner after {wait}s")
                await asyncio.sleep(
                    min(max(0.0, deadline - time.monotonic()), _core.backoff(attempt))
                )
                attempt += 1
        finally:
            if span is not None:
                span.end()

    # -- tools ------------------------------------------------------------------------------------
    async def run_tool(
        self,
        tool_name: str,
        idempotency_key: str,
        fn: Callable[..., Awaitable[R]],
        *args: Any,
        tool_options: _core.ToolOptions | None = None,
        **kwargs: Any,
    ) -> R:
        """Await ``fn(ctx, *args, **kwargs)`` at most once per idempotency key (the sync
        twin's semantics, ``renew`` included: a task pushes the deadline while ``fn`` runs)."""
        options = tool_options or _core.ToolOptions()
        call = ToolCall(
            self.schema.namespace,
            self.settings,
            self.instance_id,
            tool_name,
            idempotency_key,
            args,
            kwargs,
            options,
        )
        sch = self.schema
        with self.telemetry.tracer.start_as_current_span(
            f"{attr.SPAN_EXECUTE_TOOL_PREFIX} {tool_name}",
            kind=SpanKind.INTERNAL,
            attributes=call.span_attributes(),
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            started = time.monotonic()
            attempt = 1
            while True:
                with redis_errors("run_tool.claim"):
                    raw = await self._run(
                        "tool_claim",
                        claim_keys(sch, idempotency_key),
                        call.claim_args(attempt == 1),
                    )
                reply = _core.ClaimReply.parse(raw)
                if reply.status in ("claimed", "reclaimed"):
                    break
                if reply.status == schema.TOOL_STATE_IN_PROGRESS:
                    remaining = started + options.wait - time.monotonic()
                    if remaining <= 0:
                        span.set_attribute(attr.TOOL_OUTCOME, "in_progress")
                        raise ToolInProgress(tool_name, int(reply.payload) / 1000)
                    await asyncio.sleep(min(remaining, _core.backoff(attempt, 0.005, 0.2)))
                    attempt += 1
                    continue
                span.set_attribute(attr.TOOL_OUTCOME, "replayed" if reply.fence else "mismatch")
                replayed: R = call.replay(reply)
                return replayed

            span.set_attribute(attr.TOOL_OUTCOME, "executed")
            ctx = _core.ToolContext(
                tool_name, reply.fence, call.derived, self.instance_id, reply.status == "reclaimed"
            )
            result: Any = None
            error: BaseException | None = None
            exec_started = time.monotonic()
            renewal = asyncio.create_task(self._renew_claim(call)) if options.renew else None
            try:
                result = await fn(ctx, *args, **kwargs)
            except Exception as exc:
                error = exc
            finally:
                if renewal is not None:
                    renewal.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await renewal
            metric_attrs: dict[str, Any] = {
                attr.GEN_AI_OPERATION_NAME: attr.GEN_AI_OPERATION_EXECUTE_TOOL,
                attr.GEN_AI_TOOL_NAME: tool_name,
            }
            if error is not None:
                metric_attrs[attr.ERROR_TYPE] = type(error).__qualname__
                span.set_status(Status(StatusCode.ERROR, str(error)))
            self.telemetry.tool_duration.record(time.monotonic() - exec_started, metric_attrs)
            outcome, payload, raise_after = encode_outcome(call, result, error)
            with redis_errors("run_tool.complete"):
                done = await self._run(
                    "tool_complete",
                    complete_keys(sch, idempotency_key),
                    call.complete_args(outcome, payload, reply.fence),
                )
            call.check_completion(done, result, error)
            if raise_after is not None:
                raise raise_after
            executed: R = result
            return executed

    async def _renew_claim(self, call: ToolCall) -> None:
        """Push the in-progress deadline every deadline/3 until cancelled or the claim is lost."""
        while True:
            await asyncio.sleep(call.deadline / 3)
            try:
                with redis_errors("run_tool.extend"):
                    ok = await self._run(
                        "tool_extend", [self.schema.tool(call.key)], [call.owner, call.deadline_ms]
                    )
            except AgentStateError:
                continue  # a hiccup: try again on the next tick
            if not int(ok):
                return  # completion reports the lost claim

    # -- health -----------------------------------------------------------------------------------
    async def _probe(self) -> None:
        if not self._schema_checked:
            await self.ensure_schema()
        with redis_errors("ready"):
            await self._run("ready", [self.schema.probe(self.instance_id)], [5000])

    async def ready(self, deadline: float = 1.0) -> _core.ReadyReport:
        started = time.monotonic()
        try:
            await asyncio.wait_for(self._probe(), deadline)
        except TimeoutError:
            report = _core.ReadyReport(
                False, False, False, False, None, deadline, f"no answer within {deadline}s"
            )
        except AgentStateError as exc:
            report = _report_for(exc, time.monotonic() - started, deadline)
        else:
            latency = time.monotonic() - started
            report = _core.ReadyReport(True, True, True, False, latency, deadline)
        self._ready_flag = report.ready
        return report

    async def heartbeat(self, ready: bool | None = None) -> None:
        pool = getattr(self.client, "connection_pool", None)
        stats: Mapping[str, int] = (
            {
                "pool_in_use": pool.in_use,
                "pool_max": int(pool.max_connections),
                "pool_pending": pool.pending_requests,
                "pool_timeouts": pool.timeouts,
            }
            if isinstance(pool, AsyncInstrumentedPool)
            else {}
        )
        flag = self._ready_flag if ready is None else ready
        fields: dict[str, Any] = {
            "ready": int(flag),
            **stats,
            "sdk_version": __version__,
            "schema_version": schema.SCHEMA_VERSION,
        }
        pairs = [x for kv in fields.items() for x in kv]
        with redis_errors("heartbeat"):
            await self._run(
                "heartbeat",
                [
                    self.schema.heartbeat(self.instance_id),
                    self.schema.instances_index(self.instance_id),
                ],
                [self.instance_id, _core.ms(self.settings.heartbeat_ttl), *pairs],
            )

    def start_heartbeat(
        self, interval: float | None = None, ready_deadline: float = 1.0
    ) -> asyncio.Task[None]:
        """Every ``interval`` (default heartbeat TTL / 3) in a background task, like the sync
        ``HeartbeatThread``: run the readiness probe (bounded by ``ready_deadline`` seconds),
        then publish the heartbeat with its verdict."""
        if self._heartbeat_task is None or self._heartbeat_task.done():
            period = interval or self.settings.heartbeat_ttl / 3

            async def beat() -> None:
                while True:
                    with contextlib.suppress(AgentStateError):  # Redis away: the TTL says so
                        await self.ready(ready_deadline)  # sets the flag; never raises
                        await self.heartbeat()
                    await asyncio.sleep(period)

            self._heartbeat_task = asyncio.create_task(beat(), name="memorywatch-heartbeat")
        return self._heartbeat_task

    async def stop_heartbeat(self) -> None:
        task, self._heartbeat_task = self._heartbeat_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def idempotent_tool(
    state: AgentState,
    name: str | None = None,
    *,
    key: Callable[..., str],
    options: _core.ToolOptions | None = None,
) -> Callable[[Callable[..., Awaitable[R]]], Callable[..., Awaitable[R]]]:
    """The asyncio twin of :func:`memorywatch.agent.idempotent_tool`::

    @idempotent_tool(state, key=lambda order_id: f"ticket:{order_id}")
    async def create_ticket(ctx: ToolContext, order_id: str) -> dict: ...
    """

    def decorate(fn: Callable[..., Awaitable[R]]) -> Callable[..., Awaitable[R]]:
        tool = name or fn.__name__

        @functools.wraps(fn)
        async def wrapper(*args: Any, **kwargs: Any) -> R:
            return await state.run_tool(
                tool, key(*args, **kwargs), fn, *args, tool_options=options, **kwargs
            )

        return wrapper

    return decorate
