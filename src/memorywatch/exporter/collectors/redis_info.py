"""Redis health families from one node's INFO ALL, CONFIG GET and SLOWLOG replies.

Names, types and labels follow redis_exporter 1.45 so existing dashboards keep working;
`memorywatch_replica_lag_bytes` and `memorywatch_rdb_save_configured` are ours. Pure
functions: the I/O is in `scrape.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from memorywatch import names
from memorywatch.exporter.caches import remember
from memorywatch.exporter.exposition import Families, format_value, label_text


@dataclass(frozen=True)
class Snapshot:
    """What one pipelined round trip to a node returned."""

    info: Mapping[str, Any]
    config: Mapping[str, str] = field(default_factory=dict)
    slowlog_len: int | None = None
    slowlog_last: tuple[int, float] | None = None  # (id, duration in seconds)
    cluster_info: Mapping[str, Any] | None = None


def _ok(value: Any) -> float:
    return 1.0 if value == "ok" else 0.0


def _usec(value: Any) -> float:
    return float(value) / 1e6


# INFO field -> (metric name, type, help, conversion). Fields absent from a Redis version
# are skipped, so one table serves Redis 6 and 7.
Conversion = Callable[[Any], float] | None
FIELDS: dict[str, tuple[str, str, str, Conversion]] = {
    # Server
    "uptime_in_seconds": (names.REDIS_UPTIME, "gauge", "Seconds since the server started.", None),
    "process_id": (names.REDIS_PROCESS_ID, "gauge", "Process id of the server.", None),
    "io_threads_active": (
        names.REDIS_IO_THREADS_ACTIVE,
        "gauge",
        "Whether I/O threads are active.",
        None,
    ),
    # Clients
    "connected_clients": (
        names.REDIS_CONNECTED_CLIENTS,
        "gauge",
        "Client connections, replicas excluded.",
        None,
    ),
    "cluster_connections": (
        names.REDIS_CLUSTER_CONNECTIONS,
        "gauge",
        "Sockets used by the cluster bus.",
        None,
    ),
    "client_recent_max_input_buffer": (
        names.REDIS_CLIENT_RECENT_MAX_INPUT_BUFFER_BYTES,
        "gauge",
        "Largest recent client input buffer.",
        None,
    ),
    "client_recent_max_output_buffer": (
        names.REDIS_CLIENT_RECENT_MAX_OUTPUT_BUFFER_BYTES,
        "gauge",
        "Largest recent client output buffer.",
        None,
    ),
    "blocked_clients": (
        names.REDIS_BLOCKED_CLIENTS,
        "gauge",
        "Clients blocked in a blocking call.",
        None,
    ),
    "tracking_clients": (names.REDIS_TRACKING_CLIENTS, "gauge", "Clients being tracked.", None),
    "clients_in_timeout_table": (
        names.REDIS_CLIENTS_IN_TIMEOUT_TABLE,
        "gauge",
        "Clients in the timeout table.",
        None,
    ),
    # Memory
    "used_memory": (
        names.REDIS_MEMORY_USED,
        "gauge",
        "Bytes allocated by Redis (what maxmemory compares against).",
        None,
    ),
    "used_memory_rss": (
        names.REDIS_MEMORY_RSS,
        "gauge",
        "Resident set size of the server process.",
        None,
    ),
    "used_memory_peak": (names.REDIS_MEMORY_PEAK, "gauge", "Peak of used_memory.", None),
    "used_memory_overhead": (
        names.REDIS_MEMORY_USED_OVERHEAD_BYTES,
        "gauge",
        "Memory used for internal structures.",
        None,
    ),
    "used_memory_startup": (
        names.REDIS_MEMORY_USED_STARTUP_BYTES,
        "gauge",
        "Memory used at startup.",
        None,
    ),
    "used_memory_dataset": (
        names.REDIS_MEMORY_USED_DATASET_BYTES,
        "gauge",
        "Memory used by the dataset.",
        None,
    ),
    "used_memory_lua": (
        names.REDIS_MEMORY_USED_LUA_BYTES,
        "gauge",
        "Memory used by the Lua engine.",
        None,
    ),
    "used_memory_scripts": (
        names.REDIS_MEMORY_USED_SCRIPTS_BYTES,
        "gauge",
        "Memory used by cached scripts.",
        None,
    ),
    "number_of_cached_scripts": (
        names.REDIS_NUMBER_OF_CACHED_SCRIPTS,
        "gauge",
        "Cached Lua scripts.",
        None,
    ),
    "maxmemory": (names.REDIS_MEMORY_MAX, "gauge", "The maxmemory setting (0 = unlimited).", None),
    "total_system_memory": (names.REDIS_TOTAL_SYSTEM_MEMORY, "gauge", "Memory of the host.", None),
    "allocator_allocated": (
        names.REDIS_ALLOCATOR_ALLOCATED_BYTES,
        "gauge",
        "Bytes allocated by the allocator.",
        None,
    ),
    "allocator_active": (
        names.REDIS_ALLOCATOR_ACTIVE_BYTES,
        "gauge",
        "Bytes in the allocator's active pages.",
        None,
    ),
    "allocator_resident": (
        names.REDIS_ALLOCATOR_RESIDENT_BYTES,
        "gauge",
        "Bytes resident in the allocator.",
        None,
    ),
    "allocator_frag_ratio": (
        names.REDIS_ALLOCATOR_FRAG_RATIO,
        "gauge",
        "Allocator fragmentation ratio.",
        None,
    ),
    "allocator_frag_bytes": (
        names.REDIS_ALLOCATOR_FRAG_BYTES,
        "gauge",
        "Allocator fragmentation in bytes.",
        None,
    ),
    "allocator_rss_ratio": (
        names.REDIS_ALLOCATOR_RSS_RATIO,
        "gauge",
        "Allocator resident / active ratio.",
        None,
    ),
    "allocator_rss_bytes": (
        names.REDIS_ALLOCATOR_RSS_BYTES,
        "gauge",
        "Allocator resident minus active bytes.",
        None,
    ),
    "mem_fragmentation_ratio": (
        names.REDIS_MEM_FRAGMENTATION_RATIO,
        "gauge",
        "used_memory_rss / used_memory.",
        None,
    ),
    "mem_fragmentation_bytes": (
        names.REDIS_MEM_FRAGMENTATION_BYTES,
        "gauge",
        "used_memory_rss - used_memory.",
        None,
    ),
    "mem_not_counted_for_evict": (
        names.REDIS_MEM_NOT_COUNTED_FOR_EVICTION_BYTES,
        "gauge",
        "Memory not counted for maxmemory (replication and AOF buffers).",
        None,
    ),
    "mem_clients_slaves": (
        names.REDIS_MEM_CLIENTS_SLAVES,
        "gauge",
        "Memory used by replica clients.",
        None,
    ),
    "mem_clients_normal": (
        names.REDIS_MEM_CLIENTS_NORMAL,
        "gauge",
        "Memory used by normal clients.",
        None,
    ),
    "active_defrag_running": (
        names.REDIS_ACTIVE_DEFRAG_RUNNING,
        "gauge",
        "Whether active defragmentation runs.",
        None,
    ),
    "lazyfree_pending_objects": (
        names.REDIS_LAZYFREE_PENDING_OBJECTS,
        "gauge",
        "Objects waiting to be freed.",
        None,
    ),
    # Persistence
    "loading": (names.REDIS_LOADING, "gauge", "1 while the server loads its dump file.", None),
    "rdb_changes_since_last_save": (
        names.REDIS_RDB_CHANGES_SINCE_SAVE,
        "gauge",
        "Changes since the last RDB save.",
        None,
    ),
    "rdb_bgsave_in_progress": (
        names.REDIS_RDB_BGSAVE_IN_PROGRESS,
        "gauge",
        "1 while an RDB save runs.",
        None,
    ),
    "rdb_last_save_time": (
        names.REDIS_RDB_LAST_SAVE,
        "gauge",
        "Unix time of the last successful RDB save.",
        None,
    ),
    "rdb_last_bgsave_status": (
        names.REDIS_RDB_LAST_BGSAVE_STATUS,
        "gauge",
        "1 if the last RDB save succeeded.",
        _ok,
    ),
    "rdb_last_bgsave_time_sec": (
        names.REDIS_RDB_LAST_BGSAVE_DURATION_SEC,
        "gauge",
        "Duration of the last RDB save.",
        None,
    ),
    "rdb_current_bgsave_time_sec": (
        names.REDIS_RDB_CURRENT_BGSAVE_DURATION_SEC,
        "gauge",
        "Duration of the running RDB save.",
        None,
    ),
    "rdb_last_cow_size": (
        names.REDIS_RDB_LAST_COW_SIZE_BYTES,
        "gauge",
        "Copy-on-write bytes of the last RDB save.",
        None,
    ),
    "aof_enabled": (names.REDIS_AOF_ENABLED, "gauge", "1 if the append-only file is on.", None),
    "aof_rewrite_in_progress": (
        names.REDIS_AOF_REWRITE_IN_PROGRESS,
        "gauge",
        "1 while an AOF rewrite runs.",
        None,
    ),
    "aof_rewrite_scheduled": (
        names.REDIS_AOF_REWRITE_SCHEDULED,
        "gauge",
        "1 if an AOF rewrite is scheduled.",
        None,
    ),
    "aof_last_rewrite_time_sec": (
        names.REDIS_AOF_LAST_REWRITE_DURATION_SEC,
        "gauge",
        "Duration of the last AOF rewrite.",
        None,
    ),
    "aof_current_rewrite_time_sec": (
        names.REDIS_AOF_CURRENT_REWRITE_DURATION_SEC,
        "gauge",
        "Duration of the running AOF rewrite.",
        None,
    ),
    "aof_last_bgrewrite_status": (
        names.REDIS_AOF_LAST_BGREWRITE_STATUS,
        "gauge",
        "1 if the last AOF rewrite succeeded.",
        _ok,
    ),
    "aof_last_write_status": (
        names.REDIS_AOF_LAST_WRITE_STATUS,
        "gauge",
        "1 if the last AOF write succeeded.",
        _ok,
    ),
    "aof_last_cow_size": (
        names.REDIS_AOF_LAST_COW_SIZE_BYTES,
        "gauge",
        "Copy-on-write bytes of the last AOF rewrite.",
        None,
    ),
    "module_fork_in_progress": (
        names.REDIS_MODULE_FORK_IN_PROGRESS,
        "gauge",
        "1 while a module fork runs.",
        None,
    ),
    "module_fork_last_cow_size": (
        names.REDIS_MODULE_FORK_LAST_COW_SIZE,
        "gauge",
        "Copy-on-write bytes of the last module fork.",
        None,
    ),
    # Stats
    "total_connections_received": (
        names.REDIS_CONNECTIONS_RECEIVED,
        "counter",
        "Connections accepted.",
        None,
    ),
    "total_commands_processed": (
        names.REDIS_COMMANDS_PROCESSED_TOTAL,
        "counter",
        "Commands processed.",
        None,
    ),
    "total_net_input_bytes": (
        names.REDIS_NET_INPUT_BYTES_TOTAL,
        "counter",
        "Bytes read from the network.",
        None,
    ),
    "total_net_output_bytes": (
        names.REDIS_NET_OUTPUT_BYTES_TOTAL,
        "counter",
        "Bytes written to the network.",
        None,
    ),
    "rejected_connections": (
        names.REDIS_REJECTED_CONNECTIONS,
        "counter",
        "Connections refused because of maxclients.",
        None,
    ),
    "sync_full": (names.REDIS_REPLICA_RESYNCS_FULL, "gauge", "Full resyncs with replicas.", None),
    "sync_partial_ok": (
        names.REDIS_REPLICA_PARTIAL_RESYNC_ACCEPTED,
        "gauge",
        "Accepted partial resyncs.",
        None,
    ),
    "sync_partial_err": (
        names.REDIS_REPLICA_PARTIAL_RESYNC_DENIED,
        "gauge",
        "Denied partial resyncs.",
        None,
    ),
    "expired_keys": (
        names.REDIS_EXPIRED_KEYS,
        "counter",
        "Keys removed because their TTL ran out.",
        None,
    ),
    "expired_stale_perc": (
        names.REDIS_EXPIRED_STALE_PERCENTAGE,
        "gauge",
        "Estimated share of expired keys not yet reclaimed.",
        None,
    ),
    "expired_time_cap_reached_count": (
        names.REDIS_EXPIRED_TIME_CAP_REACHED_TOTAL,
        "gauge",
        "Times the active expire cycle hit its time cap.",
        None,
    ),
    "evicted_keys": (
        names.REDIS_EVICTED_KEYS,
        "counter",
        "Keys evicted because of maxmemory.",
        None,
    ),
    "keyspace_hits": (names.REDIS_KEYSPACE_HITS, "counter", "Successful key lookups.", None),
    "keyspace_misses": (names.REDIS_KEYSPACE_MISSES, "counter", "Failed key lookups.", None),
    "pubsub_channels": (
        names.REDIS_PUBSUB_CHANNELS,
        "gauge",
        "Pub/sub channels with subscribers.",
        None,
    ),
    "pubsub_patterns": (
        names.REDIS_PUBSUB_PATTERNS,
        "gauge",
        "Pub/sub pattern subscriptions.",
        None,
    ),
    "latest_fork_usec": (
        names.REDIS_LATEST_FORK_SECONDS,
        "gauge",
        "Duration of the latest fork.",
        _usec,
    ),
    "migrate_cached_sockets": (
        names.REDIS_MIGRATE_CACHED_SOCKETS_TOTAL,
        "gauge",
        "Sockets open for MIGRATE.",
        None,
    ),
    "slave_expires_tracked_keys": (
        names.REDIS_SLAVE_EXPIRES_TRACKED_KEYS,
        "gauge",
        "Keys with a TTL tracked on a writable replica.",
        None,
    ),
    "active_defrag_hits": (
        names.REDIS_DEFRAG_HITS,
        "gauge",
        "Values moved by active defragmentation.",
        None,
    ),
    "active_defrag_misses": (
        names.REDIS_DEFRAG_MISSES,
        "gauge",
        "Values skipped by active defragmentation.",
        None,
    ),
    "active_defrag_key_hits": (names.REDIS_DEFRAG_KEY_HITS, "gauge", "Keys defragmented.", None),
    "active_defrag_key_misses": (
        names.REDIS_DEFRAG_KEY_MISSES,
        "gauge",
        "Keys skipped by defragmentation.",
        None,
    ),
    "tracking_total_keys": (
        names.REDIS_TRACKING_TOTAL_KEYS,
        "gauge",
        "Keys tracked for client-side caching.",
        None,
    ),
    "tracking_total_items": (
        names.REDIS_TRACKING_TOTAL_ITEMS,
        "gauge",
        "Items tracked for client-side caching.",
        None,
    ),
    "tracking_total_prefixes": (
        names.REDIS_TRACKING_TOTAL_PREFIXES,
        "gauge",
        "Prefixes tracked for client-side caching.",
        None,
    ),
    "unexpected_error_replies": (
        names.REDIS_UNEXPECTED_ERROR_REPLIES,
        "counter",
        "Unexpected error replies (AOF load, replication).",
        None,
    ),
    "total_error_replies": (
        names.REDIS_TOTAL_ERROR_REPLIES,
        "counter",
        "Error replies sent.",
        None,
    ),
    "dump_payload_sanitizations": (
        names.REDIS_DUMP_PAYLOAD_SANITIZATIONS,
        "counter",
        "Deep sanitizations of RESTORE payloads.",
        None,
    ),
    "total_reads_processed": (
        names.REDIS_TOTAL_READS_PROCESSED,
        "counter",
        "Read events processed.",
        None,
    ),
    "total_writes_processed": (
        names.REDIS_TOTAL_WRITES_PROCESSED,
        "counter",
        "Write events processed.",
        None,
    ),
    "io_threaded_reads_processed": (
        names.REDIS_IO_THREADED_READS_PROCESSED,
        "counter",
        "Reads handled by I/O threads.",
        None,
    ),
    "io_threaded_writes_processed": (
        names.REDIS_IO_THREADED_WRITES_PROCESSED,
        "counter",
        "Writes handled by I/O threads.",
        None,
    ),
    # Replication
    "connected_slaves": (names.REDIS_CONNECTED_SLAVES, "gauge", "Connected replicas.", None),
    "master_repl_offset": (
        names.REDIS_MASTER_REPL_OFFSET,
        "gauge",
        "Replication offset of this server.",
        None,
    ),
    "second_repl_offset": (
        names.REDIS_SECOND_REPL_OFFSET,
        "gauge",
        "Offset up to which replication ids are accepted.",
        None,
    ),
    "repl_backlog_active": (
        names.REDIS_REPL_BACKLOG_IS_ACTIVE,
        "gauge",
        "1 if the replication backlog is active.",
        None,
    ),
    "repl_backlog_size": (
        names.REDIS_REPLICATION_BACKLOG_BYTES,
        "gauge",
        "Size of the replication backlog.",
        None,
    ),
    "repl_backlog_first_byte_offset": (
        names.REDIS_REPL_BACKLOG_FIRST_BYTE_OFFSET,
        "gauge",
        "First offset held in the backlog.",
        None,
    ),
    "repl_backlog_histlen": (
        names.REDIS_REPL_BACKLOG_HISTORY_BYTES,
        "gauge",
        "Bytes of data in the backlog.",
        None,
    ),
    "slave_priority": (names.REDIS_SLAVE_PRIORITY, "gauge", "Replica priority for failover.", None),
    # CPU
    "used_cpu_sys": (
        names.REDIS_CPU_SYS_SECONDS_TOTAL,
        "counter",
        "System CPU used by the server.",
        None,
    ),
    "used_cpu_user": (
        names.REDIS_CPU_USER_SECONDS_TOTAL,
        "counter",
        "User CPU used by the server.",
        None,
    ),
    "used_cpu_sys_children": (
        names.REDIS_CPU_SYS_CHILDREN_SECONDS_TOTAL,
        "counter",
        "System CPU used by children.",
        None,
    ),
    "used_cpu_user_children": (
        names.REDIS_CPU_USER_CHILDREN_SECONDS_TOTAL,
        "counter",
        "User CPU used by children.",
        None,
    ),
    "used_cpu_sys_main_thread": (
        names.REDIS_CPU_SYS_MAIN_THREAD_SECONDS_TOTAL,
        "counter",
        "System CPU of the main thread.",
        None,
    ),
    "used_cpu_user_main_thread": (
        names.REDIS_CPU_USER_MAIN_THREAD_SECONDS_TOTAL,
        "counter",
        "User CPU of the main thread.",
        None,
    ),
    # Cluster
    "cluster_enabled": (names.REDIS_CLUSTER_ENABLED, "gauge", "1 if cluster mode is on.", None),
}


CLUSTER_FIELDS: dict[str, tuple[str, str]] = {
    "cluster_slots_assigned": (names.REDIS_CLUSTER_SLOTS_ASSIGNED, "Slots assigned to a node."),
    "cluster_slots_ok": (names.REDIS_CLUSTER_SLOTS_OK, "Slots in state ok."),
    "cluster_slots_pfail": (
        names.REDIS_CLUSTER_SLOTS_PFAIL,
        "Slots whose node is possibly failing.",
    ),
    "cluster_slots_fail": (names.REDIS_CLUSTER_SLOTS_FAIL, "Slots whose node is failing."),
    "cluster_known_nodes": (names.REDIS_CLUSTER_KNOWN_NODES, "Nodes known to this node."),
    "cluster_size": (names.REDIS_CLUSTER_SIZE, "Master nodes serving at least one slot."),
    "cluster_current_epoch": (names.REDIS_CLUSTER_CURRENT_EPOCH, "The cluster's current epoch."),
    "cluster_my_epoch": (names.REDIS_CLUSTER_MY_EPOCH, "This node's config epoch."),
}


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


_FIELD_ROWS: Final = tuple((field, *spec) for field, spec in FIELDS.items())


def add_node_families(snap: Snapshot, out: Families) -> None:
    """Every family one node yields, added to `out`."""
    info = snap.info
    get = info.get
    add_text = out.add_text
    for field_name, name, kind, help_text, convert in _FIELD_ROWS:
        raw = get(field_name)
        if raw is None:
            continue
        if convert is None and type(raw) is str and raw.isdigit():
            add_text(name, help_text, kind, raw)  # most fields: integer text as it is
            continue
        value = convert(raw) if convert else _number(raw)
        if value is not None:
            out.add(name, help_text, kind, value)

    if "server_time_usec" in info and "uptime_in_seconds" in info:
        start = int(info["server_time_usec"]) / 1e6 - float(info["uptime_in_seconds"])
        out.gauge(names.REDIS_START_TIME, "Unix time the server started.", round(start))

    out.gauge(
        names.REDIS_INSTANCE_INFO,
        "Information about the Redis instance.",
        1,
        {label: str(info.get(label, "")) for label in names.INSTANCE_INFO_LABELS},
    )
    _add_config(snap.config, out)
    _add_slowlog(snap, out)
    _add_replication(info, out)
    _add_keyspace(info, snap.config, out)
    _add_commandstats(info, out)
    if snap.cluster_info:
        _add_cluster(snap.cluster_info, out)


def _add_config(config: Mapping[str, str], out: Families) -> None:
    for key, name, help_text in (
        ("maxclients", names.REDIS_CONFIG_MAXCLIENTS, "The maxclients setting."),
        ("maxmemory", names.REDIS_CONFIG_MAXMEMORY, "The maxmemory setting."),
        ("io-threads", names.REDIS_CONFIG_IO_THREADS, "The io-threads setting."),
    ):
        value = _number(config.get(key))
        if value is not None:
            out.gauge(name, help_text, value)
    if "save" in config:  # "" is `save ""`: no snapshots; a missing key is no CONFIG at all
        out.gauge(
            names.RDB_SAVE_CONFIGURED,
            "1 if RDB snapshots are configured (CONFIG save has a save point).",
            float(bool(config["save"].split())),
        )


def _add_slowlog(snap: Snapshot, out: Families) -> None:
    if snap.slowlog_len is not None:
        out.gauge(names.REDIS_SLOWLOG_LENGTH, "Entries in the slow log.", snap.slowlog_len)
    if snap.slowlog_last is not None:
        last_id, duration = snap.slowlog_last
        out.gauge(names.REDIS_SLOWLOG_LAST_ID, "Id of the newest slow log entry.", last_id)
        out.gauge(
            names.REDIS_LAST_SLOW_EXECUTION, "Duration of the newest slow log entry.", duration
        )


def _add_replication(info: Mapping[str, Any], out: Families) -> None:
    master_offset = _number(info.get("master_repl_offset"))
    for index in range(int(_number(info.get("connected_slaves")) or 0)):
        replica = info.get(f"slave{index}")
        if not isinstance(replica, Mapping):
            continue
        ip, port = str(replica.get("ip", "")), str(replica.get("port", ""))
        labels = {
            names.LABEL_SLAVE_IP: ip,
            names.LABEL_SLAVE_PORT: port,
            names.LABEL_SLAVE_STATE: str(replica.get("state", "")),
        }
        offset = _number(replica.get("offset")) or 0.0
        out.gauge(
            names.REDIS_SLAVE_OFFSET, "Replication offset the replica acknowledged.", offset, labels
        )
        out.gauge(
            names.REDIS_SLAVE_LAG_SECONDS,
            "Seconds since the replica's last acknowledgement.",
            _number(replica.get("lag")) or 0.0,
            labels,
        )
        if master_offset is not None:
            out.gauge(
                names.REPLICA_LAG_BYTES,
                "Bytes of the replication stream the replica has not acknowledged: "
                "what a failover now would lose.",
                max(master_offset - offset, 0.0),
                {names.LABEL_SLAVE_IP: ip, names.LABEL_SLAVE_PORT: port},
            )

    if info.get("role") != "slave":
        return
    master = {
        names.LABEL_MASTER_HOST: str(info.get("master_host", "")),
        names.LABEL_MASTER_PORT: str(info.get("master_port", "")),
    }
    link_up = info.get("master_link_status") == "up"
    out.gauge(
        names.REDIS_MASTER_LINK_UP, "1 if the link to the master is up.", float(link_up), master
    )
    out.gauge(
        names.REDIS_MASTER_LAST_IO,
        "Seconds since the last interaction with the master.",
        _number(info.get("master_last_io_seconds_ago")) or 0.0,
        master,
    )
    out.gauge(
        names.REDIS_MASTER_SYNC_IN_PROGRESS,
        "1 while the replica syncs with the master.",
        _number(info.get("master_sync_in_progress")) or 0.0,
        master,
    )
    if "master_link_down_since_seconds" in info:
        out.gauge(
            names.REDIS_MASTER_LINK_DOWN_SINCE,
            "Seconds the link to the master has been down.",
            _number(info["master_link_down_since_seconds"]) or 0.0,
            master,
        )
    out.gauge(
        names.REDIS_SLAVE_REPL_OFFSET,
        "Replication offset the replica has processed.",
        _number(info.get("slave_repl_offset")) or 0.0,
        master,
    )
    out.gauge(
        names.REDIS_SLAVE_INFO,
        "Information about the replica.",
        1,
        {**master, names.LABEL_READ_ONLY: str(info.get("slave_read_only", ""))},
    )


def _add_keyspace(info: Mapping[str, Any], config: Mapping[str, str], out: Families) -> None:
    # Every database gets its keys and expiring-keys samples, 0 when empty (as redis_exporter):
    # 16 databases a scrape, nearly all empty or unchanged, so the lines of each are kept
    # with its INFO line (`_cached`, keyed on "" for an empty one).
    databases = int(_number(config.get("databases")) or 16)
    if _number(info.get("cluster_enabled")):
        databases = 1
    extra = out.extra_label_text
    keys = out.series(names.REDIS_DB_KEYS, "Keys in the database.", "gauge")
    expiring = out.series(names.REDIS_DB_KEYS_EXPIRING, "Keys with a TTL in the database.", "gauge")
    avg_ttl: list[str] | None = None
    for index in range(databases):
        db = f"db{index}"
        stats = info.get(db)
        stats = stats if isinstance(stats, Mapping) else {}
        text = getattr(stats, "text", None) if stats else ""
        lines = _cached(extra, db, text)
        if lines is None:
            lines = _keyspace_lines(out.label_text({names.LABEL_DB: db}), stats)
            _keep(extra, db, text, lines)
        keys.append(lines[0])
        expiring.append(lines[1])
        if len(lines) > 2:
            if avg_ttl is None:
                avg_ttl = out.series(
                    names.REDIS_DB_AVG_TTL, "Average TTL of the keys with a TTL.", "gauge"
                )
            avg_ttl.append(lines[2])


def _keyspace_lines(labels: str, stats: Mapping[str, Any]) -> tuple[str, ...]:
    """A database's keys and expiring lines, and its average TTL's when it has keys."""
    values = [_number(stats.get("keys")) or 0.0, _number(stats.get("expires")) or 0.0]
    families = [names.REDIS_DB_KEYS, names.REDIS_DB_KEYS_EXPIRING]
    if stats:
        values.append((_number(stats.get("avg_ttl")) or 0.0) / 1000)
        families.append(names.REDIS_DB_AVG_TTL)
    return tuple(
        f"{name}{{{labels}}} {format_value(value)}"
        for name, value in zip(families, values, strict=True)
    )


_COMMAND_FAMILIES = (
    (names.REDIS_COMMANDS, "Calls per command.", "calls", 1.0),
    (names.REDIS_COMMANDS_DURATION, "Seconds spent per command.", "usec", 1e6),
    (
        names.REDIS_COMMANDS_REJECTED,
        "Calls rejected before they ran (wrong arity, OOM, ...).",
        "rejected_calls",
        1.0,
    ),
    (names.REDIS_COMMANDS_FAILED, "Calls that ran and failed.", "failed_calls", 1.0),
)


FORMATTED_LIMIT = 16384
"""Commands (times nodes) whose formatted sample lines are kept between scrapes; past it the
cache starts again empty."""
_FORMATTED: dict[tuple[str, str], tuple[str, tuple[str, ...]]] = {}
"""(label text of the node view, INFO key) -> (the INFO value text, its sample lines)."""


def _command_lines(labels: str, stats: Mapping[str, Any]) -> tuple[str, ...]:
    """The calls, seconds, rejected and failed lines of one command, in that order."""
    lines = []
    for name, _help, field_name, scale in _COMMAND_FAMILIES:
        raw = stats.get(field_name)
        if scale == 1.0 and type(raw) is str and raw.isdigit():
            lines.append(f"{name}{{{labels}}} {raw}")
            continue
        number = (_number(raw) or 0.0) / scale
        lines.append(f"{name}{{{labels}}} {format_value(number)}")
    return tuple(lines)


def _latency_lines(extra: str, cmd: str, stats: Mapping[str, Any], cmdstat: Any) -> tuple[str, ...]:
    """A command's latency summary: its quantiles, then `_sum` and `_count` (commandstats)."""
    name = names.REDIS_LATENCY_PERCENTILES
    base = label_text({names.LABEL_CMD: cmd})
    tail = f",{extra}" if extra else ""
    lines = []
    for quantile, value in stats.items():
        quantile_label = label_text({names.LABEL_QUANTILE: str(quantile).lstrip("p")})
        number = format_value(_number(value) or 0.0)
        lines.append(f"{name}{{{base},{quantile_label}{tail}}} {number}")
    cmdstat = cmdstat if isinstance(cmdstat, Mapping) else {}
    for suffix, value in (("_sum", cmdstat.get("usec")), ("_count", cmdstat.get("calls"))):
        lines.append(f"{name}{suffix}{{{base}{tail}}} {format_value(_number(value) or 0.0)}")
    return tuple(lines)


def _cached(extra: str, key: str, text: str | None) -> tuple[str, ...] | None:
    """The sample lines formatted for one INFO line at an earlier scrape of the same node
    view, if its text has not changed since (most commands are idle between two scrapes)."""
    if text is None:  # not parsed by scrape.parse_info: nothing to key the cache on
        return None
    found = _FORMATTED.get((extra, key))
    return found[1] if found is not None and found[0] == text else None


def _keep(extra: str, key: str, text: str | None, lines: tuple[str, ...]) -> None:
    if text is not None:
        remember(_FORMATTED, FORMATTED_LIMIT, (extra, key), (text, lines))


def _section(info: Mapping[str, Any], prefix: str, name: str) -> list[tuple[str, Any]]:
    """(name, parsed line) of one per-command section: kept apart by `scrape.parse_info`,
    else found among the fields (an INFO parsed elsewhere)."""
    kept = getattr(info, name, None)
    if kept is not None:
        return kept  # type: ignore[no-any-return]
    return [
        (key.removeprefix(prefix), stats)
        for key, stats in info.items()
        if key.startswith(prefix) and isinstance(stats, Mapping)
    ]


def _add_commandstats(info: Mapping[str, Any], out: Families) -> None:
    # The largest part of a scrape (four samples per command Redis has seen, and a latency
    # summary each): the lines of a command whose INFO line did not change since the last
    # scrape are the lines formatted then (`_cached`).
    extra = out.extra_label_text
    commands = _section(info, "cmdstat_", "commandstats")
    if commands:
        series = [
            out.series(name, help_text, "counter") for name, help_text, _, _ in _COMMAND_FAMILIES
        ]
        for cmd, stats in commands:
            key = f"cmdstat_{cmd}"
            text = getattr(stats, "text", None)
            lines = _cached(extra, key, text)
            if lines is None:
                lines = _command_lines(out.label_text({names.LABEL_CMD: cmd}), stats)
                _keep(extra, key, text, lines)
            for family_lines, line in zip(series, lines, strict=True):
                family_lines.append(line)
    for err, stats in _section(info, "errorstat_", "errorstats"):
        out.counter(
            names.REDIS_ERRORS,
            "Error replies per error prefix (OOM, READONLY, NOPERM, ...).",
            _number(stats.get("count")) or 0.0,
            {names.LABEL_ERR: err},
        )
    latencies = _section(info, "latency_percentiles_usec_", "latencystats")
    if not latencies:
        return
    latency = out.series(
        names.REDIS_LATENCY_PERCENTILES,
        "Latency percentiles per command (Redis 7 latencystats).",
        "summary",
    )
    for cmd, stats in latencies:
        key = f"latency_percentiles_usec_{cmd}"
        cmdstat = info.get(f"cmdstat_{cmd}")
        own = getattr(stats, "text", None)
        of_cmd = getattr(cmdstat, "text", None) if cmdstat is not None else ""
        text = None if own is None or of_cmd is None else f"{own} {of_cmd}"
        lines = _cached(extra, key, text)
        if lines is None:
            lines = _latency_lines(extra, cmd, stats, cmdstat)
            _keep(extra, key, text, lines)
        latency.extend(lines)


def _add_cluster(cluster_info: Mapping[str, Any], out: Families) -> None:
    out.gauge(
        names.REDIS_CLUSTER_STATE,
        "1 if the cluster state is ok.",
        float(cluster_info.get("cluster_state") == "ok"),
    )
    for key, (name, help_text) in CLUSTER_FIELDS.items():
        value = _number(cluster_info.get(key))
        if value is not None:
            out.gauge(name, help_text, value)
