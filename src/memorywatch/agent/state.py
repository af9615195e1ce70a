"""AgentState, the sync client: a thin driver over the SDK's sans-I/O operations.

The logic of every method lives once in ``_memory``, ``_locks``, ``_tools`` and ``_health``;
this module carries out their effects with blocking redis-py calls, ``time.sleep`` and
daemon threads (see ``_effects``). ``memorywatch.agent.aio`` is the same for asyncio.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, TypeVar

import redis
import redis.cluster
import redis.sentinel
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.observability import recorder as observability
from redis.retry import Retry

from memorywatch import schema
from memorywatch.agent import _connect, _health, _locks, _memory, _tools, _values
from memorywatch.agent import _effects as fx
from memorywatch.agent._client import StateBase
from memorywatch.agent._context import ensure_schema, prepared
from memorywatch.agent._direct import direct_pool, on_connection
from memorywatch.agent.errors import MOVED_OR_DOWN, StateUnavailable
from memorywatch.agent.pool import InstrumentedPool, InstrumentedSentinelPool, side_client
from memorywatch.agent.telemetry import Telemetry

T = TypeVar("T")
R = TypeVar("R")
AnyRedis = redis.Redis | redis.cluster.RedisCluster


class _Loop:
    """A spawned background loop: a daemon thread whose pauses end early on stop."""

    def __init__(self, loop: fx.Op[None], name: str, handlers: fx.Handlers) -> None:
        self._stop = threading.Event()
        own = {**handlers, fx.Pause: lambda effect: self._stop.wait(effect.seconds)}
        self._thread = threading.Thread(target=fx.drive, args=(loop, own), name=name, daemon=True)
        self._thread.start()

    def join(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join()


def _not_in_a_loop(effect: fx.Pause) -> bool:
    raise RuntimeError("Pause outside a background loop")


class History(_memory.HistoryBase):
    """The conversation history of one session (a Redis list of JSON messages)."""

    _state: AgentState

    def append(self, role: str, text: str, **extra: Any) -> int:
        """Append one message; returns the history length. Refreshes the session TTL."""
        return self._state._drive(_memory.extend(self._core, self, [(role, text, extra)]))

    def extend(self, messages: Iterable[_memory.Message]) -> int:
        """Append ``(role, text)`` or ``(role, text, extra)`` messages in one round trip."""
        return self._state._drive(_memory.extend(self._core, self, messages))

    def load(self) -> list[dict[str, Any]]:
        """All messages, oldest first; ``[]`` for a new session.

        Raises :class:`StateMiss` (counted as ``state_misses{kind="history"}``) when the
        session index lists the session as active but its history is gone: evicted or
        deleted. Pretending the session is new would make the agent answer with no memory.
        """
        return self._state._drive(_memory.load(self._core, self))

    def pop(self) -> dict[str, Any] | None:
        """Remove and return the newest message (``None`` when the session is new);
        :class:`StateMiss` when the history is lost, as :meth:`load`."""
        return self._state._drive(_memory.pop(self._core, self))

    def forget(self) -> int:
        """Delete the history and its index entry (a later load() sees a new session)."""
        return self._state._drive(_memory.forget_history(self._core, self))


class Preferences(_memory.PreferencesBase):
    """The preferences of one user (a Redis hash of JSON values with a TTL)."""

    _state: AgentState

    def set(self, name: str, value: Any) -> None:
        self._state._drive(_memory.update_preferences(self._core, self, {name: value}))

    def update(self, values: Mapping[str, Any]) -> None:
        """Set several preferences in one round trip (and refresh the TTL)."""
        self._state._drive(_memory.update_preferences(self._core, self, values))

    def get(self, name: str, default: Any = None) -> Any:
        return self._state._drive(_memory.get_preference(self._core, self, name, default))

    def all(self) -> dict[str, Any]:
        return self._state._drive(_memory.all_preferences(self._core, self))

    def delete(self, *names: str) -> int:
        """Delete the named preferences, or all of them with no name; returns how many."""
        return self._state._drive(_memory.delete_preferences(self._core, self, names))


class Lease(_locks.LeaseBase):
    """A held lock: a context manager, or call :meth:`release` yourself."""

    event_type = threading.Event
    _state: AgentState
    __slots__ = ()

    def extend(self, ttl: float | None = None) -> None:
        """Start a new lease now; raises :class:`LockLost` if the lock is no longer ours."""
        self._state._drive(_locks.extend(self.core, self, ttl))

    def start_renewal(self, interval: float | None = None) -> None:
        """Extend the lock every ``ttl / 3`` seconds in a daemon thread until release."""
        self._state._drive(_locks.start_renewal(self.core, self, interval))

    def release(self) -> None:
        """Release the lock; raises :class:`LockLost` (counted) if it was no longer ours."""
        self._state._drive(_locks.release(self.core, self))

    def __enter__(self) -> Lease:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._state._drive(_locks.release(self.core, self, exc))


class Turn(_health.TurnBase):
    _state: AgentState

    def __enter__(self) -> Turn:
        self.started = time.monotonic()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._state._drive(_health.end_turn(self, exc))


class AgentState(StateBase):
    """The state of one agent instance, kept in Redis under ``namespace``.

    Pass any ``redis.Redis`` or ``redis.cluster.RedisCluster``; :meth:`from_url` builds a client
    with an instrumented blocking pool and without automatic command retries (a retried state
    transition could run twice; the SDK reports the failure instead).
    """

    client_type = redis.Redis
    cluster_type = redis.cluster.RedisCluster
    flavor = _connect.Flavor(
        client=redis.Redis,
        cluster=redis.cluster.RedisCluster,
        pool=InstrumentedPool,
        sentinel_pool=InstrumentedSentinelPool,
        sentinel=redis.sentinel.Sentinel,
        retry=Retry,
        cluster_node_pool=True,
    )

    def __init__(
        self,
        client: AnyRedis,
        *,
        namespace: str = schema.DEFAULT_NAMESPACE,
        instance_id: str | None = None,
        shards: int | None = None,
        settings: _values.Settings | None = None,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        telemetry: Telemetry | None = None,
        check_schema: bool = True,
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
        self._side: AnyRedis | None = None
        self._direct = direct_pool(client)
        self._probe_pool = concurrent.futures.ThreadPoolExecutor(2, "mw-ready")
        self._handlers: fx.Handlers = {
            fx.Script: self._script,
            fx.LoadScript: self._load_script,
            fx.Command: self._command,
            fx.Sleep: lambda effect: time.sleep(effect.seconds),
            fx.Call: lambda effect: effect.fn(*effect.args, **effect.kwargs),
            fx.Spawn: lambda effect: _Loop(effect.loop, effect.name, self._handlers),
            fx.Join: lambda effect: effect.handle.join(),
            fx.Deadline: self._deadline,
            fx.Pause: _not_in_a_loop,
        }
        if check_schema:
            with contextlib.suppress(StateUnavailable):  # Redis down: the first op writes it
                self.ensure_schema()

    # -- the driver -------------------------------------------------------------------------------
    def _drive(self, op: fx.Op[T]) -> T:
        if not self._core.schema_checked:
            op = prepared(self._core, op)
        return fx.drive(op, self._handlers)

    def _script(self, effect: fx.Script) -> Any:
        if effect.replicas:
            return self._replicated(effect)
        sha = _values.SCRIPT_SHAS[effect.name]
        pool = self._direct
        if effect.side or pool is None or observability.is_enabled():
            client = self._side_client() if effect.side else self.client
            return client.execute_command(
                "EVALSHA", sha, len(effect.keys), *effect.keys, *effect.args
            )
        # The hot path of every lock and tool transition, straight on a pooled connection.
        return on_connection(pool, "EVALSHA", sha, len(effect.keys), *effect.keys, *effect.args)

    def _replicated(self, effect: fx.Script) -> fx.Replicated:
        """The script and ``WAIT`` in one pipeline on one connection (of the key's node)."""
        client: Any = self.client
        if self._direct is not None and not observability.is_enabled():
            return self._replicated_direct(self._direct, effect)
        cluster = isinstance(client, redis.cluster.RedisCluster)
        if cluster:
            client = client.get_redis_connection(client.get_node_from_key(effect.keys[0]))
        pipe = client.pipeline(transaction=False)
        sha = _values.SCRIPT_SHAS[effect.name]
        pipe.execute_command("EVALSHA", sha, len(effect.keys), *effect.keys, *effect.args)
        pipe.execute_command("WAIT", effect.replicas, effect.replica_timeout_ms)
        try:
            value, acked = pipe.execute(raise_on_error=False)
        except (RedisConnectionError, RedisTimeoutError):
            if cluster:
                self._refresh_slots()
            raise
        for reply in (value, acked):
            if isinstance(reply, Exception):
                if cluster and isinstance(reply, MOVED_OR_DOWN):
                    self._refresh_slots()
                raise reply
        return fx.Replicated(value, int(acked))

    @staticmethod
    def _replicated_direct(pool: redis.ConnectionPool, effect: fx.Script) -> fx.Replicated:
        """:meth:`_replicated` on a pooled connection: one packed write, two replies (half
        the client CPU of a redis-py pipeline, the same reason as ``_script``'s path)."""
        sha = _values.SCRIPT_SHAS[effect.name]
        evalsha = ("EVALSHA", sha, len(effect.keys), *effect.keys, *effect.args)
        conn = pool.get_connection()
        try:
            conn.send_packed_command(
                conn.pack_commands([evalsha, ("WAIT", effect.replicas, effect.replica_timeout_ms)])
            )
            try:
                value = conn.read_response()
            except ResponseError as exc:
                conn.read_response()  # WAIT's reply: the connection stays clean
                raise exc from None
            acked = conn.read_response()
        except ResponseError:
            raise
        except BaseException:
            conn.disconnect()  # a reply may be half read: never reuse this connection
            raise
        finally:
            pool.release(conn)
        return fx.Replicated(value, int(acked))

    def _refresh_slots(self) -> None:
        """After a failover seen outside redis-py's cluster client: re-read the slot map."""
        with contextlib.suppress(RedisError, RedisClusterException):
            self.client.nodes_manager.initialize()

    def _load_script(self, effect: fx.LoadScript) -> Any:
        client = self._side_client() if effect.side else self.client
        return client.script_load(_values.SCRIPT_TEXTS[effect.name])

    def _command(self, effect: fx.Command) -> Any:
        return self.client.execute_command(*effect.args)

    def _deadline(self, effect: fx.Deadline) -> Any:
        future = self._probe_pool.submit(fx.drive, effect.op, self._handlers)
        try:
            return future.result(timeout=effect.seconds)
        except concurrent.futures.TimeoutError:
            raise fx.DeadlineExceeded from None

    def _side_client(self) -> AnyRedis:
        """One connection beside the pool for the heartbeat (see ``_health.heartbeat``)."""
        if self._side is None:
            self._side = side_client(self.client, redis.Redis, redis.ConnectionPool)
        return self._side

    def ensure_schema(self) -> None:
        """Write the schema version if absent; raise :class:`SchemaMismatch` if it differs.
        (Every operation does it before its first command; this does it now.)"""
        fx.drive(ensure_schema(self._core), self._handlers)

    def close(self) -> None:
        """Stop the heartbeat and close the connections the SDK opened.

        redis-py does not close a pool passed as ``connection_pool=`` when its client closes,
        so the pools built here (:meth:`from_url`, the heartbeat's side pool) are disconnected
        explicitly. A pool you passed in stays yours: your client is closed, your pool is not.
        """
        self.stop_heartbeat()
        self._probe_pool.shutdown(wait=False, cancel_futures=True)
        if isinstance(self._side, redis.Redis) and self._side is not self.client:
            self._side.close()
            self._side.connection_pool.disconnect()
        self.client.close()
        for close in self._closers:
            close()

    def __enter__(self) -> AgentState:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- memory -----------------------------------------------------------------------------------
    def history(self, session_id: str, user_id: str | None = None) -> History:
        """The history of a session; pass ``user_id`` so :meth:`forget_user` finds it."""
        return History(self, session_id, user_id)

    def preferences(self, user_id: str) -> Preferences:
        return Preferences(self, user_id)

    def link_session(self, user_id: str, session_id: str) -> None:
        """Record that ``session_id`` belongs to ``user_id`` (History does it on first append)."""
        self._drive(_memory.link_session(self._core, user_id, session_id))

    def forget_user(self, user_id: str) -> int:
        """Delete every key of the user; returns the number of keys and entries removed."""
        return self._drive(_memory.forget_user(self._core, user_id))

    def turn(self, session_id: str) -> Turn:
        """``with state.turn(session_id):`` one user turn, timed into the fleet histogram."""
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
    ) -> Lease:
        """Acquire the lock of ``resource`` of this ``kind`` now; returns its lease.

        ``state.lock("charge", "order-42")``: the kind is what the fleet counts (the ``lock``
        label), the resource only names the lock. ``ttl`` (default 30 s) is never none: a
        crashed holder frees the lock. ``wait`` bounds the jittered retries (then
        :class:`LockTimeout`); ``renew`` extends the lock every ttl/3 until release.
        """
        new_lease = lambda *facts: Lease(self, *facts)  # noqa: E731
        lease = self._drive(_locks.acquire(self._core, new_lease, kind, resource, ttl, wait, renew))
        assert isinstance(lease, Lease)
        return lease

    def run_tool(
        self,
        tool_name: str,
        idempotency_key: str,
        fn: Callable[..., R],
        *args: Any,
        tool_options: _values.ToolOptions | None = None,
        **kwargs: Any,
    ) -> R:
        """Run ``fn(ctx, *args, **kwargs)`` at most once per idempotency key.

        A replay returns the stored result (or raises the stored final error as
        :class:`ToolFailed`); a replay with other arguments raises :class:`FingerprintMismatch`;
        a concurrent call of the same key waits up to ``tool_options.wait`` (default 5 s) for
        the first call's answer and returns it, raising :class:`ToolInProgress` only past that
        wait (``ToolOptions(wait=0)`` answers at once). Happy path: two round trips (claim,
        complete).
        """
        options = tool_options or _values.ToolOptions()
        result: R = self._drive(
            _tools.run_tool(self._core, tool_name, idempotency_key, fn, args, kwargs, options)
        )
        return result

    # -- health -----------------------------------------------------------------------------------
    def ready(self, deadline: float = 1.0) -> _values.ReadyReport:
        """Is Redis reachable, writable (not read-only, not out of memory), not loading, and
        answering within ``deadline`` seconds? ``bool(report)`` is the verdict."""
        return fx.drive(_health.ready(self._core, deadline), self._handlers)

    def heartbeat(self, ready: bool | None = None) -> None:
        """Publish this instance's hash (ready flag, pool use, versions) with a short TTL."""
        self._drive(_health.heartbeat(self._core, ready))

    def start_heartbeat(
        self, interval: float | None = None, ready_deadline: float = 1.0
    ) -> _health.Heartbeat:
        """``ready()`` then ``heartbeat()`` every ``interval`` (default heartbeat TTL / 3) in
        a daemon thread; the handle counts ``beats`` and keeps the ``last_error``."""
        return fx.drive(
            _health.start_heartbeat(self._core, interval, ready_deadline), self._handlers
        )

    def stop_heartbeat(self) -> None:
        fx.drive(_health.stop_heartbeat(self._core), self._handlers)
