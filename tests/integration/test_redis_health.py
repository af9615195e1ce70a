"""Redis health metrics against what Redis itself reports, in forced situations."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time

import pytest
import redis

from harness import (
    LOOPBACK,
    RedisServer,
    master_with_replica,
    redis_server,
    restart_loading,
    wait_until,
)
from memorywatch import names
from metrics import InProcessExporter


def test_families_agree_with_info_and_config() -> None:
    with redis_server() as server:
        client = server.client()
        client.execute_command("DEBUG", "POPULATE", "1500")
        for i in range(40):
            client.set(f"ttl:{i}", "v", ex=600)
        client.config_set("maxmemory", "100mb")
        client.config_set("maxmemory-policy", "volatile-lru")
        with InProcessExporter(redis_url=server.url) as exporter:
            scrape = exporter.scrape()
        info = client.info("all")

        assert scrape.value(names.REDIS_UP) == 1
        assert scrape.value(names.REDIS_MEMORY_MAX) == 100 * 1024 * 1024
        assert scrape.value(names.REDIS_CONFIG_MAXMEMORY) == 100 * 1024 * 1024
        assert scrape.value(names.REDIS_DB_KEYS, db="db0") == client.dbsize() == 1540
        assert scrape.value(names.REDIS_DB_KEYS_EXPIRING, db="db0") == 40
        assert scrape.value(names.REDIS_DB_KEYS, db="db15") == 0
        assert scrape.value(names.REDIS_CONFIG_MAXCLIENTS) == int(
            client.config_get("maxclients")["maxclients"]
        )
        assert scrape.value(names.REDIS_COMMANDS, cmd="set") == info["cmdstat_set"]["calls"] == 40
        assert scrape.type_of(names.REDIS_COMMANDS) == "counter"
        policy = scrape.samples(names.REDIS_INSTANCE_INFO)[0].labels
        assert policy["maxmemory_policy"] == "volatile-lru"
        assert policy["role"] == "master"
        assert policy["redis_version"] == info["redis_version"]
        assert scrape.value(names.REDIS_LATENCY_PERCENTILES, cmd="set", quantile="99") > 0
        assert scrape.value(names.REDIS_LATENCY_PERCENTILES + "_count", cmd="set") == 40
        assert scrape.type_of(names.REDIS_LATENCY_PERCENTILES + "_count") == "summary"
        # used_memory moves with every command; the scrape must sit between two INFO reads.
        assert (
            0.5 * info["used_memory"]
            < scrape.value(names.REDIS_MEMORY_USED)
            < 2 * info["used_memory"]
        )
        assert scrape.value(names.REDIS_RDB_LAST_BGSAVE_STATUS) == 1
        assert scrape.value(names.REDIS_AOF_ENABLED) == 0


def test_evictions_counter_equals_info_evicted_keys() -> None:
    with redis_server("--maxmemory", "1mb", "--maxmemory-policy", "allkeys-lru") as server:
        client = server.client()
        pipe = client.pipeline(transaction=False)
        for i in range(3000):
            pipe.set(f"session:{i}", "x" * 1024)
        pipe.execute()
        with InProcessExporter(redis_url=server.url) as exporter:
            evicted = exporter.scrape().value(names.REDIS_EVICTED_KEYS)
        assert evicted == client.info("stats")["evicted_keys"]
        assert evicted > 1000


def test_rejected_connections_under_tiny_maxclients() -> None:
    with redis_server() as server, InProcessExporter(redis_url=server.url) as exporter:
        exporter.scrape()  # the exporter's one connection is now open
        client = server.client()
        client.config_set("maxclients", str(client.info("clients")["connected_clients"]))
        for _ in range(3):
            with socket.create_connection((LOOPBACK, server.port), timeout=2) as sock:
                assert sock.recv(200).startswith(b"-ERR max number of clients reached")
        scrape = exporter.scrape()
        assert scrape.value(names.REDIS_UP) == 1
        assert scrape.value(names.REDIS_REJECTED_CONNECTIONS) == 3
        assert client.info("stats")["rejected_connections"] == 3


def test_replica_lag_in_seconds_and_bytes() -> None:
    with master_with_replica() as (master, replica):
        assert replica.proc is not None
        with InProcessExporter(redis_url=master.url) as exporter:
            healthy = exporter.scrape()
            assert healthy.value(names.REPLICA_LAG_BYTES, slave_port=str(replica.port)) == 0
            os.kill(replica.proc.pid, signal.SIGSTOP)
            try:
                client = master.client()
                for i in range(200):
                    client.set(f"history:{i}", "m" * 100)
                wait_until(
                    lambda: client.info("replication")["slave0"]["lag"] >= 2, 10, 0.1, "lag >= 2s"
                )
                scrape = exporter.scrape()
            finally:
                os.kill(replica.proc.pid, signal.SIGCONT)
        labels = {"slave_ip": LOOPBACK, "slave_port": str(replica.port)}
        lag_bytes = scrape.value(names.REPLICA_LAG_BYTES, **labels)
        acked = scrape.value(names.REDIS_SLAVE_OFFSET, **labels)
        assert lag_bytes == scrape.value(names.REDIS_MASTER_REPL_OFFSET) - acked
        assert lag_bytes > 200 * 100
        assert scrape.value(names.REDIS_SLAVE_LAG_SECONDS, **labels) >= 2


def test_broken_replication_link_seen_from_the_replica() -> None:
    with (
        master_with_replica() as (master, replica),
        InProcessExporter(redis_url=replica.url) as exporter,
    ):
        link = {"master_host": LOOPBACK, "master_port": str(master.port)}
        before = exporter.scrape()
        assert before.value(names.REDIS_MASTER_LINK_UP, **link) == 1
        assert before.samples(names.REDIS_INSTANCE_INFO)[0].labels["role"] == "slave"
        master.stop()
        wait_until(lambda: replica.client().info("replication")["master_link_status"] == "down", 10)
        after = exporter.scrape()
        assert after.value(names.REDIS_MASTER_LINK_UP, **link) == 0
        assert after.value(names.REDIS_MASTER_LINK_DOWN_SINCE, **link) >= 0


def test_read_only_replica_and_out_of_memory_are_reported_not_fatal() -> None:
    with master_with_replica("--maxmemory", "1mb") as (master, replica):
        with pytest.raises(redis.ReadOnlyError):
            replica.client().set("k", "v")
        client = master.client()
        with pytest.raises(redis.OutOfMemoryError):
            for i in range(5000):
                client.set(f"history:{i}", "x" * 1024)
        with InProcessExporter(redis_url=replica.url) as exp_replica:
            replica_scrape = exp_replica.scrape()
        with InProcessExporter(redis_url=master.url) as exp_master:
            master_scrape = exp_master.scrape()
    assert replica_scrape.value(names.REDIS_UP) == 1
    assert replica_scrape.value(names.REDIS_ERRORS, err="READONLY") == 1
    assert master_scrape.value(names.REDIS_UP) == 1
    assert master_scrape.value(names.REDIS_ERRORS, err="OOM") == 1
    assert master_scrape.value(names.REDIS_MEMORY_MAX) == 1024 * 1024


def test_loading_redis_is_reported_as_loading() -> None:
    server = RedisServer().start()
    try:
        restart_loading(server)
        with InProcessExporter(redis_url=server.url) as exporter:
            scrape = exporter.scrape()
        assert scrape.value(names.REDIS_UP) == 1
        assert scrape.value(names.REDIS_LOADING) == 1
    finally:
        server.cleanup()


def test_slow_redis_cannot_stall_a_scrape_past_its_timeout() -> None:
    with (
        redis_server() as server,
        InProcessExporter(redis_url=server.url, scrape_timeout=1.0) as exporter,
    ):
        assert exporter.scrape().value(names.REDIS_UP) == 1
        sleeper = threading.Thread(
            target=lambda: server.client().execute_command("DEBUG", "SLEEP", "3")
        )
        sleeper.start()
        # Scrape while DEBUG SLEEP blocks Redis (nothing can ask Redis whether it started:
        # it is blocked): every scrape must come back within the timeout, and the ones that
        # land in the sleep report redis_up 0.
        took, ups = [], []
        while sleeper.is_alive() and len(took) < 20:
            started = time.monotonic()
            scrape = exporter.scrape()
            took.append(time.monotonic() - started)
            ups.append(scrape.value(names.REDIS_UP))
        sleeper.join()
        assert 0.0 in ups
        assert max(took) < 1.5
        assert scrape.value(names.SCRAPE_ERRORS, reason="timeout") >= 1
        wait_until(lambda: exporter.scrape().value(names.REDIS_UP) == 1, 10, what="recovery")


def test_rdb_snapshots_configured_follows_config_save_and_needs_config() -> None:
    """`save ""` is 0, a save point is 1, and a CONFIG renamed away drops the gauge (and only
    the CONFIG families): the scrape still succeeds."""
    # The harness starts every Redis with save "" and no AOF.
    with redis_server() as server, InProcessExporter(redis_url=server.url) as exporter:
        off = exporter.scrape()
        server.client().config_set("save", "3600 1 300 100")
        on = exporter.scrape()
    assert off.value(names.RDB_SAVE_CONFIGURED) == 0
    assert off.value(names.REDIS_AOF_ENABLED) == 0
    assert on.value(names.RDB_SAVE_CONFIGURED) == 1
    assert on.type_of(names.RDB_SAVE_CONFIGURED) == "gauge"
    with (
        redis_server("--rename-command", "CONFIG", "") as server,
        InProcessExporter(redis_url=server.url) as exporter,
    ):
        renamed = exporter.scrape()
    assert renamed.value(names.REDIS_UP) == 1
    assert renamed.samples(names.RDB_SAVE_CONFIGURED) == []
    assert renamed.samples(names.REDIS_CONFIG_MAXCLIENTS) == []
    assert renamed.value(names.REDIS_AOF_ENABLED) == 0


def test_command_lines_kept_between_scrapes_follow_every_change() -> None:
    """A command's lines are formatted once per change of its INFO line (a cache): a command
    that ran since the last scrape shows its new numbers, an idle one its old ones, and the
    text is what formatting every line afresh gives."""
    from memorywatch.exporter.collectors.redis_info import Snapshot, add_node_families
    from memorywatch.exporter.exposition import Families
    from memorywatch.exporter.scrape import parse_info

    with redis_server() as server:
        client = server.client()
        client.set("k", "v")
        client.hset("h", "f", "1")
        with InProcessExporter(redis_url=server.url, fleet=False) as exporter:
            first = exporter.scrape()
            for _ in range(7):
                client.set("k", "v")
            second = exporter.scrape()
            client.execute_command("CONFIG", "RESETSTAT")
            third = exporter.scrape()
        set_calls = [s.value(names.REDIS_COMMANDS, cmd="set") for s in (first, second)]
        assert set_calls[1] == set_calls[0] + 7 == 8
        count = names.REDIS_LATENCY_PERCENTILES + "_count"
        assert second.value(count, cmd="set") == first.value(count, cmd="set") + 7
        assert second.value(names.REDIS_COMMANDS_DURATION, cmd="set") > first.value(
            names.REDIS_COMMANDS_DURATION, cmd="set"
        )
        assert second.value(names.REDIS_COMMANDS, cmd="hset") == 1  # idle: the kept line
        # after a reset, a command Redis no longer lists is gone, not served from the cache
        assert all(s.labels["cmd"] != "hset" for s in third.samples(names.REDIS_COMMANDS))
        assert third.samples(names.REDIS_COMMANDS)

        raw = client.execute_command("INFO", "ALL")
        text = raw.decode() if isinstance(raw, bytes) else str(raw)

        def rendered(info: dict[str, object], node: bool) -> str:
            families = Families()
            view = families.with_labels({names.LABEL_NODE: "10.0.0.1:6379"}) if node else families
            add_node_families(Snapshot(info=info, config={"databases": "16"}), view)
            out: list[str] = []
            families.render_into(out)
            return "\n".join(out)

        for node in (False, True):
            fresh = {  # plain dicts: nothing to key the cache on, every line formatted anew
                k: dict(v) if isinstance(v, dict) else v for k, v in parse_info(text).items()
            }
            assert rendered(parse_info(text), node) == rendered(fresh, node)
            assert rendered(parse_info(text), node) == rendered(fresh, node)  # from the cache
