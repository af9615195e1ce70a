"""Small readers the checks share: counters of the fleet snapshot, numbers as people read them."""

from __future__ import annotations

from memorywatch.diagnose.facts import Facts


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
