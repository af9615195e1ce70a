"""Sentinel and Cluster discovery, and TLS, against real redis-sentinel / cluster / TLS servers."""

from __future__ import annotations

import subprocess
from pathlib import Path
from urllib.parse import quote

from harness import LOOPBACK, RedisServer, redis_cluster, sentinel_group, wait_until
from memorywatch import names
from metrics import InProcessExporter


def test_sentinel_discovers_master_and_replica() -> None:
    with sentinel_group("agents") as (master, replica, sentinel):
        url = f"redis+sentinel://{LOOPBACK}:{sentinel.port}/agents"
        with InProcessExporter(redis_url=url) as exporter:
            scrape = exporter.scrape()
        # Through /scrape, the nodes a sentinel names must be allow-listed too: only the
        # sentinel is here, so the exporter must not connect to the master or the replica.
        other = f"redis://{LOOPBACK}:1"
        allow = (f"{LOOPBACK}:{sentinel.port}",)
        with InProcessExporter(redis_url=other, allow_targets=allow) as exporter:
            before = master.client().info("stats")["total_connections_received"]
            refused = exporter.scrape("/scrape", f"target={quote(url, safe='')}")
            after = master.client().info("stats")["total_connections_received"]
        assert not refused.samples(names.REDIS_INSTANCE_INFO)
        assert refused.value(names.SCRAPE_ERRORS, reason="forbidden") == 2
        assert after == before + 1  # our own INFO call, nothing from the exporter
    roles = {
        s.labels[names.LABEL_NODE]: s.labels["role"]
        for s in scrape.samples(names.REDIS_INSTANCE_INFO)
    }
    assert roles == {f"{LOOPBACK}:{master.port}": "master", f"{LOOPBACK}:{replica.port}": "slave"}
    assert scrape.value(names.REDIS_UP, node=f"{LOOPBACK}:{master.port}") == 1
    assert scrape.value(names.REDIS_UP, node=f"{LOOPBACK}:{replica.port}") == 1
    assert (
        scrape.value(
            names.REDIS_MASTER_LINK_UP,
            node=f"{LOOPBACK}:{replica.port}",
            master_port=str(master.port),
        )
        == 1
    )


def test_sentinel_unreachable_is_a_discovery_error_not_a_crash() -> None:
    unused = RedisServer()  # never started: nothing listens on its port
    with InProcessExporter(
        redis_url=f"redis+sentinel://{LOOPBACK}:{unused.port}/agents", scrape_timeout=1
    ) as exporter:
        scrape = exporter.scrape()
    assert scrape.value(names.REDIS_UP) == 0
    assert scrape.value(names.SCRAPE_ERRORS, reason="discovery") == 1


def test_cluster_discovers_every_node_from_one_seed() -> None:
    with redis_cluster(3) as nodes:
        nodes[0].client().set("probe", "1")
        url = f"redis+cluster://{LOOPBACK}:{nodes[1].port}"
        with InProcessExporter(redis_url=url) as exporter:
            scrape = exporter.scrape()
    addrs = {f"{LOOPBACK}:{n.port}" for n in nodes}
    assert {s.labels[names.LABEL_NODE] for s in scrape.samples(names.REDIS_UP)} == addrs
    for addr in addrs:
        assert scrape.value(names.REDIS_UP, node=addr) == 1
        assert scrape.value(names.REDIS_CLUSTER_STATE, node=addr) == 1
        assert scrape.value(names.REDIS_CLUSTER_KNOWN_NODES, node=addr) == 3
        assert scrape.value(names.REDIS_CLUSTER_ENABLED, node=addr) == 1
    assert sum(s.value for s in scrape.samples(names.REDIS_DB_KEYS)) == 1


def _make_certs(directory: Path) -> dict[str, Path]:
    def openssl(*args: str) -> None:
        subprocess.run(
            ["openssl", *args], check=True, capture_output=True, cwd=directory, timeout=60
        )

    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=memorywatch test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    )
    openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    )
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "san.ext",
        "-out",
        "server.crt",
    )
    return {name: directory / name for name in ("ca.crt", "server.crt", "server.key")}


def test_tls_with_ca_verification(tmp_path: Path) -> None:
    certs = _make_certs(tmp_path)
    server = RedisServer()
    tls_port = server.port
    server.args = (
        "--port", "0", "--tls-port", str(tls_port),
        "--tls-cert-file", str(certs["server.crt"]), "--tls-key-file", str(certs["server.key"]),
        "--tls-ca-cert-file", str(certs["ca.crt"]), "--tls-auth-clients", "no",
    )  # fmt: skip
    server.start(wait=False)
    try:
        url = f"rediss://{LOOPBACK}:{tls_port}"
        with InProcessExporter(redis_url=url, tls_ca_cert=certs["ca.crt"]) as exporter:
            wait_until(lambda: exporter.scrape().value(names.REDIS_UP) == 1, 10, what="TLS scrape")
            scrape = exporter.scrape()
        assert scrape.samples(names.REDIS_INSTANCE_INFO)[0].labels["tcp_port"] == str(tls_port)
        # Without the CA the server's certificate cannot be verified: reported, not trusted.
        with InProcessExporter(redis_url=url) as untrusting:
            refused = untrusting.scrape()
        assert refused.value(names.REDIS_UP) == 0
        assert refused.value(names.SCRAPE_ERRORS, reason="connection") == 1
    finally:
        server.cleanup()


def test_cluster_fleet_metrics_follow_the_schema_across_nodes() -> None:
    from redis.cluster import RedisCluster

    from memorywatch.agent import AgentState

    with redis_cluster(3) as nodes:
        client = RedisCluster(host=LOOPBACK, port=nodes[0].port, decode_responses=True)
        state = AgentState(client, instance_id="c1")
        for i in range(12):
            state.history(f"session-{i}").append("user", "hello")
        for _ in range(3):
            with state.lock("order", "1", ttl=5):
                pass
        state.heartbeat()
        client.close()
        # the shards' keys live on all three nodes
        assert all(n.client().dbsize() > 0 for n in nodes)
        url = f"redis+cluster://{LOOPBACK}:{nodes[2].port}"
        with InProcessExporter(redis_url=url) as exporter:
            scrape = exporter.scrape()
    assert scrape.value(names.SESSIONS_ACTIVE) == 12
    assert scrape.value(names.LOCK_ACQUISITIONS, lock="order") == 3
    assert scrape.value(names.AGENT_INSTANCES, state="ready") == 1
    assert scrape.value(names.SCHEMA_INFO, version="2") == 1
