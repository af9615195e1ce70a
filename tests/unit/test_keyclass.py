"""The key classifier reads the schema's table of kinds: every key the SDK builds parses to
its kind, class and type; anything else under the namespace is foreign."""

from __future__ import annotations

import pytest

from memorywatch import schema
from memorywatch.exporter.keyclass import needs_ttl, parse_key

SCH = schema.Schema("mw", 16)


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (SCH.history("s-1"), ("history", "hist", "list")),
        (SCH.sessions_index("s-1"), ("other", "sessions", "zset")),
        (SCH.preferences("u-1"), ("preferences", "prefs", "hash")),
        (SCH.user_sessions("u-1"), ("preferences", "usess", "set")),
        (SCH.lock(schema.lock_id("charge", "order:42")), ("lock", "lock", "string")),
        (SCH.fence("x"), ("lock", "fence", "string")),
        (SCH.names(schema.NAMES_LOCK, "x"), ("lock", "names", "set")),
        (SCH.names(schema.NAMES_TOOL, "x"), ("tool", "names", "set")),
        (SCH.tool("idem-1"), ("tool", "tool", "hash")),
        (SCH.locks_expiry("x"), ("lock", "locks", "zset")),
        (SCH.locks_since("x"), ("lock", "locks", "zset")),
        (SCH.tools_in_progress("x"), ("tool", "tools", "zset")),
        (SCH.heartbeat("agent-1"), ("other", "inst", "hash")),
        (SCH.instances_index("agent-1"), ("other", "instances", "zset")),
        (SCH.probe("agent-1"), ("other", "probe", "string")),
        (SCH.stats(schema.FAMILY_LOCK_WAIT, "x"), ("other", "stats", "hash")),
        (SCH.schema_key(), ("other", "schema", "hash")),
    ],
)
def test_every_key_the_sdk_builds_is_classified(key: str, expected: tuple[str, str, str]) -> None:
    assert parse_key(key, "mw") == expected


@pytest.mark.parametrize(
    "key", ["mw:garbage", "mw:{0}:fence:order-1", "mw:{0}:hist:", "mw:{0}:nope:x", "mw:{x}:hist:s"]
)
def test_other_shapes_are_foreign(key: str) -> None:
    assert parse_key(key, "mw") is None


def test_ttl_rules_come_from_the_schema() -> None:
    assert needs_ttl(schema.KIND_HISTORY) and needs_ttl(schema.KIND_LOCK)
    assert not needs_ttl("sessions") and not needs_ttl("nope")
