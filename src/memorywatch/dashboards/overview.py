"""memorywatch-overview: is the fleet's memory safe right now.

One screen for the on-call: Redis answering, memory against maxmemory, evictions of agent
state, clients and the agents' connection pools, replication lag and refused durable writes,
lock contention, duplicate tool runs, forgotten sessions, ready instances, active sessions and
the work queues. Each panel links to the runbook of the alert that watches the same number
with the same threshold.
"""

from __future__ import annotations

from memorywatch import names, queries
from memorywatch.alerts.exporter_self import UP
from memorywatch.alerts.model import DASHBOARD_OVERVIEW
from memorywatch.alerts.redis_health import WRITE_ERRORS
from memorywatch.dashboards._style import (
    OK_COLOR,
    RANGE,
    Context,
    DashboardSpec,
    Panel,
    Query,
    Step,
    increase_in_range,
    rate,
    sel,
    steps_from,
)
from memorywatch.queries import eq, re_match

UP_MAPPINGS = {"0": ("down", "red"), "1": ("up", "green")}
NO_REPLICA = (
    "a Redis without replicas (standalone, or this instance is a replica) has no lag series."
)


def spec(ctx: Context) -> DashboardSpec:
    key_class, state, tool = names.LABEL_KEY_CLASS, names.LABEL_STATE, names.LABEL_TOOL

    def count_stat(
        title: str, description: str, expr: str, watch: str, empty: str | None = None
    ) -> Panel:
        return Panel(
            "stat",
            title,
            description,
            "short",
            (Query(f"sum({increase_in_range(expr)})", instant=True, empty_while_healthy=empty),),
            width=4,
            height=4,
            watch=(watch,),
        )

    redis_row = (
        Panel(
            "stat",
            "Redis up",
            f"Whether the exporter reached its Redis on the last scrape ({names.REDIS_UP}). Every agent "
            "turn reads and writes Redis: down is an outage.",
            "none",
            (Query(sel(names.REDIS_UP), "{{instance}}"),),
            width=4,
            height=4,
            watch=("redis_down",),
            steps=(Step("red", None), Step(OK_COLOR, 1)),
            mappings=UP_MAPPINGS,
        ),
        Panel(
            "stat",
            "Exporter scraped",
            "Whether Prometheus reached the memorywatch exporter on its last scrape (up). While "
            "it is down every other panel and alert here is blind.",
            "none",
            (Query(sel(UP), "{{instance}}"),),
            width=4,
            height=4,
            watch=("exporter_down",),
            steps=(Step("red", None), Step(OK_COLOR, 1)),
            mappings=UP_MAPPINGS,
        ),
        count_stat(
            "Failed Redis scrapes",
            "Scrapes in the time range in which the exporter could not read Redis (auth, "
            "connection, timeout, permission): gaps in every other panel.",
            sel(names.SCRAPE_ERRORS),
            "exporter_scrape_errors",
        ),
        Panel(
            "gauge",
            "Memory used of maxmemory",
            "Redis used memory as a share of maxmemory, per instance; orange and red at the "
            "RedisMemoryHigh warning and critical thresholds. Empty when maxmemory is not set "
            "(see the Redis dashboard).",
            "percentunit",
            (Query(queries.memory_ratio(sel), "{{instance}}"),),
            width=4,
            height=4,
            watch=("memory_used_warning", "memory_used_critical"),
            minimum=0,
            maximum=1,
        ),
        count_stat(
            "Rejected writes",
            "Commands in the time range Redis answered with OOM, READONLY or MISCONF: history, "
            "lock or tool writes that were lost.",
            sel(names.REDIS_ERRORS, re_match(names.LABEL_ERR, WRITE_ERRORS)),
            "write_errors",
            "Redis reports an error kind from its first occurrence on.",
        ),
        count_stat(
            "Agent state evicted",
            "History, preference, lock and tool keys Redis evicted in the time range, from "
            f"keyspace eviction events ({names.EVICTED_KEYS} without class other).",
            queries.agent_state_evictions(sel),
            "agent_state_evicted",
        ),
    )
    agents_row = (
        Panel(
            "stat",
            "Ready instances",
            "Agent instances whose heartbeat is live and whose last readiness check passed. "
            "Zero means every request behind the load balancer fails.",
            "short",
            (Query(f"sum({sel(names.AGENT_INSTANCES, eq(state, 'ready'))})"),),
            width=4,
            height=4,
            watch=("no_ready_instances",),
            steps=(Step("red", None), Step(OK_COLOR, 1)),
        ),
        count_stat(
            "Duplicate tool executions",
            "Tool calls that ran a second time for one idempotency key in the time range (the "
            "first holder outlived its in-progress deadline): a side effect may have happened "
            "twice.",
            sel(names.TOOL_DUPLICATE_EXECUTIONS),
            "tool_duplicate_execution",
        ),
        count_stat(
            "Locks lost",
            "Releases in the time range that found the lock no longer theirs: the TTL expired "
            "under its holder, so two holders were possible.",
            sel(names.LOCKS_LOST),
            "lock_lost",
        ),
        count_stat(
            "State misses",
            "Times in the time range an agent found no history (or tool record) for a session "
            "the index still lists as live: a user forgotten mid-conversation.",
            sel(names.STATE_MISSES),
            "state_misses",
        ),
        count_stat(
            "Rejected connections",
            "Connections Redis refused in the time range because maxclients was reached: agent "
            "instances that could not reach their memory.",
            sel(names.REDIS_REJECTED_CONNECTIONS),
            "rejected_connections",
        ),
        Panel(
            "stat",
            "Pool timeouts",
            "Times in the time range an agent turn gave up waiting for a pooled Redis "
            "connection: user-visible errors (reported by the instances still live; "
            f"{names.AGENT_POOL_TIMEOUTS_REPORTED} is a gauge, see AgentClientPoolTimeouts).",
            "short",
            (Query(f"sum({queries.pool_timeouts_new(RANGE, sel)})", instant=True),),
            width=4,
            height=4,
            watch=("client_pool_timeouts",),
        ),
    )
    memory = (
        Panel(
            "timeseries",
            "Memory used of maxmemory",
            "Redis used memory as a share of maxmemory over time; the lines are the "
            "RedisMemoryHigh warning and critical thresholds.",
            "percentunit",
            (Query(queries.memory_ratio(sel), "{{instance}}"),),
            width=8,
            watch=("memory_used_warning", "memory_used_critical"),
            minimum=0,
        ),
        Panel(
            "timeseries",
            "Memory by key class",
            "Bytes each key profile and class holds across the fleet's Redis (the keyspace "
            "sampler's last full pass; profile none: keys no profile claims): which kind of "
            "agent memory fills maxmemory.",
            "bytes",
            (
                Query(
                    f"sum by ({names.LABEL_PROFILE}, {key_class}) ({sel(names.KEYSPACE_BYTES)})",
                    "{{" + names.LABEL_PROFILE + "}} {{" + key_class + "}}",
                ),
            ),
            width=8,
            watch=("memory_full_forecast",),
            minimum=0,
        ),
        Panel(
            "timeseries",
            "Evictions",
            f"Keys Redis evicts per second: all keys ({names.REDIS_EVICTED_KEYS}) and agent state "
            f"by key class ({names.EVICTED_KEYS}). Evicted history is a forgotten "
            "session; an evicted lock or tool record lets a tool run twice.",
            "cps",
            (
                Query(
                    f"sum by (instance) ({rate(sel(names.REDIS_EVICTED_KEYS))})",
                    "{{instance}} all keys",
                ),
                Query(
                    f"sum by ({names.LABEL_PROFILE}, {key_class}) "
                    f"({rate(sel(names.EVICTED_KEYS))})",
                    "{{" + names.LABEL_PROFILE + "}} {{" + key_class + "}}",
                ),
            ),
            width=8,
            watch=("agent_state_evicted",),
        ),
    )
    clients = (
        Panel(
            "timeseries",
            "Clients of maxclients",
            "Connected clients as a share of maxclients, per instance. Every agent instance "
            "holds a pool of connections: scaling out moves this line.",
            "percentunit",
            (Query(queries.clients_ratio(sel), "{{instance}}"),),
            width=12,
            watch=("clients_warning", "clients_critical"),
            minimum=0,
        ),
        Panel(
            "timeseries",
            "Agent connection pool use across instances",
            "Pool use (in use / max) of the live agent instances at their last heartbeat: "
            "the most used pool, and the median and 90th percentile over instances "
            f"({names.AGENT_POOL_USE_INSTANCES}, a gauge histogram with buckets 0.25 to 1).",
            "percentunit",
            (
                Query(queries.pool_ratio(sel), "max {{instance}}"),
                Query(
                    f"histogram_quantile(0.9, {sel(names.AGENT_POOL_USE_INSTANCES)})",
                    "p90 {{instance}}",
                ),
                Query(
                    f"histogram_quantile(0.5, {sel(names.AGENT_POOL_USE_INSTANCES)})",
                    "p50 {{instance}}",
                ),
            ),
            width=6,
            watch=("client_pool_used",),
            minimum=0,
        ),
        Panel(
            "table",
            "Most used agent pools",
            f"The --top-instances instances with the most used pools ({names.AGENT_POOL_TOP_USE}):"
            " which pod to look at. Its own OpenTelemetry metrics (db_client_connection_*) "
            "show that pod's pool over time.",
            "percentunit",
            (
                Query(
                    f"max by ({names.LABEL_INSTANCE_ID}) ({sel(names.AGENT_POOL_TOP_USE)})",
                    instant=True,
                    table=True,
                ),
            ),
            width=6,
            watch=("client_pool_used",),
            minimum=0,
        ),
    )
    replication = (
        Panel(
            "timeseries",
            "Replica lag",
            "Seconds since each replica last acknowledged replication, as its master reports "
            "it; the lines are the RedisReplicationLagHigh thresholds.",
            "s",
            (
                Query(
                    sel(names.REDIS_SLAVE_LAG_SECONDS),
                    "{{instance}} -> {{"
                    + names.LABEL_SLAVE_IP
                    + "}}:{{"
                    + names.LABEL_SLAVE_PORT
                    + "}}",
                    empty_while_healthy=NO_REPLICA,
                ),
            ),
            width=8,
            watch=("replica_lag_warning", "replica_lag_critical"),
            minimum=0,
        ),
        Panel(
            "timeseries",
            "Replica lag in bytes",
            "Master offset minus each replica's acknowledged offset: the agent state a failover "
            "now would lose.",
            "bytes",
            (
                Query(
                    sel(names.REPLICA_LAG_BYTES),
                    "{{instance}} -> {{"
                    + names.LABEL_SLAVE_IP
                    + "}}:{{"
                    + names.LABEL_SLAVE_PORT
                    + "}}",
                    empty_while_healthy=NO_REPLICA,
                ),
            ),
            width=8,
            watch=("replica_lag_bytes",),
            minimum=0,
        ),
        Panel(
            "timeseries",
            "Durable writes refused",
            "Per operation: writes per second the SDK's durable mode (min_replicas) refused "
            f"because too few replicas acknowledged them in time ({names.STATE_NOT_DURABLE}). "
            "Each one is a turn that failed for its user; the line is the AgentStateNotDurable "
            "threshold (any refusal).",
            "cps",
            (
                Query(
                    f"sum by ({names.LABEL_OP}) ({rate(sel(names.STATE_NOT_DURABLE))})",
                    "{{" + names.LABEL_OP + "}}",
                ),
            ),
            width=8,
            watch=("state_not_durable",),
            minimum=0,
        ),
    )
    coordination = (
        Panel(
            "timeseries",
            "Lock contention",
            "Share of lock acquisitions whose first attempt found the lock held, per lock. "
            "Turns of one session queue behind each other (double submits, load balancer "
            "retries).",
            "percentunit",
            (
                Query(
                    f"sum by ({names.LABEL_LOCK}) ({rate(sel(names.LOCK_CONTENDED))}) / "
                    f"sum by ({names.LABEL_LOCK}) ({rate(sel(names.LOCK_ACQUISITIONS))})",
                    "{{" + names.LABEL_LOCK + "}}",
                ),
            ),
            width=8,
            watch=("lock_contention",),
            minimum=0,
        ),
        Panel(
            "timeseries",
            "Duplicate tool calls",
            "Per tool: calls answered from the record of an earlier run (suppressed "
            "duplicates, retries working as designed) and calls that ran twice (never fine).",
            "cps",
            (
                Query(
                    f"sum by ({tool}) ({rate(sel(names.TOOL_DUPLICATES_SUPPRESSED))})",
                    "{{" + tool + "}} suppressed",
                ),
                Query(
                    f"sum by ({tool}) ({rate(sel(names.TOOL_DUPLICATE_EXECUTIONS))})",
                    "{{" + tool + "}} executed twice",
                ),
            ),
            width=8,
            watch=("tool_duplicate_calls", "tool_duplicate_execution"),
            steps=(Step(OK_COLOR, None),),
        ),
        Panel(
            "timeseries",
            "Instances and queue per ready instance",
            "Ready and not-ready agent instances, and entries of each work queue per ready "
            "instance (the autoscaling signal); the line is the AgentQueueBacklog threshold.",
            "short",
            (
                Query(
                    f"sum by ({state}) ({sel(names.AGENT_INSTANCES)})",
                    "instances {{" + state + "}}",
                ),
                Query(
                    queries.queue_per_ready(sel),
                    "queue {{" + names.LABEL_QUEUE + "}} per ready instance",
                ),
            ),
            width=8,
            watch=("queue_per_ready_instance", "instances_not_ready"),
            steps=steps_from(ctx, ("queue_per_ready_instance",)),
            minimum=0,
        ),
    )
    sessions_and_queues = (
        Panel(
            "timeseries",
            "Active sessions",
            "Sessions with activity within the exporter's --session-window, per Redis (from "
            f"the session index, {names.SESSIONS_ACTIVE}): the conversations whose memory "
            "the fleet holds right now.",
            "short",
            (Query(sel(names.SESSIONS_ACTIVE), "{{instance}}"),),
            width=8,
            minimum=0,
        ),
        Panel(
            "timeseries",
            "Unacknowledged queue entries",
            "Per work queue: stream entries delivered to a worker and not yet acknowledged "
            f"({names.QUEUE_PENDING}), the work in flight. Rising while the queue per ready "
            "instance is flat means workers take entries and do not finish them. Stream queues "
            "only: a list queue has no pending entries.",
            "short",
            (
                Query(
                    f"sum by ({names.LABEL_QUEUE}) ({sel(names.QUEUE_PENDING)})",
                    "{{" + names.LABEL_QUEUE + "}}",
                ),
            ),
            width=8,
            minimum=0,
        ),
        Panel(
            "timeseries",
            "Oldest unacknowledged queue entry",
            "Per work queue: age of the oldest stream entry delivered and not acknowledged "
            f"({names.QUEUE_OLDEST_PENDING}). A line that only climbs is an entry "
            "whose worker died holding it and that nobody reclaims (XAUTOCLAIM). Stream queues "
            "only.",
            "s",
            (
                Query(
                    f"max by ({names.LABEL_QUEUE}) ({sel(names.QUEUE_OLDEST_PENDING)})",
                    "{{" + names.LABEL_QUEUE + "}}",
                ),
            ),
            width=8,
            minimum=0,
        ),
    )
    return DashboardSpec(
        uid=DASHBOARD_OVERVIEW,
        title="memorywatch / Overview",
        description="Is the agent fleet's memory safe right now: Redis, memory, evictions, "
        "clients, replication, locks, tools, instances, sessions and queues.",
        rows=(
            redis_row,
            agents_row,
            memory,
            clients,
            replication,
            coordination,
            sessions_and_queues,
        ),
    )
