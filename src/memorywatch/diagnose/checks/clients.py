"""Connections (runbooks AgentClientPoolTimeouts, AgentClientPoolSaturated, RedisClientsNearMax,
RedisRejectedConnections)."""

from __future__ import annotations

from memorywatch.diagnose.checks._util import fleet_of, pct
from memorywatch.diagnose.facts import Facts
from memorywatch.diagnose.model import CannotTell, Finding, Hypothesis
from memorywatch.thresholds import Thresholds


def _slowlog(facts: Facts) -> list[str]:
    """Slow commands hold connections: what the master's SLOWLOG says, in numbers."""
    node = facts.primary
    if not node.slowlog_len:
        return []
    return [
        f"SLOWLOG holds {node.slowlog_len} commands slower than slowlog-log-slower-than; the "
        f"newest took {(node.slowlog_last_seconds or 0) * 1000:,.1f} ms"
    ]


def pool_timeouts(facts: Facts, th: Thresholds) -> Finding | None:
    fleet = fleet_of(facts)
    hit = {i: b for i, b in fleet.instances.items() if b.pool_timeouts}
    if not hit:
        return None
    total = sum(b.pool_timeouts or 0 for b in hit.values())
    return Finding(
        "Agent instances ran out of pool connections: turns failed waiting for Redis.",
        (f"{len(hit)} of {len(fleet.instances)} live instances report pool timeouts "
         f"({total:,} since they started)", *_slowlog(facts)),
        excess=1.0 + total,
    )  # fmt: skip


def pool_saturated(facts: Facts, th: Thresholds) -> Finding | None:
    share = th["client_pool_used"].number()
    full = [
        b for b in fleet_of(facts).instances.values()
        if b.pool_max and b.pool_in_use is not None and b.pool_in_use / b.pool_max >= share
    ]  # fmt: skip
    if not full:
        return None
    worst = max(full, key=lambda b: (b.pool_in_use or 0) / (b.pool_max or 1))
    return Finding(
        "An agent instance uses most of its connection pool: timeouts are one burst away.",
        (f"{len(full)} instances at {pct(share)} or more of their pool; worst "
         f"{worst.pool_in_use} of {worst.pool_max}", *_slowlog(facts)),
    )  # fmt: skip


def clients_near_max(facts: Facts, th: Thresholds) -> Finding | None:
    node = facts.primary
    if "maxclients" not in node.config:
        raise CannotTell("CONFIG GET maxclients was refused (an ACL or a renamed CONFIG)")
    maxclients = float(node.config.get("maxclients") or 0)
    if not maxclients:
        return None
    share = node.number("connected_clients") / maxclients
    warning = th["clients_warning"].number()
    if share < warning:
        return None
    evidence = [f"connected_clients {node.number('connected_clients'):,.0f} of maxclients "
                f"{maxclients:,.0f} ({pct(share)})"]  # fmt: skip
    if facts.clients is not None:
        evidence.append(
            f"CLIENT LIST: {facts.clients.idle_over_5m:,} connections idle for more than 5 min, "
            f"{facts.clients.blocked:,} blocked"
        )
    return Finding(
        "Redis is near maxclients: the next scale-out gets 'max number of clients reached'.",
        tuple(evidence),
        excess=share / warning,
        severity="critical" if share >= th["clients_critical"].number() else "warning",
    )


def rejected(facts: Facts, th: Thresholds) -> Finding | None:
    count = facts.primary.number("rejected_connections")
    if not count:
        return None
    return Finding(
        "Redis rejected connections (maxclients reached): instances could not reach memory.",
        (f"rejected_connections {count:,.0f} since the restart; connected_clients "
         f"{facts.primary.number('connected_clients'):,.0f}",),
        excess=1.0 + count,
    )  # fmt: skip


HYPOTHESES = (
    Hypothesis(
        "AgentClientPoolTimeouts",
        "Did an instance's client pool run dry?",
        "Raise max_connections of the instance's pool, or find what holds connections "
        "(slow commands, blocked reads); scale out instead of adding threads.",
        pool_timeouts,
    ),
    Hypothesis(
        "RedisRejectedConnections",
        "Did Redis reject connections?",
        "Raise maxclients (and the process's file limit) or shrink the instances' pools.",
        rejected,
    ),
    Hypothesis(
        "RedisClientsNearMax",
        "Are Redis's connections near maxclients?",
        "Raise maxclients, shrink the pools (max_connections), close idle connections "
        "(timeout in redis.conf).",
        clients_near_max,
    ),
    Hypothesis(
        "AgentClientPoolSaturated",
        "Is an instance's pool nearly exhausted?",
        "Raise the instance's max_connections or spread the load over more instances.",
        pool_saturated,
    ),
)
