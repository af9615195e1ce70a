"""The one table of alert thresholds, and its YAML override file.

Alerts, runbooks and dashboards read their numbers from here, so a panel's red line is the
alert's threshold. Each entry has a default value, a unit, a ``for`` duration, the severity of
the alert it drives and one line of rationale. An override file maps threshold names to a
value or to ``{value: ..., for: ...}``::

    memory_used_warning: 0.75
    lock_wait_p99: {value: 3, for: 15m}

Every mistake in that file is a `ThresholdsError` whose message is one line naming the key.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final, Literal

from memorywatch import names
from memorywatch.yamlfile import load_yaml

Severity = Literal["critical", "warning", "info"]
Unit = Literal["ratio", "factor", "seconds", "bytes", "count", "condition"]
"""``ratio`` is a share of a whole (0..1); ``factor`` is any non-negative multiplier;
``condition`` has no value, only a ``for`` duration."""

SEVERITIES: Final = ("critical", "warning", "info")


class ThresholdsError(ValueError):
    """A thresholds override that cannot be used; the message is one line naming the key."""


@dataclass(frozen=True)
class Threshold:
    name: str
    value: float | None
    unit: Unit
    for_seconds: int | None
    """None for a parameter that only shapes an expression (a lookback, a floor)."""
    severity: Severity
    alert: str
    rationale: str

    @property
    def for_duration(self) -> str:
        return format_duration(self.for_seconds or 0)

    def number(self) -> float:
        if self.value is None:
            raise ThresholdsError(f"threshold {self.name!r} is a condition and has no value")
        return self.value

    def human_value(self) -> str:
        """The value as a person reads it: 80 %, 30 s, 1 MiB, 1.5x."""
        if self.value is None:
            return "-"
        v = self.value
        if self.unit == "ratio":
            return f"{v * 100:g} %"
        if self.unit == "seconds":
            return f"{v:g} s"
        if self.unit == "bytes":
            for suffix, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
                if v >= size:
                    return f"{v / size:g} {suffix}"
            return f"{v:g} B"
        if self.unit == "factor":
            return f"{v:g}x"
        return f"{v:g}"


def _t(
    name: str,
    value: float | None,
    unit: Unit,
    for_: str | None,
    severity: Severity,
    alert: str,
    rationale: str,
) -> Threshold:
    return Threshold(
        name=name,
        value=value,
        unit=unit,
        for_seconds=None if for_ is None else parse_duration(for_),
        severity=severity,
        alert=alert,
        rationale=rationale,
    )


_DURATION_RE: Final = re.compile(r"^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_DURATION_UNITS: Final = (604800, 86400, 3600, 60, 1)


def parse_duration(text: str) -> int:
    """Seconds of a Prometheus duration with whole-second units (``1h30m``, ``45s``, ``0s``)."""
    match = _DURATION_RE.match(text)
    if not text or match is None:
        raise ValueError(f"not a duration like 5m, 30s or 1h30m: {text!r}")
    return sum(int(g) * u for g, u in zip(match.groups(), _DURATION_UNITS, strict=True) if g)


def format_duration(seconds: int) -> str:
    if seconds == 0:
        return "0s"
    out = []
    for suffix, unit in zip("wdhms", _DURATION_UNITS, strict=True):
        count, seconds = divmod(seconds, unit)
        if count:
            out.append(f"{count}{suffix}")
    return "".join(out)


DEFAULTS: Final[tuple[Threshold, ...]] = (
    # Redis availability and the exporter
    _t("redis_down", None, "condition", "1m", "critical", "RedisDown",
       f"Every agent turn reads and writes Redis: a minute of {names.REDIS_UP} 0 is an outage, not a blip."),
    _t("exporter_down", None, "condition", "5m", "warning", "RedisExporterDown",
       "Not a user symptom, but every other alert here is silent while the exporter is down."),
    _t("exporter_scrape_errors", 0, "count", "10m", "warning", "RedisExporterScrapeErrors",
       "Failed scrapes for 10 m mean gaps or stale data in every Redis alert (auth, ACL, timeouts)."),
    # Latency: Redis runs commands on one thread, so a slow one delays every client
    _t("redis_busy", 0.5, "ratio", "1m", "critical", "RedisBusy",
       "Above half the wall time in commands every agent command queues behind others; a "
       "0.6 s command run back to back reads about 1."),
    _t("slow_command_seconds", 0.1, "seconds", "5m", "warning", "RedisSlowCommands",
       "All clients wait while one command runs: a kind averaging 100 ms (KEYS, a big DEL, a "
       "heavy script) stalls every agent each call."),
    # Memory and eviction
    _t("memory_used_warning", 0.8, "ratio", "10m", "warning", "RedisMemoryHigh",
       "20 % headroom absorbs a burst of long conversations before writes fail or keys are evicted."),
    _t("memory_used_critical", 0.9, "ratio", "5m", "critical", "RedisMemoryHigh",
       "At 90 % one busy hour reaches maxmemory: noeviction rejects writes, other policies drop state."),
    _t("memory_full_forecast", 14400, "seconds", "30m", "warning", "RedisMemoryFullSoon",
       "Half an hour of growth that reaches maxmemory within 4 h leaves a shift to add memory or "
       "find the leak (keys without TTL) before writes fail or state is evicted."),
    _t("maxmemory_not_set", None, "condition", "10m", "warning", "RedisMaxmemoryNotSet",
       "Without maxmemory Redis grows until the kernel OOM-kills it and every session is lost at once."),
    _t("write_errors", 0, "count", "0s", "critical", "RedisWriteErrors",
       "An OOM, READONLY or MISCONF reply is a lost agent write (history, lock or tool record)."),
    _t("agent_state_evicted", 0, "count", "0s", "critical", "AgentStateEvicted",
       "Any evicted history, preference, lock or tool record is state an agent will miss or redo."),
    _t("eviction_tracking_disabled", None, "condition", "15m", "warning",
       "AgentEvictionTrackingDisabled",
       "Without keyspace notifications AgentStateEvicted cannot fire: evictions go unseen."),
    _t("eviction_policy_unsafe", None, "condition", "10m", "warning", "RedisEvictionPolicyUnsafe",
       "Every volatile-* policy evicts TTL keys first, which are exactly the locks and tool records."),
    _t("fragmentation_ratio", 1.5, "factor", "30m", "warning", "RedisFragmentationHigh",
       "RSS 1.5x the data means a third of the memory holds nothing; maxmemory does not count it."),
    _t("fragmentation_min_memory", 104857600, "bytes", None, "warning", "RedisFragmentationHigh",
       "Below 100 MiB of data the ratio is noise (allocator overhead of a near-empty Redis)."),
    # Clients and connection pools
    _t("clients_warning", 0.8, "ratio", "5m", "warning", "RedisClientsNearMax",
       "Scaling out the fleet adds a pool per instance; 80 % leaves room for one scale-out step."),
    _t("clients_critical", 0.95, "ratio", "2m", "critical", "RedisClientsNearMax",
       "At 95 % the next deploy or scale-out gets 'max number of clients reached'."),
    _t("rejected_connections", 0, "count", "0s", "critical", "RedisRejectedConnections",
       "A rejected connection is an agent instance that cannot read or write its memory."),
    _t("client_pool_used", 0.8, "ratio", "5m", "warning", "AgentClientPoolSaturated",
       "An instance using 80 % of its pool for 5 m is one burst away from pool timeouts."),
    _t("client_pool_timeouts", 0, "count", "0s", "critical", "AgentClientPoolTimeouts",
       "A pool timeout is a turn that failed waiting for a connection: a user-visible error."),
    # Replication
    _t("replication_link_down", None, "condition", "1m", "critical", "RedisReplicationLinkDown",
       "A replica without its master serves stale memory and cannot take over on failover."),
    _t("replica_lag_warning", 10, "seconds", "2m", "warning", "RedisReplicationLagHigh",
       "Replicas ack every second; 10 s without an ack is a struggling replica or network."),
    _t("replica_lag_critical", 30, "seconds", "1m", "critical", "RedisReplicationLagHigh",
       "30 s is half of repl-timeout (60 s): the link is about to drop and force a full resync."),
    _t("replica_lag_bytes", 1048576, "bytes", "5m", "warning", "RedisReplicationLagBytesHigh",
       "Bytes a failover now would lose; past repl-backlog-size (1 MiB default) a reconnect "
       "needs a full resync. Set it to your backlog size."),
    _t("replica_missing", None, "condition", "2m", "warning", "RedisReplicaMissing",
       "Fewer replicas than in the last hour: one failure away from no failover target."),
    _t("replica_missing_lookback", 3600, "seconds", None, "warning", "RedisReplicaMissing",
       "How far back the expected replica count is taken from (the maximum seen)."),
    _t("master_changed", None, "condition", "0s", "warning", "RedisMasterChanged",
       "Agents reconnect by themselves, but writes the old master had not replicated are lost "
       "and durable-mode writes may have been refused: a ticket to check, not a page."),
    _t("master_changed_window", 900, "seconds", None, "warning", "RedisMasterChanged",
       "How long a new master (promoted, or restarted with a new run_id) stays visible: longer "
       "than a scrape gap, short enough that the next failover fires anew."),
    # Persistence
    _t("persistence_failing", None, "condition", "5m", "warning", "RedisPersistenceFailing",
       "Writes still succeed, but a restart now loses every turn since the last good save."),
    _t("restarted_without_persistence", None, "condition", "0s", "critical",
       "RedisRestartedWithoutPersistence",
       "A master restarted with neither RDB nor AOF came back empty: every conversation, lock "
       "and tool record on it is gone, and its replicas resync to the empty dataset."),
    _t("restarted_without_persistence_window", 1800, "seconds", None, "critical",
       "RedisRestartedWithoutPersistence",
       "How long after the uptime reset it fires; only a restart the exporter saw (a first "
       "start lost nothing and does not fire)."),
    # Locks
    _t("lock_contention", 0.2, "ratio", "10m", "warning", "AgentLockContentionHigh",
       "More than one acquisition in five waiting means turns of one session pile up behind "
       "each other (double submits, LB retries)."),
    _t("lock_wait_p99", 5, "seconds", "10m", "warning", "AgentLockWaitHigh",
       "5 s of waiting is a sixth of the 30 s lock TTL and a slow turn the user notices."),
    _t("lock_timeouts", 0, "count", "5m", "warning", "AgentLockTimeouts",
       "Timeouts for 5 m in a row: turns keep failing to get their session or tool lock."),
    _t("lock_held_ttl_share", 0.8, "ratio", "0s", "warning", "AgentLockHeldNearTTL",
       "A lock held 24 s of its 30 s TTL is about to expire under its holder: a lost lock next."),
    _t("lock_lost", 0, "count", "0s", "critical", "AgentLockLost",
       "A lost lock means two holders were possible: state may be overwritten or a tool run twice."),
    # Tools and state
    _t("tool_duplicate_execution", 0, "count", "0s", "critical", "AgentToolDuplicateExecution",
       "A tool with side effects (payment, email, ticket) ran twice for one idempotency key."),
    _t("tool_duplicate_calls", 0.25, "factor", "10m", "warning", "AgentToolDuplicateCallsHigh",
       "More than one suppressed duplicate per four executions is a retry storm, not a retry."),
    _t("tool_stuck_in_progress", 120, "seconds", "2m", "warning", "AgentToolStuckInProgress",
       "Four times the 30 s tool deadline: the holder died or hangs and retries are being refused."),
    _t("tool_orphaned", 0, "count", "30s", "critical", "AgentToolOrphaned",
       "A holder died mid-call: its side effect's outcome is unknown. The heartbeat's expiry "
       "(15 s) is already the wait; 30 s more rides out a blip of its link to Redis."),
    _t("records_without_ttl", 0, "count", "15m", "warning", "AgentRecordsWithoutTTL",
       "A lock without TTL is held forever; a tool record without TTL is never retried or freed."),
    _t("state_misses", 0, "count", "0s", "critical", "AgentStateMisses",
       "An agent found no history for a live session: a user was forgotten mid-conversation."),
    _t("state_not_durable", 0, "count", "0s", "critical", "AgentStateNotDurable",
       "Each refusal is an agent write that failed for its user (StateNotDurable): fewer "
       "replicas than min_replicas acknowledged it in time."),
    # Fleet
    _t("instances_not_ready", 0, "count", "10m", "warning", "AgentInstancesNotReady",
       "Deploys make instances unready for seconds; 10 m is a crash loop or a dead dependency."),
    _t("no_ready_instances", None, "condition", "2m", "critical", "AgentNoReadyInstances",
       "No ready instance behind the load balancer: every request fails."),
    _t("queue_per_ready_instance", 50, "count", "10m", "warning", "AgentQueueBacklog",
       "50 queued turns per ready instance for 10 m: scale-out is not keeping up."),
)  # fmt: skip

PAIRS: Final = (
    ("memory_used_warning", "memory_used_critical"),
    ("clients_warning", "clients_critical"),
    ("replica_lag_warning", "replica_lag_critical"),
)
"""(warning, critical): a warning threshold may not be above its critical one."""

PROFILES: Final = ("default", "test")
TEST_FOR_SCALE: Final = 1 / 60
"""The ``test`` profile: every ``for`` in seconds instead of minutes (10m -> 10s)."""
TEST_SCALED_HORIZONS: Final = ("memory_full_forecast",)
"""Forecast horizons the ``test`` profile scales like ``for`` (4 h -> 4 min): on its clock a
Redis has a minute of history, and 4 h extrapolated from a fresh Redis filling its working
set reads as gigabytes (RedisMemoryFullSoon on a healthy demo)."""


@dataclass(frozen=True)
class Thresholds:
    """An immutable set of thresholds, by name."""

    items: tuple[Threshold, ...] = DEFAULTS

    def __post_init__(self) -> None:
        names = [t.name for t in self.items]
        if len(set(names)) != len(names):
            raise ThresholdsError("duplicate threshold names in the table")

    def __getitem__(self, name: str) -> Threshold:
        for item in self.items:
            if item.name == name:
                return item
        raise KeyError(name)

    def __iter__(self) -> Iterator[Threshold]:
        return iter(self.items)

    def names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.items)

    def for_alert(self, alert: str) -> tuple[Threshold, ...]:
        return tuple(t for t in self.items if t.alert == alert)

    def with_for_scale(self, factor: float) -> Thresholds:
        """Every ``for`` multiplied by ``factor`` (at least 1 s where it was not 0)."""
        if not factor > 0:
            raise ThresholdsError(f"for scale must be positive, got {factor}")
        return Thresholds(
            tuple(
                t
                if not t.for_seconds
                else replace(t, for_seconds=max(1, round(t.for_seconds * factor)))
                for t in self.items
            )
        )

    def with_overrides(
        self, overrides: Mapping[str, Any], source: str = "thresholds"
    ) -> Thresholds:
        updated = {t.name: t for t in self.items}
        for key, raw in overrides.items():
            updated[key] = _override(updated, key, raw, source)
        result = Thresholds(tuple(updated[t.name] for t in self.items))
        result.validate(source)
        return result

    def validate(self, source: str = "thresholds") -> None:
        for warning, critical in PAIRS:
            w, c = self[warning], self[critical]
            if w.value is not None and c.value is not None and w.value > c.value:
                raise ThresholdsError(
                    f"{source}: {warning} ({w.value:g}) is above {critical} ({c.value:g}); "
                    "a warning threshold must not exceed its critical one"
                )


def _override(current: Mapping[str, Threshold], key: Any, raw: Any, source: str) -> Threshold:
    if not isinstance(key, str) or key not in current:
        close = difflib.get_close_matches(str(key), list(current), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ThresholdsError(f"{source}: unknown threshold {key!r}{hint}")
    base = current[key]
    fields: dict[str, Any] = dict(raw) if isinstance(raw, dict) else {"value": raw}
    unknown = sorted(str(f) for f in fields if f not in ("value", "for"))
    if unknown:
        raise ThresholdsError(
            f"{source}: {key}: unknown field {unknown[0]!r} (allowed: value, for)"
        )
    result = base
    if "value" in fields:
        value = fields["value"]
        if base.value is None:
            raise ThresholdsError(
                f"{source}: {key}: is a condition without a value; set only 'for'"
            )
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ThresholdsError(
                f"{source}: {key}: value must be a number, got {type(value).__name__} {value!r}"
            )
        if not math.isfinite(value) or value < 0:
            raise ThresholdsError(
                f"{source}: {key}: value must be a finite number >= 0, got {value}"
            )
        if base.unit == "ratio" and value > 1:
            raise ThresholdsError(
                f"{source}: {key}: value is a ratio between 0 and 1 (0.8 = 80 %), got {value}"
            )
        result = replace(result, value=float(value))
    if "for" in fields:
        text = fields["for"]
        if base.for_seconds is None:
            raise ThresholdsError(f"{source}: {key}: shapes an expression and has no 'for'")
        if not isinstance(text, str):
            raise ThresholdsError(
                f"{source}: {key}: 'for' must be a duration string like 5m, got {text!r}"
            )
        try:
            result = replace(result, for_seconds=parse_duration(text))
        except ValueError:
            raise ThresholdsError(
                f"{source}: {key}: 'for' must be a duration like 5m, 30s or 1h30m, got {text!r}"
            ) from None
    return result


def load(path: Path | str | None = None, profile: str = "default") -> Thresholds:
    """The defaults, overridden by the YAML file at ``path``, scaled by ``profile``."""
    thresholds = Thresholds()
    if path is not None:
        source = str(path)
        data = load_yaml(path, source, ThresholdsError)
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ThresholdsError(
                f"{source}: expected a mapping of threshold name to value, got {type(data).__name__}"
            )
        thresholds = thresholds.with_overrides(data, source)
    if profile not in PROFILES:
        raise ThresholdsError(f"unknown profile {profile!r} (choose from {', '.join(PROFILES)})")
    if profile == "test":
        thresholds = thresholds.with_for_scale(TEST_FOR_SCALE)
        thresholds = Thresholds(
            tuple(
                replace(t, value=round(t.number() * TEST_FOR_SCALE))
                if t.name in TEST_SCALED_HORIZONS
                else t
                for t in thresholds
            )
        )
    return thresholds


def render_table(thresholds: Thresholds) -> str:
    """Plain-text table for the terminal: name, value, for, severity, alert."""
    rows = [("threshold", "value", "for", "severity", "alert")]
    rows += [
        (
            t.name,
            t.human_value(),
            "-" if t.for_seconds is None else t.for_duration,
            t.severity,
            t.alert,
        )
        for t in thresholds
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )
