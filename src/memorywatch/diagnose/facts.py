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

from memorywatch import schema
from memorywatch.exporter.collectors.fleet.read import FleetSnapshot, read_fleet
from memorywatch.exporter.config import ExporterConfig
from memorywatch.exporter.discovery import DiscoveryError, discover
from memorywatch.exporter.fleet_options import FleetOptions
from memorywatch.exporter.scrape import ClientCache, describe, fetch_snapshot
from memorywatch.redisurl import Topology, format_addr

CLAIMS_READ = 50
"""Oldest in-progress tool claims read per shard (ZRANGE), to find stuck ones."""


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
class Claim:
    """An in-progress tool claim: its tool (a label), age, and whether its holder beats."""

    tool: str
    age: float
    holder_alive: bool


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
        claims: tuple[Claim, ...] = ()
        summary = None
        fleet_client: redis.Redis | RedisCluster = (
            clients.cluster(*target.hosts[0], tls=target.tls)
            if cluster
            else clients.get(*at, tls=target.tls, db=target.db)
        )
        try:
            fleet = read_fleet(fleet_client, options)
            claims = _claims(fleet_client, fleet, options)
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
            claims=claims,
            clients=summary,
            errors=tuple(errors),
        )
    finally:
        clients.close()


def _claims(client: Any, fleet: FleetSnapshot, options: FleetOptions) -> tuple[Claim, ...]:
    """The oldest in-progress claims of each shard: tool label, age, holder's heartbeat."""
    if fleet.version != str(schema.SCHEMA_VERSION) or not fleet.tools_in_progress:
        return ()
    shards = int(fleet.schema_fields.get(schema.SCHEMA_FIELD_SHARDS, 1))
    layout = schema.Schema(options.namespace, shards)
    pipe = client.pipeline(transaction=False)
    for key in layout.tools_in_progress_keys():
        pipe.zrange(key, 0, CLAIMS_READ - 1, withscores=True)
    entries: list[tuple[str, float]] = [e for shard in pipe.execute() for e in shard]
    if not entries:
        return ()
    pipe = client.pipeline(transaction=False)
    for record, _ in entries:
        pipe.hmget(record, schema.TOOL_FIELD_LABEL, schema.TOOL_FIELD_INSTANCE)
    fields = pipe.execute(raise_on_error=False)
    holders = {
        f[1] for f in fields if isinstance(f, list) and f[1] is not None
    }  # instance ids: read to ask EXISTS, never kept
    pipe = client.pipeline(transaction=False)
    order = sorted(holders)
    for instance in order:
        pipe.exists(layout.heartbeat(instance))
    alive = dict(zip(order, pipe.execute(raise_on_error=False), strict=True))
    claims = []
    for (_, since_ms), reply in zip(entries, fields, strict=True):
        if not isinstance(reply, list):
            continue
        label, instance = reply
        beating = instance is not None and alive.get(instance) == 1
        claims.append(
            Claim(str(label or schema.OTHER), fleet.now_ms / 1000 - since_ms / 1000, beating)
        )
    return tuple(claims)


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
