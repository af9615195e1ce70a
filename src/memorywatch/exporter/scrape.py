"""The I/O of a scrape: one cached connection per node, one pipelined round trip.

A node's client has a pool of exactly one connection, so however many scrapes arrive, at
once or in a row, the exporter holds one Redis client per node. No retries: a failed
scrape is reported as `redis_up 0` and the next one connects again.
"""

from __future__ import annotations

import threading
import time as mod_time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from typing import Any, Final, Generic, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.client import NEVER_DECODE
from redis.cluster import RedisCluster
from redis.exceptions import AuthorizationError, NoPermissionError
from redis.retry import Retry

from memorywatch.exporter.caches import remember
from memorywatch.exporter.collectors.redis_info import Snapshot
from memorywatch.exporter.config import TLSOptions
from memorywatch.exporter.roundtrip import Command, round_trip
from memorywatch.redisurl import Credentials

CLIENT_NAME = "memorywatch-exporter"

REASONS = ("auth", "connection", "timeout", "permission", "response", "discovery", "forbidden")


def classify(exc: BaseException) -> str:
    """A bounded reason label for a failed scrape."""
    if isinstance(exc, redis.AuthenticationError | AuthorizationError):
        return "auth"
    if isinstance(exc, redis.TimeoutError | TimeoutError):
        return "timeout"
    if isinstance(exc, redis.ConnectionError | OSError):
        text = str(exc)
        if "WRONGPASS" in text or "NOAUTH" in text or "invalid password" in text:
            return "auth"
        return "connection"
    if isinstance(exc, NoPermissionError):
        return "permission"
    if isinstance(exc, redis.ResponseError):
        text = str(exc)
        if text.startswith("NOAUTH") or text.startswith("WRONGPASS"):
            return "auth"
        if text.startswith("NOPERM"):
            return "permission"
        return "response"
    return "response"


def describe(exc: BaseException) -> str:
    """One line about a failure, with no secret in it (redis-py messages carry none)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"


MAX_TARGETS = 256
"""Nodes (and /scrape targets) the exporter keeps a client and state for at once: past it,
the least recently scraped is closed and forgotten."""
TARGET_IDLE_SECONDS = 600.0
"""A node or target not scraped for this long is closed and forgotten at the next scrape of
any other: ten 60 s scrape intervals, so a Prometheus that moved on frees its memory."""

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Recent(Generic[K, V]):
    """A map bounded in size and in age: past ``limit`` entries the least recently used one
    goes, and an entry unused for ``idle`` seconds goes at the next lookup of any key.
    ``on_evict`` closes what an entry holds. Thread-safe."""

    def __init__(
        self,
        limit: int = MAX_TARGETS,
        idle: float = TARGET_IDLE_SECONDS,
        on_evict: Callable[[V], None] | None = None,
    ) -> None:
        self.limit = limit
        self.idle = idle
        self._on_evict = on_evict
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K, factory: Callable[[], V]) -> V:
        """The entry for ``key``, made by ``factory`` (under the lock) if there is none."""
        now = mod_time.monotonic()
        evicted: list[V] = []
        with self._lock:
            entry = self._entries.pop(key, None)
            value = factory() if entry is None else entry[1]
            self._entries[key] = (now, value)
            entries = self._entries
            while len(entries) > self.limit or next(iter(entries.values()))[0] < now - self.idle:
                evicted.append(entries.popitem(last=False)[1][1])
        if self._on_evict is not None:
            for old in evicted:
                self._on_evict(old)
        return value

    def peek(self, key: K) -> V | None:
        """The entry for ``key`` if there is one, without touching its age."""
        with self._lock:
            entry = self._entries.get(key)
        return None if entry is None else entry[1]

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            values = [value for _, value in self._entries.values()]
            self._entries.clear()
        if self._on_evict is not None:
            for value in values:
                self._on_evict(value)


class ClientCache:
    """One redis-py client per (host, port), each with a single-connection pool.

    Bounded: past ``max_clients`` nodes the least recently used client is closed, and a
    client not used for ``idle`` seconds is closed at the next lookup, so a multi-target
    exporter holds connections only for the nodes it is still asked to scrape. Concurrent
    scrapes of one node take turns on its connection (Redis runs one command at a time
    anyway), each waiting at most the scrape timeout.
    """

    def __init__(
        self,
        credentials: Credentials,
        tls: TLSOptions,
        timeout: float,
        max_clients: int = MAX_TARGETS,
        idle: float = TARGET_IDLE_SECONDS,
    ) -> None:
        self._credentials = credentials
        self._tls = tls
        self._timeout = timeout
        self._clients: Recent[tuple[str, int, bool, int, bool], redis.Redis] = Recent(
            max_clients, idle, lambda client: client.connection_pool.disconnect()
        )
        self._lock = threading.Lock()
        self._cluster: RedisCluster | None = None

    def __len__(self) -> int:
        return len(self._clients)

    def get(
        self, host: str, port: int, *, tls: bool, db: int = 0, authenticate: bool = True
    ) -> redis.Redis:
        return self._clients.get(
            (host, port, tls, db, authenticate),
            lambda: self._new_client(host, port, tls=tls, db=db, authenticate=authenticate),
        )

    def _new_client(
        self,
        host: str,
        port: int,
        *,
        tls: bool,
        db: int,
        authenticate: bool = True,
        connections: int = 1,
    ) -> redis.Redis:
        kwargs = {
            "host": host,
            "port": port,
            "db": db,
            **self._connection_kwargs(tls, authenticate),
        }
        connection_class = redis.SSLConnection if tls else redis.Connection
        pool = redis.BlockingConnectionPool(
            max_connections=connections,
            timeout=self._timeout,
            connection_class=connection_class,
            **kwargs,
        )
        client = redis.Redis(connection_pool=pool)
        client.set_response_callback("INFO", _raw)
        return client

    def _connection_kwargs(self, tls: bool, authenticate: bool = True) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "socket_timeout": self._timeout,
            "socket_connect_timeout": self._timeout,
            "client_name": CLIENT_NAME,
            "decode_responses": True,
            "retry": Retry(NoBackoff(), 0),
        }
        if authenticate:
            kwargs["username"] = self._credentials.username
            password = self._credentials.password
            kwargs["password"] = password.value if password is not None else None
        if tls:
            kwargs.update(
                ssl_ca_certs=str(self._tls.ca_cert) if self._tls.ca_cert else None,
                ssl_certfile=str(self._tls.cert) if self._tls.cert else None,
                ssl_keyfile=str(self._tls.key) if self._tls.key else None,
                ssl_cert_reqs="none" if self._tls.insecure_skip_verify else "required",
                ssl_check_hostname=not self._tls.insecure_skip_verify,
            )
        return kwargs

    def cluster(self, host: str, port: int, *, tls: bool) -> RedisCluster:
        """A cached cluster client from a seed node, for reads that follow hash slots."""
        with self._lock:
            if self._cluster is None:
                kwargs = self._connection_kwargs(tls)
                kwargs.pop("retry")  # RedisCluster takes its own retry object
                self._cluster = RedisCluster(host=host, port=port, ssl=tls, **kwargs)
            return self._cluster

    def uncached(self, host: str, port: int, *, tls: bool, db: int = 0) -> redis.Redis:
        """A client of its own, for background work that holds a connection (pub/sub, SCAN)."""
        return self._new_client(host, port, tls=tls, db=db, connections=2)

    def close(self) -> None:
        self._clients.clear()
        with self._lock:
            if self._cluster is not None:
                self._cluster.close()
                self._cluster = None


_SECTIONS: Final = {  # a key's first word -> the `Info` list its lines go to, its prefix
    "cmdstat": ("commandstats", "cmdstat_"),
    "errorstat": ("errorstats", "errorstat_"),
    "latency": ("latencystats", "latency_percentiles_usec_"),
}
_NESTED_PREFIXES = tuple(prefix for _, prefix in _SECTIONS.values())


def _nested(key: str) -> bool:
    if key.startswith(_NESTED_PREFIXES):
        return True
    # db0:keys=..,expires=..   slave0:ip=..,port=..  (but not slave_repl_offset:123)
    return (key.startswith("db") and key[2:].isdigit()) or (
        key.startswith("slave") and key[5:].isdigit()
    )


class Nested(dict[str, str]):
    """The ``a=1,b=2`` value of one INFO line, parsed; ``text`` is the value as Redis sent
    it. Shared between scrapes while the line does not change (``parse_info``'s cache), so
    it must not be modified; collectors key their caches of formatted samples on ``text``."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        super().__init__(pair.split("=", 1) for pair in text.split(",") if "=" in pair)
        self.text = text


PARSED_LIMIT: Final = 4096
"""Parsed nested values kept between scrapes (a Redis has ~250 commands, each a line of
commandstats and one of latencystats); past it the cache starts again empty."""
_PARSED: dict[str, Nested] = {}


class Info(dict[str, Any]):
    """``parse_info``'s result: every field, and, apart, the lines of the sections with one
    line per command or error (commandstats, latencystats, errorstats) in Redis's order, so
    that the collectors of those sections do not look at the other ~200 fields."""

    __slots__ = ("commandstats", "errorstats", "latencystats")

    def __init__(self) -> None:
        super().__init__()
        self.commandstats: list[tuple[str, Nested]] = []
        """(command, its ``cmdstat_`` line); as are the two below."""
        self.errorstats: list[tuple[str, Nested]] = []
        self.latencystats: list[tuple[str, Nested]] = []


def parse_info(text: str) -> Info:
    """INFO text to a dict of strings (``Nested`` dicts for `a=1,b=2` values).

    Values stay text and are converted only when a family needs them: redis-py's parser
    converts all ~400 fields up front, which costs more than the round trip. A nested value
    seen before (most commandstats lines of an idle command do not change between scrapes)
    is not parsed again: the same ``Nested`` comes back.
    """
    info = Info()
    parsed = _PARSED
    sections = {word: (getattr(info, name), len(p)) for word, (name, p) in _SECTIONS.items()}
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        key, _, value = line.partition(":")
        if "=" in value and _nested(key):
            found = parsed.get(value)
            if found is None:
                found = remember(parsed, PARSED_LIMIT, value, Nested(value))
            info[key] = found
            # cmdstat_get, errorstat_OOM, latency_percentiles_usec_get (not db0, slave0)
            section = sections.get(key.partition("_")[0])
            if section is not None:
                lines, skip = section
                lines.append((key[skip:], found))
        else:
            info[key] = value
    return info


def _raw(response: Any, **_options: Any) -> Any:
    return response


_HEALTH: Final[tuple[Command, ...]] = (
    (("INFO", "ALL"), {}),
    (("CONFIG GET", "maxclients", "maxmemory", "io-threads", "databases", "save"), {}),
    (("SLOWLOG LEN",), {}),
    # as redis-py's slowlog_get: the logged arguments may not be UTF-8
    (("SLOWLOG GET", 1), {NEVER_DECODE: []}),
)
_HEALTH_CLUSTER: Final = (*_HEALTH, (("CLUSTER INFO",), {}))


def _slowlog_last(entries: Any) -> tuple[int, float] | None:
    """(id, seconds) of the newest slow log entry; (0, 0) for an empty log, as redis_exporter."""
    if entries is None:
        return None
    if not entries or not isinstance(entries[0], Mapping):
        return (0, 0.0)
    return int(entries[0].get("id", 0)), float(entries[0].get("duration", 0)) / 1e6


def fetch_snapshot(
    client: redis.Redis,
    cluster: bool = False,
    extra: Callable[[], list[Command]] | None = None,
) -> tuple[Snapshot, list[Any] | None]:
    """INFO ALL, CONFIG GET, SLOWLOG (and CLUSTER INFO) in one pipelined round trip.

    Only INFO is required: a CONFIG renamed away, or an ACL user without SLOWLOG, costs
    those few families, not the scrape. `extra()` may add more commands to the same round
    trip; their replies are returned beside the snapshot (None if Redis is loading: it
    refuses those, so the health part is asked again alone).
    """
    commands = list(_HEALTH_CLUSTER if cluster else _HEALTH)
    own = len(commands)
    if extra is not None:
        commands.extend(extra())
    try:
        replies = round_trip(client, commands)
    except redis.BusyLoadingError:
        if extra is None:
            raise
        return fetch_snapshot(client, cluster)[0], None
    if isinstance(replies[0], Exception):
        raise replies[0]
    info = parse_info(replies[0])

    def ok(reply: Any) -> Any:
        return None if isinstance(reply, Exception) else reply

    config = ok(replies[1]) or {}
    slowlog_len = ok(replies[2])
    snapshot = Snapshot(
        info=info,
        config={str(k): str(v) for k, v in config.items()},
        slowlog_len=int(slowlog_len) if slowlog_len is not None else None,
        slowlog_last=_slowlog_last(ok(replies[3])),
        cluster_info=ok(replies[4]) if cluster else None,
    )
    return snapshot, replies[own:]
