"""Connection pools that publish exhaustion, which redis-py's own pool metrics do not see.

redis-py's ``BlockingConnectionPool`` raises ``ConnectionError("No connection available.")``
after its timeout and the non-blocking pool raises ``MaxConnectionsError``; neither produces a
metric, and redis-py names its pools with a random suffix. These subclasses count every
exhaustion under ``db.client.connection.timeouts`` with a stable pool name, publish
``db.client.connection.max`` and ``db.client.connection.pending_requests``, and hand their
numbers to the instance heartbeat.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import redis
import redis.asyncio
from opentelemetry.metrics import Meter

from memorywatch import schema
from memorywatch.agent import attributes as attr
from memorywatch.agent.telemetry import PoolInstruments, pool_instruments


def is_exhaustion(exc: BaseException) -> bool:
    return isinstance(exc, redis.exceptions.MaxConnectionsError) or (
        isinstance(exc, redis.exceptions.ConnectionError) and "No connection available" in str(exc)
    )


class _Accounting:
    """Exhaustion accounting shared by the sync and async pools.

    The happy path costs one ``time.monotonic()``: pending requests are read from the waiters
    of the pool's own condition, so nothing is counted per checkout.
    """

    pool_name: str
    _instruments: PoolInstruments | None

    def _init_accounting(self, pool_name: str, meter: Meter | None) -> None:
        self.pool_name = pool_name
        self._timeouts = 0
        self._acct_lock = threading.Lock()
        self._attrs = {
            attr.DB_CLIENT_CONNECTION_POOL_NAME: pool_name,
            attr.DB_SYSTEM_NAME: attr.DB_SYSTEM_REDIS,
        }
        self._instruments = pool_instruments(meter) if meter is not None else None
        if self._instruments is not None:
            self._instruments.register(self)  # type: ignore[arg-type]

    @property
    def timeouts(self) -> int:
        """Exhaustions since start (every failed wait for a connection)."""
        return self._timeouts

    def _failed(self, started: float, exc: BaseException) -> None:
        if not is_exhaustion(exc):
            return
        with self._acct_lock:
            self._timeouts += 1
        if self._instruments is not None:
            self._instruments.timeouts.add(1, self._attrs)
            self._instruments.failed_wait.record(
                time.monotonic() - started, {**self._attrs, attr.ERROR_TYPE: "timeout"}
            )


def pool_numbers(client: Any) -> dict[str, int]:
    """In-use, max, pending and timeouts of a client's pool, for the heartbeat (-1: unknown,
    a pool that is not instrumented)."""
    pool = getattr(client, "connection_pool", None)
    if isinstance(pool, _Accounting):
        return {
            schema.HEARTBEAT_POOL_IN_USE: pool.in_use,  # type: ignore[attr-defined]
            schema.HEARTBEAT_POOL_MAX: int(pool.max_connections),  # type: ignore[attr-defined]
            schema.HEARTBEAT_POOL_PENDING: pool.pending_requests,  # type: ignore[attr-defined]
            schema.HEARTBEAT_POOL_TIMEOUTS: pool.timeouts,
        }
    max_conn = getattr(pool, "max_connections", None)
    return {
        schema.HEARTBEAT_POOL_IN_USE: -1,
        schema.HEARTBEAT_POOL_MAX: max_conn if isinstance(max_conn, int) else -1,
        schema.HEARTBEAT_POOL_PENDING: -1,
        schema.HEARTBEAT_POOL_TIMEOUTS: -1,
    }


def side_client(client: Any, client_type: type[Any], pool_type: type[Any]) -> Any:
    """A client of one connection beside ``client``'s pool, to the same server with the same
    credentials, for the heartbeat: the report of an exhausted pool must not wait for that
    pool. A client it cannot copy (Cluster, a single connection) is returned as it is."""
    pool = getattr(client, "connection_pool", None)
    if isinstance(client, client_type) and isinstance(pool, pool_type):
        side = pool_type(
            connection_class=pool.connection_class,
            max_connections=1,
            **pool.connection_kwargs,
        )
        return client_type(connection_pool=side)
    return client


class InstrumentedPool(_Accounting, redis.BlockingConnectionPool):
    """A ``BlockingConnectionPool`` that counts exhaustion (see module doc)."""

    def __init__(
        self, *, pool_name: str = "memorywatch", meter: Meter | None = None, **kwargs: Any
    ) -> None:
        self._init_accounting(pool_name, meter)
        super().__init__(**kwargs)  # type: ignore[no-untyped-call]

    @property
    def in_use(self) -> int:
        """Connections checked out right now (slots missing from the free queue)."""
        free: int = self.pool.qsize()
        return max(0, int(self.max_connections) - free)

    @property
    def pending_requests(self) -> int:
        """Threads blocked waiting for a connection (waiters of the queue's condition)."""
        return len(getattr(self.pool.not_empty, "_waiters", ()))

    def get_connection(self, command_name: Any = None, *keys: Any, **options: Any) -> Any:
        started = time.monotonic()
        try:
            return super().get_connection()  # type: ignore[no-untyped-call]
        except BaseException as exc:
            self._failed(started, exc)
            raise


class AsyncInstrumentedPool(_Accounting, redis.asyncio.BlockingConnectionPool):
    """The asyncio twin of :class:`InstrumentedPool`."""

    def __init__(
        self, *, pool_name: str = "memorywatch", meter: Meter | None = None, **kwargs: Any
    ) -> None:
        self._init_accounting(pool_name, meter)
        super().__init__(**kwargs)

    @property
    def in_use(self) -> int:
        return len(self._in_use_connections)

    @property
    def pending_requests(self) -> int:
        """Tasks waiting for a connection (waiters of the pool's condition)."""
        return len(getattr(self._condition, "_waiters", ()))

    async def get_connection(self, command_name: Any = None, *keys: Any, **options: Any) -> Any:
        started = time.monotonic()
        try:
            return await super().get_connection()  # type: ignore[no-untyped-call]
        except BaseException as exc:
            self._failed(started, exc)
            raise
