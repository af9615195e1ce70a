"""The fleet families of one target: the scrape-time read, the label budget and the
background trackers (eviction classifier, keyspace sampler) with their lifecycle."""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Protocol

import redis
from redis.cluster import RedisCluster

from memorywatch import names, schema
from memorywatch.exporter.collectors.fleet.keyspace import KeyspaceView, add_keyspace_families
from memorywatch.exporter.collectors.fleet.labels import LabelBudget
from memorywatch.exporter.collectors.fleet.read import FleetRead, FleetSnapshot, read_fleet
from memorywatch.exporter.collectors.fleet.render import add_fleet_families
from memorywatch.exporter.exposition import Families
from memorywatch.exporter.fleet_options import FleetOptions
from memorywatch.exporter.profiles import MEMORYWATCH, Slot
from memorywatch.exporter.sampler import KeyspaceSampler, SampleResult

log = logging.getLogger("memorywatch.exporter")


class Evictions(Protocol):
    """An EvictionTracker, or the sum of one per Cluster primary (exporter/primaries.py)."""

    @property
    def live(self) -> bool: ...

    def counts(self) -> dict[Slot, int]: ...

    def start(self) -> object: ...

    def stop(self) -> None: ...


class Sampling(Protocol):
    def result(self) -> SampleResult | None: ...

    def fallback(self) -> str | None: ...

    def walked(self) -> int: ...

    def start(self) -> object: ...

    def stop(self) -> None: ...


class Fleet:
    def __init__(
        self,
        options: FleetOptions,
        tracker: Evictions | None = None,
        sampler: Sampling | None = None,
    ) -> None:
        self.options = options
        self.tracker = tracker
        self.sampler = sampler
        self.labels = LabelBudget(options.max_label_values)
        self._version_said: str | None = None
        self._active: set[str] = {MEMORYWATCH, *options.chosen_profiles}
        """Profiles published: ours, the chosen ones, and every one whose keys were met."""

    def begin(self) -> FleetRead:
        """A read whose first step the caller queues on its own pipeline (`FleetRead.first`)."""
        return FleetRead(self.options)

    def read(self, client: redis.Redis | RedisCluster) -> FleetSnapshot:
        return read_fleet(client, self.options)

    def _workers(self) -> list[Evictions | Sampling]:
        """The workers, once each (on a Cluster one object is both)."""
        found: list[Evictions | Sampling] = []
        for worker in (self.tracker, self.sampler):
            if worker is not None and all(worker is not w for w in found):
                found.append(worker)
        return found

    def start(self) -> None:
        for worker in self._workers():
            worker.start()

    def stop(self) -> None:
        for worker in self._workers():
            worker.stop()

    def after_request(self) -> None:
        """The sampler's step due, in the calling thread (a standalone primary's sampler; a
        Cluster's samplers keep their own threads)."""
        if isinstance(self.sampler, KeyspaceSampler):
            self.sampler.after_request()

    def _say_version(self, snap: FleetSnapshot) -> None:
        """One log line when the schema version turns foreign, not one per scrape."""
        if snap.foreign_version == self._version_said:
            return
        self._version_said = snap.foreign_version
        if snap.foreign_version is not None:
            log.warning(
                "%s:schema holds schema version %s, this exporter reads version %s: agent "
                "fleet metrics are off until the agents run memorywatch >= 0.2",
                self.options.namespace,
                snap.foreign_version,
                schema.SCHEMA_VERSION,
            )

    def add(self, snap: FleetSnapshot | None, out: Families) -> None:
        """Families from this scrape's read (None if it failed) and the trackers' results."""
        errors: Counter[str] = Counter(dict.fromkeys(names.ERROR_KINDS, 0))
        if snap is not None:
            self._say_version(snap)
            add_fleet_families(snap, out, self.labels)
            errors.update(snap.errors)
        counts = self.tracker.counts() if self.tracker is not None else None
        result = self.sampler.result() if self.sampler is not None else None
        if result is not None:
            errors.update(result.errors)
            self._active.update(result.seen)
        if counts:
            self._active.update(profile for (profile, _), n in counts.items() if n)
        view = KeyspaceView(
            evictions=counts,
            evictions_live=self.tracker is not None and self.tracker.live,
            sample=result,
            sample_age=time.monotonic() - result.finished_at if result is not None else None,
        )
        active = [p for p in self.options.profiles if p.name in self._active]
        add_keyspace_families(view, active, out)
        if self.sampler is not None:
            out.counter(
                names.SAMPLER_WALKED,
                "Keys the keyspace sampler walked since the exporter started (its pace).",
                self.sampler.walked(),
            )
            fallback = self.sampler.fallback()
            for reason in names.FALLBACK_REASONS:
                out.gauge(
                    names.SAMPLER_FALLBACK,
                    "1 when Redis refused the keyspace sampler's Lua script, by why: keys are "
                    "then read and classified in the exporter (more CPU per key).",
                    1 if reason == fallback else 0,
                    {names.LABEL_REASON: reason},
                )
        for kind, count in sorted(errors.items()):
            out.gauge(
                names.SCHEMA_ERRORS,
                "Keys or records in the namespace that break the schema (foreign, wrong type, "
                "missing TTL, unparsable).",
                count,
                {names.LABEL_KIND: kind},
            )
