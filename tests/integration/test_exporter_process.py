"""The exporter as a real process: HTTP, logs, credentials, faults, connection hygiene."""

from __future__ import annotations

import gzip
import http.client
import socket
import threading
from pathlib import Path

from harness import LOOPBACK, exporter, free_port, redis_server, wait_until
from memorywatch import names
from metrics import Scrape

PASSWORD = "pw-9f3c1e-never-print-me"


def scrape(proc, path: str = "/metrics") -> Scrape:  # type: ignore[no-untyped-def]
    status, body = proc.get(path)
    assert status == 200, body
    return Scrape(body)


def test_redis_down_gives_up_0_and_recovers_without_restart() -> None:
    with redis_server() as server, exporter("--redis-url", server.url) as proc:
        assert scrape(proc).value(names.REDIS_UP) == 1
        server.stop()
        for _ in range(5):
            down = scrape(proc)
            assert down.value(names.REDIS_UP) == 0
        assert down.value(names.SCRAPE_ERRORS, reason="connection") >= 5
        server.start()
        wait_until(lambda: scrape(proc).value(names.REDIS_UP) == 1, 10, what="recovery")
        log = proc.log
    # One line when the failure starts and one when it ends, not one per scrape.
    assert log.count("scrape failed (connection)") == 1
    assert log.count("reachable again") == 1


def test_wrong_password_is_up_0_with_one_clear_log_line_and_no_secret(tmp_path: Path) -> None:
    with redis_server(password=PASSWORD) as server:
        wrong = f"redis://:{PASSWORD}-wrong@{LOOPBACK}:{server.port}"
        with exporter("--redis-url", wrong) as proc:
            scrapes = [scrape(proc) for _ in range(3)]
            log = proc.log
        assert all(s.value(names.REDIS_UP) == 0 for s in scrapes)
        assert scrapes[-1].value(names.SCRAPE_ERRORS, reason="auth") >= 3
        assert log.count("scrape failed (auth)") == 1
        assert PASSWORD not in log
        assert all(PASSWORD not in s.text for s in scrapes)

        password_file = tmp_path / "redis.pass"
        password_file.write_text(PASSWORD + "\n")
        with exporter("--redis-url", server.url, "--password-file", str(password_file)) as proc:
            assert scrape(proc).value(names.REDIS_UP) == 1
        with exporter(
            "--redis-url", server.url, env={"MEMORYWATCH_REDIS_PASSWORD": PASSWORD}
        ) as proc:
            ok = scrape(proc)
            assert ok.value(names.REDIS_UP) == 1
            assert PASSWORD not in ok.text
            assert PASSWORD not in proc.log


HEALTH_ACL = "+info +config|get +slowlog +ping +client|setname"
FLEET_ACL = (
    "+time +hgetall +zcount +zrange +zrangebyscore +zmscore +zcard +type +xlen +xinfo|groups "
    "+xpending +llen +scan +pttl +get +hmget +subscribe +evalsha +eval +memory|usage %R~* "
    "&__keyevent@0__:evicted"
)


def test_the_documented_acls_are_the_tested_ones() -> None:
    """docs/exporter.md's two ACL commands grant exactly what the tests below run with."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "exporter.md").read_text()
    text = doc.replace("\\\n", " ")
    commands = [line.split() for line in text.splitlines() if line.startswith("ACL SETUSER")]
    grants = [set(words[5:]) for words in commands]  # after ACL SETUSER monitor on >PASSWORD
    assert grants == [set(HEALTH_ACL.split()), set(HEALTH_ACL.split()) | set(FLEET_ACL.split())]


def test_acl_user_from_the_url() -> None:
    """The minimal ACL of docs/exporter.md: Redis health, and one log line for the fleet it cannot read."""
    with redis_server() as server:
        server.client().execute_command(
            "ACL", "SETUSER", "monitor", "on", f">{PASSWORD}", *HEALTH_ACL.split()
        )
        url = f"redis://monitor:{PASSWORD}@{LOOPBACK}:{server.port}"
        with exporter("--redis-url", url) as proc:
            results = [scrape(proc) for _ in range(3)]
            log = proc.log
        assert all(r.value(names.REDIS_UP) == 1 for r in results)
        assert results[-1].value(names.REDIS_CONFIG_MAXCLIENTS) > 0
        assert not results[-1].samples(names.SCHEMA_INFO)
        assert log.count("(fleet metrics) scrape failed (permission)") == 1
        assert PASSWORD not in log and all(PASSWORD not in r.text for r in results)


def test_the_documented_fleet_acl_is_enough() -> None:
    with redis_server() as server:
        acl = f"{HEALTH_ACL} {FLEET_ACL}".split()
        server.client().execute_command("ACL", "SETUSER", "monitor", "on", f">{PASSWORD}", *acl)
        url = f"redis://monitor:{PASSWORD}@{LOOPBACK}:{server.port}"
        with exporter("--redis-url", url) as proc:
            result = scrape(proc)
            wait_until(lambda: "eviction classes are not tracked" in proc.log, 10)
            log = proc.log
        assert result.value(names.SCHEMA_INFO, version="absent") == 1
        assert "scrape failed" not in log
        assert "sampler" not in log


def test_thousand_scrapes_leave_the_client_count_where_it_was() -> None:
    args = ("--redis-url", "--enable-keyspace-events")
    with redis_server() as server, exporter(args[0], server.url, args[1]) as proc:
        client = server.client()
        scrape(proc)

        def ours() -> int:
            return sum(c["name"] == "memorywatch-exporter" for c in client.client_list())

        # One connection for scrapes, two for eviction tracking (pub/sub + config), one for
        # the keyspace sampler: all held for the exporter's life.
        wait_until(lambda: ours() == 4, 10, what="the exporter's four connections")
        before = client.info("all")
        for _ in range(500):
            assert proc.get("/metrics")[0] == 200
        statuses: list[int] = []

        def worker() -> None:
            for _ in range(125):
                statuses.append(proc.get("/metrics")[0])

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        after = client.info("all")
        assert statuses == [200] * 500
        assert after["connected_clients"] == before["connected_clients"]
        assert ours() == 4
        # No connection was opened for any of the 1,000 scrapes: the one we had was reused.
        assert after["total_connections_received"] == before["total_connections_received"]
        assert after["cmdstat_info"]["calls"] - before["cmdstat_info"]["calls"] >= 1000


def test_multi_target_only_reaches_allow_listed_hosts() -> None:
    with redis_server() as main, redis_server() as other:
        # A listener that stands for a host outside the allow-list: it must get no connection.
        trap = socket.socket()
        trap.bind((LOOPBACK, free_port()))
        trap.listen()
        trap.settimeout(0.5)
        trap_port = trap.getsockname()[1]
        try:
            with exporter(
                "--redis-url", main.url, "--allow-target", f"127.0.0.1:{other.port}"
            ) as proc:
                ok = scrape(proc, f"/scrape?target=redis://{LOOPBACK}:{other.port}")
                assert ok.value(names.REDIS_UP) == 1
                assert ok.samples(names.REDIS_INSTANCE_INFO)[0].labels["tcp_port"] == str(
                    other.port
                )
                status, body = proc.get(f"/scrape?target=redis://{LOOPBACK}:{trap_port}")
                assert status == 403 and "not allowed" in body
                status, body = proc.get(
                    f"/scrape?target=redis://:{PASSWORD}@{LOOPBACK}:{other.port}"
                )
                assert status == 400 and PASSWORD not in body
                assert proc.get("/scrape")[0] == 400
                assert proc.get("/scrape?target=ftp://x:1")[0] == 400
                assert proc.get("/nope")[0] == 404
            try:
                trap.accept()
                raise AssertionError("the exporter connected to a target outside its allow-list")
            except TimeoutError:
                pass
        finally:
            trap.close()


def test_keep_alive_and_gzip() -> None:
    with redis_server() as server, exporter("--redis-url", server.url) as proc:
        conn = http.client.HTTPConnection(LOOPBACK, proc.port, timeout=10)
        try:
            conn.request("GET", "/metrics")
            plain = conn.getresponse().read().decode()
            conn.request("GET", "/metrics", headers={"Accept-Encoding": "gzip"})
            resp = conn.getresponse()
            assert resp.getheader("Content-Encoding") == "gzip"
            zipped = gzip.decompress(resp.read()).decode()
            conn.request("HEAD", "/healthz")
            assert conn.getresponse().status == 200
        finally:
            conn.close()
    assert Scrape(plain).value(names.REDIS_UP) == Scrape(zipped).value(names.REDIS_UP) == 1
