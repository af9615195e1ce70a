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
import weakref
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.sentinel
import redis.cluster
import redis.sentinel
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


def node_pools(client: Any) -> list[Any]:
    """The pools a client sends through: its own, or one per node of a sync Cluster client."""
    pool = getattr(client, "connection_pool", None)
    if pool is not None:
        return [pool]
    if isinstance(client, redis.cluster.RedisCluster):
        return [
            node.redis_connection.connection_pool
            for node in client.get_nodes()
            if node.redis_connection is not None
        ]
    return []


def pool_numbers(client: Any) -> dict[str, int]:
    """In-use, max, pending and timeouts of a client's pool, for the heartbeat (-1: unknown,
    a pool that is not instrumented). On a Cluster client, one pool per node: the numbers of
    the busiest node (the one an exhausted instance waits for; a sum would hide it behind
    the idle ones), and the timeouts of all."""
    pools = node_pools(client)
    if pools and all(isinstance(pool, _Accounting) for pool in pools):
        busiest = max(pools, key=lambda p: (p.in_use / max(1, int(p.max_connections)), p.in_use))
        return {
            schema.HEARTBEAT_POOL_IN_USE: busiest.in_use,
            schema.HEARTBEAT_POOL_MAX: int(busiest.max_connections),
            schema.HEARTBEAT_POOL_PENDING: sum(p.pending_requests for p in pools),
            schema.HEARTBEAT_POOL_TIMEOUTS: sum(p.timeouts for p in pools),
        }
    if isinstance(client, redis.asyncio.RedisCluster):
        return _async_cluster_numbers(client)
    pool = pools[0] if pools else None
    max_conn = getattr(pool, "max_connections", None)
    return {
        schema.HEARTBEAT_POOL_IN_USE: -1,
        schema.HEARTBEAT_POOL_MAX: max_conn if isinstance(max_conn, int) else -1,
        schema.HEARTBEAT_POOL_PENDING: -1,
        schema.HEARTBEAT_POOL_TIMEOUTS: -1,
    }


POOL_FIELDS = (
    schema.HEARTBEAT_POOL_IN_USE,
    schema.HEARTBEAT_POOL_MAX,
    schema.HEARTBEAT_POOL_PENDING,
    schema.HEARTBEAT_POOL_TIMEOUTS,
)


def _async_cluster_numbers(client: redis.asyncio.RedisCluster) -> dict[str, int]:
    """The asyncio Cluster client keeps its own connections per node, no pool object: the
    busiest node's in-use and max. It never queues a request (it raises at once when a node
    is at its max), so pending is 0; those exhaustions are not counted (-1)."""
    nodes = client.get_nodes()
    if not nodes:
        return dict.fromkeys(POOL_FIELDS, -1)
    in_use = {node: len(node._connections) - len(node._free) for node in nodes}
    busiest = max(nodes, key=lambda n: (in_use[n] / max(1, n.max_connections), in_use[n]))
    return {
        schema.HEARTBEAT_POOL_IN_USE: in_use[busiest],
        schema.HEARTBEAT_POOL_MAX: busiest.max_connections,
        schema.HEARTBEAT_POOL_PENDING: 0,
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


class SentinelMaster:
    """What redis-py's ``SentinelManagedConnection`` asks of its pool: the master's address,
    from Sentinel, on every (re)connect. When the address changes, the pool's idle
    connections are closed so they reconnect to the new master; a connection in use finds
    out by itself (refused, or ``READONLY`` from a demoted master, which redis-py turns into a
    disconnect). redis-py's own Sentinel pool cannot block for a free connection: this lets
    the instrumented blocking pool follow a failover."""

    is_master = True
    check_connection = False

    def __init__(self, pool: Any, service_name: str, sentinels: redis.sentinel.Sentinel) -> None:
        self._pool = weakref.ref(pool)
        self.service_name = service_name
        self.sentinels = sentinels
        self.master_address: tuple[str, int] | None = None

    def get_master_address(self) -> tuple[str, int]:
        address: tuple[str, int] = self.sentinels.discover_master(self.service_name)
        if address != self.master_address:
            self.master_address = address
            pool = self._pool()
            if pool is not None:
                pool.disconnect(inuse_connections=False)
        return address


class AsyncSentinelMaster(SentinelMaster):
    """The asyncio twin of :class:`SentinelMaster`."""

    sentinels: redis.asyncio.sentinel.Sentinel  # type: ignore[assignment]

    async def get_master_address(self) -> tuple[str, int]:  # type: ignore[override]
        address: tuple[str, int] = await self.sentinels.discover_master(self.service_name)
        if address != self.master_address:
            self.master_address = address
            pool = self._pool()
            if pool is not None:
                await pool.disconnect(inuse_connections=False)
        return address


class InstrumentedSentinelPool(InstrumentedPool):
    """An :class:`InstrumentedPool` whose connections go to the master Sentinel names now."""

    def __init__(
        self,
        *,
        service_name: str,
        sentinels: redis.sentinel.Sentinel,
        ssl: bool = False,
        **kwargs: Any,
    ) -> None:
        kwargs["connection_class"] = (
            redis.sentinel.SentinelManagedSSLConnection
            if ssl
            else redis.sentinel.SentinelManagedConnection
        )
        super().__init__(**kwargs)
        self.master = SentinelMaster(self, service_name, sentinels)
        self.connection_kwargs["connection_pool"] = self.master


class AsyncInstrumentedSentinelPool(AsyncInstrumentedPool):
    """The asyncio twin of :class:`InstrumentedSentinelPool`."""

    def __init__(
        self,
        *,
        service_name: str,
        sentinels: redis.asyncio.sentinel.Sentinel,
        ssl: bool = False,
        **kwargs: Any,
    ) -> None:
        kwargs["connection_class"] = (
            redis.asyncio.sentinel.SentinelManagedSSLConnection
            if ssl
            else redis.asyncio.sentinel.SentinelManagedConnection
        )
        super().__init__(**kwargs)
        self.master = AsyncSentinelMaster(self, service_name, sentinels)  # type: ignore[arg-type]
        self.connection_kwargs["connection_pool"] = self.master


class ClusterNodePool(InstrumentedPool):
    """The instrumented pool of one Cluster node (sync ``RedisCluster`` builds one per node),
    named ``{pool_name}@{host}:{port}``: a label value per node, bounded by the cluster."""

    def __init__(self, *, pool_name: str = "memorywatch", **kwargs: Any) -> None:
        node = f"{kwargs.get('host', '')}:{kwargs.get('port', '')}"
        super().__init__(pool_name=f"{pool_name}@{node}", **kwargs)
