"""The scrape-time collector for one target: discover its nodes, fetch each, build families.

Stateless per scrape, as prometheus_client's collectors are (but it builds our text-ready
`Families`, not `Metric` objects: see exposition.py); the only state it touches is
the process-wide `ScrapeHealth` (error counters and the last state of each node, so a
failure is logged once when it starts and once when it ends, not on every scrape).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Executor, Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

import redis

from memorywatch import names
from memorywatch.exporter.collectors.fleet import Fleet, FleetSnapshot
from memorywatch.exporter.collectors.redis_info import Snapshot, add_node_families
from memorywatch.exporter.discovery import DiscoveryError, discover
from memorywatch.exporter.exposition import Families
from memorywatch.exporter.scrape import (
    MAX_TARGETS,
    REASONS,
    TARGET_IDLE_SECONDS,
    ClientCache,
    Recent,
    classify,
    describe,
    fetch_snapshot,
)
from memorywatch.redisurl import Target, Topology, format_addr

log = logging.getLogger("memorywatch.exporter")

FleetResult = FleetSnapshot | Exception | None
T = TypeVar("T")


def _inline(call: Callable[..., T], *args: Any) -> Future[T]:
    """``call(*args)`` run now, as a finished future."""
    future: Future[T] = Future()
    try:
        future.set_result(call(*args))
    except Exception as exc:
        future.set_exception(exc)
    return future


class _TargetHealth:
    __slots__ = ("errors", "state")

    def __init__(self) -> None:
        self.errors: Counter[str] = Counter()
        self.state: dict[str, str] = {}


class ScrapeHealth:
    """Error counters per target and the last known state of each of its nodes.

    Bounded as the clients are (``Recent``): a /scrape target not scraped for a while is
    forgotten, and its counters start again from zero if it comes back (a counter reset,
    which ``rate()`` handles). The configured target is never forgotten.
    """

    def __init__(
        self, pinned: str = "", limit: int = MAX_TARGETS, idle: float = TARGET_IDLE_SECONDS
    ) -> None:
        self._pinned = _TargetHealth()
        self._pinned_name = pinned
        self._targets: Recent[str, _TargetHealth] = Recent(limit, idle)
        self._lock = threading.Lock()

    def _of(self, target: str) -> _TargetHealth:
        if target == self._pinned_name:
            return self._pinned
        return self._targets.get(target, _TargetHealth)

    def __len__(self) -> int:
        return len(self._targets)

    def record(self, target: str, node: str, reason: str | None, detail: str = "") -> None:
        health = self._of(target)
        with self._lock:
            if reason is not None:
                health.errors[reason] += 1
            previous = health.state.get(node)
            current = reason or "up"
            health.state[node] = current
        if previous == current:
            return
        if reason is None:
            if previous is not None:
                log.info("redis %s is reachable again", node)
        else:
            log.error("redis %s scrape failed (%s): %s", node, reason, detail)

    def errors(self, target: str) -> dict[str, int]:
        health = self._of(target)
        with self._lock:
            return {reason: health.errors[reason] for reason in REASONS}


class TargetCollector:
    """Collects one target (a node, a Sentinel group or a Cluster) at scrape time."""

    def __init__(
        self,
        target: Target,
        clients: ClientCache,
        executor: Executor,
        health: ScrapeHealth,
        timeout: float,
        fleet: Fleet | None = None,
        node_allowed: Callable[[str, int], bool] | None = None,
    ) -> None:
        self._target = target
        # For /scrape targets: the nodes a Sentinel or a Cluster seed names must pass the
        # allow-list too, or a seed could send the exporter (and its password) anywhere.
        self._node_allowed = node_allowed
        # Fleet state is read from the primary (the node, or Sentinel's master), on the same
        # connection as its health; a Cluster's shards are read through a cluster client.
        self._fleet = fleet
        self._clients = clients
        self._executor = executor
        self._health = health
        self._timeout = timeout

    def _fetch(self, host: str, port: int, primary: bool) -> tuple[Snapshot, FleetResult]:
        client = self._clients.get(host, port, tls=self._target.tls, db=self._target.db)
        cluster = self._target.topology is Topology.CLUSTER
        reading = (
            self._fleet.begin() if self._fleet is not None and primary and not cluster else None
        )
        extra = reading.first.commands if reading is not None else None
        snapshot, first = fetch_snapshot(client, cluster=cluster, extra=extra)
        fleet: FleetResult = None
        if reading is not None and first is None:
            fleet = redis.BusyLoadingError("Redis is loading its dataset")
        elif reading is not None and first is not None:
            try:
                reading.first.decode(first)
                fleet = reading.finish(client, first_done=True)
            except Exception as exc:  # the node answered; only its fleet view failed
                fleet = exc
        return snapshot, fleet

    def families(self) -> Families:
        started = time.monotonic()
        deadline = started + self._timeout
        display = self._target.display
        families = Families()
        families.declare(names.REDIS_UP, "1 if the node answered this scrape.", "gauge")
        try:
            nodes = self._nodes()
        except (DiscoveryError, FutureTimeout) as exc:
            detail = describe(exc) if str(exc) else "discovery timed out"
            self._health.record(display, display, "discovery", detail)
            families.gauge(names.REDIS_UP, "", 0)
            nodes = []
        if self._node_allowed is not None:
            refused = [n for n in nodes if not self._node_allowed(*n)]
            for host, port in refused:
                addr = format_addr(host, port)
                self._health.record(
                    display, f"{display} node {addr}", "forbidden", "not in --allow-target"
                )
            nodes = [n for n in nodes if n not in refused]
        labelled = self._target.topology is not Topology.STANDALONE
        futures: list[tuple[tuple[str, int], Future[tuple[Snapshot, FleetResult]]]]
        if len(nodes) == 1 and (
            self._fleet is None or self._target.topology is Topology.STANDALONE
        ):
            # One node: fetched in this (the request's) thread, bounded by the socket
            # timeouts, so a hung node holds its own request and no shared worker; the
            # fleet read rides on the same connection. No hand-off to a worker thread and
            # back: at one scrape a second its wake-ups cost more than the fetch's I/O.
            futures = [(nodes[0], _inline(self._fetch, *nodes[0], True))]
        else:
            futures = [
                ((host, port), self._executor.submit(self._fetch, host, port, index == 0))
                for index, (host, port) in enumerate(nodes)
            ]
        fleet: FleetResult = None
        cluster_fleet = None
        if self._fleet is not None and self._target.topology is Topology.CLUSTER:
            cluster_fleet = self._executor.submit(self._read_cluster_fleet)
        for (host, port), future in futures:
            addr = format_addr(host, port)
            view = families.with_labels({names.LABEL_NODE: addr}) if labelled else families
            node = f"{display} node {addr}" if labelled else display
            try:
                snapshot, node_fleet = future.result(timeout=max(deadline - time.monotonic(), 0.0))
            except FutureTimeout:
                self._health.record(display, node, "timeout", f"no reply within {self._timeout:g}s")
                view.gauge(names.REDIS_UP, "", 0)
                continue
            except Exception as exc:  # every failure is a metric, never a failed scrape
                self._health.record(display, node, classify(exc), describe(exc))
                view.gauge(names.REDIS_UP, "", 0)
                continue
            self._health.record(display, node, None)
            view.gauge(names.REDIS_UP, "", 1)
            add_node_families(snapshot, view)
            fleet = node_fleet or fleet

        if cluster_fleet is not None:
            try:
                fleet = cluster_fleet.result(timeout=max(deadline - time.monotonic(), 0.0))
            except FutureTimeout:
                fleet = TimeoutError(f"no reply within {self._timeout:g}s")
        if self._fleet is not None:
            # Logged once when the fleet read starts failing and once when it recovers.
            what = f"{display} (fleet metrics)"
            if isinstance(fleet, Exception):
                self._health.record(display, what, classify(fleet), describe(fleet))
            elif isinstance(fleet, FleetSnapshot):
                self._health.record(display, what, None)
            self._fleet.add(fleet if isinstance(fleet, FleetSnapshot) else None, families)

        families.gauge(
            names.SCRAPE_DURATION,
            "Seconds this scrape of the target took.",
            time.monotonic() - started,
        )
        for reason, count in self._health.errors(display).items():
            families.counter(
                names.SCRAPE_ERRORS,
                "Failed node scrapes of this target since the exporter started, by reason.",
                count,
                {names.LABEL_REASON: reason},
            )
        return families

    def _read_cluster_fleet(self) -> FleetResult:
        assert self._fleet is not None
        host, port = self._target.hosts[0]
        try:
            return self._fleet.read(self._clients.cluster(host, port, tls=self._target.tls))
        except Exception as exc:  # reported as a log line and missing fleet families
            return exc

    def _nodes(self) -> list[tuple[str, int]]:
        if self._target.topology is Topology.STANDALONE:
            return list(self._target.hosts)
        return self._executor.submit(
            discover,
            self._target,
            lambda h, p, auth: self._clients.get(h, p, tls=self._target.tls, authenticate=auth),
        ).result(timeout=self._timeout)
