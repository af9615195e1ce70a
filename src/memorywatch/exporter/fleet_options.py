"""What the exporter reads of the agents' state schema."""

from __future__ import annotations

from dataclasses import dataclass

from memorywatch import schema


@dataclass(frozen=True)
class FleetOptions:
    namespace: str = schema.DEFAULT_NAMESPACE
    queues: tuple[str, ...] = ()
    max_label_values: int = 100
    session_window: float = 1800.0
    """A session counts as active if it saw activity within this many seconds."""
    instance_window: float = 60.0
    """An instance is counted if it sent a heartbeat within this many seconds."""
