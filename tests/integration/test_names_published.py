"""Every name and closed label value a real exporter publishes comes from memorywatch.names.

The static check (tests/unit/test_names.py) finds names typed as literals; this one scrapes a
master and its replica carrying a fleet's state (locks, tools, sessions, heartbeats, queues,
a foreign key) and checks the result against names.py, so a producer that builds a name or a
label value some other way fails too.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict

import pytest
from prometheus_client import ProcessCollector

from harness import master_with_replica, wait_until
from memorywatch import names
from memorywatch.agent import AgentState, LockTimeout, Settings, ToolFailed
from memorywatch.exporter.profiles import BUILTIN
from metrics import InProcessExporter, Scrape

VALUES = {k: v for k, v in vars(names).items() if k.isupper()}
METRICS = names.METRICS
LABELS = {v for k, v in VALUES.items() if k.startswith("LABEL_")}
LABELS |= {*names.INSTANCE_INFO_LABELS, "le"}
PROCESS = {
    sample.name for family in ProcessCollector(registry=None).collect() for sample in family.samples
}
"""prometheus_client's process collector, served beside ours under its own names."""
CLOSED = {
    (names.AGENT_INSTANCES, names.LABEL_STATE): {names.STATE_READY, names.STATE_NOT_READY},
    (names.AGENT_POOL_USE_INSTANCES, names.LABEL_LE): {"0.25", "0.5", "0.75", "0.9", "1", "+Inf"},
    (names.TOOL_EXECUTIONS, names.LABEL_STATUS): set(names.TOOL_STATUSES),
    (names.STATE_MISSES, names.LABEL_KIND): set(names.MISS_KINDS),
    (names.SCHEMA_ERRORS, names.LABEL_KIND): set(names.ERROR_KINDS),
    (names.KEYS_WITHOUT_TTL, names.LABEL_KEY_CLASS): set(names.KEY_CLASSES),
    (names.EVICTED_KEYS, names.LABEL_KEY_CLASS): set(names.KEY_CLASSES),
    (names.KEYSPACE_KEYS, names.LABEL_KEY_CLASS): set(names.KEY_CLASSES),
    (names.KEYSPACE_KEYS, names.LABEL_PROFILE): {*BUILTIN, names.PROFILE_NONE},
    (names.KEYSPACE_BYTES, names.LABEL_PROFILE): {*BUILTIN, names.PROFILE_NONE},
    (names.SAMPLER_FALLBACK, names.LABEL_REASON): set(names.FALLBACK_REASONS),
}


def _failing(ctx: object) -> None:
    raise ValueError("card declined")


def _published(scrape: Scrape) -> tuple[set[str], dict[tuple[str, str], set[str]]]:
    declared = set(re.findall(r"^# TYPE (\S+) ", scrape.text, flags=re.M))
    values: dict[tuple[str, str], set[str]] = defaultdict(set)
    for family in scrape.families.values():
        for sample in family.samples:
            for label, value in sample.labels.items():
                values[(sample.name, label)].add(value)
    return declared, values


@pytest.mark.timeout(120)
def test_every_published_name_and_closed_value_is_in_names_py() -> None:
    with master_with_replica() as (master, replica):
        client = master.client()
        state = AgentState.from_url(master.url, instance_id="agent-1", settings=Settings())
        try:
            state.history("s-1", user_id="u-1").append("user", "hello")
            with state.turn("s-1"):
                state.preferences("u-1").set("language", "en")
            state.run_tool("create_ticket", "idem-1", lambda ctx: {"ok": True})
            with pytest.raises(ValueError):
                state.run_tool("charge_card", "idem-2", _failing)
            with pytest.raises(ToolFailed):
                state.run_tool("charge_card", "idem-2", _failing)
            state.heartbeat()
            client.xadd("jobs", {"n": 1})
            client.xgroup_create("jobs", "workers", id="0")
            client.xreadgroup("workers", "w1", {"jobs": ">"}, count=1)
            client.lpush("tasks", "a")
            client.set("mw:not-ours", "x")  # foreign key in the namespace
            with state.lock("charge", "order-1", ttl=10):
                with pytest.raises(LockTimeout):
                    state.lock("charge", "order-1", wait=0.05).__enter__()
                with InProcessExporter(
                    redis_url=master.url,
                    queues=("jobs", "tasks"),
                    enable_keyspace_events=True,
                    sample_interval=0.1,
                ) as exporter:
                    wait_until(
                        lambda: names.KEYS_WITHOUT_TTL in exporter.scrape().text,
                        20,
                        what="a full sampler pass",
                    )
                    time.sleep(0.05)
                    primary = exporter.scrape()
        finally:
            state.close()
        with InProcessExporter(redis_url=replica.url, fleet=False) as exporter:
            secondary = exporter.scrape()

    declared, values = set(), defaultdict(set)
    for scrape in (primary, secondary):
        names_seen, values_seen = _published(scrape)
        declared |= names_seen
        for key, seen in values_seen.items():
            values[key] |= seen
    assert declared - METRICS - PROCESS == set()
    for expected in (names.LOCKS_HELD, names.REDIS_MASTER_LINK_UP, names.REDIS_SLAVE_LAG_SECONDS):
        assert expected in declared  # the scrape covered the fleet and both replication sides
    assert {label for _, label in values} - LABELS == set()
    for (metric, label), allowed in CLOSED.items():
        seen = {
            v
            for (name, lab), vs in values.items()
            if lab == label
            for v in vs
            if name.removesuffix("_total") == metric.removesuffix("_total")
        }
        assert seen, (metric, label)
        assert seen <= allowed, (metric, label, seen - allowed)
