"""The incidents on-call engineers met that `diagnose` used to give an all-clear on, each seeded
on a real Redis: a fragmented Redis, writes refused with OOM, a blocked Redis, a tool call
whose holder died, evictions caused by another library's keys without TTL. Each must come
first with its evidence in numbers, and no risk or symptom may be ranked as the cause. And a
run that could not check what its sources should answer says so with its own exit code."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator

import pytest
import redis

from diagnose_helpers import Fleet, evidence, first, fleet, run_on, tuned
from harness import LOOPBACK, free_port, prometheus, redis_server
from memorywatch import thresholds as th
from memorywatch.agent import Settings, ToolContext
from memorywatch.diagnose.facts import ReadOptions
from memorywatch.diagnose.model import EXIT_INCOMPLETE
from memorywatch.diagnose.prometheus import Prometheus
from memorywatch.diagnose.run import diagnose
from memorywatch.exporter.config import build_config
from memorywatch.exporter.fleet_options import FleetOptions

__all__ = ["fleet"]  # the fixture, imported for pytest

MIB = 1024 * 1024


def test_a_fragmented_redis_comes_first(fleet: Fleet) -> None:
    raw = fleet.server.client()
    raw.execute_command("DEBUG", "POPULATE", 600_000, "frag", 100)
    # two of every three keys deleted: their pages stay resident, half-empty
    script = (
        "for i = ARGV[1], ARGV[2] do if i % 3 ~= 0 then redis.call('DEL', 'frag:' .. i) end end"
    )
    for start in range(0, 600_000, 100_000):
        raw.eval(script, 0, start, start + 99_999)
    raw.slowlog_reset()  # the seed's own bulk commands are not the incident
    table = tuned(fragmentation_min_memory=10 * MIB)
    before = float(raw.info("memory")["mem_fragmentation_ratio"])
    report = fleet.run(table)
    after = float(raw.info("memory")["mem_fragmentation_ratio"])
    assert first(report) == "RedisFragmentationHigh"
    # the allocator keeps returning pages while the run reads: the ratio it reports is the one
    # Redis gave between the two reads around it, not a number of its own
    shown = re.search(
        r"mem_fragmentation_ratio ([0-9.]+)", evidence(report, "RedisFragmentationHigh")
    )
    assert shown is not None
    assert min(before, after) - 0.05 <= float(shown.group(1)) <= max(before, after) + 0.05
    assert float(shown.group(1)) > 1.5
    # below the table's minimum memory the ratio is noise: the default table rules it out
    assert "RedisFragmentationHigh" not in [c.alert for c in fleet.run().causes]


def test_writes_refused_with_oom_come_first_and_full_memory_is_their_symptom(
    fleet: Fleet,
) -> None:
    raw = fleet.server.client()
    raw.config_set("maxmemory", str(int(raw.info("memory")["used_memory"]) + 1 * MIB))
    refused = 0
    for n in range(200):
        try:
            raw.set(f"blob:{n}", "x" * 20_000)
        except redis.exceptions.OutOfMemoryError:
            refused += 1
    assert refused > 0
    report = fleet.run()
    assert first(report) == "RedisWriteErrors"
    assert f"OOM replies: {refused:,} since the restart" in evidence(report, "RedisWriteErrors")
    assert [(s.alert, s.explained_by) for s in report.symptoms] == [
        ("RedisMemoryHigh", "RedisWriteErrors")
    ]


@pytest.fixture
def blocked(fleet: Fleet) -> Iterator[Fleet]:
    """One client runs a 0.6 s command back to back: every other command queues behind it."""
    stop = threading.Event()

    def hog() -> None:
        with fleet.server.client(socket_timeout=5) as client:
            while not stop.is_set():
                client.execute_command("DEBUG", "SLEEP", "0.6")

    thread = threading.Thread(target=hog, daemon=True)
    thread.start()
    time.sleep(0.7)
    try:
        yield fleet
    finally:
        stop.set()
        thread.join(5)


def test_a_blocked_redis_comes_first_with_the_command_named(blocked: Fleet) -> None:
    report = blocked.run(budget=ReadOptions())  # the command's own one-second window
    assert first(report) == "RedisBusy"
    busy = evidence(report, "RedisBusy")
    assert "in commands (threshold 50 %): debug " in busy
    assert "SLOWLOG:" in busy and "debug x" in busy
    assert report.causes[0].severity == "critical"
    slow = next(s for s in report.symptoms if s.alert == "RedisSlowCommands")
    assert slow.explained_by == "RedisBusy"
    assert re.search(r"debug took 6\d\d ms per call", " ".join(slow.evidence)), slow.evidence


def test_a_tool_call_whose_holder_died_is_named_at_once(fleet: Fleet) -> None:
    """Seconds after the holder's heartbeat expired, long before AgentToolStuckInProgress's
    120 s: the call, when a retry runs it again, and what to check outside."""
    dying = fleet.other("agent-dying", settings=Settings(heartbeat_ttl=1.0))
    dying.heartbeat()

    def crash(ctx: ToolContext) -> None:
        raise KeyboardInterrupt  # killed mid side effect: the claim stays in progress

    with pytest.raises(KeyboardInterrupt):
        dying.run_tool("send_email", "idem-SECRET-orphan", crash)
    dying.close()
    report = fleet.run()
    assert "AgentToolOrphaned" not in [c.alert for c in report.causes]  # the holder still beats
    time.sleep(1.2)  # its heartbeat expires
    report = fleet.run()
    assert first(report) == "AgentToolOrphaned"
    found = evidence(report, "AgentToolOrphaned")
    assert "1 tool calls in progress whose holder sends no heartbeat: send_email 1" in found
    assert "a retry may reclaim and run one again in" in found
    assert "idempotency key" in report.causes[0].mitigation
    assert "AgentToolStuckInProgress" not in [c.alert for c in report.causes]


def test_evictions_name_the_class_that_holds_the_memory_without_ttl(fleet: Fleet) -> None:
    """Another library's sessions written without TTL fill maxmemory under volatile-lru: only
    agent state with a TTL can be evicted. The diagnosis measures who holds the memory."""
    raw = fleet.server.client()
    pipe = raw.pipeline(transaction=False)
    for n in range(300):  # openai-agents' RedisSession layout, no TTL (its default)
        pipe.rpush(f"agents:session:s{n}:messages", *(["m" * 200] * 50))
    pipe.execute()
    raw.config_set("maxmemory-policy", "volatile-lru")
    raw.config_set("maxmemory", str(int(raw.info("memory")["used_memory"]) + 2 * MIB))
    for n in range(300):
        fleet.state.history(f"sess-SECRET-{n}").append("user", "x" * 10_000)
    assert int(raw.info("stats")["evicted_keys"]) > 0
    report = fleet.run()
    assert first(report) == "AgentStateEvicted"
    found = evidence(report, "AgentStateEvicted")
    assert "who holds the memory (all keys): openai_agents history" in found
    assert "never evicts them; openai_agents history holds" in found
    assert report.causes[0].mitigation.startswith("openai_agents history keys hold")
    assert "RedisEvictionPolicyUnsafe" in [r.alert for r in report.risks]


def test_what_could_not_be_checked_makes_the_run_incomplete_not_clean(fleet: Fleet) -> None:
    """An ACL user without CONFIG and SLOWLOG: the hypotheses they answer are listed with why,
    and the exit code is 3, not the all-clear's 0."""
    raw = fleet.server.client()
    raw.execute_command(
        "ACL", "SETUSER", "watcher", "on", ">watch-pw", "~*", "&*", "+@all", "-config", "-slowlog"
    )
    report = run_on(fleet.server.url, fleet.namespace, username="watcher", password_env="watch-pw")
    assert report.causes == []
    assert report.exit_code == EXIT_INCOMPLETE == 3
    blind = {c.alert: c.reason for c in report.checked if c.outcome == "could not check"}
    assert "CONFIG GET maxclients was refused" in (blind.get("RedisClientsNearMax") or "")
    assert "SLOWLOG GET was refused" in (blind.get("RedisSlowCommands") or "")
    assert "not an all-clear" in report.verdict or "incomplete" in report.verdict


def test_a_sample_that_runs_out_of_time_makes_the_run_incomplete(fleet: Fleet) -> None:
    raw = fleet.server.client()
    raw.execute_command("DEBUG", "POPULATE", 200_000, "bulk", 10)
    raw.slowlog_reset()  # the seed's own bulk command is not the incident
    report = fleet.run(budget=ReadOptions(sample_keys=1_000_000, sample_seconds=0.05, window=0.3))
    assert report.sample is not None
    assert "time budget ran out" in report.sample and "of 200,0" in report.sample
    assert report.causes == [] and report.exit_code == EXIT_INCOMPLETE
    blind = {c.alert: c.reason for c in report.checked if c.outcome == "could not check"}
    assert "the keyspace sample stopped early" in (blind.get("AgentRecordsWithoutTTL") or "")
    with redis_server() as empty:
        assert "all 0 keys" in (run_on(empty.url, "dxempty").sample or "")


def test_a_prometheus_that_scrapes_no_exporter_rules_nothing_out(fleet: Fleet) -> None:
    """Its empty answers would clear every alert that needs history: they are 'could not
    check', and the run exits 3, not 0."""
    with prometheus([f"{LOOPBACK}:{free_port()}"]) as empty:  # a target that does not answer
        config = build_config(redis_url=fleet.server.url, namespace=fleet.namespace)
        report = diagnose(
            config,
            FleetOptions(namespace=fleet.namespace),
            th.Thresholds(),
            Prometheus(f"http://{LOOPBACK}:{empty.port}"),
            budget=ReadOptions(window=0.3),
        )
    assert report.causes == [] and report.exit_code == 3
    blind = {c.alert: c.reason for c in report.checked if c.outcome == "could not check"}
    assert "scrapes no exporter" in (blind.get("RedisMasterChanged") or "")
    assert not [c for c in report.checked if c.outcome == "needs prometheus"]


def test_evictions_of_agent_state_by_agent_state_name_the_largest_class(fleet: Fleet) -> None:
    """When keys without TTL are a small share, they are not what crowds agent state out: the
    mitigation names the class that holds the memory instead (the demo's eviction)."""
    raw = fleet.server.client()
    raw.set("config:flags", "x" * 1000)  # a little memory without TTL
    raw.config_set("maxmemory-policy", "volatile-lru")
    raw.config_set("maxmemory", str(int(raw.info("memory")["used_memory"]) + 2 * MIB))
    for n in range(400):
        fleet.state.history(f"sess-SECRET-{n}").append("user", "x" * 10_000)
    report = fleet.run()
    assert first(report) == "AgentStateEvicted"
    assert report.causes[0].mitigation.startswith("memorywatch history keys hold")
    assert "of the bytes have no TTL and volatile-lru never evicts them" in evidence(
        report, "AgentStateEvicted"
    )
