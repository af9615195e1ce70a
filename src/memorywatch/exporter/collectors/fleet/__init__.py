"""Agent-fleet families read from the state schema the SDK writes (docs/schema.md).

Cheap at any size: a scrape reads the per-shard counter hashes, counts indexes with ZCOUNT
and reads the heartbeat hash of each live instance, O(1) and O(log n) commands in three
pipelined round trips, never KEYS or SCAN (`read`). Whatever needs the keyspace itself is
the background sampler's job (exporter/sampler.py). `labels` bounds the lock and tool label
values, `render` turns a snapshot into families, `collector` holds them together per target.
"""

from memorywatch.exporter.collectors.fleet.collector import Fleet
from memorywatch.exporter.collectors.fleet.labels import LabelBudget
from memorywatch.exporter.collectors.fleet.read import FleetRead, FleetSnapshot, read_fleet
from memorywatch.exporter.collectors.fleet.render import add_fleet_families

__all__ = [
    "Fleet",
    "FleetRead",
    "FleetSnapshot",
    "LabelBudget",
    "add_fleet_families",
    "read_fleet",
]
