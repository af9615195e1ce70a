"""Which nodes a target stands for: itself, a Sentinel master group, or every Cluster node."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis

from memorywatch.redisurl import Target, Topology

ClientFor = Callable[[str, int, bool], redis.Redis]
Node = tuple[str, int]


class DiscoveryError(Exception):
    """No seed or sentinel of the target answered."""


def discover(target: Target, client_for: ClientFor) -> list[tuple[str, int]]:
    """The (host, port) of every data node the target names, master first.

    `client_for(host, port, authenticate)` gives a client; sentinels are asked without the
    data nodes' credentials.
    """
    if target.topology is Topology.STANDALONE:
        return list(target.hosts)
    errors: list[str] = []
    for host, port in target.hosts:
        try:
            if target.topology is Topology.SENTINEL:
                assert target.master_name is not None
                return _sentinel_nodes(client_for(host, port, False), target.master_name)
            return _cluster_nodes(client_for(host, port, True), (host, port))
        except (redis.RedisError, OSError, ValueError) as exc:
            errors.append(f"{host}:{port}: {type(exc).__name__}: {' '.join(str(exc).split())}")
    raise DiscoveryError("; ".join(errors))


def _sentinel_nodes(sentinel: redis.Redis, master_name: str) -> list[tuple[str, int]]:
    addr = sentinel.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", master_name)
    if not addr:
        raise ValueError(f"sentinel does not know master group {master_name!r}")
    nodes = [(str(addr[0]), int(addr[1]))]
    replicas: Any = sentinel.execute_command("SENTINEL", "REPLICAS", master_name)
    for replica in replicas or []:
        fields = _pairs(replica)
        if "ip" in fields and "port" in fields:
            nodes.append((fields["ip"], int(fields["port"])))
    return nodes


def _pairs(reply: Any) -> dict[str, str]:
    if isinstance(reply, dict):
        return {str(k): str(v) for k, v in reply.items()}
    items = list(reply)
    return {str(items[i]): str(items[i + 1]) for i in range(0, len(items) - 1, 2)}


def _cluster_roles(seed: redis.Redis, seed_addr: tuple[str, int]) -> tuple[list[Node], list[Node]]:
    """(primaries, replicas) from CLUSTER NODES, each sorted; a primary flagged failing is
    not a primary any more (its replica is about to take over)."""
    text = seed.execute_command("CLUSTER", "NODES")
    if isinstance(text, dict):  # a redis-py callback parsed it already
        lines = [f"{v.get('node_id', '')} {addr} {v.get('flags', '')}" for addr, v in text.items()]
    else:
        lines = str(text).splitlines()
    masters: list[Node] = []
    replicas: list[Node] = []
    for line in lines:
        parts = line.split()
        if len(parts) < 3:
            continue
        addr, flags = parts[1].split("@")[0], parts[2].split(",")
        if "noaddr" in flags or "handshake" in flags:
            continue
        host, _, port = addr.rpartition(":")
        node = (host or seed_addr[0], int(port))
        if "master" in flags and "fail" not in flags:
            masters.append(node)
        else:
            replicas.append(node)
    if not masters and not replicas:
        raise ValueError("CLUSTER NODES listed no node")
    return sorted(masters), sorted(replicas)


def _cluster_nodes(seed: redis.Redis, seed_addr: tuple[str, int]) -> list[Node]:
    masters, replicas = _cluster_roles(seed, seed_addr)
    return masters + replicas


def cluster_primaries(target: Target, client_for: ClientFor) -> list[Node]:
    """The primaries of a Cluster target, asked of the first seed that answers."""
    errors: list[str] = []
    for host, port in target.hosts:
        try:
            return _cluster_roles(client_for(host, port, True), (host, port))[0]
        except (redis.RedisError, OSError, ValueError) as exc:
            errors.append(f"{host}:{port}: {type(exc).__name__}: {' '.join(str(exc).split())}")
    raise DiscoveryError("; ".join(errors))
