"""The fleet families of one target: the scrape-time read, the label budget and the
background trackers (eviction classifier, keyspace sampler) with their lifecycle."""

from __future__ import annotations

import logging
import time
from collections import Counter

import redis
from redis.cluster import RedisCluster

from memorywatch import names, schema
from memorywatch.exporter.collectors.fleet.labels import LabelBudget
from memorywatch.exporter.collectors.fleet.read import FleetRead, FleetSnapshot, read_fleet
from memorywatch.exporter.collectors.fleet.render import add_fleet_families
from memorywatch.exporter.evictions import EvictionTracker
from memorywatch.exporter.exposition import Families
from memorywatch.exporter.fleet_options import FleetOptions
from memorywatch.exporter.sampler import KeyspaceSampler

log = logging.getLogger("memorywatch.exporter")


class Fleet:
    def __init__(
        self,
        options: FleetOptions,
        tracker: EvictionTracker | None = None,
        sampler: KeyspaceSampler | None = None,
    ) -> None:
        self.options = options
        self.tracker = tracker
        self.sampler = sampler
        self.labels = LabelBudget(options.max_label_values)
        self._version_said: str | None = None

    def begin(self) -> FleetRead:
        """A read whose first step the caller queues on its own pipeline (`FleetRead.first`)."""
        return FleetRead(self.options)

    def read(self, client: redis.Redis | RedisCluster) -> FleetSnapshot:
        return read_fleet(client, self.options)

    def start(self) -> None:
        for worker in (self.tracker, self.sampler):
            if worker is not None:
                worker.start()

    def stop(self) -> None:
        for worker in (self.tracker, self.sampler):
            if worker is not None:
                worker.stop()

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
        out.gauge(
            names.EVICTION_TRACKING,
            "1 while evicted keys are classified from keyspace notifications.",
            1 if self.tracker is not None and self.tracker.live else 0,
        )
        if self.tracker is not None:
            for key_class, count in sorted(self.tracker.counts().items()):
                out.counter(
                    names.EVICTED_KEYS,
                    "Keys Redis evicted, by the class of agent state they held "
                    "(counted since the exporter started).",
                    count,
                    {names.LABEL_KEY_CLASS: key_class},
                )
        result = self.sampler.result() if self.sampler is not None else None
        if result is not None:
            for key_class, count in sorted(result.without_ttl.items()):
                out.gauge(
                    names.KEYS_WITHOUT_TTL,
                    "Keys that must expire but have no TTL, by class (last full sampler pass).",
                    count,
                    {names.LABEL_KEY_CLASS: key_class},
                )
            errors.update(result.errors)
            out.gauge(
                names.SAMPLER_AGE,
                "Seconds since the keyspace sampler finished the pass these figures come from.",
                time.monotonic() - result.finished_at,
            )
        for kind, count in sorted(errors.items()):
            out.gauge(
                names.SCHEMA_ERRORS,
                "Keys or records in the namespace that break the schema (foreign, wrong type, "
                "missing TTL, unparsable).",
                count,
                {names.LABEL_KIND: kind},
            )
