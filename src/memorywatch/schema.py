"""The Redis key layout that agents write and the exporter reads: version 2.

Pure Python on purpose (no redis, no prometheus imports): the agent SDK builds its keys here and
the exporter imports the same functions to read the fleet counters with HGETALL / ZCOUNT, never
SCAN. docs/schema.md is the prose version of this module, for agents written in other languages.

Sharding. Every key except ``{ns}:schema`` carries a hash tag ``{N}`` where ``N`` is a shard
number in ``[0, shards)``. A Lua script only touches keys of one shard, so every script works on
Redis Cluster. The shard of a key is chosen by the *subject* of the operation:

- history, session index entry, turn histogram: the session id;
- preferences and user->sessions index: the user id;
- lock record and lock counters: the lock id (``kind:resource``, or the one-argument name);
- tool record and tool counters: the idempotency key;
- heartbeat hash and instances index entry: the instance id.

Counters therefore live in one hash per (shard, family); the exporter reads ``shards`` hashes per
family and sums them with :func:`merge_counters` / :func:`merge_histograms`. Counter fields are
bounded at write time: lock kinds and tool names pass through a per-shard registry of at most
``name_cap`` names inside the scripts, the rest are counted under :data:`OTHER`. Fencing tokens
come from one counter per shard. So no key of the schema grows with the number of resources,
idempotency keys or sessions unless it carries a TTL (the bounds: docs/schema.md).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

SCHEMA_VERSION: Final = 2
"""Bumped on any incompatible change of the layout below; stored in ``{ns}:schema``.

Version 2 (memorywatch 0.2): one fencing counter per shard instead of one per lock name, locks
named by kind and resource, lock kinds and tool names capped at write time."""

DEFAULT_NAMESPACE: Final = "mw"
DEFAULT_SHARDS: Final = 16
"""Number of hash-tag shards on Redis Cluster; stored in ``{ns}:schema`` so readers use the
writer's value."""
STANDALONE_SHARDS: Final = 1
"""Shards on a standalone or Sentinel-managed Redis, where hash tags buy nothing: one shard
keeps every fleet counter in one hash per family, so a scrape reads each tool or lock name
once instead of once per shard."""


def default_shards(cluster: bool) -> int:
    return DEFAULT_SHARDS if cluster else STANDALONE_SHARDS


# Defaults (seconds) ---------------------------------------------------------------------------
DEFAULT_SESSION_TTL: Final = 7 * 24 * 3600
DEFAULT_PREFERENCES_TTL: Final = 365 * 24 * 3600
DEFAULT_LOCK_TTL: Final = 30.0
DEFAULT_TOOL_RETENTION: Final = 24 * 3600
DEFAULT_TOOL_DEADLINE: Final = 30.0
DEFAULT_TOOL_WAIT: Final = 5.0
"""How long ``run_tool`` waits for a concurrent call of the same key to finish before raising
``ToolInProgress``: long enough for a page refresh (typically 1-3 s after the first submit) to get
the first call's answer, short enough not to pin a request worker; well under the tool deadline
(30 s), so a waiter never waits out a dead holder."""
DEFAULT_HEARTBEAT_TTL: Final = 15.0
PROBE_TTL: Final = 5.0
DEFAULT_NAME_CAP: Final = 100
"""Lock kinds and tool names a shard counts by name; later ones are counted as ``other``."""
OTHER: Final = "other"
"""The counter field (and label value) of the names beyond the cap."""

# Fields of the ``{ns}:schema`` hash ------------------------------------------------------------
SCHEMA_FIELD_VERSION: Final = "version"
SCHEMA_FIELD_SHARDS: Final = "shards"

# Tool record (hash) fields and states ----------------------------------------------------------
TOOL_STATE_IN_PROGRESS: Final = "in_progress"
TOOL_STATE_COMPLETED: Final = "completed"
TOOL_STATE_FAILED: Final = "failed"
TOOL_STATE_RELEASED: Final = "released"
TOOL_OUTCOME_ABANDONED: Final = "abandoned"
"""tool_complete's outcome for a claim durable mode refused: never a stored state."""
"""A retryable error freed the key: the next claim starts afresh (fencing token keeps rising)."""

TOOL_FIELD_STATE: Final = "state"
"""in_progress | completed | failed | released"""
TOOL_FIELD_TOOL: Final = "tool"
TOOL_FIELD_FINGERPRINT: Final = "fp"
"""sha256 of the canonical JSON of the arguments"""
TOOL_FIELD_OWNER: Final = "owner"
"""opaque token of the current claim (instance id + nonce)"""
TOOL_FIELD_INSTANCE: Final = "instance"
"""instance id of the current or last claim holder"""
TOOL_FIELD_FENCE: Final = "fence"
"""fencing token of the current claim, from the shard's fencing counter"""
TOOL_FIELD_LABEL: Final = "label"
"""the tool's counter field: its name, or ``other`` beyond the name cap"""
TOOL_FIELD_STARTED_MS: Final = "started_ms"
TOOL_FIELD_DEADLINE_MS: Final = "deadline_ms"
"""server time after which an in_progress claim may be reclaimed"""
TOOL_FIELD_ENDED_MS: Final = "ended_ms"
TOOL_FIELD_RESULT: Final = "result"
"""JSON of the result (completed) or ``{"type", "message"}`` (failed)"""
TOOL_FIELDS: Final = (
    TOOL_FIELD_STATE,
    TOOL_FIELD_TOOL,
    TOOL_FIELD_FINGERPRINT,
    TOOL_FIELD_OWNER,
    TOOL_FIELD_INSTANCE,
    TOOL_FIELD_FENCE,
    TOOL_FIELD_LABEL,
    TOOL_FIELD_STARTED_MS,
    TOOL_FIELD_DEADLINE_MS,
    TOOL_FIELD_ENDED_MS,
    TOOL_FIELD_RESULT,
)
"""Written by tool_claim.lua and tool_complete.lua (times are server ms since the epoch)."""

# Instance heartbeat (hash) fields --------------------------------------------------------------
HEARTBEAT_READY: Final = "ready"
"""``1`` or ``0``: the instance's last readiness verdict"""
HEARTBEAT_POOL_IN_USE: Final = "pool_in_use"
HEARTBEAT_POOL_MAX: Final = "pool_max"
HEARTBEAT_POOL_PENDING: Final = "pool_pending"
HEARTBEAT_POOL_TIMEOUTS: Final = "pool_timeouts"
HEARTBEAT_SDK_VERSION: Final = "sdk_version"
HEARTBEAT_SCHEMA_VERSION: Final = "schema_version"
HEARTBEAT_TS_MS: Final = "ts_ms"
POOL_ENTRY_FORMAT: Final = ">ddBddd"
"""Lua ``struct`` (and Python `struct`) format of a `Schema.pool_index` value, followed by
the instance id: heartbeat ms, TTL ms, ready (0/1), pool in use, pool max, pool timeouts (-1:
not reported). Packed, not text: the exporter's script unpacks 10,000 of them per scrape, and
struct.unpack is the cheapest parse Lua has; the id in the value lets it read HVALS alone."""
POOL_AGGREGATE_KINDS: Final = ("pool_live", "pool_use", "pool_sums")
"""Per shard, kept by the heartbeat script next to ``pool`` (docs/schema.md, *Heartbeats*):
``pool_live`` zset id -> expiry ms (heartbeat ms + TTL) of the instances counted in the
aggregates; ``pool_use`` zset id -> minus the pool use ratio (ZRANGE 0 K-1: the K most used,
ties by id); ``pool_sums`` hash of the counted instances' figures (`POOL_SUM_FIELDS` and one
`pool_bucket_field` per bucket)."""
POOL_USE_BUCKETS: Final[tuple[float, ...]] = (0.25, 0.5, 0.75, 0.9, 1.0)
"""Upper bounds of the pool-use distribution over instances (used / max); +Inf is implied
(an instance can report more in use than its max while a pool resizes). heartbeat.lua holds
the same bounds (a test compares them)."""
POOL_SUM_FIELDS: Final = ("ready", "not_ready", "reporting", "ratio_ppm", "timeouts", "hit")
"""``pool_sums`` fields: instances ready / not ready, reporting both pool figures, the sum of
their use ratios in millionths, the sum of their timeout counters, how many report timeouts."""


def pool_bucket_field(bound: float | None) -> str:
    """The ``pool_sums`` field counting instances in the bucket ending at ``bound`` (not
    cumulative; None: above the last bound)."""
    return "le_+Inf" if bound is None else f"le_{bound:g}"


HEARTBEAT_FIELDS: Final = (
    HEARTBEAT_READY,
    HEARTBEAT_POOL_IN_USE,
    HEARTBEAT_POOL_MAX,
    HEARTBEAT_POOL_PENDING,
    HEARTBEAT_POOL_TIMEOUTS,
    HEARTBEAT_SDK_VERSION,
    HEARTBEAT_SCHEMA_VERSION,
    HEARTBEAT_TS_MS,
)
"""The pool fields are -1 when the client's pool cannot tell."""

# Counter families: one hash per (shard, family) ------------------------------------------------
FAMILY_LOCK_CONTENDED: Final = "lock_contended"
"""field = lock name; acquisitions whose first attempt found the lock held."""
FAMILY_LOCK_TIMEOUTS: Final = "lock_timeouts"
"""field = lock name; acquisitions that gave up after their wait."""
FAMILY_LOCKS_LOST: Final = "locks_lost"
"""field = lock name; a release (or renewal) found the lock no longer ours."""
FAMILY_LOCK_WAIT: Final = "lock_wait_seconds"
"""histogram, fields ``{lock}|{le}`` (non-cumulative bucket counts) and ``{lock}|sum``. One
observation per successful acquisition, so its count is ``lock_acquisitions_total`` (no
separate counter: one write less in the hot path)."""
FAMILY_TOOL_EXECUTIONS: Final = "tool_executions"
"""fields ``{tool}|{status}``; status is completed, failed or retryable."""
FAMILY_TOOL_DUPLICATES_SUPPRESSED: Final = "tool_duplicates_suppressed"
"""field = tool; a replay answered from the stored record, the side effect not repeated."""
FAMILY_TOOL_DUPLICATE_EXECUTIONS: Final = "tool_duplicate_executions"
"""field = tool; a holder finished after its claim was reclaimed: the side effect ran twice."""
FAMILY_TOOL_RECLAIMS: Final = "tool_reclaims"
"""field = tool; an in_progress claim past its deadline was taken over."""
FAMILY_TOOL_FINGERPRINT_MISMATCHES: Final = "tool_fingerprint_mismatches"
"""field = tool; a replay with the same key and other arguments (an error to the caller)."""
FAMILY_TOOL_IN_PROGRESS_CONFLICTS: Final = "tool_in_progress_conflicts"
"""field = tool; a caller found the same key in progress under a live claim."""
FAMILY_TOOL_CLAIMS_LOST: Final = "tool_claims_lost"
"""field = tool; completion found the claim owned by someone else or gone."""
FAMILY_STATE_MISSES: Final = "state_misses"
"""field = kind (see ``MISS_*``); state that should exist was gone (evicted or deleted)."""
FAMILY_STATE_NOT_DURABLE: Final = "state_not_durable"
"""field = op (see ``DURABLE_OPS``); a durable-mode write that fewer replicas than asked for
acknowledged within the replica timeout: refused to the caller (``StateNotDurable``)."""
FAMILY_TURN_DURATION: Final = "turn_duration_seconds"
"""histogram, fields ``all|{le}`` and ``all|sum`` (name fixed: turns carry no label)."""

COUNTER_FAMILIES: Final = (
    FAMILY_LOCK_CONTENDED,
    FAMILY_LOCK_TIMEOUTS,
    FAMILY_LOCKS_LOST,
    FAMILY_TOOL_EXECUTIONS,
    FAMILY_TOOL_DUPLICATES_SUPPRESSED,
    FAMILY_TOOL_DUPLICATE_EXECUTIONS,
    FAMILY_TOOL_RECLAIMS,
    FAMILY_TOOL_FINGERPRINT_MISMATCHES,
    FAMILY_TOOL_IN_PROGRESS_CONFLICTS,
    FAMILY_TOOL_CLAIMS_LOST,
    FAMILY_STATE_MISSES,
    FAMILY_STATE_NOT_DURABLE,
)
HISTOGRAM_FAMILIES: Final = (FAMILY_LOCK_WAIT, FAMILY_TURN_DURATION)

MISS_HISTORY: Final = "history"
MISS_TOOL_RECORD: Final = "tool_record"
MISS_CHECKPOINT: Final = "checkpoint"
"""A LangGraph thread's index lists a checkpoint whose record is gone, or pending writes
arrived for a checkpoint the thread no longer holds."""

DURABLE_TOOL_CLAIM: Final = "tool_claim"
DURABLE_TOOL_COMPLETE: Final = "tool_complete"
DURABLE_HISTORY_APPEND: Final = "history_append"
DURABLE_LOCK_ACQUIRE: Final = "lock_acquire"
DURABLE_CHECKPOINT_PUT: Final = "checkpoint_put"
"""A LangGraph checkpoint (``put``, ``copy_thread``)."""
DURABLE_CHECKPOINT_WRITES: Final = "checkpoint_writes"
"""A LangGraph checkpoint's pending writes (``put_writes``)."""
DURABLE_OPS: Final = (
    DURABLE_TOOL_CLAIM,
    DURABLE_TOOL_COMPLETE,
    DURABLE_HISTORY_APPEND,
    DURABLE_LOCK_ACQUIRE,
    DURABLE_CHECKPOINT_PUT,
    DURABLE_CHECKPOINT_WRITES,
)
"""The writes durable mode waits for replicas on: what the user or the outside world relies on."""

TOOL_STATUS_COMPLETED: Final = "completed"
TOOL_STATUS_FAILED: Final = "failed"
TOOL_STATUS_RETRYABLE: Final = "retryable"

TURN_HISTOGRAM_NAME: Final = "all"
FIELD_SEP: Final = "|"
SUM_SUFFIX: Final = "sum"
INF_LE: Final = "+Inf"

LOCK_WAIT_BUCKETS: Final[tuple[float, ...]] = (
    0.001,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
TURN_BUCKETS: Final[tuple[float, ...]] = (
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    20.0,
    30.0,
    60.0,
    120.0,
)

HISTOGRAM_BUCKETS: Final[dict[str, tuple[float, ...]]] = {
    FAMILY_LOCK_WAIT: LOCK_WAIT_BUCKETS,
    FAMILY_TURN_DURATION: TURN_BUCKETS,
}
"""The upper bounds each histogram family counts into (its ``le`` fields)."""


# Key kinds: every key of the layout, once. The SDK builds keys from these names; the
# exporter's key classifier and sampler read the same table (exporter/keyclass.py).
KEY_CLASS_HISTORY: Final = "history"
KEY_CLASS_PREFERENCES: Final = "preferences"
KEY_CLASS_LOCK: Final = "lock"
KEY_CLASS_TOOL: Final = "tool"
KEY_CLASS_CHECKPOINT: Final = "checkpoint"
"""LangGraph checkpoints written by ``memorywatch.integrations.langgraph``."""
KEY_CLASS_OTHER: Final = "other"
KEY_CLASSES: Final = (
    KEY_CLASS_HISTORY,
    KEY_CLASS_PREFERENCES,
    KEY_CLASS_LOCK,
    KEY_CLASS_TOOL,
    KEY_CLASS_CHECKPOINT,
    KEY_CLASS_OTHER,
)

KIND_HISTORY: Final = "hist"
KIND_PREFERENCES: Final = "prefs"
KIND_USER_SESSIONS: Final = "usess"
KIND_LOCK: Final = "lock"
KIND_TOOL: Final = "tool"
KIND_HEARTBEAT: Final = "inst"
KIND_PROBE: Final = "probe"
KIND_STATS: Final = "stats"
KIND_CHECKPOINTS: Final = "lgcp"
"""LangGraph checkpoints of one thread (hash: member -> record)."""
KIND_CHECKPOINT_INDEX: Final = "lgix"
"""The thread's checkpoint index (zset of members, score 0, newest = greatest)."""
KIND_CHECKPOINT_WRITES: Final = "lgw"
"""The pending writes of the thread's checkpoints (hash: write field -> record)."""
KIND_CHECKPOINT_RUN: Final = "lgrun"
"""The threads a LangGraph run wrote checkpoints to (set), for ``delete_for_runs``."""
DEFAULT_MAX_CHECKPOINTS: Final = 100
"""Checkpoints a LangGraph thread keeps (all namespaces together); older ones are trimmed."""


@dataclass(frozen=True)
class KeyKind:
    """What a kind of key holds: its class of agent state, its Redis type, its TTL rule."""

    key_class: str
    redis_type: str
    needs_ttl: bool


ID_KINDS: Final[dict[str, KeyKind]] = {
    KIND_HISTORY: KeyKind(KEY_CLASS_HISTORY, "list", True),
    KIND_PREFERENCES: KeyKind(KEY_CLASS_PREFERENCES, "hash", True),
    KIND_USER_SESSIONS: KeyKind(KEY_CLASS_PREFERENCES, "set", False),  # expires with sessions
    KIND_LOCK: KeyKind(KEY_CLASS_LOCK, "string", True),
    KIND_TOOL: KeyKind(KEY_CLASS_TOOL, "hash", True),
    KIND_HEARTBEAT: KeyKind(KEY_CLASS_OTHER, "hash", True),
    KIND_PROBE: KeyKind(KEY_CLASS_OTHER, "string", True),
    KIND_CHECKPOINTS: KeyKind(KEY_CLASS_CHECKPOINT, "hash", True),
    KIND_CHECKPOINT_INDEX: KeyKind(KEY_CLASS_CHECKPOINT, "zset", True),
    KIND_CHECKPOINT_WRITES: KeyKind(KEY_CLASS_CHECKPOINT, "hash", True),
    KIND_CHECKPOINT_RUN: KeyKind(KEY_CLASS_CHECKPOINT, "set", True),
}
"""``{ns}:{N}:<kind>:<id>`` keys."""
SHARD_KEYS: Final[dict[str, KeyKind]] = {
    "sessions": KeyKind(KEY_CLASS_OTHER, "zset", False),
    "instances": KeyKind(KEY_CLASS_OTHER, "zset", False),
    "pool": KeyKind(KEY_CLASS_OTHER, "hash", False),
    "pool_live": KeyKind(KEY_CLASS_OTHER, "zset", False),
    "pool_use": KeyKind(KEY_CLASS_OTHER, "zset", False),
    "pool_sums": KeyKind(KEY_CLASS_OTHER, "hash", False),
    "fence": KeyKind(KEY_CLASS_LOCK, "string", False),
}
"""``{ns}:{N}:<kind>``: one per shard."""
SHARD_INDEXES: Final[dict[tuple[str, str], KeyKind]] = {
    ("locks", "exp"): KeyKind(KEY_CLASS_LOCK, "zset", False),
    ("locks", "since"): KeyKind(KEY_CLASS_LOCK, "zset", False),
    ("tools", "inprog"): KeyKind(KEY_CLASS_TOOL, "zset", False),
    ("names", "lock"): KeyKind(KEY_CLASS_LOCK, "set", False),
    ("names", "tool"): KeyKind(KEY_CLASS_TOOL, "set", False),
}
"""``{ns}:{N}:<kind>:<part>``: one per shard."""
STATS_KIND: Final = KeyKind(KEY_CLASS_OTHER, "hash", False)
"""``{ns}:{N}:stats:<family>``."""
SCHEMA_KIND: Final = KeyKind(KEY_CLASS_OTHER, "hash", False)


def shard_of(subject: str, shards: int) -> int:
    """The shard of a subject: CRC-32 (IEEE, as zlib) of its UTF-8 bytes modulo ``shards``."""
    return zlib.crc32(subject.encode()) % shards


def format_le(bound: float) -> str:
    """Prometheus-style bucket bound: ``0.005``, ``1.0``, ``+Inf``."""
    return INF_LE if math.isinf(bound) else repr(float(bound))


def bucket_le(value: float, buckets: Sequence[float]) -> str:
    """The ``le`` of the smallest bucket holding ``value`` (buckets sorted ascending)."""
    for bound in buckets:
        if value <= bound:
            return format_le(bound)
    return INF_LE


def counter_field(name: str, sub: str | None = None) -> str:
    """A counter field: the bare name, or ``name|sub`` for two-label families."""
    return name if sub is None else f"{name}{FIELD_SEP}{sub}"


@dataclass(frozen=True)
class Schema:
    """Key builders for one namespace. Keep instances; they are cheap and immutable."""

    namespace: str = DEFAULT_NAMESPACE
    shards: int = DEFAULT_SHARDS
    _prefixes: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.namespace or any(c in self.namespace for c in "{}"):
            raise ValueError(f"invalid namespace {self.namespace!r}")
        if not 1 <= self.shards <= 16384:
            raise ValueError(f"shards must be in [1, 16384], got {self.shards}")
        prefixes = tuple(f"{self.namespace}:{{{n}}}:" for n in range(self.shards))
        object.__setattr__(self, "_prefixes", prefixes)

    # -- helpers ---------------------------------------------------------------------------------
    def shard(self, subject: str) -> int:
        return shard_of(subject, self.shards)

    def prefix(self, shard: int) -> str:
        """``{ns}:{N}:``, the common prefix of every key of shard ``N``."""
        return self._prefixes[shard]

    def _key(self, subject: str, kind: str, ident: str) -> str:
        return f"{self._prefixes[shard_of(subject, self.shards)]}{kind}:{ident}"

    # -- single keys -----------------------------------------------------------------------------
    def schema_key(self) -> str:
        """``{ns}:schema``: hash with ``version`` and ``shards``."""
        return f"{self.namespace}:schema"

    def history(self, session_id: str) -> str:
        """List of JSON messages ``{"role","text","ts"}``, TTL = session TTL, refreshed on append."""
        return self._key(session_id, KIND_HISTORY, session_id)

    def sessions_index(self, session_id: str) -> str:
        """Sorted set of the session's shard: member = session id, score = last activity (ms).

        No TTL on purpose: ``volatile-*`` eviction never picks it, so it survives to witness
        the eviction of a history (a StateMiss). Appends prune members older than the TTL.
        """
        return self.prefix(self.shard(session_id)) + "sessions"

    def preferences(self, user_id: str) -> str:
        """Hash of JSON values per preference name, TTL = preferences TTL."""
        return self._key(user_id, KIND_PREFERENCES, user_id)

    def user_sessions(self, user_id: str) -> str:
        """Set of the user's session ids, so ``forget_user`` finds every key of the user."""
        return self._key(user_id, KIND_USER_SESSIONS, user_id)

    def lock(self, lock_id: str) -> str:
        """String ``{fence}|{owner}`` with PX TTL; owner = ``{instance}|{nonce}``.

        ``lock_id`` is :func:`lock_id` of the kind and resource (or the one-argument name)."""
        return self._key(lock_id, KIND_LOCK, lock_id)

    def fence(self, subject: str) -> str:
        """``{ns}:{N}:fence``: the shard's one integer counter (INCR, no TTL, O(shards) keys).

        Every lock acquisition and tool claim of the shard takes the next value, so tokens
        rise strictly for every resource, across resources, reclaims and expired records."""
        return self.prefix(self.shard(subject)) + "fence"

    def names(self, what: str, subject: str) -> str:
        """``{ns}:{N}:names:{what}`` (``lock`` or ``tool``): the set of at most ``name_cap``
        names the shard counts by name (no TTL, bounded by the cap)."""
        return f"{self.prefix(self.shard(subject))}names:{what}"

    def tool(self, idempotency_key: str) -> str:
        """Tool record hash (see ``TOOL_FIELDS``), TTL = retention (24 h default)."""
        return self._key(idempotency_key, KIND_TOOL, idempotency_key)

    def locks_expiry(self, name: str) -> str:
        """Sorted set of the lock's shard: member = :func:`lock_member`, score = expiry (ms).

        With ``locks_since`` it lets the exporter count held locks (ZCOUNT) and find the
        oldest without SCAN. Acquire adds, extend moves the expiry, release removes; entries
        of holders that died expire by score and are pruned by later acquisitions.
        """
        return self.prefix(self.shard(name)) + "locks:exp"

    def locks_since(self, name: str) -> str:
        """Sorted set of the lock's shard: member = :func:`lock_member`, score = start of the
        current lease (acquisition or last renewal, server ms)."""
        return self.prefix(self.shard(name)) + "locks:since"

    def tools_in_progress(self, idempotency_key: str) -> str:
        """Sorted set of the key's shard: member = idempotency key, score = claim time (ms).

        Claim adds, completion removes; a claim whose holder died stays until it is reclaimed
        or its record's retention passes, which is what "stuck in progress" means.
        """
        return self.prefix(self.shard(idempotency_key)) + "tools:inprog"

    def checkpoints(self, thread_id: str) -> str:
        """LangGraph checkpoints of a thread: hash, field = ``{checkpoint_id}\\0{checkpoint_ns}``,
        value = the serialized checkpoint and metadata; TTL = thread retention, refreshed on
        every write and read (see docs/schema.md, "LangGraph checkpoints")."""
        return self._key(thread_id, KIND_CHECKPOINTS, thread_id)

    def checkpoint_index(self, thread_id: str) -> str:
        """Sorted set of the thread's checkpoints (score 0, so ordered by checkpoint id, which
        LangGraph makes time-ordered); at most ``max_checkpoints`` members; same TTL."""
        return self._key(thread_id, KIND_CHECKPOINT_INDEX, thread_id)

    def checkpoint_writes(self, thread_id: str) -> str:
        """Pending writes of the thread's checkpoints: hash, field =
        ``{checkpoint_id}\\0{checkpoint_ns}\\0{task_id}\\0{idx}``; trimmed with their checkpoint;
        same TTL."""
        return self._key(thread_id, KIND_CHECKPOINT_WRITES, thread_id)

    def checkpoint_run(self, run_id: str) -> str:
        """Set of the thread ids a LangGraph run wrote checkpoints to (usually one), so
        ``delete_for_runs`` finds them without SCAN; TTL = the threads' retention."""
        return self._key(run_id, KIND_CHECKPOINT_RUN, run_id)

    def heartbeat(self, instance_id: str) -> str:
        """Instance hash (see ``HEARTBEAT_FIELDS``) with a short TTL."""
        return self._key(instance_id, KIND_HEARTBEAT, instance_id)

    def instances_index(self, instance_id: str) -> str:
        """Sorted set of the instance's shard: member = instance id, score = last heartbeat ms."""
        return self.prefix(self.shard(instance_id)) + "instances"

    def pool_index(self, instance_id: str) -> str:
        """Hash of the instance's shard: field = instance id, value = `POOL_ENTRY_FORMAT`
        (the heartbeat's figures, packed) + the id: the figures the heartbeat takes back out of
        the shard's `pool_aggregate_keys` when the instance beats again or dies, and what
        diagnose walks. Bound and TTL as the instances index: fields leave with their index
        member, 4 x heartbeat TTL after the last beat."""
        return self.prefix(self.shard(instance_id)) + "pool"

    def probe(self, instance_id: str) -> str:
        """Short-lived string written by the readiness probe (proves Redis accepts writes)."""
        return self._key(instance_id, KIND_PROBE, instance_id)

    def stats(self, family: str, subject: str) -> str:
        """The counter hash of ``family`` in the shard of ``subject``."""
        return f"{self.prefix(self.shard(subject))}stats:{family}"

    # -- whole-fleet readers (for the exporter) -------------------------------------------------
    def stats_keys(self, family: str) -> list[str]:
        """One hash per shard: HGETALL each and pass the replies to :func:`merge_counters`."""
        return [f"{p}stats:{family}" for p in self._prefixes]

    def sessions_keys(self) -> list[str]:
        """ZCOUNT each with ``(now_ms - window_ms, +inf`` and sum for active sessions."""
        return [f"{p}sessions" for p in self._prefixes]

    def locks_expiry_keys(self) -> list[str]:
        return [f"{p}locks:exp" for p in self._prefixes]

    def locks_since_keys(self) -> list[str]:
        return [f"{p}locks:since" for p in self._prefixes]

    def tools_in_progress_keys(self) -> list[str]:
        return [f"{p}tools:inprog" for p in self._prefixes]

    def fence_keys(self) -> list[str]:
        return [f"{p}fence" for p in self._prefixes]

    def names_keys(self, what: str) -> list[str]:
        return [f"{p}names:{what}" for p in self._prefixes]

    def pool_keys(self) -> list[str]:
        return [f"{p}pool" for p in self._prefixes]

    def pool_aggregate_keys(self, instance_id: str) -> list[str]:
        """The instance's shard's ``pool_live``, ``pool_use`` and ``pool_sums`` (see
        `POOL_AGGREGATE_KINDS`): what the heartbeat keeps so a scrape does not walk the pool
        hash."""
        prefix = self.prefix(self.shard(instance_id))
        return [prefix + kind for kind in POOL_AGGREGATE_KINDS]

    def pool_aggregate_keys_by_shard(self) -> list[list[str]]:
        """`pool_aggregate_keys` of every shard."""
        return [[p + kind for kind in POOL_AGGREGATE_KINDS] for p in self._prefixes]

    def heartbeat_prefixes(self) -> list[str]:
        """``{ns}:{N}:inst:`` per shard: prefix + instance id is the instance's heartbeat."""
        return [f"{p}{KIND_HEARTBEAT}:" for p in self._prefixes]

    def instances_keys(self) -> list[str]:
        """ZCOUNT each with ``(now_ms - heartbeat_ttl_ms, +inf`` and sum for live instances."""
        return [f"{p}instances" for p in self._prefixes]


NAMES_LOCK: Final = "lock"
NAMES_TOOL: Final = "tool"
LOCK_MEMBER_SEP: Final = "|"


def lock_id(kind: str, resource: str | None) -> str:
    """The identity of one lock: ``kind:resource``, or the kind alone when there is none."""
    return kind if resource is None else f"{kind}:{resource}"


def lock_member(label: str, ident: str) -> str:
    """Member of the held-lock indexes: ``{label}|{lock id}``, so a reader gets the lock's
    counter label without parsing ids (labels never hold ``|``)."""
    return f"{label}{LOCK_MEMBER_SEP}{ident}"


def lock_member_label(member: str) -> str:
    return member.partition(LOCK_MEMBER_SEP)[0]


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def merge_counters(
    replies: Iterable[Mapping[str, str] | Mapping[bytes, bytes]],
) -> dict[str, float]:
    """Sum HGETALL replies of one counter family over its shards: ``{field: total}``."""
    totals: dict[str, float] = {}
    for reply in replies:
        for raw_field, raw_value in reply.items():
            name = _text(raw_field)
            totals[name] = totals.get(name, 0.0) + float(_text(raw_value))
    return totals


def split_field(name: str) -> tuple[str, str]:
    """``"create_ticket|completed"`` -> ``("create_ticket", "completed")`` (last separator)."""
    head, _, tail = name.rpartition(FIELD_SEP)
    return head, tail


@dataclass(frozen=True)
class HistogramData:
    """A merged histogram: cumulative ``(le, count)`` pairs ending with ``+Inf``, sum, count."""

    buckets: tuple[tuple[str, float], ...]
    sum: float
    count: float


def merge_histograms(
    replies: Iterable[Mapping[str, str] | Mapping[bytes, bytes]],
    buckets: Sequence[float],
) -> dict[str, HistogramData]:
    """Merge the shard hashes of a histogram family into cumulative histograms per name."""
    totals = merge_counters(replies)
    per_name: dict[str, dict[str, float]] = {}
    for name, value in totals.items():
        head, tail = split_field(name)
        per_name.setdefault(head, {})[tail] = value
    les = [format_le(b) for b in buckets] + [INF_LE]
    out: dict[str, HistogramData] = {}
    for name, fields in sorted(per_name.items()):
        running = 0.0
        cumulative: list[tuple[str, float]] = []
        for le in les:
            running += fields.get(le, 0.0)
            cumulative.append((le, running))
        out[name] = HistogramData(tuple(cumulative), fields.get(SUM_SUFFIX, 0.0), running)
    return out
