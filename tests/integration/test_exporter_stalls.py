"""Clients that stall mid-request and targets that stall mid-scrape: neither may keep the
next scrape out, and what the exporter holds per /scrape target is bounded. Real exporters
(a process, or the server in-process where a deadline is shortened), real redis-servers."""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from harness import (
    LOOPBACK,
    ExporterProcess,
    RedisServer,
    freeze,
    redis_server,
    thaw,
    wait_until,
)
from memorywatch.exporter import http as exporter_http
from memorywatch.exporter.collectors.target import ScrapeHealth
from memorywatch.exporter.config import build_config
from memorywatch.exporter.http import ExporterApp, _Handler, _Server
from memorywatch.exporter.scrape import ClientCache, Recent
from memorywatch.exporter.webconfig import BasicAuth

STALLED = 250


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    with redis_server() as srv:
        yield srv


def _scrape(port: int, path: str = "/metrics", timeout: float = 10) -> tuple[int, float]:
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
    started = time.monotonic()
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status, time.monotonic() - started
    finally:
        conn.close()


def _stall(port: int, n: int, data: bytes = b"GET /metr") -> list[socket.socket]:
    sockets = []
    for _ in range(n):
        sock = socket.create_connection((LOOPBACK, port), timeout=5)
        sock.sendall(data)
        sockets.append(sock)
    return sockets


def _eof(sock: socket.socket, timeout: float) -> bool:
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except OSError:
        return True


@pytest.fixture()
def in_process(server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """The exporter's server in this process, with a head deadline of one second."""
    monkeypatch.setattr(exporter_http, "HEADER_TIMEOUT", 1.0)
    app = ExporterApp(build_config(redis_url=server.url, fleet=False))
    handler = type("Handler", (_Handler,), {"app": app})
    httpd = _Server((LOOPBACK, 0), handler, max_connections=16, tls=None, auth=BasicAuth({}))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield httpd.server_address[1]
    finally:
        httpd.shutdown()
        thread.join(5)
        httpd.server_close()
        app.close()


def test_stalled_heads_hold_no_handler_and_are_closed_at_their_deadline(in_process: int) -> None:
    sockets = _stall(in_process, STALLED)  # far more than the 16 handlers
    stalled_at = time.monotonic()
    try:
        # a kept-alive connection that stalls part-way through its second request, too
        kept = socket.create_connection((LOOPBACK, in_process), timeout=5)
        kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = b""
        while not answer.endswith(b"\r\n\r\nok\n"):  # headers and body, whole
            chunk = kept.recv(4096)
            assert chunk, answer
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 200")
        kept.sendall(b"GET /heal")
        sockets.append(kept)
        for _ in range(3):
            status, took = _scrape(in_process)
            assert status == 200
            assert took < 0.5, f"a scrape took {took:.2f} s beside {STALLED} stalled heads"
        assert all(_eof(sock, 3.0) for sock in sockets)
        closed_after = time.monotonic() - stalled_at
        assert 0.9 < closed_after < 2.5, f"stalled heads closed after {closed_after:.2f} s"
        assert _scrape(in_process)[0] == 200
    finally:
        for sock in sockets:
            sock.close()


def test_a_head_trickled_byte_by_byte_is_closed_at_the_total_deadline(in_process: int) -> None:
    """Every byte on time, the head never complete: the deadline is for the whole head."""
    sock = socket.create_connection((LOOPBACK, in_process), timeout=5)
    started = time.monotonic()
    closed = False
    try:
        for byte in b"GET /metrics HTTP/1.1\r\n" + b"X" * 200:
            try:
                sock.sendall(bytes([byte]))
            except OSError:  # reset: the server closed it
                closed = True
                break
            time.sleep(0.02)
            if time.monotonic() - started > 3:
                break
        closed = closed or _eof(sock, 3.0)
        took = time.monotonic() - started
        assert closed and 0.9 < took < 2.5, f"closed={closed} after {took:.2f} s"
    finally:
        sock.close()


def test_a_frozen_target_does_not_delay_another_through_scrape() -> None:
    """40 scrapes of a frozen node at once (more than the 32 shared workers) while another
    node is scraped: its scrapes answer at once."""
    with redis_server() as slow, redis_server() as fast:
        args = ["--redis-url", fast.url, "--no-fleet", "--allow-target", f"{LOOPBACK}:*"]
        exporter = ExporterProcess([*args, "--scrape-timeout", "1"]).start()
        slow_path = f"/scrape?target=redis://{LOOPBACK}:{slow.port}"
        fast_path = f"/scrape?target=redis://{LOOPBACK}:{fast.port}"
        assert _scrape(exporter.port, slow_path)[0] == 200  # its client exists, connected
        freeze(slow)
        try:
            stuck = [
                threading.Thread(target=_scrape, args=(exporter.port, slow_path)) for _ in range(40)
            ]
            for thread in stuck:
                thread.start()
            time.sleep(0.2)
            for _ in range(5):
                status, took = _scrape(exporter.port, fast_path)
                assert status == 200
                assert took < 0.5, f"a scrape of a healthy node took {took:.2f} s"
            for thread in stuck:
                thread.join(10)
            status, body = exporter.get(slow_path)
            assert status == 200 and "redis_up 0" in body
        finally:
            thaw(slow)
            exporter.cleanup()


def test_per_target_state_is_bounded_and_released(server: RedisServer) -> None:
    """Clients, checked targets and error counters: at most `limit` targets, and those not
    scraped for `idle` seconds are closed at the next scrape of any other."""
    app = ExporterApp(
        build_config(redis_url=server.url, fleet=False, allow_targets=(f"{LOOPBACK}:*",))
    )
    config = app.config
    app.clients = ClientCache(config.credentials, config.tls, 2.0, max_clients=3, idle=0.5)
    app.targets = Recent(3, 0.5)
    app.health = ScrapeHealth(pinned=config.target.display, limit=3, idle=0.5)
    probe = server.client()

    def ours() -> int:
        return sum(c["name"] == "memorywatch-exporter" for c in probe.client_list())

    try:
        for db in range(10):  # ten targets: one node, ten databases
            response = app.respond(
                "GET", "/scrape", f"target=redis://{LOOPBACK}:{server.port}/{db}"
            )
            assert response.status == 200
        assert (len(app.clients), len(app.targets), len(app.health)) == (3, 3, 3)
        wait_until(lambda: ours() == 3, 5, what="the connections past the bound closed")
        time.sleep(0.6)
        assert (
            app.respond("GET", "/scrape", f"target=redis://{LOOPBACK}:{server.port}/1").status
            == 200
        )
        assert (len(app.clients), len(app.targets), len(app.health)) == (1, 1, 1)
        wait_until(lambda: ours() == 1, 5, what="the idle targets' connections closed")
    finally:
        app.close()


def test_pipelined_requests_are_each_answered(in_process: int) -> None:
    sock = socket.create_connection((LOOPBACK, in_process), timeout=5)
    try:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" * 2)
        answer = b""
        deadline = time.monotonic() + 5
        while answer.count(b"ok\n") < 2 and time.monotonic() < deadline:
            chunk = sock.recv(4096)
            assert chunk, answer
            answer += chunk
        assert answer.count(b"HTTP/1.1 200 OK") == 2
    finally:
        sock.close()
