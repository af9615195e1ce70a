"""memorywatch-redis: will Redis keep what the agents gave it, and would a failover.

Memory against maxmemory, fragmentation, the eviction policy and evictions, persistence,
replication (lag in seconds and bytes, replica links), write errors, the exporter's own
scrapes, failovers and restarts (which process is the master, uptime, whether a restart
keeps the data), and latency (how busy Redis's one thread is, the slowest commands).
"""

from __future__ import annotations

from memorywatch import names, queries
from memorywatch.alerts.exporter_self import UP
from memorywatch.alerts.memory import FORECAST_WINDOW
from memorywatch.alerts.model import DASHBOARD_REDIS
from memorywatch.alerts.redis_health import WRITE_ERRORS
from memorywatch.dashboards._style import (
    OK_COLOR,
    RATE_INTERVAL,
    Context,
    DashboardSpec,
    Panel,
    Query,
    Step,
    rate,
    sel,
)
from memorywatch.dashboards.overview import NO_REPLICA
from memorywatch.queries import re_match

ONLY_AFTER_FAULT = "Redis reports an error kind from its first occurrence on."
ONLY_ON_REPLICAS = "only replicas report their link to the master; a master has no such series."
OK_MAPPINGS = {"0": ("failing", "red"), "1": ("ok", "green")}
TOP_COMMANDS = 10


def spec(ctx: Context) -> DashboardSpec:
    inst = "{{instance}}"
    replica = inst + " -> {{" + names.LABEL_SLAVE_IP + "}}:{{" + names.LABEL_SLAVE_PORT + "}}"
    stats = (
        Panel(
            "stat",
            "maxmemory",
            "Redis's maxmemory per instance. 0 (red) means no limit: Redis grows until the "
            "kernel OOM-kills it and every session is lost at once.",
            "bytes",
            (Query(sel(names.REDIS_MEMORY_MAX), inst),),
            width=4,
            height=4,
            watch=("maxmemory_not_set",),
            steps=(Step("red", None), Step(OK_COLOR, 1)),
        ),
        Panel(
            "gauge",
            "Memory used of maxmemory",
            "Used memory as a share of maxmemory, per instance, against the RedisMemoryHigh "
            "thresholds.",
            "percentunit",
            (Query(queries.memory_ratio(sel), inst),),
            width=4,
            height=4,
            watch=("memory_used_warning", "memory_used_critical"),
            minimum=0,
            maximum=1,
        ),
        Panel(
            "stat",
            "Fragmentation ratio",
            "RSS divided by used memory. Above the RedisFragmentationHigh threshold a share of "
            "the host's memory holds nothing, and maxmemory does not count it.",
            "none",
            (Query(sel(names.REDIS_MEM_FRAGMENTATION_RATIO), inst),),
            width=4,
            height=4,
            watch=("fragmentation_ratio",),
        ),
        Panel(
            "stat",
            "Eviction tracking",
            "Whether the exporter receives keyspace eviction events. Off means evictions of "
            "agent state go unseen and AgentStateEvicted cannot fire.",
            "none",
            (Query(sel(names.EVICTION_TRACKING), inst),),
            width=4,
            height=4,
            watch=("eviction_tracking_disabled",),
            steps=(Step("orange", None), Step(OK_COLOR, 1)),
            mappings={"0": ("off", "orange"), "1": ("on", "green")},
        ),
        Panel(
            "stat",
            "Persistence",
            "Whether the last RDB save and the last AOF write succeeded. Failing means a "
            "restart loses every turn since the last good save.",
            "none",
            (
                Query(f"min by (instance) ({sel(names.REDIS_RDB_LAST_BGSAVE_STATUS)})", inst + " RDB"),
                Query(f"min by (instance) ({sel(names.REDIS_AOF_LAST_WRITE_STATUS)})", inst + " AOF"),
            ),
            width=4,
            height=4,
            watch=("persistence_failing",),
            steps=(Step("red", None), Step(OK_COLOR, 1)),
            mappings=OK_MAPPINGS,
        ),
        Panel(
            "stat",
            "Connected replicas",
            "Replicas connected to each master. Fewer than an hour ago means one failure away "
            "from no failover target.",
            "short",
            (Query(sel(names.REDIS_CONNECTED_SLAVES), inst),),
            width=4,
            height=4,
            watch=("replica_missing",),
            steps=(Step(OK_COLOR, None),),
        ),
    )  # fmt: skip
    info = (
        Panel(
            "table",
            "Instances",
            "Role, version, mode and maxmemory-policy of every Redis. Any policy but "
            "noeviction evicts keys at maxmemory, and every volatile-* policy evicts the TTL "
            "keys (locks, tool records) first.",
            "none",
            (Query(sel(names.REDIS_INSTANCE_INFO), instant=True, table=True),),
            width=24,
            height=5,
            watch=("eviction_policy_unsafe",),
            steps=(Step(OK_COLOR, None),),
            hide_columns=("Time", "Value", "__name__", "job"),
        ),
    )
    memory = (
        Panel(
            "timeseries",
            "Memory",
            "Used, resident (RSS), peak and maximum memory per instance, in bytes.",
            "bytes",
            (
                Query(sel(names.REDIS_MEMORY_USED), inst + " used"),
                Query(sel(names.REDIS_MEMORY_RSS), inst + " RSS"),
                Query(sel(names.REDIS_MEMORY_PEAK), inst + " peak"),
                Query(sel(names.REDIS_MEMORY_MAX), inst + " maxmemory"),
            ),
            width=12,
            watch=("memory_used_warning", "memory_used_critical"),
            steps=(Step(OK_COLOR, None),),
            minimum=0,
        ),
        Panel(
            "timeseries",
            "Memory used of maxmemory",
            "Used memory as a share of maxmemory; the lines are the RedisMemoryHigh warning "
            "and critical thresholds.",
            "percentunit",
            (Query(queries.memory_ratio(sel), inst),),
            width=12,
            watch=("memory_used_warning", "memory_used_critical"),
            minimum=0,
        ),
    )
    by_class = "{{" + names.LABEL_PROFILE + "}} {{" + names.LABEL_KEY_CLASS + "}}"
    horizon = int(ctx.t("memory_full_forecast").number())
    used = sel(names.REDIS_MEMORY_USED)
    growth = (
        Panel(
            "timeseries",
            "Memory forecast",
            f"Used memory, its linear forecast {ctx.t('memory_full_forecast').human_value()} "
            "ahead from the last 6 h (predict_linear) and maxmemory. RedisMemoryFullSoon fires "
            "when the forecast stays above maxmemory for its for duration.",
            "bytes",
            (
                Query(used, inst + " used"),
                Query(f"predict_linear({used}[{FORECAST_WINDOW}], {horizon})", inst + " forecast"),
                Query(sel(names.REDIS_MEMORY_MAX), inst + " maxmemory"),
            ),
            width=12,
            watch=("memory_full_forecast",),
            steps=(Step(OK_COLOR, None),),
            minimum=0,
        ),
        Panel(
            "timeseries",
            "Memory by key class",
            "Bytes each key profile and class holds (MEMORY USAGE over the keyspace sampler's "
            "last full pass; profile none: keys no profile claims). Which memory fills "
            "maxmemory, and whether it is the kind that should expire.",
            "bytes",
            (Query(queries.memory_by_class(sel), by_class),),
            width=12,
            watch=("memory_full_forecast", "records_without_ttl"),
            steps=(Step(OK_COLOR, None),),
            minimum=0,
        ),
    )
    keys = (
        Panel(
            "timeseries",
            "Fragmentation",
            "Memory fragmentation ratio (RSS / used) and the allocator's own fragmentation "
            "ratio; the line is the RedisFragmentationHigh threshold.",
            "none",
            (
                Query(sel(names.REDIS_MEM_FRAGMENTATION_RATIO), inst + " RSS / used"),
                Query(sel(names.REDIS_ALLOCATOR_FRAG_RATIO), inst + " allocator"),
            ),
            width=8,
            watch=("fragmentation_ratio",),
        ),
        Panel(
            "timeseries",
            "Keys",
            "Keys per instance and how many of them carry a TTL (the only ones volatile-* "
            "policies may evict).",
            "short",
            (
                Query(f"sum by (instance) ({sel(names.REDIS_DB_KEYS)})", inst + " keys"),
                Query(f"sum by (instance) ({sel(names.REDIS_DB_KEYS_EXPIRING)})", inst + " with TTL"),
            ),
            width=8,
            minimum=0,
        ),
        Panel(
            "timeseries",
            "Evicted and expired keys",
            "Keys per second Redis evicted (memory pressure) and expired (TTL), and the "
            "evicted agent state by key class.",
            "cps",
            (
                Query(f"sum by (instance) ({rate(sel(names.REDIS_EVICTED_KEYS))})", inst + " evicted"),
                Query(f"sum by (instance) ({rate(sel(names.REDIS_EXPIRED_KEYS))})", inst + " expired"),
                Query(f"sum by ({names.LABEL_KEY_CLASS}) ({rate(sel(names.EVICTED_KEYS))})",
                      "evicted {{" + names.LABEL_KEY_CLASS + "}}"),
            ),
            width=8,
            watch=("agent_state_evicted",),
            steps=(Step(OK_COLOR, None),),
            minimum=0,
        ),
    )  # fmt: skip
    replication = (
        Panel(
            "timeseries",
            "Replica lag",
            "Seconds since each replica last acknowledged replication; the lines are the "
            "RedisReplicationLagHigh thresholds.",
            "s",
            (Query(sel(names.REDIS_SLAVE_LAG_SECONDS), replica, empty_while_healthy=NO_REPLICA),),
            width=8,
            watch=("replica_lag_warning", "replica_lag_critical"),
            minimum=0,
        ),
        Panel(
            "timeseries",
            "Replica lag in bytes",
            "Master offset minus each replica's acknowledged offset: what a failover now would "
            "lose. Past repl-backlog-size a reconnect needs a full resync.",
            "bytes",
            (Query(sel(names.REPLICA_LAG_BYTES), replica, empty_while_healthy=NO_REPLICA),),
            width=8,
            watch=("replica_lag_bytes",),
            minimum=0,
        ),
        Panel(
            "timeseries",
            "Replica link",
            "On replicas: whether the link to the master is up (1) and seconds since the last "
            "I/O on it.",
            "none",
            (
                Query(sel(names.REDIS_MASTER_LINK_UP), inst + " link up",
                      empty_while_healthy=ONLY_ON_REPLICAS),
                Query(sel(names.REDIS_MASTER_LAST_IO), inst + " seconds since last I/O",
                      empty_while_healthy=ONLY_ON_REPLICAS),
            ),
            width=8,
            watch=("replication_link_down",),
            steps=(Step(OK_COLOR, None),),
            minimum=0,
        ),
    )  # fmt: skip
    operations = (
        Panel(
            "timeseries",
            "Write errors",
            "Commands per second Redis answered with OOM (maxmemory reached under "
            "noeviction), READONLY (a replica) or MISCONF (failed persistence): lost agent "
            "writes.",
            "ops",
            (
                Query(f"sum by (instance, {names.LABEL_ERR}) "
                      f"({rate(sel(names.REDIS_ERRORS, re_match(names.LABEL_ERR, WRITE_ERRORS)))})",
                      inst + " {{" + names.LABEL_ERR + "}}", empty_while_healthy=ONLY_AFTER_FAULT),
            ),
            width=8,
            watch=("write_errors",),
            steps=(Step(OK_COLOR, None),),
        ),
        Panel(
            "timeseries",
            "Top commands",
            f"The {TOP_COMMANDS} commands Redis runs most per second (EVALSHA is the agents' "
            "state scripts).",
            "ops",
            (Query(f"topk({TOP_COMMANDS}, sum by ({names.LABEL_CMD}) "
                   f"({rate(sel(names.REDIS_COMMANDS))}))", "{{" + names.LABEL_CMD + "}}"),),
            width=8,
            minimum=0,
        ),
        Panel(
            "timeseries",
            "Exporter",
            "Whether Prometheus reaches the memorywatch exporter (up) and its failed scrapes of "
            "Redis per second by reason (auth, connection, timeout, ...).",
            "short",
            (
                Query(sel(UP), inst + " up"),
                Query(f"sum by (instance, {names.LABEL_REASON}) ({rate(sel(names.SCRAPE_ERRORS))})",
                      inst + " {{" + names.LABEL_REASON + "}}"),
            ),
            width=8,
            watch=("exporter_down", "exporter_scrape_errors"),
            steps=(Step(OK_COLOR, None),),
            minimum=0,
        ),
    )  # fmt: skip
    node = inst + " {{" + names.LABEL_NODE + "}}"
    restart_window = ctx.t("restarted_without_persistence_window")
    failover = (
        Panel(
            "timeseries",
            "Master processes",
            "One line per master process (node and run_id). A line that starts within the "
            "range is a new master: a failover promoted a replica, a replica was detached "
            "(REPLICAOF NO ONE) or the master restarted; RedisMasterChanged fires for "
            f"{ctx.t('master_changed_window').human_value()} after it. Two lines at once for "
            "one group are two masters.",
            "short",
            (Query(f"max by (instance, {names.LABEL_NODE}, {names.LABEL_RUN_ID}) "
                   f"({queries.masters(sel)})",
                   node + " {{" + names.LABEL_RUN_ID + "}}"),),
            width=8,
            watch=("master_changed", "master_changed_window"),
            steps=(Step(OK_COLOR, None),),
            minimum=0,
        ),
        Panel(
            "timeseries",
            "Uptime",
            "Seconds since each Redis process started. A drop is a restart; below the line "
            "(the RedisRestartedWithoutPersistence window) on a master without RDB or AOF, "
            "that restart emptied it.",
            "s",
            (Query(sel(names.REDIS_UPTIME), node),),
            width=8,
            watch=("restarted_without_persistence", "restarted_without_persistence_window"),
            steps=(Step("red", None), Step(OK_COLOR, restart_window.number())),
            minimum=0,
        ),
        Panel(
            "stat",
            "Restart keeps the data",
            "Per node: whether RDB snapshots are configured (CONFIG save) and whether AOF is "
            "on. With both off a restart starts the node empty. No data for RDB: CONFIG is "
            "renamed or not allowed for the exporter.",
            "none",
            (
                Query(sel(names.RDB_SAVE_CONFIGURED), node + " RDB"),
                Query(sel(names.REDIS_AOF_ENABLED), node + " AOF"),
            ),
            width=8,
            watch=("restarted_without_persistence",),
            steps=(Step("orange", None), Step(OK_COLOR, 1)),
            mappings={"0": ("off", "orange"), "1": ("on", "green")},
        ),
    )  # fmt: skip
    latency = (
        Panel(
            "timeseries",
            "Redis busy (share of time in commands)",
            "Seconds per second Redis's one thread spent running commands (INFO "
            "commandstats; EXEC left out, its commands count themselves). Above the line "
            "(RedisBusy) every agent command waits behind others; near 1 Redis does nothing "
            "else. Commands run by scripts count twice, within the script and as themselves.",
            "percentunit",
            (Query(queries.redis_busy(RATE_INTERVAL, sel), node),),
            width=12,
            watch=("redis_busy",),
            minimum=0,
        ),
        Panel(
            "timeseries",
            "Slowest commands (mean seconds per call)",
            f"The {TOP_COMMANDS} commands with the highest mean duration per call. While one "
            "runs Redis serves no other client; above the line (RedisSlowCommands) look for "
            "KEYS, a DEL of a big key, a heavy script. Time blocked waiting (BLPOP, "
            "XREADGROUP BLOCK) is not counted.",
            "s",
            (Query(f"topk({TOP_COMMANDS}, {queries.command_mean_seconds(RATE_INTERVAL, sel)})",
                   node + " {{" + names.LABEL_CMD + "}}"),),
            width=12,
            watch=("slow_command_seconds",),
            minimum=0,
        ),
    )  # fmt: skip
    return DashboardSpec(
        uid=DASHBOARD_REDIS,
        title="memorywatch / Redis memory and replication",
        description="Memory, eviction, persistence, replication and latency of the Redis "
        "that holds the agent fleet's memory.",
        rows=(stats, info, memory, growth, keys, replication, operations, failover, latency),
    )
