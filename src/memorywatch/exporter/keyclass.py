"""Which part of the agent state a Redis key holds, from its name alone (docs/schema.md)."""

from __future__ import annotations

import re
from typing import Final

HISTORY: Final = "history"
PREFERENCES: Final = "preferences"
LOCK: Final = "lock"
TOOL: Final = "tool"
OTHER: Final = "other"
KEY_CLASSES: Final = (HISTORY, PREFERENCES, LOCK, TOOL, OTHER)

# kind in the key -> (key class, Redis type the SDK writes, whether it must carry a TTL)
KINDS: Final[dict[str, tuple[str, str, bool]]] = {
    "hist": (HISTORY, "list", True),
    "prefs": (PREFERENCES, "hash", True),
    "usess": (PREFERENCES, "set", False),
    "lock": (LOCK, "string", True),
    "tool": (TOOL, "hash", True),
    "inst": (OTHER, "hash", True),
    "probe": (OTHER, "string", True),
}
# Per-shard keys without an id: indexes and counters.
SHARD_KEYS: Final[dict[str, str]] = {
    "sessions": "zset",
    "instances": "zset",
    "fence": "string",
}
# Per-shard indexes named `kind:part`: the held-lock and in-progress indexes.
SHARD_INDEXES: Final[dict[tuple[str, str], str]] = {
    ("locks", "exp"): "zset",
    ("locks", "since"): "zset",
    ("tools", "inprog"): "zset",
    ("names", "lock"): "set",
    ("names", "tool"): "set",
}
STATS_TYPE: Final = "hash"

_PATTERN = re.compile(r"^\{(\d+)\}:([a-z]+)(?::(.*))?$", re.DOTALL)


def parse_key(key: str, namespace: str) -> tuple[str, str, str | None] | None:
    """(key class, kind, expected Redis type) of a key of the schema; None if foreign.

    Foreign means: under the namespace but not a shape the schema defines.
    """
    prefix = namespace + ":"
    if not key.startswith(prefix):
        return None
    rest = key[len(prefix) :]
    if rest == "schema":
        return OTHER, "schema", "hash"
    match = _PATTERN.match(rest)
    if match is None:
        return None
    kind, ident = match.group(2), match.group(3)
    if kind in KINDS and ident:
        key_class, redis_type, _ = KINDS[kind]
        return key_class, kind, redis_type
    if kind in SHARD_KEYS and ident is None:
        return (LOCK if kind == "fence" else OTHER), kind, SHARD_KEYS[kind]
    if ident is not None and (kind, ident) in SHARD_INDEXES:
        key_class = LOCK if kind == "locks" or ident == "lock" else TOOL
        return key_class, kind, SHARD_INDEXES[(kind, ident)]
    if kind == "stats" and ident:
        return OTHER, kind, STATS_TYPE
    return None


def key_class(key: str, namespace: str) -> str:
    parsed = parse_key(key, namespace)
    return parsed[0] if parsed else OTHER


def needs_ttl(kind: str) -> bool:
    return KINDS.get(kind, ("", "", False))[2]
