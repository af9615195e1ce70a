"""schema.py: the contract the exporter reads. Pure functions plus the slot property on a real
key set (every script's keys hash to one cluster slot)."""

from __future__ import annotations

import pytest
from redis.crc import key_slot

from memorywatch import schema


def test_shard_of_is_crc32_modulo_and_stable() -> None:
    # CRC-32/IEEE of b"session-42" is 0x5E0D0C5A; other-language agents must agree on this.
    import zlib

    assert schema.shard_of("session-42", 16) == zlib.crc32(b"session-42") % 16
    assert schema.shard_of("session-42", 16) == schema.shard_of("session-42", 16)
    assert {schema.shard_of(f"s{i}", 16) for i in range(200)} == set(range(16))


@pytest.mark.parametrize("subject", ["order-42", "user-7", "session {weird}", "ключ", "a|b"])
def test_keys_of_one_operation_share_a_slot(subject: str) -> None:
    sch = schema.Schema("mw", 16)
    groups = [
        [sch.lock(subject), sch.fence(subject)]
        + [sch.stats(f, subject) for f in schema.COUNTER_FAMILIES + schema.HISTOGRAM_FAMILIES],
        [sch.tool(subject), sch.stats(schema.FAMILY_TOOL_EXECUTIONS, subject)],
        [sch.history(subject), sch.sessions_index(subject)],
        [sch.preferences(subject), sch.user_sessions(subject)],
        [sch.heartbeat(subject), sch.instances_index(subject)],
    ]
    for keys in groups:
        assert len({key_slot(k.encode()) for k in keys}) == 1, keys


def test_all_keys_under_namespace() -> None:
    sch = schema.Schema("acme", 4)
    keys = [sch.schema_key(), sch.history("s"), sch.lock("l"), *sch.stats_keys("x")]
    assert all(k.startswith("acme:") for k in keys)
    assert len(sch.stats_keys(schema.FAMILY_LOCK_CONTENDED)) == 4
    with pytest.raises(ValueError):
        schema.Schema("bad{ns}")
    with pytest.raises(ValueError):
        schema.Schema("mw", 0)


def test_bucket_le_and_format() -> None:
    assert schema.bucket_le(0.0, schema.LOCK_WAIT_BUCKETS) == "0.001"
    assert schema.bucket_le(0.003, schema.LOCK_WAIT_BUCKETS) == "0.005"
    assert schema.bucket_le(1.0, schema.LOCK_WAIT_BUCKETS) == "1.0"
    assert schema.bucket_le(99.0, schema.LOCK_WAIT_BUCKETS) == "+Inf"


def test_merge_counters_sums_shards_and_accepts_bytes() -> None:
    merged = schema.merge_counters([{"a": "1", "b": "2"}, {b"a": b"3"}, {}])
    assert merged == {"a": 4.0, "b": 2.0}
    assert schema.split_field("create|ticket|completed") == ("create|ticket", "completed")


def test_merge_histograms_is_cumulative_with_sum_and_count() -> None:
    replies = [
        {"L|0.001": "2", "L|0.5": "1", "L|sum": "0.6"},
        {"L|+Inf": "1", "L|sum": "40"},
    ]
    hist = schema.merge_histograms(replies, schema.LOCK_WAIT_BUCKETS)["L"]
    as_dict = dict(hist.buckets)
    assert as_dict["0.001"] == 2
    assert as_dict["0.25"] == 2
    assert as_dict["0.5"] == 3
    assert as_dict["30.0"] == 3
    assert as_dict["+Inf"] == 4
    assert hist.count == 4
    assert hist.sum == pytest.approx(40.6)
    assert list(as_dict) == [*map(schema.format_le, schema.LOCK_WAIT_BUCKETS), "+Inf"]


def test_schema_module_imports_no_client_libraries() -> None:
    import subprocess
    import sys

    code = (
        "import sys, memorywatch.schema; "
        "bad = [m for m in ('redis', 'prometheus_client', 'opentelemetry') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
