"""An eviction tracker and a keyspace sampler on every primary of a Redis Cluster.

Evictions are per node (a node publishes only its own `evicted` events) and SCAN walks one
node's keys, so a Cluster needs one pair of workers per primary. The set of primaries is read
again every `refresh` seconds: a node that stops being a primary (failover, removal) has its
workers stopped and its eviction counts kept, so the counters the scrape publishes never go
down; a new primary gets workers of its own. Scrapes see the sum over nodes.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable

import redis

from memorywatch.exporter.background import BackgroundWorker
from memorywatch.exporter.evictions import EvictionTracker
from memorywatch.exporter.profiles import Slot
from memorywatch.exporter.sampler import KeyspaceSampler, SampleResult

log = logging.getLogger("memorywatch.exporter")

Node = tuple[str, int]


class PrimaryWorkers(BackgroundWorker):
    """Both worker interfaces at once (``live``/``counts`` and ``result``), over all nodes."""

    name = "memorywatch-primaries"

    def __init__(
        self,
        client_factory: Callable[[], redis.Redis],
        primaries: Callable[[], list[Node]],
        tracker_for: Callable[[Node], EvictionTracker],
        sampler_for: Callable[[Node], KeyspaceSampler],
        refresh: float = 10.0,
    ) -> None:
        super().__init__(client_factory, refresh)
        self._primaries = primaries
        self._tracker_for = tracker_for
        self._sampler_for = sampler_for
        self._nodes: dict[Node, tuple[EvictionTracker, KeyspaceSampler]] = {}
        self._retired: Counter[Slot] = Counter()
        self._retired_walked = 0
        self._lock = threading.Lock()

    def step(self, client: redis.Redis) -> None:
        current = set(self._primaries())
        with self._lock:
            gone = [node for node in self._nodes if node not in current]
            new = [node for node in sorted(current) if node not in self._nodes]
            stopped = [self._nodes.pop(node) for node in gone]
            for tracker, sampler in stopped:
                self._retired.update(tracker.counts())
                self._retired_walked += sampler.walked()
            for node in new:
                pair = (self._tracker_for(node), self._sampler_for(node))
                self._nodes[node] = pair
        for tracker, sampler in stopped:
            tracker.stop()
            sampler.stop()
        for node in new:
            tracker, sampler = self._nodes[node]
            tracker.start()
            sampler.start()
        if gone or new:
            log.info(
                "cluster primaries: %s",
                ", ".join(f"{h}:{p}" for h, p in sorted(current)) or "none",
            )

    def stop(self) -> None:
        super().stop()
        with self._lock:
            pairs = list(self._nodes.values())
        for tracker, sampler in pairs:
            tracker.stop()
            sampler.stop()

    @property
    def nodes(self) -> list[Node]:
        with self._lock:
            return sorted(self._nodes)

    @property
    def live(self) -> bool:
        """Every primary's eviction subscription is live (and there is at least one)."""
        with self._lock:
            pairs = list(self._nodes.values())
        return bool(pairs) and all(tracker.live for tracker, _ in pairs)

    def counts(self) -> dict[Slot, int]:
        with self._lock:
            total = Counter(self._retired)
            trackers = [tracker for tracker, _ in self._nodes.values()]
        for tracker in trackers:
            total.update(tracker.counts())
        return dict(total)

    def walked(self) -> int:
        """Keys walked by the samplers of every primary since the exporter started."""
        with self._lock:
            samplers = [sampler for _, sampler in self._nodes.values()]
            retired = self._retired_walked
        return retired + sum(s.walked() for s in samplers)

    def fallback(self) -> str | None:
        """The reason of the first primary whose sampler fell back from its script, if any."""
        with self._lock:
            samplers = [sampler for _, sampler in self._nodes.values()]
        return next((r for r in (s.fallback() for s in samplers) if r is not None), None)

    def result(self) -> SampleResult | None:
        """The sum of every primary's last full pass, once each has one (the oldest one's
        time, so the age says how stale the least fresh part is)."""
        with self._lock:
            samplers = [sampler for _, sampler in self._nodes.values()]
        results = [sampler.result() for sampler in samplers]
        if not results or any(r is None for r in results):
            return None
        done = [r for r in results if r is not None]
        keys: Counter[Slot] = Counter()
        sizes: Counter[Slot] = Counter()
        leaks: Counter[Slot] = Counter()
        naked: Counter[Slot] = Counter()
        errors: Counter[str] = Counter()
        for r in done:
            keys.update(r.keys)
            sizes.update(r.bytes)
            leaks.update(r.without_ttl)
            naked.update(r.bytes_without_ttl)
            errors.update(r.errors)
        return SampleResult(
            finished_at=min(r.finished_at for r in done),
            keys=dict(keys),
            bytes=dict(sizes),
            without_ttl=dict(leaks),
            bytes_without_ttl=dict(naked),
            errors=dict(errors),
            seen=frozenset().union(*(r.seen for r in done)),
        )
