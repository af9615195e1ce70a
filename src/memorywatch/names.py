"""Every metric name, label name and label value memorywatch publishes or queries, once.

The `redis_*` names are those of oliver006/redis_exporter 1.45 (Debian's
`prometheus-redis-exporter`), so dashboards and rules written for it keep working. Alerts,
dashboards and tests import these constants: a renamed metric is an import error, not a
blank panel.
"""

from typing import Final

from memorywatch import schema

# Health
REDIS_UP: Final = "redis_up"
REDIS_INSTANCE_INFO: Final = "redis_instance_info"
REDIS_UPTIME: Final = "redis_uptime_in_seconds"
REDIS_START_TIME: Final = "redis_start_time_seconds"

# Memory
REDIS_MEMORY_USED: Final = "redis_memory_used_bytes"
REDIS_MEMORY_RSS: Final = "redis_memory_used_rss_bytes"
REDIS_MEMORY_PEAK: Final = "redis_memory_used_peak_bytes"
REDIS_MEMORY_MAX: Final = "redis_memory_max_bytes"
REDIS_MEM_FRAGMENTATION_RATIO: Final = "redis_mem_fragmentation_ratio"
REDIS_ALLOCATOR_FRAG_RATIO: Final = "redis_allocator_frag_ratio"
REDIS_TOTAL_SYSTEM_MEMORY: Final = "redis_total_system_memory_bytes"

# Keys and eviction
REDIS_EVICTED_KEYS: Final = "redis_evicted_keys_total"
REDIS_EXPIRED_KEYS: Final = "redis_expired_keys_total"
REDIS_KEYSPACE_HITS: Final = "redis_keyspace_hits_total"
REDIS_KEYSPACE_MISSES: Final = "redis_keyspace_misses_total"
REDIS_DB_KEYS: Final = "redis_db_keys"
REDIS_DB_KEYS_EXPIRING: Final = "redis_db_keys_expiring"
REDIS_DB_AVG_TTL: Final = "redis_db_avg_ttl_seconds"

# Clients
REDIS_CONNECTED_CLIENTS: Final = "redis_connected_clients"
REDIS_CONFIG_MAXCLIENTS: Final = "redis_config_maxclients"
REDIS_CONFIG_MAXMEMORY: Final = "redis_config_maxmemory"
REDIS_CONFIG_IO_THREADS: Final = "redis_config_io_threads"
REDIS_BLOCKED_CLIENTS: Final = "redis_blocked_clients"
REDIS_REJECTED_CONNECTIONS: Final = "redis_rejected_connections_total"
REDIS_CONNECTIONS_RECEIVED: Final = "redis_connections_received_total"

# Replication, master side
REDIS_CONNECTED_SLAVES: Final = "redis_connected_slaves"
REDIS_MASTER_REPL_OFFSET: Final = "redis_master_repl_offset"
REDIS_SLAVE_OFFSET: Final = "redis_connected_slave_offset_bytes"
REDIS_SLAVE_LAG_SECONDS: Final = "redis_connected_slave_lag_seconds"
# Replication, replica side
REDIS_MASTER_LINK_UP: Final = "redis_master_link_up"
REDIS_MASTER_LAST_IO: Final = "redis_master_last_io_seconds_ago"
REDIS_MASTER_SYNC_IN_PROGRESS: Final = "redis_master_sync_in_progress"
REDIS_MASTER_LINK_DOWN_SINCE: Final = "redis_master_link_down_since_seconds"
REDIS_SLAVE_REPL_OFFSET: Final = "redis_slave_repl_offset"
REDIS_SLAVE_INFO: Final = "redis_slave_info"

# Persistence
REDIS_RDB_LAST_SAVE: Final = "redis_rdb_last_save_timestamp_seconds"
REDIS_RDB_LAST_BGSAVE_STATUS: Final = "redis_rdb_last_bgsave_status"
REDIS_RDB_CHANGES_SINCE_SAVE: Final = "redis_rdb_changes_since_last_save"
REDIS_AOF_ENABLED: Final = "redis_aof_enabled"
REDIS_AOF_LAST_WRITE_STATUS: Final = "redis_aof_last_write_status"
REDIS_LOADING: Final = "redis_loading_dump_file"

# Commands and latency
REDIS_COMMANDS: Final = "redis_commands_total"
REDIS_COMMANDS_DURATION: Final = "redis_commands_duration_seconds_total"
REDIS_COMMANDS_REJECTED: Final = "redis_commands_rejected_calls_total"
REDIS_COMMANDS_FAILED: Final = "redis_commands_failed_calls_total"
REDIS_LATENCY_PERCENTILES: Final = "redis_latency_percentiles_usec"
REDIS_SLOWLOG_LENGTH: Final = "redis_slowlog_length"
REDIS_SLOWLOG_LAST_ID: Final = "redis_slowlog_last_id"
REDIS_LAST_SLOW_EXECUTION: Final = "redis_last_slow_execution_duration_seconds"
REDIS_ERRORS: Final = "redis_errors_total"

# Cluster
REDIS_CLUSTER_ENABLED: Final = "redis_cluster_enabled"
REDIS_CLUSTER_STATE: Final = "redis_cluster_state"
REDIS_CLUSTER_SLOTS_OK: Final = "redis_cluster_slots_ok"
REDIS_CLUSTER_KNOWN_NODES: Final = "redis_cluster_known_nodes"

# The rest of INFO under redis_exporter's names; published for its dashboards, no alert or
# panel of ours reads them.
# Server, the rest
REDIS_PROCESS_ID: Final = "redis_process_id"
REDIS_IO_THREADS_ACTIVE: Final = "redis_io_threads_active"

# Clients, the rest
REDIS_CLUSTER_CONNECTIONS: Final = "redis_cluster_connections"
REDIS_CLIENT_RECENT_MAX_INPUT_BUFFER_BYTES: Final = "redis_client_recent_max_input_buffer_bytes"
REDIS_CLIENT_RECENT_MAX_OUTPUT_BUFFER_BYTES: Final = "redis_client_recent_max_output_buffer_bytes"
REDIS_TRACKING_CLIENTS: Final = "redis_tracking_clients"
REDIS_CLIENTS_IN_TIMEOUT_TABLE: Final = "redis_clients_in_timeout_table"

# Memory, the rest
REDIS_MEMORY_USED_OVERHEAD_BYTES: Final = "redis_memory_used_overhead_bytes"
REDIS_MEMORY_USED_STARTUP_BYTES: Final = "redis_memory_used_startup_bytes"
REDIS_MEMORY_USED_DATASET_BYTES: Final = "redis_memory_used_dataset_bytes"
REDIS_MEMORY_USED_LUA_BYTES: Final = "redis_memory_used_lua_bytes"
REDIS_MEMORY_USED_SCRIPTS_BYTES: Final = "redis_memory_used_scripts_bytes"
REDIS_NUMBER_OF_CACHED_SCRIPTS: Final = "redis_number_of_cached_scripts"
REDIS_ALLOCATOR_ALLOCATED_BYTES: Final = "redis_allocator_allocated_bytes"
REDIS_ALLOCATOR_ACTIVE_BYTES: Final = "redis_allocator_active_bytes"
REDIS_ALLOCATOR_RESIDENT_BYTES: Final = "redis_allocator_resident_bytes"
REDIS_ALLOCATOR_FRAG_BYTES: Final = "redis_allocator_frag_bytes"
REDIS_ALLOCATOR_RSS_RATIO: Final = "redis_allocator_rss_ratio"
REDIS_ALLOCATOR_RSS_BYTES: Final = "redis_allocator_rss_bytes"
REDIS_MEM_FRAGMENTATION_BYTES: Final = "redis_mem_fragmentation_bytes"
REDIS_MEM_NOT_COUNTED_FOR_EVICTION_BYTES: Final = "redis_mem_not_counted_for_eviction_bytes"
REDIS_MEM_CLIENTS_SLAVES: Final = "redis_mem_clients_slaves"
REDIS_MEM_CLIENTS_NORMAL: Final = "redis_mem_clients_normal"
REDIS_ACTIVE_DEFRAG_RUNNING: Final = "redis_active_defrag_running"
REDIS_LAZYFREE_PENDING_OBJECTS: Final = "redis_lazyfree_pending_objects"

# Persistence, the rest
REDIS_RDB_BGSAVE_IN_PROGRESS: Final = "redis_rdb_bgsave_in_progress"
REDIS_RDB_LAST_BGSAVE_DURATION_SEC: Final = "redis_rdb_last_bgsave_duration_sec"
REDIS_RDB_CURRENT_BGSAVE_DURATION_SEC: Final = "redis_rdb_current_bgsave_duration_sec"
REDIS_RDB_LAST_COW_SIZE_BYTES: Final = "redis_rdb_last_cow_size_bytes"
REDIS_AOF_REWRITE_IN_PROGRESS: Final = "redis_aof_rewrite_in_progress"
REDIS_AOF_REWRITE_SCHEDULED: Final = "redis_aof_rewrite_scheduled"
REDIS_AOF_LAST_REWRITE_DURATION_SEC: Final = "redis_aof_last_rewrite_duration_sec"
REDIS_AOF_CURRENT_REWRITE_DURATION_SEC: Final = "redis_aof_current_rewrite_duration_sec"
REDIS_AOF_LAST_BGREWRITE_STATUS: Final = "redis_aof_last_bgrewrite_status"
REDIS_AOF_LAST_COW_SIZE_BYTES: Final = "redis_aof_last_cow_size_bytes"
REDIS_MODULE_FORK_IN_PROGRESS: Final = "redis_module_fork_in_progress"
REDIS_MODULE_FORK_LAST_COW_SIZE: Final = "redis_module_fork_last_cow_size"

# Stats, the rest
REDIS_COMMANDS_PROCESSED_TOTAL: Final = "redis_commands_processed_total"
REDIS_NET_INPUT_BYTES_TOTAL: Final = "redis_net_input_bytes_total"
REDIS_NET_OUTPUT_BYTES_TOTAL: Final = "redis_net_output_bytes_total"
REDIS_REPLICA_RESYNCS_FULL: Final = "redis_replica_resyncs_full"
REDIS_REPLICA_PARTIAL_RESYNC_ACCEPTED: Final = "redis_replica_partial_resync_accepted"
REDIS_REPLICA_PARTIAL_RESYNC_DENIED: Final = "redis_replica_partial_resync_denied"
REDIS_EXPIRED_STALE_PERCENTAGE: Final = "redis_expired_stale_percentage"
REDIS_EXPIRED_TIME_CAP_REACHED_TOTAL: Final = "redis_expired_time_cap_reached_total"
REDIS_PUBSUB_CHANNELS: Final = "redis_pubsub_channels"
REDIS_PUBSUB_PATTERNS: Final = "redis_pubsub_patterns"
REDIS_LATEST_FORK_SECONDS: Final = "redis_latest_fork_seconds"
REDIS_MIGRATE_CACHED_SOCKETS_TOTAL: Final = "redis_migrate_cached_sockets_total"
REDIS_SLAVE_EXPIRES_TRACKED_KEYS: Final = "redis_slave_expires_tracked_keys"
REDIS_DEFRAG_HITS: Final = "redis_defrag_hits"
REDIS_DEFRAG_MISSES: Final = "redis_defrag_misses"
REDIS_DEFRAG_KEY_HITS: Final = "redis_defrag_key_hits"
REDIS_DEFRAG_KEY_MISSES: Final = "redis_defrag_key_misses"
REDIS_TRACKING_TOTAL_KEYS: Final = "redis_tracking_total_keys"
REDIS_TRACKING_TOTAL_ITEMS: Final = "redis_tracking_total_items"
REDIS_TRACKING_TOTAL_PREFIXES: Final = "redis_tracking_total_prefixes"
REDIS_UNEXPECTED_ERROR_REPLIES: Final = "redis_unexpected_error_replies"
REDIS_TOTAL_ERROR_REPLIES: Final = "redis_total_error_replies"
REDIS_DUMP_PAYLOAD_SANITIZATIONS: Final = "redis_dump_payload_sanitizations"
REDIS_TOTAL_READS_PROCESSED: Final = "redis_total_reads_processed"
REDIS_TOTAL_WRITES_PROCESSED: Final = "redis_total_writes_processed"
REDIS_IO_THREADED_READS_PROCESSED: Final = "redis_io_threaded_reads_processed"
REDIS_IO_THREADED_WRITES_PROCESSED: Final = "redis_io_threaded_writes_processed"

# Replication, the rest
REDIS_SECOND_REPL_OFFSET: Final = "redis_second_repl_offset"
REDIS_REPL_BACKLOG_IS_ACTIVE: Final = "redis_repl_backlog_is_active"
REDIS_REPLICATION_BACKLOG_BYTES: Final = "redis_replication_backlog_bytes"
REDIS_REPL_BACKLOG_FIRST_BYTE_OFFSET: Final = "redis_repl_backlog_first_byte_offset"
REDIS_REPL_BACKLOG_HISTORY_BYTES: Final = "redis_repl_backlog_history_bytes"
REDIS_SLAVE_PRIORITY: Final = "redis_slave_priority"

# CPU, the rest
REDIS_CPU_SYS_SECONDS_TOTAL: Final = "redis_cpu_sys_seconds_total"
REDIS_CPU_USER_SECONDS_TOTAL: Final = "redis_cpu_user_seconds_total"
REDIS_CPU_SYS_CHILDREN_SECONDS_TOTAL: Final = "redis_cpu_sys_children_seconds_total"
REDIS_CPU_USER_CHILDREN_SECONDS_TOTAL: Final = "redis_cpu_user_children_seconds_total"
REDIS_CPU_SYS_MAIN_THREAD_SECONDS_TOTAL: Final = "redis_cpu_sys_main_thread_seconds_total"
REDIS_CPU_USER_MAIN_THREAD_SECONDS_TOTAL: Final = "redis_cpu_user_main_thread_seconds_total"

# Cluster, the rest
REDIS_CLUSTER_SLOTS_ASSIGNED: Final = "redis_cluster_slots_assigned"
REDIS_CLUSTER_SLOTS_PFAIL: Final = "redis_cluster_slots_pfail"
REDIS_CLUSTER_SLOTS_FAIL: Final = "redis_cluster_slots_fail"
REDIS_CLUSTER_SIZE: Final = "redis_cluster_size"
REDIS_CLUSTER_CURRENT_EPOCH: Final = "redis_cluster_current_epoch"
REDIS_CLUSTER_MY_EPOCH: Final = "redis_cluster_my_epoch"

# Beyond redis_exporter
REPLICA_LAG_BYTES: Final = "memorywatch_replica_lag_bytes"
RDB_SAVE_CONFIGURED: Final = "memorywatch_rdb_save_configured"
"""1 if CONFIG `save` holds a save point (RDB snapshots on), 0 for `save ""`; absent where
CONFIG GET is renamed away or not allowed. With `redis_aof_enabled` 0 as well, a restart
starts the node empty."""
EXPORTER_BUILD_INFO: Final = "memorywatch_exporter_build_info"
SCRAPE_DURATION: Final = "memorywatch_scrape_duration_seconds"
SCRAPE_ERRORS: Final = "memorywatch_scrape_errors_total"

# Labels
LABEL_CMD: Final = "cmd"
LABEL_DB: Final = "db"
LABEL_ERR: Final = "err"
LABEL_QUANTILE: Final = "quantile"
LABEL_SLAVE_IP: Final = "slave_ip"
LABEL_SLAVE_PORT: Final = "slave_port"
LABEL_SLAVE_STATE: Final = "slave_state"
LABEL_MASTER_HOST: Final = "master_host"
LABEL_MASTER_PORT: Final = "master_port"
LABEL_NODE: Final = "node"
LABEL_REASON: Final = "reason"
LABEL_MAXMEMORY_POLICY: Final = "maxmemory_policy"

# Agent fleet (read from the state schema the SDK writes; see docs/schema.md)
LOCK_ACQUISITIONS: Final = "memorywatch_lock_acquisitions_total"
LOCK_CONTENDED: Final = "memorywatch_lock_contended_total"
LOCK_TIMEOUTS: Final = "memorywatch_lock_timeouts_total"
LOCK_WAIT: Final = "memorywatch_lock_wait_seconds"
LOCKS_LOST: Final = "memorywatch_locks_lost_total"
LOCKS_HELD: Final = "memorywatch_locks_held"
LOCK_OLDEST_HELD: Final = "memorywatch_lock_oldest_held_seconds"
LOCK_TTL: Final = "memorywatch_lock_ttl_seconds"
TOOL_EXECUTIONS: Final = "memorywatch_tool_executions_total"
TOOL_DUPLICATES_SUPPRESSED: Final = "memorywatch_tool_duplicates_suppressed_total"
TOOL_DUPLICATE_EXECUTIONS: Final = "memorywatch_tool_duplicate_executions_total"
TOOLS_IN_PROGRESS: Final = "memorywatch_tools_in_progress"
TOOL_OLDEST_IN_PROGRESS: Final = "memorywatch_tool_oldest_in_progress_seconds"
TOOL_CALLS_ORPHANED: Final = "memorywatch_tool_calls_orphaned"
"""In-progress tool claims (of the oldest read per shard) whose holder sends no heartbeat:
the outcome of their side effect is unknown."""
TOOL_ORPHAN_OLDEST: Final = "memorywatch_tool_orphan_oldest_seconds"
TOOL_ORPHAN_RECLAIM: Final = "memorywatch_tool_orphan_reclaim_seconds"
"""Seconds until the soonest orphaned claim of a tool passes its deadline, so that a retry
reclaims it and runs the tool again; negative: a retry would already."""
TOOL_RECLAIMS: Final = "memorywatch_tool_reclaims_total"
TOOL_FINGERPRINT_MISMATCHES: Final = "memorywatch_tool_fingerprint_mismatches_total"
TOOL_IN_PROGRESS_CONFLICTS: Final = "memorywatch_tool_in_progress_conflicts_total"
TOOL_CLAIMS_LOST: Final = "memorywatch_tool_claims_lost_total"
SESSIONS_ACTIVE: Final = "memorywatch_sessions_active"
STATE_MISSES: Final = "memorywatch_state_misses_total"
STATE_NOT_DURABLE: Final = "memorywatch_state_not_durable_total"
EVICTED_KEYS: Final = "memorywatch_evicted_keys_total"
EVICTION_TRACKING: Final = "memorywatch_eviction_tracking_enabled"
KEYS_WITHOUT_TTL: Final = "memorywatch_keys_without_ttl"
TURN_DURATION: Final = "memorywatch_turn_duration_seconds"
AGENT_INSTANCES: Final = "memorywatch_agent_instances"
AGENT_POOL_USE_INSTANCES: Final = "memorywatch_agent_pool_use_instances"
"""{le}: live instances whose pool use (in use / max) is at most le, cumulative: a gauge
histogram over instances (the buckets fall as well as rise, so not a `histogram`, whose
buckets `rate()` would read as counters); ``histogram_quantile()`` reads it as it is."""
AGENT_POOL_USE_MAX: Final = "memorywatch_agent_pool_use_ratio_max"
AGENT_POOL_TOP_USE: Final = "memorywatch_agent_pool_top_use_ratio"
"""{instance_id}: the --top-instances most used pools, the only per-instance series."""
AGENT_POOL_TIMEOUTS_REPORTED: Final = "memorywatch_agent_pool_timeouts_reported"
"""Sum of the pool-timeout counters of the live instances: a gauge, since it drops when an
instance with timeouts leaves (a counter that `increase()` would read as a reset)."""
AGENT_POOL_TIMEOUTS_INSTANCES: Final = "memorywatch_agent_pool_timeouts_instances"
QUEUE_LENGTH: Final = "memorywatch_queue_length"
QUEUE_PENDING: Final = "memorywatch_queue_pending"
QUEUE_OLDEST_PENDING: Final = "memorywatch_queue_oldest_pending_seconds"
SCHEMA_INFO: Final = "memorywatch_schema_info"
SCHEMA_ERRORS: Final = "memorywatch_schema_errors"
SAMPLER_AGE: Final = "memorywatch_keyspace_sample_age_seconds"
KEYSPACE_KEYS: Final = "memorywatch_keyspace_keys"
KEYSPACE_BYTES: Final = "memorywatch_keyspace_bytes"
KEYSPACE_SAMPLE_KEYS: Final = "memorywatch_keyspace_sample_keys"
SAMPLER_WALKED: Final = "memorywatch_keyspace_sampler_keys_walked_total"
"""Keys the sampler has walked since the exporter started: its rate is the sampler's pace."""
SAMPLER_FALLBACK: Final = "memorywatch_keyspace_sampler_fallback"
"""1 for the reason Redis refused the sampler's Lua script (the keyspace is then read into the
exporter and classified there, ~25x its CPU per key), 0 for the other reasons."""

# The process families every Prometheus client library serves (the exporter's own process)
PROCESS_CPU: Final = "process_cpu_seconds_total"
PROCESS_VIRTUAL_MEMORY: Final = "process_virtual_memory_bytes"
PROCESS_RESIDENT_MEMORY: Final = "process_resident_memory_bytes"
PROCESS_START_TIME: Final = "process_start_time_seconds"
PROCESS_OPEN_FDS: Final = "process_open_fds"
PROCESS_MAX_FDS: Final = "process_max_fds"

# OpenTelemetry metrics exported by agents, as Prometheus names them
OTEL_POOL_CONNECTIONS: Final = "db_client_connection_count"
OTEL_POOL_MAX: Final = "db_client_connection_max"
OTEL_POOL_PENDING: Final = "db_client_connection_pending_requests"
OTEL_POOL_TIMEOUTS: Final = "db_client_connection_timeouts_total"
OTEL_TOOL_DURATION: Final = "gen_ai_execute_tool_duration_seconds"

LABEL_LOCK: Final = "lock"
LABEL_TOOL: Final = "tool"
LABEL_STATUS: Final = "status"
LABEL_KIND: Final = "kind"
LABEL_OP: Final = "op"
LABEL_KEY_CLASS: Final = "key_class"
LABEL_PROFILE: Final = "profile"
LABEL_STATE: Final = "state"
LABEL_INSTANCE_ID: Final = "instance_id"
"""Only on AGENT_POOL_TOP_USE: at most --top-instances values per scrape."""
LABEL_LE: Final = "le"
LABEL_QUEUE: Final = "queue"
LABEL_VERSION: Final = "version"
LABEL_PYTHON_VERSION: Final = "python_version"
LABEL_REDIS_PY_VERSION: Final = "redis_py_version"
LABEL_READ_ONLY: Final = "read_only"
LABEL_ROLE: Final = "role"
LABEL_RUN_ID: Final = "run_id"
"""Labels of redis_instance_info (INFO's role, and run_id, new on every restart)."""
INSTANCE_INFO_LABELS: Final = (
    "maxmemory_policy",
    "os",
    "process_id",
    "redis_build_id",
    "redis_mode",
    "redis_version",
    "role",
    "run_id",
    "tcp_port",
)
"""Labels of redis_instance_info: INFO fields of the same name, as redis_exporter publishes."""

# Label values. Producers write them and alerts and dashboards select them from here, so a
# renamed value breaks the alert tests instead of silently matching nothing.
CMD_EXEC: Final = "exec"
"""redis_commands_*{cmd} of EXEC, whose duration is that of the queued commands it ran (each
counted under its own cmd as well)."""
ROLE_MASTER: Final = "master"
ROLE_SLAVE: Final = "slave"
"""redis_instance_info{role}: INFO's words for a primary and a replica."""
OTHER: Final = schema.OTHER
"""lock / tool value of every name beyond the bound (the schema's name cap or the exporter's
--max-label-values)."""
STATE_READY: Final = "ready"
STATE_NOT_READY: Final = "not_ready"
"""memorywatch_agent_instances{state}: the instance's last readiness verdict."""
VERSION_ABSENT: Final = "absent"
"""memorywatch_schema_info{version} while no agent has written the schema hash."""
ERROR_FOREIGN: Final = "foreign"
ERROR_WRONG_TYPE: Final = "wrong_type"
ERROR_MISSING_TTL: Final = "missing_ttl"
ERROR_UNPARSABLE: Final = "unparsable"
ERROR_KINDS: Final = (ERROR_FOREIGN, ERROR_WRONG_TYPE, ERROR_MISSING_TTL, ERROR_UNPARSABLE)
"""memorywatch_schema_errors{kind}: keys or records in the namespace that break the schema."""
FALLBACK_PERMISSION: Final = "permission"
FALLBACK_UNKNOWN_COMMAND: Final = "unknown_command"
FALLBACK_SCRIPT_ERROR: Final = "script_error"
FALLBACK_REASONS: Final = (FALLBACK_PERMISSION, FALLBACK_UNKNOWN_COMMAND, FALLBACK_SCRIPT_ERROR)
"""memorywatch_keyspace_sampler_fallback{reason}: an ACL without EVAL/EVALSHA (NOPERM), a
Redis or proxy without the command, or any other refusal of the script (a Redis older than 7
rejects its flags)."""
KEY_CLASS_HISTORY: Final = schema.KEY_CLASS_HISTORY
KEY_CLASS_PREFERENCES: Final = schema.KEY_CLASS_PREFERENCES
KEY_CLASS_TOOL: Final = schema.KEY_CLASS_TOOL
KEY_CLASS_LOCK: Final = schema.KEY_CLASS_LOCK
KEY_CLASS_CHECKPOINT: Final = schema.KEY_CLASS_CHECKPOINT
KEY_CLASS_LONG_TERM_MEMORY: Final = "long_term_memory"
KEY_CLASS_CACHE: Final = "cache"
KEY_CLASS_INDEX: Final = "index"
KEY_CLASS_OTHER: Final = schema.KEY_CLASS_OTHER
KEY_CLASSES: Final = (
    KEY_CLASS_HISTORY,
    KEY_CLASS_PREFERENCES,
    KEY_CLASS_TOOL,
    KEY_CLASS_LOCK,
    KEY_CLASS_CHECKPOINT,
    KEY_CLASS_LONG_TERM_MEMORY,
    KEY_CLASS_CACHE,
    KEY_CLASS_INDEX,
    KEY_CLASS_OTHER,
)
"""key_class values: one vocabulary for every key profile (our schema uses the first four
and other). history: conversation messages; preferences: what is known of a user; tool:
tool-execution records; lock; checkpoint: agent graph state; long_term_memory: extracted
memories and their vectors; cache: answers that can be recomputed; index: what points at
other keys (sorted-set indexes, counters, registries); other: the rest."""
AGENT_STATE_CLASSES: Final = tuple(
    c for c in KEY_CLASSES if c not in (KEY_CLASS_CACHE, KEY_CLASS_OTHER)
)
"""The classes whose eviction loses something an agent cannot recompute."""
PROFILE_NONE: Final = "none"
"""memorywatch_keyspace_*{profile}: keys no key profile claims."""
TOOL_STATUSES: Final = (
    schema.TOOL_STATUS_COMPLETED,
    schema.TOOL_STATUS_FAILED,
    schema.TOOL_STATUS_RETRYABLE,
)
"""memorywatch_tool_executions_total{status}."""
MISS_KINDS: Final = (schema.MISS_HISTORY, schema.MISS_TOOL_RECORD, schema.MISS_CHECKPOINT)
"""memorywatch_state_misses_total{kind}."""
DURABLE_OPS: Final = schema.DURABLE_OPS
"""memorywatch_state_not_durable_total{op}: a closed set."""

METRICS: Final = frozenset(
    value
    for key, value in dict(globals()).items()
    if key.isupper()
    and not key.startswith("LABEL_")
    and isinstance(value, str)
    and value.startswith(("redis_", "memorywatch_", "db_client_", "gen_ai_"))
)
"""Every metric name above: what the exporter, the SDK's OpenTelemetry metrics and the
recording rules' inputs may be called."""
