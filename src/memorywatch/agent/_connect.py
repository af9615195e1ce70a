"""How ``from_url`` reaches Redis: one node, the master a Sentinel group names now, or a
Cluster; always on the SDK's instrumented pool and without automatic command retries (a
retried state transition could run twice: the SDK reports the failure instead).

The URL forms are the exporter's (:mod:`memorywatch.redisurl`): ``redis://``, ``rediss://``,
``redis+sentinel://h1:26379,h2:26379/mastername`` and ``redis+cluster://seed:7000``, each
with a TLS twin. The URL's credentials are the data nodes'; Sentinel's own are given apart.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from redis.backoff import NoBackoff
from redis.exceptions import RedisClusterException, RedisError

from memorywatch import redisurl
from memorywatch.agent.errors import StateUnavailable
from memorywatch.agent.pool import ClusterNodePool, node_pools
from memorywatch.redisurl import Topology


@dataclass(frozen=True)
class Flavor:
    """The redis-py types of one driver: sync or asyncio."""

    client: type[Any]
    cluster: type[Any]
    pool: type[Any]
    sentinel_pool: type[Any]
    sentinel: type[Any]
    retry: type[Any]
    cluster_node_pool: bool
    """Whether the Cluster client takes a pool class per node (sync redis-py does; the
    asyncio Cluster client keeps its own connections per node)."""


@dataclass
class Connected:
    """The client ``from_url`` built, and what closing the state must end with it: each a
    callable (awaitable on the asyncio driver) that closes a pool or Sentinel's clients."""

    client: Any
    closers: list[Callable[[], Any]] = field(default_factory=list)


def connect(
    flavor: Flavor,
    url: str,
    pool_options: Mapping[str, Any],
    tls: Mapping[str, Any],
    sentinel_auth: Mapping[str, Any],
) -> Connected:
    """A client for ``url``. ``pool_options`` are ``_values.pool_options``'s (credentials
    given apart from the URL among them, and winning over the URL's); ``tls``, redis-py's
    ``ssl_*`` keywords, go to every node and sentinel of a TLS URL."""
    tls = {k: v for k, v in tls.items() if v is not None}
    retry = flavor.retry(NoBackoff(), 0)
    scheme = url.partition("://")[0].lower()
    if scheme in ("redis", "rediss", "unix"):  # one node: redis-py parses its own URLs
        extra = dict(tls) if scheme == "rediss" else {}
        pool = flavor.pool.from_url(url, retry=retry, **pool_options, **extra)
        return Connected(flavor.client(connection_pool=pool), [pool.disconnect])
    target, credentials = redisurl.parse_target(url)
    from_url = {
        "username": credentials.username,
        "password": credentials.password.value if credentials.password else None,
    }
    node = {**{k: v for k, v in from_url.items() if v is not None}, **pool_options}
    if target.tls:
        node.update(tls)
    if target.topology is Topology.SENTINEL:
        return _sentinel(flavor, target, node, retry, tls, sentinel_auth)
    return _cluster(flavor, target, node, retry)


def _sentinel(
    flavor: Flavor,
    target: redisurl.Target,
    node: dict[str, Any],
    retry: Any,
    tls: Mapping[str, Any],
    auth: Mapping[str, Any],
) -> Connected:
    timeouts: dict[str, Any] = {
        k: node[k] for k in ("socket_timeout", "socket_connect_timeout") if k in node
    }
    sentinel_kwargs: dict[str, Any] = {**timeouts, **{k: v for k, v in auth.items() if v}}
    if target.tls:
        sentinel_kwargs.update(ssl=True, **tls)
    sentinels = flavor.sentinel(list(target.hosts), sentinel_kwargs=sentinel_kwargs)
    assert target.master_name is not None  # parse_target requires it
    pool = flavor.sentinel_pool(
        service_name=target.master_name,
        sentinels=sentinels,
        ssl=target.tls,
        db=target.db,
        retry=retry,
        **node,
    )
    close_sentinels = getattr(sentinels, "aclose", None) or sentinels.close
    return Connected(flavor.client(connection_pool=pool), [pool.disconnect, close_sentinels])


def _cluster(
    flavor: Flavor, target: redisurl.Target, node: dict[str, Any], retry: Any
) -> Connected:
    ((host, port),) = target.hosts
    options = dict(node)
    pool_name, meter, timeout = (
        options.pop("pool_name"),
        options.pop("meter"),
        options.pop("timeout"),
    )
    if flavor.cluster_node_pool:
        # Sync redis-py uses a pool class per node only for a client built from a URL.
        scheme = "rediss" if target.tls else "redis"
        where: dict[str, Any] = {"url": f"{scheme}://{redisurl.format_addr(host, port)}"}
        options["connection_pool_class"] = functools.partial(
            ClusterNodePool, pool_name=pool_name, meter=meter, timeout=timeout
        )
    else:
        where = {"host": host, "port": port, "ssl": target.tls}
    # The cluster client's own retries re-send a command after a connection error: a
    # transition could run twice, so none (MOVED and ASK redirections are still followed).
    try:  # the sync client reads the slot map now: a failure is the state's, in one line
        client = flavor.cluster(retry=retry, **where, **options)
    except (RedisError, RedisClusterException, OSError) as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise StateUnavailable(
            f"from_url: {target.display}: Redis Cluster unreachable ({type(exc).__name__}: "
            f"{detail})"
        ) from exc
    closers: list[Callable[[], Any]] = []
    if flavor.cluster_node_pool:
        # redis-py leaves a pool passed to a node's client open when the client closes.
        closers.append(lambda: [pool.disconnect() for pool in node_pools(client)])
    return Connected(client, closers)
