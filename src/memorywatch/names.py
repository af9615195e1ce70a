"""Every metric and label name memorywatch publishes or queries, once.

The `redis_*` names are those of oliver006/redis_exporter 1.45 (Debian's
`prometheus-redis-exporter`), so dashboards and rules written for it keep working. Alerts,
dashboards and tests import these constants: a renamed metric is an import error, not a
blank panel.
"""

from typing import Final

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

# Beyond redis_exporter
REPLICA_LAG_BYTES: Final = "memorywatch_replica_lag_bytes"
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
TOOL_RECLAIMS: Final = "memorywatch_tool_reclaims_total"
TOOL_FINGERPRINT_MISMATCHES: Final = "memorywatch_tool_fingerprint_mismatches_total"
TOOL_IN_PROGRESS_CONFLICTS: Final = "memorywatch_tool_in_progress_conflicts_total"
TOOL_CLAIMS_LOST: Final = "memorywatch_tool_claims_lost_total"
SESSIONS_ACTIVE: Final = "memorywatch_sessions_active"
STATE_MISSES: Final = "memorywatch_state_misses_total"
EVICTED_KEYS: Final = "memorywatch_evicted_keys_total"
EVICTION_TRACKING: Final = "memorywatch_eviction_tracking_enabled"
KEYS_WITHOUT_TTL: Final = "memorywatch_keys_without_ttl"
TURN_DURATION: Final = "memorywatch_turn_duration_seconds"
AGENT_INSTANCES: Final = "memorywatch_agent_instances"
AGENT_POOL_CONNECTIONS: Final = "memorywatch_agent_pool_connections"
AGENT_POOL_TIMEOUTS: Final = "memorywatch_agent_pool_timeouts_total"
QUEUE_LENGTH: Final = "memorywatch_queue_length"
QUEUE_PENDING: Final = "memorywatch_queue_pending"
QUEUE_OLDEST_PENDING: Final = "memorywatch_queue_oldest_pending_seconds"
SCHEMA_INFO: Final = "memorywatch_schema_info"
SCHEMA_ERRORS: Final = "memorywatch_schema_errors"
SAMPLER_AGE: Final = "memorywatch_keyspace_sample_age_seconds"

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
LABEL_KEY_CLASS: Final = "key_class"
LABEL_STATE: Final = "state"
LABEL_INSTANCE_ID: Final = "instance_id"
LABEL_QUEUE: Final = "queue"
LABEL_VERSION: Final = "version"
