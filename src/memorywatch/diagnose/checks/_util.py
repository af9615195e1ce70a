"""Small readers the checks share: counters of the fleet snapshot, numbers as people read them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from memorywatch.diagnose.facts import Facts
from memorywatch.diagnose.model import CannotTell
from memorywatch.exporter.collectors.fleet.read import FleetSnapshot
from memorywatch.exporter.sampler import OneShot


def counter(facts: Facts, family: str) -> dict[str, float]:
    """The fleet counter family by field (tool or lock label, kind, op), summed over shards."""
    if facts.fleet is None:
        return {}
    return {k: v for k, v in facts.fleet.counters.get(family, {}).items() if v}


def by_name(values: dict[str, float]) -> str:
    """``charge 3, refund 1``: the largest first, at most five (labels, never ids)."""
    ranked = sorted(values.items(), key=lambda item: (-item[1], item[0]))
    shown = [f"{name} {count:,.0f}" for name, count in ranked[:5]]
    return ", ".join(shown) + (f" and {len(ranked) - 5} more" if len(ranked) > 5 else "")


def mib(value: float) -> str:
    return f"{value / 1048576:,.1f} MiB"


def pct(share: float) -> str:
    return f"{share * 100:.0f} %"


def fleet_of(facts: Facts) -> FleetSnapshot:
    """The fleet snapshot, or :class:`CannotTell` with why it could not be read."""
    if facts.fleet is None:
        raise CannotTell(f"the fleet state could not be read: {facts.fleet_error or 'no reply'}")
    return facts.fleet


def sample_of(facts: Facts) -> OneShot:
    """The keyspace sample, or :class:`CannotTell` when none could be taken or it stopped
    before its key budget (its time ran out)."""
    sample = facts.sample
    if sample is None:
        raise CannotTell(
            f"the keyspace sample failed: {facts.sample_error}"
            if facts.sample_error
            else "no keyspace sample was taken (--sample-keys 0)"
        )
    if sample.stopped:
        raise CannotTell(f"the keyspace sample stopped early: {sample.stopped}")
    return sample


def slot_name(slot: tuple[str, str]) -> str:
    """``openai_agents history``: a profile and a key class (labels, never key names)."""
    return f"{slot[0]} {slot[1]}"


def seconds(value: float) -> str:
    return f"{value * 1000:,.0f} ms" if value < 1 else f"{value:,.1f} s"


def stat(stats: Any, field: str) -> float:
    """A number of an INFO section entry (``cmdstat_get``, ``errorstat_OOM``); 0 when the
    entry or the field is missing or not a number."""
    try:
        return float(stats.get(field, 0) or 0) if isinstance(stats, Mapping) else 0.0
    except (TypeError, ValueError):
        return 0.0
