"""What `memorywatch diagnose` reads, read-only: every node's INFO, CONFIG and SLOWLOG (the
exporter's own round trip), the primary's fleet state (the exporter's fleet read: indexes and
counters, and the oldest in-progress tool claims with whether their holder still beats), a summary
of CLIENT LIST, the primary's recent SLOWLOG entries (command names only), a bounded one-shot
sample of the keyspace, and the primary's INFO a second time at the end of a window, so that
what Redis counts (command time, errors) can be read as a rate. Nothing here keeps an id or an
argument: only counts, ages, durations and names that are labels anyway (tool and lock kinds,
command names, key classes)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import redis
from redis.cluster import RedisCluster

from memorywatch.exporter.collectors.fleet.read import FleetSnapshot, read_fleet
from memorywatch.exporter.config import ExporterConfig
from memorywatch.exporter.discovery import DiscoveryError, discover
from memorywatch.exporter.fleet_options import FleetOptions
from memorywatch.exporter.profiles import Classifier
from memorywatch.exporter.sampler import OneShot, sample_once
from memorywatch.exporter.scrape import ClientCache, describe, fetch_snapshot, parse_info
from memorywatch.redisurl import Topology, format_addr

SLOWLOG_READ = 128
"""Newest SLOWLOG entries read from the primary (Redis keeps 128 by default)."""


@dataclass(frozen=True)
class ReadOptions:
    """The budgets of one diagnosis's reads."""

    sample_keys: int = 2000
    """Keys the one-shot keyspace sample may walk: enough for each key class's share of the
    bytes to within a few percent."""
    sample_seconds: float = 0.5
    """Time the sample may take, round trips included; running out of it before the key
    budget makes the run incomplete (the sample is smaller than asked)."""
    window: float = 0.5
    """Seconds between the first and the second INFO of the primary (at least): command time
    and errors are read as their growth over it. The other reads happen inside it."""


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
class SlowEntry:
    """One SLOWLOG entry: the command's name (never its arguments), how long it ran, and how
    long ago it finished."""

    command: str
    seconds: float
    age: float


@dataclass(frozen=True)
class Window:
    """The primary's INFO read again at the end of the run, ``seconds`` after the first."""

    info: Mapping[str, Any]
    seconds: float


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
    clients: ClientSummary | None = None
    slow: tuple[SlowEntry, ...] | None = None
    """None: SLOWLOG GET was refused (an ACL, a renamed command)."""
    window: Window | None = None
    sample: OneShot | None = None
    sample_error: str | None = None
    cluster: bool = False
    errors: tuple[str, ...] = ()


def gather(
    config: ExporterConfig, options: FleetOptions, budget: ReadOptions | None = None
) -> Facts:
    """Read everything once; :class:`Unreachable` when no data node answers."""
    budget = budget or ReadOptions()
    started = time.monotonic()
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
            # diagnose names instances: each live one's figures, not the exporter's aggregates
            fleet = read_fleet(fleet_client, replace(options, instance_details=True))
        except (redis.RedisError, OSError, ValueError) as exc:
            fleet_error = describe(exc)
        primary_client = clients.get(*at, tls=target.tls)
        try:
            summary = _clients(primary_client)
        except (redis.RedisError, OSError) as exc:
            errors.append(f"CLIENT LIST: {describe(exc)}")
        slow = _slowlog(primary_client)
        sample, sample_error = None, None
        try:
            sample = (
                None
                if not budget.sample_keys
                else sample_once(
                    clients.get(*at, tls=target.tls, db=target.db),
                    Classifier(options.namespace, options.profiles),
                    budget.sample_keys,
                    budget.sample_seconds,
                )
            )
        except (redis.RedisError, OSError) as exc:
            sample_error = describe(exc)
        window = None
        time.sleep(max(0.0, budget.window - (time.monotonic() - started)))
        try:
            info = parse_info(primary_client.execute_command("INFO", "ALL"))
            window = Window(info, time.monotonic() - started)
        except (redis.RedisError, OSError) as exc:
            errors.append(f"INFO, read again after the window: {describe(exc)}")
        return Facts(
            primary=primary,
            nodes=(primary, *(n for n in nodes.values() if n is not primary)),
            unreachable=tuple(failed),
            fleet=fleet,
            fleet_error=fleet_error,
            clients=summary,
            slow=slow,
            window=window,
            sample=sample,
            sample_error=sample_error,
            cluster=cluster,
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


def _slowlog(client: redis.Redis) -> tuple[SlowEntry, ...] | None:
    """The newest SLOWLOG entries as (command name, seconds, age); None when refused."""
    pipe = client.pipeline(transaction=False)
    pipe.execute_command("TIME")
    pipe.execute_command("SLOWLOG", "GET", SLOWLOG_READ)
    try:
        now_reply, entries = pipe.execute(raise_on_error=False)
    except (redis.RedisError, OSError):
        return None
    if isinstance(now_reply, Exception) or isinstance(entries, Exception):
        return None
    now = float(now_reply[0]) + float(now_reply[1]) / 1e6
    slow = []
    for entry in entries or []:
        # [id, unix time, microseconds, [command, args...], client addr, client name]
        if not isinstance(entry, list | tuple) or len(entry) < 4 or not entry[3]:
            continue
        name = entry[3][0]
        command = (name.decode(errors="replace") if isinstance(name, bytes) else str(name)).lower()
        slow.append(SlowEntry(command, float(entry[2]) / 1e6, now - float(entry[1])))
    return tuple(slow)
