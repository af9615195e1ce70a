"""What the exporter reads of the agents' state schema."""

from __future__ import annotations

from dataclasses import dataclass, field

from memorywatch import schema
from memorywatch.exporter.profiles import BUILTIN, Profile

DEFAULT_MAX_LABEL_VALUES = 100
DEFAULT_SESSION_WINDOW = 1800.0
DEFAULT_SAMPLE_INTERVAL = 30.0
DEFAULT_SAMPLE_BUDGET = 54_000
DEFAULT_SAMPLE_BATCH = 800
"""Keys per sampler call (SCAN COUNT): the exporter's cost is per call, Redis's per key (a
call of 800 blocks Redis ~2 ms on a mostly unclaimed keyspace; docs/benchmarks-fleet-scale.md)."""
DEFAULT_TOP_INSTANCES = 3
"""The exporter's fleet defaults, once: the CLI, the config and the workers read them here."""


@dataclass(frozen=True)
class FleetOptions:
    namespace: str = schema.DEFAULT_NAMESPACE
    queues: tuple[str, ...] = ()
    max_label_values: int = DEFAULT_MAX_LABEL_VALUES
    session_window: float = DEFAULT_SESSION_WINDOW
    """A session counts as active if it saw activity within this many seconds."""
    top_instances: int = DEFAULT_TOP_INSTANCES
    """--top-instances: the K most used pools named by instance id (0: none). The only
    per-instance label the exporter publishes, K series whatever the fleet's size."""
    instance_details: bool = False
    """Read each live instance's heartbeat figures into `FleetSnapshot.instances` (diagnose,
    a one-off command); the exporter reads aggregates only."""
    profiles: tuple[Profile, ...] = field(default_factory=lambda: tuple(BUILTIN.values()))
    """Every key profile the classifier knows (--key-profile-file ones first)."""
    chosen_profiles: tuple[str, ...] = ()
    """--key-profile: published from the start, before the sampler finds their keys."""
