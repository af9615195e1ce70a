"""Drop-in compatibility with redis_exporter 1.45 (Debian `prometheus-redis-exporter`).

Both exporters scrape the same master (with a replica) and the same replica; every family
the issue names, and every `redis_*` family the peer emits, must exist in ours with the
same type and the same label names, so dashboards and rules written for it keep working.
"""

from __future__ import annotations

import subprocess
import urllib.request
from collections.abc import Iterator

import pytest
import redis

from harness import LOOPBACK, binary, free_port, master_with_replica, stop_pid, wait_until
from memorywatch import names
from metrics import InProcessExporter, Scrape

REQUIRED = [
    names.REDIS_UP, names.REDIS_INSTANCE_INFO, names.REDIS_UPTIME,
    names.REDIS_MEMORY_USED, names.REDIS_MEMORY_RSS, names.REDIS_MEMORY_PEAK, names.REDIS_MEMORY_MAX,
    names.REDIS_MEM_FRAGMENTATION_RATIO, names.REDIS_ALLOCATOR_FRAG_RATIO,
    names.REDIS_EVICTED_KEYS, names.REDIS_EXPIRED_KEYS, names.REDIS_KEYSPACE_HITS,
    names.REDIS_KEYSPACE_MISSES, names.REDIS_DB_KEYS, names.REDIS_DB_KEYS_EXPIRING,
    names.REDIS_CONNECTED_CLIENTS, names.REDIS_CONFIG_MAXCLIENTS, names.REDIS_BLOCKED_CLIENTS,
    names.REDIS_REJECTED_CONNECTIONS, names.REDIS_CONNECTIONS_RECEIVED,
    names.REDIS_CONNECTED_SLAVES, names.REDIS_MASTER_REPL_OFFSET,
    names.REDIS_RDB_LAST_SAVE, names.REDIS_RDB_LAST_BGSAVE_STATUS, names.REDIS_RDB_CHANGES_SINCE_SAVE,
    names.REDIS_AOF_ENABLED, names.REDIS_AOF_LAST_WRITE_STATUS, names.REDIS_LOADING,
    names.REDIS_COMMANDS, names.REDIS_COMMANDS_DURATION, names.REDIS_LATENCY_PERCENTILES,
    names.REDIS_SLOWLOG_LENGTH, names.REDIS_ERRORS,
]  # fmt: skip
REQUIRED_ON_MASTER = [names.REDIS_SLAVE_OFFSET, names.REDIS_SLAVE_LAG_SECONDS]
REQUIRED_ON_REPLICA = [
    names.REDIS_MASTER_LINK_UP, names.REDIS_MASTER_LAST_IO, names.REDIS_MASTER_SYNC_IN_PROGRESS,
    names.REDIS_SLAVE_REPL_OFFSET,
]  # fmt: skip
# The peer's metrics about itself; ours are memorywatch_* (build info, scrape duration, errors).
PEER_SELF = {
    "redis_exporter_build_info", "redis_exporter_last_scrape_connect_time_seconds",
    "redis_exporter_last_scrape_duration_seconds", "redis_exporter_last_scrape_error",
    "redis_exporter_scrape_duration_seconds", "redis_exporter_scrapes",
    "redis_target_scrape_request_errors", "redis_last_key_groups_scrape_duration_milliseconds",
}  # fmt: skip


def _signature(scrape: Scrape) -> dict[str, tuple[str, frozenset[str]]]:
    """family name -> (type, label names), as the same parser reads both outputs."""
    return {
        name: (
            str(family.type),
            frozenset(k for s in family.samples for k in s.labels if k != "quantile"),
        )
        for name, family in scrape.families.items()
    }


@pytest.fixture(scope="module")
def scrapes() -> Iterator[dict[str, tuple[Scrape, Scrape]]]:
    with master_with_replica() as (master, replica):
        client = master.client()
        for i in range(50):
            client.set(f"history:{i}", "m", ex=3600)
            client.get(f"history:{i}")
        client.get("missing")
        with pytest.raises(redis.ResponseError):
            client.execute_command("NOSUCHCOMMAND")
        client.config_set("slowlog-log-slower-than", "0")
        client.ping()
        port = free_port()
        peer = subprocess.Popen(
            [binary("prometheus-redis-exporter"), "--web.listen-address", f"{LOOPBACK}:{port}",
             "--redis.addr", master.url],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:

            def peer_scrape(target: str) -> Scrape:
                url = f"http://{LOOPBACK}:{port}/scrape?target={target}"
                with urllib.request.urlopen(url, timeout=10) as resp:
                    return Scrape(resp.read().decode())

            wait_until(lambda: peer_scrape(master.url), 10, what="redis_exporter")
            result = {}
            for role, server in (("master", master), ("replica", replica)):
                with InProcessExporter(redis_url=server.url) as ours:
                    result[role] = (ours.scrape(), peer_scrape(server.url))
            yield result
        finally:
            stop_pid(peer)


def test_peer_answered(scrapes: dict[str, tuple[Scrape, Scrape]]) -> None:
    for ours, theirs in scrapes.values():
        assert theirs.value(names.REDIS_UP) == 1
        assert ours.value(names.REDIS_UP) == 1


@pytest.mark.parametrize("role", ["master", "replica"])
def test_required_families_match_the_peer(
    role: str, scrapes: dict[str, tuple[Scrape, Scrape]]
) -> None:
    ours, theirs = (_signature(s) for s in scrapes[role])
    required = REQUIRED + (REQUIRED_ON_REPLICA if role == "replica" else REQUIRED_ON_MASTER)
    for name in required:
        family = name.removesuffix("_total")
        assert family in theirs, f"the peer does not emit {name}: test setup is wrong"
        assert family in ours, f"memorywatch does not emit {name}"
        assert ours[family] == theirs[family], (
            f"{name}: ours {ours[family]} vs peer {theirs[family]}"
        )


@pytest.mark.parametrize("role", ["master", "replica"])
def test_every_peer_redis_family_exists_in_ours(
    role: str, scrapes: dict[str, tuple[Scrape, Scrape]]
) -> None:
    ours, theirs = (_signature(s) for s in scrapes[role])
    peer_families = {n for n in theirs if n.startswith("redis_") and n not in PEER_SELF}
    missing = sorted(peer_families - set(ours))
    assert not missing, f"families the peer has and we lack: {missing}"
    different = {n: (ours[n], theirs[n]) for n in peer_families if ours[n] != theirs[n]}
    assert not different, f"type or label names differ: {different}"
