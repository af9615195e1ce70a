"""What `memorywatch diagnose` reads, read-only and once: every node's INFO, CONFIG and SLOWLOG
(the exporter's own round trip), the primary's fleet state (the exporter's fleet read: indexes
and counters, never a SCAN), the oldest in-progress tool claims with whether their holder still
beats, and a summary of CLIENT LIST. Nothing here keeps an id: only counts, ages and names
that are labels anyway (tool and lock kinds)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis
from redis.cluster import RedisCluster

from memorywatch.exporter.collectors.fleet.read import FleetSnapshot, ToolClaim, read_fleet
from memorywatch.exporter.config import ExporterConfig
from memorywatch.exporter.discovery import DiscoveryError, discover
from memorywatch.exporter.fleet_options import FleetOptions
from memorywatch.exporter.scrape import ClientCache, describe, fetch_snapshot
from memorywatch.redisurl import Topology, format_addr

Claim = ToolClaim
"""An in-progress tool claim: its tool (a label), age, whether its holder beats, and the
seconds until a retry may reclaim it. The fleet read's own (`read.CLAIMS_READ` oldest per
shard), so diagnose asks Redis nothing more for them."""


class Unreachable(Exception):
    """No node of the target answered: nothing could be checked (exit 2)."""


@dataclass(frozen=True)
class Node:
    addr: str
    info: Mapping[str, Any]
    config: Mapping[str, str]
    """CONFIG GET values; empty when CONFIG is renamed away or forbidden."""
    slowlog_len: int | None = None
    slowlog_last_seconds: float | None = None
    """How long the newest SLOWLOG entry took (its arguments are never read)."""

    @property
    def role(self) -> str:
        return str(self.info.get("role", "?"))

    def number(self, key: str, default: float = 0.0) -> float:
        try:
            return float(self.info.get(key, default))
        except (TypeError, ValueError):
            return default


@dataclass(frozen=True)
class ClientSummary:
    connections: int
    idle_over_5m: int
    blocked: int


@dataclass(frozen=True)
class Facts:
    primary: Node
    nodes: tuple[Node, ...]
    """Every node that answered, the primary first."""
    unreachable: tuple[str, ...] = ()
    """`addr: error` of the nodes discovery named that did not answer."""
    fleet: FleetSnapshot | None = None
    fleet_error: str | None = None
    claims: tuple[Claim, ...] = ()
    clients: ClientSummary | None = None
    errors: tuple[str, ...] = ()


def gather(config: ExporterConfig, options: FleetOptions) -> Facts:
    """Read everything once; :class:`Unreachable` when no data node answers."""
    target = config.target
    clients = ClientCache(config.credentials, config.tls, config.scrape_timeout)
    try:
        try:
            addrs = discover(
                target, lambda h, p, auth: clients.get(h, p, tls=target.tls, authenticate=auth)
            )
        except DiscoveryError as exc:
            raise Unreachable(f"{target.display}: discovery failed: {exc}") from None
        nodes: dict[tuple[str, int], Node] = {}
        failed: list[str] = []
        cluster = target.topology is Topology.CLUSTER
        for host, port in addrs:
            addr = format_addr(host, port)
            client = clients.get(host, port, tls=target.tls, db=target.db)
            try:
                snap, _ = fetch_snapshot(client, cluster=cluster)
            except (redis.RedisError, OSError) as exc:
                failed.append(f"{addr}: {describe(exc)}")
                continue
            last = snap.slowlog_last[1] if snap.slowlog_last else None
            nodes[(host, port)] = Node(addr, snap.info, snap.config, snap.slowlog_len, last)
        if not nodes:
            raise Unreachable(f"{target.display}: " + "; ".join(failed))
        at = next((a for a, n in nodes.items() if n.role == "master"), next(iter(nodes)))
        primary = nodes[at]
        errors: list[str] = []
        fleet = fleet_error = None
        summary = None
        fleet_client: redis.Redis | RedisCluster = (
            clients.cluster(*target.hosts[0], tls=target.tls)
            if cluster
            else clients.get(*at, tls=target.tls, db=target.db)
        )
        try:
            fleet = read_fleet(fleet_client, options)
        except (redis.RedisError, OSError, ValueError) as exc:
            fleet_error = describe(exc)
        try:
            summary = _clients(clients.get(*at, tls=target.tls))
        except (redis.RedisError, OSError) as exc:
            errors.append(f"CLIENT LIST: {describe(exc)}")
        return Facts(
            primary=primary,
            nodes=(primary, *(n for n in nodes.values() if n is not primary)),
            unreachable=tuple(failed),
            fleet=fleet,
            fleet_error=fleet_error,
            claims=fleet.tool_claims if fleet is not None else (),
            clients=summary,
            errors=tuple(errors),
        )
    finally:
        clients.close()


def _clients(client: redis.Redis) -> ClientSummary:
    listing = client.execute_command("CLIENT", "LIST")
    lines = listing.splitlines() if isinstance(listing, str) else []
    idle = blocked = 0
    for line in lines:
        fields = dict(part.split("=", 1) for part in line.split(" ") if "=" in part)
        if int(fields.get("idle", "0") or 0) > 300:
            idle += 1
        if "b" in fields.get("flags", ""):
            blocked += 1
    return ClientSummary(len(lines), idle, blocked)
