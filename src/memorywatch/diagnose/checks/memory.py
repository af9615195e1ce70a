"""Memory and eviction (runbooks AgentStateEvicted, RedisMemoryHigh, RedisFragmentationHigh,
AgentRecordsWithoutTTL, RedisMaxmemoryNotSet, RedisEvictionPolicyUnsafe).

Who holds the memory comes from the bounded keyspace sample: bytes per (profile, key class)
and how much of them has no TTL, which is what a volatile-* policy can never evict."""

from __future__ import annotations

from memorywatch import schema
from memorywatch.diagnose.checks._util import by_name, counter, mib, pct, sample_of, slot_name
from memorywatch.diagnose.facts import Facts
from memorywatch.diagnose.model import CannotTell, Finding, Hypothesis
from memorywatch.exporter.profiles import Slot
from memorywatch.exporter.sampler import OneShot
from memorywatch.thresholds import Thresholds

HOLDERS_SHOWN = 3
NO_TTL_MAJORITY = 0.5
"""Under a volatile-* policy, keys without TTL holding this share of the bytes or more are
what crowds agent state out: the mitigation names them. Below it, the largest class is."""


def _policy(facts: Facts) -> str:
    return str(facts.primary.info.get("maxmemory_policy", "?"))


def evicted(facts: Facts, th: Thresholds) -> Finding | None:
    node = facts.primary
    evicted_keys = node.number("evicted_keys")
    if not evicted_keys:
        return None
    misses = counter(facts, schema.FAMILY_STATE_MISSES)
    policy = _policy(facts)
    volatile = policy.startswith("volatile-")
    evidence = [
        f"evicted_keys {evicted_keys:,.0f} since the restart; maxmemory-policy {policy} evicts "
        + ("only keys with a TTL: locks, tool records and sessions" if volatile else "any key"),
    ]
    if misses:
        evidence.append(f"agents then found state gone: {by_name(misses)} (state_misses)")
    maxmemory = node.number("maxmemory")
    if maxmemory:
        evidence.append(
            f"used {mib(node.number('used_memory'))} of maxmemory {mib(maxmemory)} "
            f"({pct(node.number('used_memory') / maxmemory)})"
        )
    mitigation = None
    if facts.sample is not None and facts.sample.walked:
        holders, mitigation = _holders(facts.sample, volatile, policy)
        evidence += holders
    return Finding(
        "Redis evicted keys at maxmemory: agents lose the state it evicts.",
        tuple(evidence),
        excess=1.0 + len(misses),
        mitigation=mitigation,
    )


def _holders(sample: OneShot, volatile: bool, policy: str) -> tuple[list[str], str | None]:
    """Who holds the memory (largest classes by sampled bytes, with their share without a
    TTL) and a mitigation naming the class to act on."""
    result = sample.result
    total = sum(result.bytes.values())
    if not total:
        return [], None
    ranked: list[tuple[Slot, int]] = sorted(result.bytes.items(), key=lambda kv: -kv[1])
    what = "all keys" if sample.complete else f"a sample of {sample.walked:,} keys"
    shown = "; ".join(
        f"{slot_name(slot)} {pct(size / total)} of the bytes, "
        f"{pct(result.bytes_without_ttl.get(slot, 0) / size)} of it without TTL"
        for slot, size in ranked[:HOLDERS_SHOWN]
    )
    lines = [f"who holds the memory ({what}): {shown}"]
    no_ttl = sum(result.bytes_without_ttl.values())
    if volatile and no_ttl:
        lines.append(
            f"{pct(no_ttl / total)} of the bytes have no TTL and {policy} never evicts them"
        )
    if volatile and no_ttl >= NO_TTL_MAJORITY * total:
        slot, size = max(result.bytes_without_ttl.items(), key=lambda kv: kv[1])
        lines[-1] += f"; {slot_name(slot)} holds {pct(size / total)} that way"
        return lines, (
            f"{slot_name(slot)} keys hold {pct(size / total)} of the memory without a TTL, so "
            f"{policy} evicts agent state instead: give them a TTL (their library's ttl "
            "option) or delete them, set maxmemory-policy noeviction or allkeys-lru, and "
            "raise maxmemory."
        )
    slot, size = ranked[0]
    return lines, (
        f"{slot_name(slot)} keys hold {pct(size / total)} of the memory: raise maxmemory, or "
        "shorten their TTL or trim them (max_messages for histories); set maxmemory-policy "
        "noeviction so agent state is refused loudly rather than evicted."
    )


def fragmentation(facts: Facts, th: Thresholds) -> Finding | None:
    node = facts.primary
    if "mem_fragmentation_ratio" not in node.info:
        raise CannotTell("INFO has no mem_fragmentation_ratio")
    ratio = node.number("mem_fragmentation_ratio")
    used = node.number("used_memory")
    limit, floor = th["fragmentation_ratio"].number(), th["fragmentation_min_memory"].number()
    if ratio <= limit or used <= floor:
        return None
    rss = node.number("used_memory_rss")
    evidence = [
        f"mem_fragmentation_ratio {ratio:.2f} (threshold {limit:g}): resident "
        f"{mib(rss)} for {mib(used)} of data, {mib(rss - used)} holding nothing",
        f"active defragmentation running: {node.info.get('active_defrag_running', '?')}",
    ]
    return Finding(
        "Redis's memory is fragmented: the machine holds far more than the data, and "
        "maxmemory does not count it.",
        tuple(evidence),
        excess=ratio / limit,
    )


def records_without_ttl(facts: Facts, th: Thresholds) -> Finding | None:
    sample = sample_of(facts)
    leaks = {slot: n for slot, n in sample.result.without_ttl.items() if n}
    if not leaks:
        return None
    keys = sample.result.keys
    scale = sample.keyspace / sample.walked if sample.walked and not sample.complete else 1.0
    shown = ", ".join(
        f"{slot_name(slot)} {n:,} of {keys.get(slot, n):,}"
        + (f" (about {n * scale:,.0f} in the keyspace)" if scale > 1 else "")
        for slot, n in sorted(leaks.items(), key=lambda kv: -kv[1])[:HOLDERS_SHOWN]
    )
    what = "all keys" if sample.complete else f"a sample of {sample.walked:,} keys"
    return Finding(
        "Keys that must expire have no TTL: they are never freed and volatile-* eviction "
        "never picks them.",
        (f"without TTL in {what}: {shown}",),
        excess=1.0 + sum(leaks.values()),
    )


def memory_high(facts: Facts, th: Thresholds) -> Finding | None:
    node = facts.primary
    maxmemory = node.number("maxmemory")
    if not maxmemory:
        return None
    share = node.number("used_memory") / maxmemory
    warning = th["memory_used_warning"].number()
    if share < warning:
        return None
    return Finding(
        f"Redis uses {pct(share)} of maxmemory: writes fail or state is evicted next.",
        (f"used_memory {mib(node.number('used_memory'))} of maxmemory {mib(maxmemory)} "
         f"(threshold {pct(warning)})",),
        excess=share / warning,
        severity="critical" if share >= th["memory_used_critical"].number() else "warning",
    )  # fmt: skip


def maxmemory_unset(facts: Facts, th: Thresholds) -> Finding | None:
    node = facts.primary
    if node.number("maxmemory") or "maxmemory" not in node.info:
        return None
    return Finding(
        "maxmemory is not set: Redis grows until the kernel kills it, every session with it.",
        (f"maxmemory 0; used_memory {mib(node.number('used_memory'))}, "
         f"total_system_memory {mib(node.number('total_system_memory'))}",),
    )  # fmt: skip


def policy_unsafe(facts: Facts, th: Thresholds) -> Finding | None:
    policy = _policy(facts)
    if not policy.startswith("volatile-"):
        return None
    return Finding(
        f"maxmemory-policy {policy} evicts keys with a TTL first: locks and tool records.",
        (f"maxmemory-policy {policy}: {_db0(facts, 'expires'):,.0f} of {_db0(facts, 'keys'):,.0f} "
         "keys in db0 carry a TTL and are the candidates",),
    )  # fmt: skip


def _db0(facts: Facts, field: str) -> float:
    db0 = facts.primary.info.get("db0")
    return float(db0.get(field, 0)) if isinstance(db0, dict) else 0.0


HYPOTHESES = (
    Hypothesis(
        "AgentStateEvicted",
        "Has Redis evicted agent state (history, locks, tool records)?",
        "Raise maxmemory (or shard), set maxmemory-policy noeviction or allkeys-lru, and find "
        "the keys growing without TTL (AgentRecordsWithoutTTL).",
        evicted,
    ),
    Hypothesis(
        "RedisMemoryHigh",
        "Is used memory near maxmemory?",
        "Raise maxmemory or free memory: shorten session TTLs, trim history (max_messages), "
        "delete keys without TTL.",
        memory_high,
    ),
    Hypothesis(
        "RedisMaxmemoryNotSet",
        "Is maxmemory set?",
        "Set maxmemory below the machine's memory (CONFIG SET maxmemory, and in redis.conf).",
        maxmemory_unset,
    ),
    Hypothesis(
        "RedisEvictionPolicyUnsafe",
        "Does the eviction policy pick locks and tool records first?",
        "CONFIG SET maxmemory-policy noeviction (or allkeys-lru) and persist it in redis.conf.",
        policy_unsafe,
    ),
    Hypothesis(
        "RedisFragmentationHigh",
        "Is Redis's memory fragmented (resident far above the data)?",
        "CONFIG SET activedefrag yes (jemalloc builds), or fail over to a replica and restart "
        "the old master; size the machine for resident memory, not maxmemory.",
        fragmentation,
    ),
    Hypothesis(
        "AgentRecordsWithoutTTL",
        "Are keys that must expire written without a TTL?",
        "Find the writer of the class (its library's ttl option, or our SDK's settings) and "
        "give the existing keys a TTL (EXPIRE) or delete them.",
        records_without_ttl,
    ),
)
