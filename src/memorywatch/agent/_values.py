"""Pieces shared by the sync and asyncio clients: script texts, encodings, small value types."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import hashlib
import itertools
import json
import os
import random
import socket
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Final

from memorywatch import schema
from memorywatch.agent.errors import RetryableToolError

PRELUDE: Final = "_prelude"
SCRIPT_NAMES: Final = (
    "lock_acquire",
    "lock_release",
    "lock_extend",
    "tool_claim",
    "tool_complete",
    "tool_extend",
    "history_append",
    "history_load",
    "history_pop",
    "turn_end",
    "prefs_set",
    "session_link",
    "forget_session",
    "heartbeat",
    "ready",
    "schema_init",
    "forget_user",
)


def _source(name: str) -> str:
    return resources.files("memorywatch.agent").joinpath(f"_scripts/{name}.lua").read_text()


def script_text(name: str) -> str:
    """The Lua source of ``_scripts/{name}.lua`` (package data) with the shared helpers of
    ``_prelude.lua`` placed after its ``#!lua`` line, which must stay first."""
    shebang, _, body = _source(name).partition("\n")
    return f"{shebang}\n{_source(PRELUDE)}{body}"


SCRIPT_TEXTS: Final = {name: script_text(name) for name in SCRIPT_NAMES}
SCRIPT_SHAS: Final = {
    name: hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()
    for name, text in SCRIPT_TEXTS.items()
}


def default_instance_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


_NONCE_PREFIX = os.urandom(6).hex()
_NONCE_COUNTER = itertools.count()


def owner_token(instance_id: str) -> str:
    """``{instance}|{nonce}``: unique per acquisition or claim (random per process + counter;
    cheaper than a uuid4 in the lock hot path, and re-randomized in forked children)."""
    return f"{instance_id}|{_NONCE_PREFIX}{next(_NONCE_COUNTER):x}"


def _reseed_after_fork() -> None:
    global _NONCE_PREFIX
    _NONCE_PREFIX = os.urandom(6).hex()


os.register_at_fork(after_in_child=_reseed_after_fork)


def ms(seconds: float) -> int:
    value = int(seconds * 1000)
    if value <= 0:
        raise ValueError(f"a TTL must be positive, got {seconds}s")
    return value


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def pairs(reply: Any) -> dict[str, str]:
    """A hash reply as text: a mapping (redis-py's HGETALL) or a flat list (a script's)."""
    if isinstance(reply, Mapping):
        return {text(k): text(v) for k, v in reply.items()}
    items = [text(x) for x in reply]
    return dict(zip(items[::2], items[1::2], strict=True))


def backoff(attempt: int, base: float = 0.002, cap: float = 0.05) -> float:
    """Full-jitter exponential backoff for waiters, so they do not retry in lockstep."""
    return random.uniform(base, min(cap, base * 2**attempt))


DEFAULT_REPLICA_TIMEOUT: Final = 0.5
MAX_REPLICA_TIMEOUT: Final = 60.0


@dataclass(frozen=True)
class Settings:
    """TTLs and limits of one AgentState (seconds)."""

    session_ttl: float = schema.DEFAULT_SESSION_TTL
    preferences_ttl: float = schema.DEFAULT_PREFERENCES_TTL
    lock_ttl: float = schema.DEFAULT_LOCK_TTL
    tool_deadline: float = schema.DEFAULT_TOOL_DEADLINE
    tool_retention: float = schema.DEFAULT_TOOL_RETENTION
    heartbeat_ttl: float = schema.DEFAULT_HEARTBEAT_TTL
    max_messages: int = 0
    """Older messages are trimmed beyond this many (0 = keep all)."""
    name_cap: int = schema.DEFAULT_NAME_CAP
    """Lock kinds and tool names each shard counts by name; beyond, they count as ``other``."""
    min_replicas: int = 0
    """Durable mode when > 0: tool claims and completions, history appends and lock
    acquisitions return only once this many replicas have them (``WAIT``), else raise
    :class:`StateNotDurable`."""
    replica_timeout: float = DEFAULT_REPLICA_TIMEOUT
    """Seconds a durable write waits for its replicas."""

    def __post_init__(self) -> None:
        if self.name_cap < 1:
            raise ValueError(f"name_cap must be at least 1, got {self.name_cap}")
        if not isinstance(self.min_replicas, int) or self.min_replicas < 0:
            raise ValueError(f"min_replicas must be an int >= 0, got {self.min_replicas!r}")
        if not 0 < self.replica_timeout <= MAX_REPLICA_TIMEOUT:
            raise ValueError(
                f"replica_timeout must be in (0, {MAX_REPLICA_TIMEOUT:g}] seconds, "
                f"got {self.replica_timeout!r}"
            )

    def durable(self, min_replicas: int | None, replica_timeout: float | None) -> Settings:
        """These settings with durable mode set by the constructor's keywords (None: keep)."""
        if min_replicas is None and replica_timeout is None:
            return self
        return dataclasses.replace(
            self,
            min_replicas=self.min_replicas if min_replicas is None else min_replicas,
            replica_timeout=self.replica_timeout if replica_timeout is None else replica_timeout,
        )


# -- messages -------------------------------------------------------------------------------------
def encode_message(role: str, content: str, ts: float, extra: Mapping[str, Any] | None) -> str:
    message: dict[str, Any] = {"role": role, "text": content, "ts": ts}
    if extra:
        message.update(extra)
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


def decode_messages(raw: Sequence[Any]) -> list[dict[str, Any]]:
    """One ``json.loads`` of the joined list: a fifth faster than one per message."""
    if not raw:
        return []
    if all(isinstance(item, bytes) for item in raw):
        joined: str | bytes = b"[" + b",".join(raw) + b"]"
    else:
        joined = "[" + ",".join(text(item) for item in raw) + "]"
    messages: list[dict[str, Any]] = json.loads(joined)
    return messages


def encode_value(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def decode_value(raw: Any) -> Any:
    return None if raw is None else json.loads(text(raw))


# -- tools ----------------------------------------------------------------------------------------
def _canonical(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    raise TypeError(
        f"cannot fingerprint a {type(value).__name__}: tool arguments must be JSON-like "
        "(a repr() would change between processes and break replays)"
    )


def fingerprint(tool: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of the call: stored on the record, compared on replay."""
    payload = json.dumps(
        {"tool": tool, "args": list(args), "kwargs": dict(kwargs)},
        sort_keys=True,
        separators=(",", ":"),
        default=_canonical,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def derived_key(namespace: str, tool: str, idempotency_key: str) -> str:
    """The key to hand to an external API: stable across reclaims, so the provider
    deduplicates a takeover's retry; not the raw key, so it does not leak our key space."""
    digest = hashlib.sha256(f"{namespace}\0{tool}\0{idempotency_key}".encode()).hexdigest()
    return f"mw-{digest[:40]}"


@dataclass(frozen=True)
class ToolContext:
    """What a tool function receives as its first argument."""

    tool: str
    fencing_token: int
    """Rises on every claim of this idempotency key: downstream systems reject lower tokens."""
    idempotency_key: str
    """Derived key for the external API (see :func:`derived_key`), not the caller's key."""
    instance_id: str
    reclaimed: bool
    """True when this run took over a claim whose holder missed its deadline."""


@dataclass(frozen=True)
class ToolOptions:
    """Per-call options of ``run_tool`` (passed as ``tool_options=``)."""

    wait: float = schema.DEFAULT_TOOL_WAIT
    """Seconds to wait for a concurrent holder's result before raising ToolInProgress (default
    5 s: a refresh that lands while the first call runs gets its answer; 0 answers at once)."""
    deadline: float | None = None
    """In-progress deadline; past it another caller may reclaim (default: state setting)."""
    retention: float | None = None
    """How long the record is kept (default: state setting, 24 h)."""
    renew: bool = False
    """Run a watchdog that pushes the deadline while the function runs."""
    retryable: tuple[type[BaseException], ...] = (RetryableToolError,)
    """Exceptions that free the key instead of being stored as the final outcome."""
    call_id: str | None = None
    """The model's tool-call id, recorded as ``gen_ai.tool.call.id``."""


@dataclass(frozen=True)
class ClaimReply:
    status: str
    fence: int
    payload: str
    label: str
    """The counter field the script used: the tool name, or ``other`` beyond the name cap."""

    @classmethod
    def parse(cls, reply: Sequence[Any]) -> ClaimReply:
        return cls(text(reply[0]), int(reply[1]), text(reply[2]), text(reply[3]))


def error_payload(exc: BaseException) -> str:
    return json.dumps({"type": type(exc).__name__, "message": str(exc)}, ensure_ascii=False)


def parse_error_payload(payload: str) -> tuple[str, str]:
    try:
        data = json.loads(payload)
        return str(data.get("type", "Error")), str(data.get("message", ""))
    except (ValueError, AttributeError):
        return "Error", payload


# -- health ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReadyReport:
    """Result of ``AgentState.ready()``: can this instance serve a user with memory right now?"""

    ready: bool
    reachable: bool
    writable: bool
    loading: bool
    latency_s: float | None
    deadline_s: float
    error: str | None = None
    details: dict[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        """The verdict, so ``if state.ready():`` means what it says."""
        return self.ready

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def pool_options(
    *,
    namespace: str,
    pool_name: str | None,
    meter: Any,
    max_connections: int,
    pool_timeout: float,
    socket_timeout: float,
    username: str | None,
    password: str | None,
) -> dict[str, Any]:
    """Keyword arguments of ``from_url`` for the sync and asyncio instrumented pools (each
    adds its own ``retry``). Credentials given apart from the URL (a password file, the
    environment) are passed only when given: a ``None`` would override the URL's own."""
    options: dict[str, Any] = {
        "pool_name": pool_name or f"memorywatch.{namespace}",
        "meter": meter,
        "max_connections": max_connections,
        "timeout": pool_timeout,
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": socket_timeout,
        "decode_responses": True,
    }
    given = {"username": username, "password": password}
    options.update({key: value for key, value in given.items() if value is not None})
    return options
