"""`memorywatch diagnose` on real Redis: each cause the runbooks name is seeded into a healthy
fleet and must come first, with no risk or symptom ranked as a cause; a healthy fleet yields no
cause and no risk; the command is read-only, prints no id, and fails in one line with exit 2
when it cannot check. The incidents the demo does not seed: test_diagnose_incidents.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from diagnose_helpers import HEALTHY, SECRET_MARKERS, Fleet, first, fleet, run_on, tuned
from harness import (
    RedisServer,
    freeze,
    master_with_replica,
    redis_cluster,
    redis_server,
    sentinel_group,
    thaw,
    wait_until,
)
from memorywatch.agent import (
    DuplicateExecution,
    LockLost,
    PoolExhausted,
    StateNotDurable,
    ToolContext,
    ToolOptions,
)

__all__ = ["fleet"]  # the fixture, imported for pytest


def test_a_healthy_fleet_yields_no_cause_and_no_risk(fleet: Fleet) -> None:
    report = fleet.run()
    assert report.causes == [], [c.alert for c in report.causes]
    assert report.risks == [] and report.symptoms == []
    assert report.exit_code == 0
    assert {c.outcome for c in report.checked} == {"ruled out", "needs prometheus"}
    ruled_out = {c.alert for c in report.checked if c.outcome == "ruled out"}
    # what Redis alone answers was asked of it, not deferred to Prometheus
    assert ruled_out >= {
        "RedisFragmentationHigh",
        "RedisWriteErrors",
        "RedisBusy",
        "RedisSlowCommands",
        "AgentToolOrphaned",
        "AgentRecordsWithoutTTL",
    }
    assert report.sample is not None and "all" in report.sample  # a small keyspace: every key


# -- one seeded cause each ----------------------------------------------------------------------
def seed_evicted(fleet: Fleet) -> None:
    raw = fleet.server.client()
    raw.config_set("maxmemory-policy", "allkeys-lru")
    raw.config_set("maxmemory", str(int(raw.info("memory")["used_memory"]) + 2 * 1024 * 1024))
    for n in range(400):
        fleet.state.history(f"sess-SECRET-{n}").append("user", "x" * 10_000)
    assert int(raw.info("stats")["evicted_keys"]) > 0


def seed_memory_high(fleet: Fleet) -> None:
    raw = fleet.server.client()
    raw.config_set("maxmemory", str(int(int(raw.info("memory")["used_memory"]) * 1.05)))


def seed_maxmemory_unset(fleet: Fleet) -> None:
    fleet.server.client().config_set("maxmemory", 0)


def seed_policy_unsafe(fleet: Fleet) -> None:
    fleet.server.client().config_set("maxmemory-policy", "volatile-lru")


def seed_orphaned_tool(fleet: Fleet) -> None:
    """A holder that dies mid-call (its heartbeat never comes again), claimed 10 min ago."""
    dead = fleet.other("agent-dead")

    def crash(ctx: ToolContext) -> None:
        raise KeyboardInterrupt  # the process dies mid-call: the claim stays in progress

    with pytest.raises(KeyboardInterrupt):
        dead.run_tool("send_email", "idem-SECRET-stuck", crash)
    dead.close()
    record = dead.schema.tool("idem-SECRET-stuck")
    inprog = dead.schema.tools_in_progress_keys()[0]  # one shard on a standalone Redis
    assert fleet.server.client().zscore(inprog, record) is not None
    fleet.server.client().zadd(inprog, {record: (time.time() - 600) * 1000})  # 10 min ago


def seed_stuck_tool(fleet: Fleet) -> None:
    """A live holder (it beats) whose call has been in progress for 10 min."""
    seed_orphaned_tool(fleet)
    fleet.other("agent-dead").heartbeat()


def seed_lock_near_ttl(fleet: Fleet) -> None:
    fleet.held.append(fleet.state.lock("refund", "order-1", ttl=3.0))
    time.sleep(2.6)


def seed_lock_lost(fleet: Fleet) -> None:
    lease = fleet.state.lock("refund", "order-2", ttl=0.1)
    time.sleep(0.3)
    with pytest.raises(LockLost):
        lease.release()


def seed_duplicate(fleet: Fleet) -> None:
    slow = fleet.other("agent-slow")
    errors: list[BaseException] = []

    def first_call() -> None:
        try:
            slow.run_tool(
                "charge", "idem-SECRET-dup", lambda ctx: time.sleep(0.6),
                tool_options=ToolOptions(deadline=0.2),
            )  # fmt: skip
        except DuplicateExecution as exc:
            errors.append(exc)

    thread = threading.Thread(target=first_call)
    thread.start()
    time.sleep(0.35)
    fleet.state.run_tool(
        "charge", "idem-SECRET-dup", lambda ctx: None, tool_options=ToolOptions(deadline=5)
    )
    thread.join(5)
    slow.close()
    assert errors, "the first holder did not see its claim taken over"


def seed_pool_timeouts(fleet: Fleet) -> None:
    tight = fleet.other("agent-tight", max_connections=1, pool_timeout=0.05)
    held = tight.client.connection_pool.get_connection()
    with pytest.raises(PoolExhausted):
        tight.history("sess-SECRET-9").append("user", "waits")
    tight.client.connection_pool.release(held)
    tight.heartbeat()  # beside the pool: reports the timeout
    tight.close()


def seed_clients_near_max(fleet: Fleet) -> None:
    raw = fleet.server.client()
    connected = int(raw.info("clients")["connected_clients"])
    raw.config_set("maxclients", connected + 6)
    fleet.held += [fleet.server.client() for _ in range(5)]
    for client in fleet.held:
        client.ping()


def seed_rejected(fleet: Fleet) -> None:
    raw = fleet.server.client()
    raw.ping()
    connected = int(raw.info("clients")["connected_clients"])
    raw.config_set("maxclients", connected)
    refused = fleet.server.client()
    with pytest.raises(Exception, match="max number of clients"):
        refused.ping()
    raw.config_set("maxclients", 10_000)


def seed_persistence_failing(fleet: Fleet) -> None:
    raw = fleet.server.client()
    shutil.rmtree(fleet.server.workdir)  # the disk "goes away": the snapshot cannot be written
    raw.bgsave()
    wait_until(
        lambda: raw.info("persistence")["rdb_last_bgsave_status"] == "err", 10, what="bgsave"
    )


def seed_no_ready(fleet: Fleet) -> None:
    fleet.state.heartbeat(ready=False)


def seed_not_durable(fleet: Fleet) -> None:
    durable = fleet.other("agent-durable", min_replicas=1, replica_timeout=0.05)
    with pytest.raises(StateNotDurable):
        durable.history("sess-SECRET-d").append("user", "refused")
    durable.close()


SEEDS: dict[str, tuple[Callable[[Fleet], None], str]] = {
    "evicted agent state": (seed_evicted, "AgentStateEvicted"),
    "maxmemory near": (seed_memory_high, "RedisMemoryHigh"),
    "tool stuck, holder dead": (seed_orphaned_tool, "AgentToolOrphaned"),
    "tool stuck, holder alive": (seed_stuck_tool, "AgentToolStuckInProgress"),
    "lock about to outlive its TTL": (seed_lock_near_ttl, "AgentLockHeldNearTTL"),
    "lost lock": (seed_lock_lost, "AgentLockLost"),
    "duplicate execution": (seed_duplicate, "AgentToolDuplicateExecution"),
    "pool exhaustion": (seed_pool_timeouts, "AgentClientPoolTimeouts"),
    "clients near maxclients": (seed_clients_near_max, "RedisClientsNearMax"),
    "rejected connections": (seed_rejected, "RedisRejectedConnections"),
    "persistence failing": (seed_persistence_failing, "RedisPersistenceFailing"),
    "no ready instance": (seed_no_ready, "AgentNoReadyInstances"),
    "durable writes refused": (seed_not_durable, "AgentStateNotDurable"),
}


@pytest.mark.parametrize("case", sorted(SEEDS))
def test_a_seeded_cause_comes_first(fleet: Fleet, case: str) -> None:
    seed, alert = SEEDS[case]
    seed(fleet)
    report = fleet.run()
    assert first(report) == alert, [c.alert for c in report.causes]
    cause = report.causes[0]
    assert cause.evidence and cause.mitigation and cause.runbook.endswith(alert)
    assert any(ch.isdigit() for line in cause.evidence for ch in line), "evidence without numbers"
    text = json.dumps(report.as_dict())
    assert not any(marker in text for marker in SECRET_MARKERS), text


def test_a_queue_backlog_comes_first(fleet: Fleet) -> None:
    raw = fleet.server.client()
    raw.rpush("jobs", *range(120))
    report = fleet.run(queues=("jobs",))
    assert first(report) == "AgentQueueBacklog"
    assert "120 entries for 1 ready" in " ".join(report.causes[0].evidence)


# -- replication ----------------------------------------------------------------------------------
@pytest.fixture
def pair() -> Iterator[tuple[RedisServer, RedisServer]]:
    with master_with_replica(*HEALTHY) as servers:
        yield servers


def test_a_replica_cut_off_from_its_master_comes_first(
    pair: tuple[RedisServer, RedisServer],
) -> None:
    _, replica = pair
    replica.client().replicaof("127.0.0.1", "1")  # a master that does not exist
    wait_until(lambda: replica.client().info("replication")["master_link_status"] == "down", 10)
    report = run_on(replica.url, "dxrepl")
    assert first(report) == "RedisReplicationLinkDown"


def test_a_lagging_replica_comes_first(pair: tuple[RedisServer, RedisServer]) -> None:
    master, replica = pair
    table = tuned(replica_lag_warning=1, replica_lag_critical=30)
    freeze(replica)
    try:
        time.sleep(2.5)  # replicas ack once a second: 2.5 s without one
        report = run_on(master.url, "dxlag", table)
    finally:
        thaw(replica)
    assert first(report) == "RedisReplicationLagHigh"
    assert report.causes[0].severity == "warning"


# -- the command ----------------------------------------------------------------------------------
def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "memorywatch", "diagnose", *args],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def test_configuration_risks_are_not_causes(fleet: Fleet) -> None:
    seed_maxmemory_unset(fleet)
    seed_policy_unsafe(fleet)
    report = fleet.run()
    assert report.causes == [] and report.exit_code == 0
    assert [r.alert for r in report.risks] == ["RedisEvictionPolicyUnsafe", "RedisMaxmemoryNotSet"]
    assert (
        "risks in the configuration (2), not causes"
        in cli("--redis-url", fleet.server.url, "--namespace", fleet.namespace).stdout
    )


def test_the_command_is_read_only_and_prints_no_id(fleet: Fleet) -> None:
    seed_orphaned_tool(fleet)
    raw = fleet.server.client()
    before = raw.info("persistence")["rdb_changes_since_last_save"]
    keys = raw.dbsize()
    for output in ("text", "json"):
        proc = cli("--redis-url", fleet.server.url, "--namespace", fleet.namespace,
                   "--format", output)  # fmt: skip
        assert proc.returncode == 1, proc.stderr
        assert not any(marker in proc.stdout for marker in SECRET_MARKERS), proc.stdout
    assert raw.info("persistence")["rdb_changes_since_last_save"] == before
    assert raw.dbsize() == keys
    body = json.loads(proc.stdout)
    assert set(body) >= {"causes", "checked", "errors"}
    assert body["causes"][0]["alert"] == "AgentToolOrphaned"
    assert [s["alert"] for s in body["symptoms"]] == ["AgentToolStuckInProgress"]
    assert body["symptoms"][0]["explained_by"] == "AgentToolOrphaned"
    assert set(body["causes"][0]) >= {"alert", "summary", "evidence", "mitigation", "runbook"}


def test_a_healthy_fleet_exits_0(fleet: Fleet) -> None:
    proc = cli("--redis-url", fleet.server.url, "--namespace", fleet.namespace)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no cause found" in proc.stdout
    assert "need history, not counted against this result" in proc.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--redis-url", "redis://127.0.0.1:1"), "Connection refused"),
        (("--redis-url", "mongodb://x"), "unsupported scheme"),
        (("--alert", "NoSuchAlert"), "no alert 'NoSuchAlert'"),
    ],
)
def test_what_it_cannot_check_exits_2_in_one_line(args: tuple[str, ...], message: str) -> None:
    proc = cli(*args)
    assert proc.returncode == 2
    assert message in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_wrong_password_exits_2_without_the_password(tmp_path: Path) -> None:
    with redis_server(password="right-one") as server:
        secret = tmp_path / "pw"
        secret.write_text("wrong-one\n")
        proc = cli("--redis-url", server.url, "--password-file", str(secret))
    assert proc.returncode == 2
    assert "wrong-one" not in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr


def test_alert_is_checked_first_ranked_on_its_merits_and_said_when_ruled_out(
    fleet: Fleet,
) -> None:
    seed_orphaned_tool(fleet)
    seed_maxmemory_unset(fleet)
    args = ("--redis-url", fleet.server.url, "--namespace", fleet.namespace, "--window", "0.3")
    body = json.loads(cli(*args, "--alert", "AgentToolStuckInProgress", "--format", "json").stdout)
    assert body["checked"][0]["alert"] == "AgentToolStuckInProgress"
    assert [c["alert"] for c in body["causes"]] == ["AgentToolOrphaned"]
    assert [c["alert"] for c in body["risks"]] == ["RedisMaxmemoryNotSet"]
    text = cli(*args, "--alert", "AgentToolStuckInProgress").stdout
    assert "AgentToolStuckInProgress: found, a consequence of AgentToolOrphaned" in text
    text = cli(*args, "--alert", "RedisMaxmemoryNotSet").stdout
    assert "RedisMaxmemoryNotSet: found, a risk in the configuration" in text
    assert "AgentLockLost: ruled out" in cli(*args, "--alert", "AgentLockLost").stdout
    unasked = cli(*args, "--alert", "RedisMasterChanged").stdout
    assert "RedisMasterChanged: not checked: needs history" in unasked  # only Prometheus can


def test_sentinel_and_cluster_targets_are_diagnosed_through_discovery() -> None:
    with sentinel_group("agents") as (_, replica, sentinel):
        replica.client().config_set("maxmemory", "64mb")
        url = f"redis+sentinel://127.0.0.1:{sentinel.port}/agents"
        report = run_on(url, "dxsent")
        assert not report.unreachable, report.errors
        assert report.causes == []
        assert [c.alert for c in report.risks] == ["RedisMaxmemoryNotSet"]  # the master's
    with redis_cluster(3) as nodes:
        report = run_on(f"redis+cluster://127.0.0.1:{nodes[0].port}", "dxclus")
        assert not report.unreachable, report.errors
        assert report.errors == []
        assert "RedisMaxmemoryNotSet" in [c.alert for c in report.risks]
