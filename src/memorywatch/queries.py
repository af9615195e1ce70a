"""PromQL that an alert and a dashboard panel both evaluate, written once.

Each builder takes how to write a selector: alerts use `selector` (bare: a rule evaluates
over every target), dashboards pass theirs, which scopes it by the $job and $instance
variables. So a panel draws exactly the number its alert compares with the threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from memorywatch import names


class Select(Protocol):
    def __call__(self, metric: str, *matchers: str) -> str: ...


def eq(label: str, value: str) -> str:
    return f'{label}="{value}"'


def ne(label: str, value: str) -> str:
    return f'{label}!="{value}"'


def re_match(label: str, values: Sequence[str]) -> str:
    return f'{label}=~"{"|".join(values)}"'


def selector(metric: str, *matchers: str) -> str:
    """``metric{matcher,...}``, or the bare name without matchers."""
    return f"{metric}{{{','.join(matchers)}}}" if matchers else metric


def memory_ratio(sel: Select = selector) -> str:
    """used_memory / maxmemory, only where maxmemory is set (0 = unlimited has no ratio)."""
    return f"{sel(names.REDIS_MEMORY_USED)} / ({sel(names.REDIS_MEMORY_MAX)} > 0)"


def clients_ratio(sel: Select = selector) -> str:
    return f"{sel(names.REDIS_CONNECTED_CLIENTS)} / {sel(names.REDIS_CONFIG_MAXCLIENTS)}"


def pool_ratio(sel: Select = selector) -> str:
    """The most used agent pool behind each exporter: connections in use over its maximum
    (which instance: `names.AGENT_POOL_TOP_USE`)."""
    return sel(names.AGENT_POOL_USE_MAX)


def pool_timeouts_new(window: str, sel: Select = selector) -> str:
    """Pool timeouts the live instances reported within ``window``: the reported sum now over
    its lowest point in the window. The sum is a gauge that drops when an instance with
    timeouts leaves; `increase()` would read that drop as a counter reset and count the whole
    remaining sum again. Counted from the lowest point, a departure is never a timeout (the
    cost: a rise followed within the window by a larger departure reads 0 afterwards, by
    which time an evaluation has seen the rise)."""
    reported = sel(names.AGENT_POOL_TIMEOUTS_REPORTED)
    return f"({reported} - min_over_time({reported}[{window}]))"


def queue_per_ready(sel: Select = selector) -> str:
    """Entries of each work queue per ready agent instance behind the same exporter."""
    ready = sel(names.AGENT_INSTANCES, eq(names.LABEL_STATE, names.STATE_READY))
    return f"{sel(names.QUEUE_LENGTH)} / on(instance, job) group_left() {ready}"


def agent_state_evictions(sel: Select = selector) -> str:
    """Evicted keys that held agent state, of any key profile: every class but cache and
    other (`names.AGENT_STATE_CLASSES`)."""
    return sel(names.EVICTED_KEYS, re_match(names.LABEL_KEY_CLASS, names.AGENT_STATE_CLASSES))


def records_without_ttl(sel: Select = selector) -> str:
    """Keys whose profile expects a TTL and that have none (the sampler counts only those)."""
    return sel(names.KEYS_WITHOUT_TTL)


def orphaned_tool_calls(sel: Select = selector) -> str:
    """Tool calls in progress whose holder sends no heartbeat, per tool of each exporter."""
    return f"sum by (instance, job, {names.LABEL_TOOL}) ({sel(names.TOOL_CALLS_ORPHANED)})"


def memory_by_class(sel: Select = selector) -> str:
    """Bytes each key profile and class holds (the sampler's last full pass)."""
    by = f"{names.LABEL_PROFILE}, {names.LABEL_KEY_CLASS}"
    return f"sum by (instance, job, {by}) ({sel(names.KEYSPACE_BYTES)})"


def masters(sel: Select = selector) -> str:
    """The info series of every node that reports itself a master (one per master process:
    its run_id is a label)."""
    return sel(names.REDIS_INSTANCE_INFO, eq(names.LABEL_ROLE, names.ROLE_MASTER))


def without_persistence(sel: Select = selector) -> str:
    """Nodes with neither AOF nor RDB snapshots configured: a restart starts them empty."""
    return (
        f"({sel(names.REDIS_AOF_ENABLED)} == 0) and on(instance, job, {names.LABEL_NODE}) "
        f"({sel(names.RDB_SAVE_CONFIGURED)} == 0)"
    )


def redis_busy(window: str, sel: Select = selector) -> str:
    """Share of wall time Redis's one thread spent running commands: seconds of command time
    per second, over every command of a node. EXEC is left out: its time is the time of the
    commands it ran, which count themselves. Commands a script runs count twice (within the
    script's time and as themselves), so a script-heavy load reads somewhat high."""
    duration = sel(names.REDIS_COMMANDS_DURATION, ne(names.LABEL_CMD, names.CMD_EXEC))
    return f"sum without ({names.LABEL_CMD}) (rate({duration}[{window}]))"


def command_mean_seconds(window: str, sel: Select = selector) -> str:
    """Mean seconds per call of each command (``cmd``, bounded by Redis's command table). A
    command not called in the window has no value rather than NaN (0/0) or +Inf."""
    duration, calls = sel(names.REDIS_COMMANDS_DURATION), sel(names.REDIS_COMMANDS)
    return f"rate({duration}[{window}]) / (rate({calls}[{window}]) > 0)"
