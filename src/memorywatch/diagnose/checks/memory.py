"""Memory and eviction (runbooks AgentStateEvicted, RedisMemoryHigh, RedisMaxmemoryNotSet,
RedisEvictionPolicyUnsafe)."""

from __future__ import annotations

from memorywatch import schema
from memorywatch.diagnose.checks._util import by_name, counter, mib, pct
from memorywatch.diagnose.facts import Facts
from memorywatch.diagnose.model import Finding, Hypothesis
from memorywatch.thresholds import Thresholds


def _policy(facts: Facts) -> str:
    return str(facts.primary.info.get("maxmemory_policy", "?"))


def evicted(facts: Facts, th: Thresholds) -> Finding | None:
    node = facts.primary
    evicted_keys = node.number("evicted_keys")
    misses = counter(facts, schema.FAMILY_STATE_MISSES)
    if not evicted_keys:
        return None
    classes = (
        "locks, tool records and sessions first (they carry TTLs)"
        if _policy(facts).startswith("volatile-")
        else "any key, agent state included"
    )
    evidence = [
        f"evicted_keys {evicted_keys:,.0f} since the restart; maxmemory-policy {_policy(facts)} "
        f"evicts {classes}",
    ]
    if misses:
        evidence.append(f"agents then found state gone: {by_name(misses)} (state_misses)")
    maxmemory = node.number("maxmemory")
    if maxmemory:
        evidence.append(
            f"used {mib(node.number('used_memory'))} of maxmemory {mib(maxmemory)} "
            f"({pct(node.number('used_memory') / maxmemory)})"
        )
    return Finding(
        "Redis evicted keys at maxmemory: agent state is among them, agents forget.",
        tuple(evidence),
        excess=1.0 + len(misses),
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
)
