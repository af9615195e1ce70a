"""The heartbeat script and the exporter agree on the pool-use buckets they count by."""

from __future__ import annotations

import re

from memorywatch import schema
from memorywatch.agent._values import script_text
from memorywatch.exporter.collectors.fleet.read import POOL_USE_BUCKETS


def test_the_heartbeat_counts_by_the_buckets_the_exporter_reads() -> None:
    source = script_text("heartbeat")
    bounds = re.search(r"local BOUNDS = \{([^}]*)\}", source)
    fields = re.search(r"local BUCKETS = \{([^}]*)\}", source)
    assert bounds and fields
    assert tuple(float(b) for b in bounds.group(1).split(",")) == POOL_USE_BUCKETS
    assert [f.strip(" '") for f in fields.group(1).split(",")] == [
        schema.pool_bucket_field(b) for b in (*POOL_USE_BUCKETS, None)
    ]
