"""Which part of the agent state a Redis key holds, from its name alone.

The table of key kinds is the schema's (``schema.ID_KINDS``, ``SHARD_KEYS``,
``SHARD_INDEXES``): the SDK builds its keys from it, this module only parses names back.
"""

from __future__ import annotations

import re
from typing import Final

from memorywatch import schema

KEY_CLASSES: Final = schema.KEY_CLASSES

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
        return schema.SCHEMA_KIND.key_class, "schema", schema.SCHEMA_KIND.redis_type
    match = _PATTERN.match(rest)
    if match is None:
        return None
    kind, ident = match.group(2), match.group(3)
    found: schema.KeyKind | None = None
    if ident:
        found = schema.ID_KINDS.get(kind) or schema.SHARD_INDEXES.get((kind, ident))
        if found is None and kind == schema.KIND_STATS:
            found = schema.STATS_KIND
    elif ident is None:
        found = schema.SHARD_KEYS.get(kind)
    if found is None:
        return None
    return found.key_class, kind, found.redis_type


def key_class(key: str, namespace: str) -> str:
    parsed = parse_key(key, namespace)
    return parsed[0] if parsed else schema.KEY_CLASS_OTHER


def needs_ttl(kind: str) -> bool:
    """Whether a key of this id-kind must carry a TTL (a missing one is a schema error)."""
    found = schema.ID_KINDS.get(kind)
    return found is not None and found.needs_ttl
