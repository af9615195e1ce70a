"""AgentState: externalized session memory, preferences, locks, idempotent tools, heartbeats."""

from __future__ import annotations

import concurrent.futures
import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from hashlib import sha1
from typing import Any, TypeVar

import redis
import redis.cluster
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisClusterException, RedisError
from redis.retry import Retry

from memorywatch import __version__, schema
from memorywatch.agent import _core, lock, tools
from memorywatch.agent.errors import (
    AgentStateError,
    SchemaMismatch,
    StateLoading,
    StateMiss,
    StateOutOfMemory,
    StateReadOnly,
    StateUnavailable,
    add_failure_note,
    redis_errors,
    translate,
)
from memorywatch.agent.pool import InstrumentedPool
from memorywatch.agent.telemetry import Telemetry

R = TypeVar("R")
AnyRedis = redis.Redis | redis.cluster.RedisCluster


def _is_cluster(client: object) -> bool:
    return isinstance(client, redis.cluster.RedisCluster)


class History:
    """The conversation history of one session (a Redis list of JSON messages)."""

    def __init__(self, state: AgentState, session_id: str, user_id: str | None = None) -> None:
        if not session_id:
            raise ValueError("a session id is required")
        self._state = state
        self.session_id = session_id
        self.user_id = user_id
        self._linked = False

    def append(self, role: str, text: str, **extra: Any) -> int:
        """Append one message; returns the history length. Refreshes the session TTL."""
        return self.extend([(role, text, extra)])

    def extend(self, messages: list[tuple[str, str, Mapping[str, Any]]]) -> int:
        """Append several ``(role, text, extra)`` messages in one round trip."""
        st = self._state
        sch = st.schema
        now = time.time()
        encoded = [_core.encode_message(r, t, now, e) for r, t, e in messages]
        ttl_ms = _core.ms(st.settings.session_ttl)
        if self.user_id is not None and not self._linked:
            st.link_session(self.user_id, self.session_id)
            self._linked = True
        with redis_errors("history.append"):
            n = st._run(
                "history_append",
                [sch.history(self.session_id), sch.sessions_index(self.session_id)],
                [self.session_id, ttl_ms, st.settings.max_messages, *encoded],
            )
        return int(n)

    def load(self) -> list[dict[str, Any]]:
        """All messages, oldest first. ``[]`` for a new session.

        Raises :class:`StateMiss` (counted as ``state_misses{kind="history"}``) when the
        session index lists the session as active but its history is gone: evicted under
        memory pressure or deleted. Pretending the session is new would make the agent answer
        a user with no memory of the conversation.
        """
        st = self._state
        sch = st.schema
        ttl_ms = _core.ms(st.settings.session_ttl)
        with redis_errors("history.load"):
            code, raw = st._run(
                "history_load",
                [sch.history(self.session_id), sch.sessions_index(self.session_id)],
                [self.session_id, ttl_ms],
            )
        if int(code) < 0:
            st._count_miss(schema.MISS_HISTORY, self.session_id)
            raise StateMiss(
                schema.MISS_HISTORY,
                "history.load: the session is in the index but its history is gone "
                "(evicted or deleted before its TTL)",
            )
        return _core.decode_messages(raw)

    def forget(self) -> None:
        """Delete the history and its index entry (a later load() sees a new session)."""
        self._state._forget_session(self.session_id)


class Preferences:
    """The preferences of one user (a Redis hash of JSON values with a TTL)."""

    def __init__(self, state: AgentState, user_id: str) -> None:
        if not user_id:
            raise ValueError("a user id is required")
        self._state = state
        self.user_id = user_id

    def set(self, name: str, value: Any) -> None:
        self.update({name: value})

    def update(self, values: Mapping[str, Any]) -> None:
        pairs: list[Any] = []
        for name, value in values.items():
            pairs += [name, _core.encode_value(value)]
        st = self._state
        with redis_errors("preferences.set"):
            st._run(
                "prefs_set",
                [st.schema.preferences(self.user_id)],
                [_core.ms(st.settings.preferences_ttl), *pairs],
            )

    def get(self, name: str, default: Any = None) -> Any:
        with redis_errors("preferences.get"):
            raw = self._state.client.hget(self._state.schema.preferences(self.user_id), name)
        return default if raw is None else _core.decode_value(raw)

    def all(self) -> dict[str, Any]:
        with redis_errors("preferences.all"):
            raw = self._state.client.hgetall(self._state.schema.preferences(self.user_id))
        return {_core.text(k): _core.decode_value(v) for k, v in raw.items()}


class AgentState:
    """The state of one agent instance, kept in Redis under ``namespace``.

    Pass any ``redis.Redis`` or ``redis.cluster.RedisCluster``; :meth:`from_url` builds a client
    with an instrumented blocking pool and without automatic command retries (a retried state
    transition could run twice; the SDK reports the failure instead).
    """

    def __init__(
        self,
        client: AnyRedis,
        *,
        namespace: str = schema.DEFAULT_NAMESPACE,
        instance_id: str | None = None,
        shards: int | None = None,
        settings: _core.Settings | None = None,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        telemetry: Telemetry | None = None,
        check_schema: bool = True,
    ) -> None:
        self.client = client
        if shards is None:
            shards = schema.default_shards(_is_cluster(client))
        self.schema = schema.Schema(namespace, shards)
        self.instance_id = instance_id or _core.default_instance_id()
        self.settings = settings or _core.Settings()
        self.telemetry = telemetry or Telemetry(tracer_provider, meter_provider)
        self._shas = {
            n: sha1(t.encode(), usedforsecurity=False).hexdigest()
            for n, t in _core.SCRIPT_TEXTS.items()
        }
        self._lock_keys: dict[str, lock.LockKeys] = {}
        self._schema_checked = False
        self._ready_flag = True
        self._heartbeat_thread: HeartbeatThread | None = None
        self._beat: AnyRedis | None = None
        self._owned_pool: redis.ConnectionPool | None = None  # built by from_url: close() ends it
        self._probe_pool = concurrent.futures.ThreadPoolExecutor(2, "mw-ready")
        if check_schema:
            with contextlib.suppress(StateUnavailable):  # Redis down at boot: ready() retries
                self.ensure_schema()

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
        """Build a client on an :class:`InstrumentedPool` (stable name ``memorywatch.{ns}``)."""
        telemetry = Telemetry(tracer_provider, meter_provider)
        pool = InstrumentedPool.from_url(
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
        client = redis.Redis(connection_pool=pool)
        try:
            state = cls(
                client, namespace=namespace, instance_id=instance_id, telemetry=telemetry, **kwargs
            )
        except BaseException:
            pool.disconnect()
            raise
        state._owned_pool = pool
        return state

    # -- plumbing ---------------------------------------------------------------------------------
    def _run(
        self,
        script: str,
        keys: list[str],
        args: list[Any],
        op: str | None = None,
        client: AnyRedis | None = None,
    ) -> Any:
        """EVALSHA (SCRIPT LOAD once on NOSCRIPT, e.g. after a restart); errors translated.

        Called directly rather than through redis-py's ``Script`` and a context manager: this
        is the hot path of every lock and tool transition."""
        sha = self._shas[script]
        op = op or script.replace("_", ".", 1)  # history_append -> history.append
        conn = client if client is not None else self.client
        try:
            try:
                return conn.execute_command("EVALSHA", sha, len(keys), *keys, *args)  # type: ignore[no-untyped-call]
            except NoScriptError:
                conn.script_load(_core.SCRIPT_TEXTS[script])
                return conn.execute_command("EVALSHA", sha, len(keys), *keys, *args)  # type: ignore[no-untyped-call]
        except RedisError as exc:
            raise translate(exc, op) from exc
        except RedisClusterException as exc:
            raise StateUnavailable(f"{op}: Redis Cluster error ({exc})") from exc

    def _count_miss(self, kind: str, subject: str) -> None:
        with redis_errors("count.state_miss"):
            self.client.hincrby(self.schema.stats(schema.STATE_MISSES, subject), kind, 1)

    def ensure_schema(self) -> None:
        """Write the schema version if absent; raise :class:`SchemaMismatch` if it differs."""
        key = self.schema.schema_key()
        with redis_errors("schema.check"):
            self.client.hsetnx(key, schema.SCHEMA_FIELD_VERSION, str(schema.SCHEMA_VERSION))
            self.client.hsetnx(key, schema.SCHEMA_FIELD_SHARDS, str(self.schema.shards))
            stored = self.client.hgetall(key)
        _check_schema(stored, self.schema)
        self._schema_checked = True

    def close(self) -> None:
        """Stop the heartbeat and close the connections the SDK opened.

        redis-py does not close a pool passed as ``connection_pool=`` when its client closes,
        so the pools built here (:meth:`from_url`, the heartbeat's side pool) are disconnected
        explicitly. A pool you passed in stays yours: your client is closed, your pool is not.
        """
        self.stop_heartbeat()
        self._probe_pool.shutdown(wait=False, cancel_futures=True)
        if isinstance(self._beat, redis.Redis) and self._beat is not self.client:
            self._beat.close()
            self._beat.connection_pool.disconnect()  # the side pool is always ours
        self.client.close()
        if self._owned_pool is not None:
            self._owned_pool.disconnect()

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
        with redis_errors("session.link"):
            self._run(
                "session_link",
                [self.schema.user_sessions(user_id)],
                [session_id, _core.ms(self.settings.session_ttl)],
            )

    def _forget_session(self, session_id: str) -> int:
        with redis_errors("session.forget"):
            return int(
                self._run(
                    "forget_session",
                    [self.schema.history(session_id), self.schema.sessions_index(session_id)],
                    [session_id],
                )
            )

    def forget_user(self, user_id: str) -> int:
        """Delete every key of the user: preferences, linked sessions' histories and index
        entries, and the link set (last, so an interrupted call can simply be repeated).
        Returns the number of keys and index entries removed."""
        usess = self.schema.user_sessions(user_id)
        with redis_errors("forget_user"):
            sessions = [_core.text(s) for s in self.client.smembers(usess)]
        removed = sum(self._forget_session(sid) for sid in sessions)
        with redis_errors("forget_user"):
            removed += int(self.client.delete(self.schema.preferences(user_id)))
            removed += int(self.client.delete(usess))
        return removed

    @contextlib.contextmanager
    def turn(self, session_id: str) -> Iterator[None]:
        """One user turn; its duration goes into the fleet ``turn_duration_seconds`` histogram
        (recorded also when the turn raises) and the session's last activity is touched."""
        started = time.monotonic()
        try:
            yield
        except BaseException as exc:
            try:
                self._record_turn(session_id, time.monotonic() - started)
            except Exception as err:  # never replace the caller's exception with ours
                add_failure_note(exc, "the turn could not be recorded", err)
            raise
        self._record_turn(session_id, time.monotonic() - started)

    def _record_turn(self, session_id: str, duration: float) -> None:
        le = schema.bucket_le(duration, schema.TURN_BUCKETS)
        with redis_errors("turn.record"):
            self._run(
                "turn_end",
                [
                    self.schema.sessions_index(session_id),
                    self.schema.stats(schema.TURN_DURATION, session_id),
                ],
                turn_args(session_id, le, duration),
                op="turn.record",
            )

    # -- locks and tools --------------------------------------------------------------------------
    def lock(
        self, name: str, ttl: float | None = None, wait: float = 10.0, renew: bool = False
    ) -> lock.Lease:
        """Acquire lock ``name`` now and return its lease (a context manager).

        ``ttl`` (default 30 s) is never none: a crashed holder frees the lock. ``wait`` bounds
        the jittered retries (then :class:`LockTimeout`); ``renew`` starts a watchdog that
        extends the lock every ttl/3 until release.
        """
        return lock.acquire(self, name, ttl or self.settings.lock_ttl, wait, renew)

    def run_tool(
        self,
        tool_name: str,
        idempotency_key: str,
        fn: Callable[..., R],
        *args: Any,
        tool_options: _core.ToolOptions | None = None,
        **kwargs: Any,
    ) -> R:
        """Run ``fn(ctx, *args, **kwargs)`` at most once per idempotency key.

        A replay returns the stored result (or raises the stored final error as
        :class:`ToolFailed`); a replay with other arguments raises :class:`FingerprintMismatch`;
        a concurrent call raises :class:`ToolInProgress` (or waits ``tool_options.wait``).
        Happy path: two round trips (claim, complete).
        """
        result: R = tools.run_tool(
            self, tool_name, idempotency_key, fn, args, kwargs, tool_options or _core.ToolOptions()
        )
        return result

    def idempotent_tool(
        self,
        name: str | None = None,
        *,
        key: Callable[..., str],
        options: _core.ToolOptions | None = None,
    ) -> Any:
        """Method form of :func:`memorywatch.agent.idempotent_tool`."""
        return tools.idempotent_tool(self, name, key=key, options=options)

    # -- health -----------------------------------------------------------------------------------
    def _probe(self) -> None:
        if not self._schema_checked:
            self.ensure_schema()
        with redis_errors("ready"):
            self._run("ready", [self.schema.probe(self.instance_id)], [5000])

    def ready(self, deadline: float = 1.0) -> _core.ReadyReport:
        """Is Redis reachable, writable (not read-only, not out of memory), not loading, and
        answering within ``deadline`` seconds? One scripted write proves all of it."""
        started = time.monotonic()
        future = self._probe_pool.submit(self._probe)
        try:
            future.result(timeout=deadline)
        except concurrent.futures.TimeoutError:
            report = _core.ReadyReport(
                False, False, False, False, None, deadline, f"no answer within {deadline}s"
            )
        except AgentStateError as exc:
            report = _report_for(exc, time.monotonic() - started, deadline)
        else:
            latency = time.monotonic() - started
            ok = latency <= deadline
            report = _core.ReadyReport(
                ok, True, True, False, latency, deadline, None if ok else "too slow"
            )
        self._ready_flag = report.ready
        return report

    def pool_stats(self) -> dict[str, int]:
        """In-use, max, pending and timeouts of the client pool (-1 when unknown)."""
        pool = getattr(self.client, "connection_pool", None)
        if isinstance(pool, InstrumentedPool):
            return {
                "pool_in_use": pool.in_use,
                "pool_max": int(pool.max_connections),
                "pool_pending": pool.pending_requests,
                "pool_timeouts": pool.timeouts,
            }
        max_conn = getattr(pool, "max_connections", None)
        return {
            "pool_in_use": -1,
            "pool_max": int(max_conn) if isinstance(max_conn, int) else -1,
            "pool_pending": -1,
            "pool_timeouts": -1,
        }

    def heartbeat(self, ready: bool | None = None) -> None:
        """Publish this instance's hash (ready flag, pool use, versions) with a short TTL."""
        flag = self._ready_flag if ready is None else ready
        fields: dict[str, Any] = {
            "ready": int(flag),
            **self.pool_stats(),
            "sdk_version": __version__,
            "schema_version": schema.SCHEMA_VERSION,
        }
        pairs: list[Any] = [x for kv in fields.items() for x in kv]
        with redis_errors("heartbeat"):
            self._run(
                "heartbeat",
                [
                    self.schema.heartbeat(self.instance_id),
                    self.schema.instances_index(self.instance_id),
                ],
                [self.instance_id, _core.ms(self.settings.heartbeat_ttl), *pairs],
                client=self._beat_client(),
            )

    def _beat_client(self) -> AnyRedis:
        """One connection beside the pool: the heartbeat that reports an exhausted pool must
        not wait for that pool (it would time out exactly when it matters)."""
        if self._beat is None:
            pool = getattr(self.client, "connection_pool", None)
            if isinstance(self.client, redis.Redis) and isinstance(pool, redis.ConnectionPool):
                side = redis.ConnectionPool(
                    connection_class=pool.connection_class,
                    max_connections=1,
                    **pool.connection_kwargs,
                )
                self._beat = redis.Redis(connection_pool=side)
            else:
                self._beat = self.client
        return self._beat

    def start_heartbeat(self, interval: float | None = None) -> HeartbeatThread:
        """Heartbeat every ``interval`` (default heartbeat TTL / 3) in a daemon thread."""
        if self._heartbeat_thread is None:
            self._heartbeat_thread = HeartbeatThread(
                self, interval or self.settings.heartbeat_ttl / 3
            )
            self._heartbeat_thread.start()
        return self._heartbeat_thread

    def stop_heartbeat(self) -> None:
        if self._heartbeat_thread is not None:
            self._heartbeat_thread.stop()
            self._heartbeat_thread = None


class HeartbeatThread(threading.Thread):
    """Calls ``ready()`` then ``heartbeat()`` periodically; errors are kept in ``last_error``."""

    def __init__(self, state: AgentState, interval: float) -> None:
        super().__init__(name="mw-heartbeat", daemon=True)
        self._state = state
        self._interval = interval
        self._stop_event = threading.Event()
        self.last_error: BaseException | None = None
        self.beats = 0

    def run(self) -> None:
        while True:
            try:
                self._state.ready()
                self._state.heartbeat()
                self.beats += 1
                self.last_error = None
            except AgentStateError as exc:
                self.last_error = exc
            if self._stop_event.wait(self._interval):
                return

    def stop(self) -> None:
        self._stop_event.set()
        if self is not threading.current_thread():
            self.join()


def turn_args(session_id: str, le: str, duration: float) -> list[Any]:
    """ARGV of ``turn_end.lua`` (shared with the asyncio client)."""
    return [session_id, schema.counter_field(schema.TURN_HISTOGRAM_NAME, le), f"{duration:.6f}"]


def _check_schema(stored: Mapping[Any, Any], sch: schema.Schema) -> None:
    data = {_core.text(k): _core.text(v) for k, v in stored.items()}
    version = data.get(schema.SCHEMA_FIELD_VERSION)
    shards = data.get(schema.SCHEMA_FIELD_SHARDS)
    if version != str(schema.SCHEMA_VERSION):
        raise SchemaMismatch(
            f"{sch.schema_key()} says version {version}, this SDK writes {schema.SCHEMA_VERSION}"
        )
    if shards != str(sch.shards):
        raise SchemaMismatch(
            f"{sch.schema_key()} says {shards} shards, this client is configured with {sch.shards}"
        )


def _report_for(exc: AgentStateError, latency: float, deadline: float) -> _core.ReadyReport:
    error = str(exc)
    if isinstance(exc, StateLoading):
        return _core.ReadyReport(False, True, False, True, latency, deadline, error)
    if isinstance(exc, StateUnavailable):
        return _core.ReadyReport(False, False, False, False, None, deadline, error)
    if isinstance(exc, StateReadOnly | StateOutOfMemory):
        return _core.ReadyReport(False, True, False, False, latency, deadline, error)
    return _core.ReadyReport(False, True, False, False, latency, deadline, error)
