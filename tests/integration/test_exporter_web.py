"""The HTTP side as an attacker and as Prometheus meet it: exporter-toolkit web config (TLS,
client certificates, basic auth on every endpoint), and a server that holds up under a burst
of silent connections. Real exporter processes, real sockets, real TLS."""

from __future__ import annotations

import base64
import http.client
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bcrypt
import pytest

from harness import LOOPBACK, ExporterProcess, RedisServer, make_certs, redis_server, wait_until
from memorywatch.exporter.http import HEADER_TIMEOUT

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    with redis_server() as srv:
        yield srv


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_certs(tmp_path_factory.mktemp("certs"))


def _hash() -> str:
    return bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()


def _web_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "web.yml"
    path.write_text(text)
    return path


def _auth(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def _get(
    port: int,
    path: str,
    headers: dict[str, str] | None = None,
    context: ssl.SSLContext | None = None,
) -> tuple[int, bytes, dict[str, str]]:
    conn: http.client.HTTPConnection
    if context is None:
        conn = http.client.HTTPConnection(LOOPBACK, port, timeout=10)
    else:
        conn = http.client.HTTPSConnection(LOOPBACK, port, timeout=10, context=context)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read(), dict(response.getheaders())
    finally:
        conn.close()


def _start(server: RedisServer, web: Path, *extra: str) -> ExporterProcess:
    exporter = ExporterProcess(["--redis-url", server.url, "--web-config-file", str(web), *extra])
    _start_unchecked(exporter)
    return exporter


def test_basic_auth_guards_every_endpoint(server: RedisServer, tmp_path: Path) -> None:
    hashed = _hash()
    web = _web_config(tmp_path, f"basic_auth_users:\n  prometheus: {hashed}\n")
    exporter = _start(server, web)
    assert exporter.proc is not None
    proc = exporter.proc
    try:
        for path in ("/metrics", "/healthz", "/", "/runbooks/AgentLockLost", "/scrape?target=x"):
            status, _, headers = _get(exporter.port, path)
            assert status == 401, path
            assert headers["WWW-Authenticate"] == 'Basic realm="memorywatch"'
            assert _get(exporter.port, path, _auth("prometheus", "wrong"))[0] == 401
            assert _get(exporter.port, path, _auth("nobody", PASSWORD))[0] == 401
        status, body, _ = _get(exporter.port, "/metrics", _auth("prometheus", PASSWORD))
        assert status == 200 and b"redis_up 1" in body
        for _ in range(20):  # Prometheus sends the same credentials every scrape: cached
            assert _get(exporter.port, "/healthz", _auth("prometheus", PASSWORD))[0] == 200
    finally:
        exporter.stop()
        proc.wait(10)
    log = exporter.log
    assert hashed not in log and PASSWORD not in log
    assert "(basic auth)" in log


def _start_unchecked(exporter: ExporterProcess) -> subprocess.Popen[str]:
    """Start without the harness's /healthz probe (it would get a 401); wait for the port."""
    cmd = [
        sys.executable,
        "-m",
        "memorywatch",
        "exporter",
        "--listen",
        f"{LOOPBACK}:{exporter.port}",
        *exporter.args,
    ]
    log = exporter.logfile.open("w")
    exporter.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if exporter.proc.poll() is not None:
            raise RuntimeError(f"exporter exited:\n{exporter.log}")
        try:
            socket.create_connection((LOOPBACK, exporter.port), timeout=1).close()
            return exporter.proc
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"exporter never listened:\n{exporter.log}")


def _client_context(certs: dict[str, Path], with_cert: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(certs["ca.crt"]))
    if with_cert:
        context.load_cert_chain(certs["client.crt"], certs["client.key"])
    return context


def test_tls_with_client_certificates_and_basic_auth(
    server: RedisServer, certs: dict[str, Path], tmp_path: Path
) -> None:
    web = _web_config(
        tmp_path,
        "tls_server_config:\n"
        f"  cert_file: {certs['server.crt']}\n"
        f"  key_file: {certs['server.key']}\n"
        "  client_auth_type: RequireAndVerifyClientCert\n"
        f"  client_ca_file: {certs['ca.crt']}\n"
        "  min_version: TLS12\n"
        f"basic_auth_users:\n  prometheus: {_hash()}\n",
    )
    exporter = _start(server, web)
    try:
        good = _client_context(certs, with_cert=True)
        status, body, _ = _get(exporter.port, "/metrics", _auth("prometheus", PASSWORD), good)
        assert status == 200 and b"redis_up 1" in body
        assert _get(exporter.port, "/metrics", None, good)[0] == 401  # TLS is not a password
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            _get(
                exporter.port,
                "/metrics",
                _auth("prometheus", PASSWORD),
                _client_context(certs, False),
            )
        with pytest.raises((http.client.HTTPException, ConnectionError, OSError)):
            _get(exporter.port, "/metrics")  # plain HTTP to the TLS port
        # and the server is still there for the right client
        assert _get(exporter.port, "/healthz", _auth("prometheus", PASSWORD), good)[0] == 200
    finally:
        exporter.stop()
    assert "serving https://" in exporter.log


def test_tls_minimum_version_is_enforced(
    server: RedisServer, certs: dict[str, Path], tmp_path: Path
) -> None:
    web = _web_config(
        tmp_path,
        f"tls_server_config:\n  cert_file: {certs['server.crt']}\n  key_file: {certs['server.key']}\n"
        "  min_version: TLS13\n",
    )
    exporter = _start(server, web)
    try:
        modern = _client_context(certs, with_cert=False)
        assert _get(exporter.port, "/metrics", None, modern)[0] == 200
        old = _client_context(certs, with_cert=False)
        old.maximum_version = ssl.TLSVersion.TLSv1_2
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            _get(exporter.port, "/metrics", None, old)
    finally:
        exporter.stop()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("basic_auth_users: [a, b]\n", "basic_auth_users must map"),
        ("basic_auth_users:\n  alice: plaintext-password\n", "not a bcrypt hash"),
        ("tls_server_config:\n  cert_file: nope.crt\n  key_file: nope.key\n", "no file"),
        ("tls_server: {}\n", "unknown key 'tls_server'"),
        (
            "tls_server_config: {cert_file: a, key_file: b, client_auth_type: RequireAnyClientCert}\n",
            "",
        ),
        ("http_server_config:\n  http2: true\n", "http2 is not supported"),
        ("basic_auth_users: {alice: [\n", "not valid YAML"),
    ],
)
def test_a_bad_web_config_is_one_line_at_start_up(tmp_path: Path, text: str, expected: str) -> None:
    for name in ("a", "b"):
        (tmp_path / name).write_text("x")
    web = _web_config(tmp_path, text)
    proc = subprocess.run(
        [sys.executable, "-m", "memorywatch", "exporter", "--web-config-file", str(web), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: --web-config-file"), proc.stderr
    assert expected in lines[0]
    assert "plaintext-password" not in proc.stderr and "Traceback" not in proc.stderr


def _status(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field}")


def _rss_mb(pid: int) -> float:
    return _status(pid, "VmRSS") / 1024


def _closed_by_peer(sock: socket.socket) -> bool:
    sock.settimeout(0.01)
    try:
        return sock.recv(1) == b""
    except (TimeoutError, BlockingIOError):
        return False
    except OSError:
        return True


@pytest.mark.slow
def test_a_burst_of_silent_connections_cannot_keep_a_scrape_out(server: RedisServer) -> None:
    exporter = ExporterProcess(["--redis-url", server.url]).start()
    sockets: list[socket.socket] = []
    try:
        started = time.monotonic()
        for _ in range(2500):  # half-open: connected, never a byte sent
            sockets.append(socket.create_connection((LOOPBACK, exporter.port), timeout=5))
        opened = time.monotonic() - started
        assert opened < 10, f"2,500 connections took {opened:.1f} s to be accepted"
        scrape_started = time.monotonic()
        status, body, _ = _get(exporter.port, "/metrics")
        scrape = time.monotonic() - scrape_started
        assert status == 200 and b"redis_up 1" in body
        assert scrape < 1.0, f"a scrape took {scrape:.2f} s beside 2,500 silent connections"
        assert exporter.proc is not None
        rss = _rss_mb(exporter.proc.pid)
        assert rss < 150, f"RSS {rss:.0f} MB"
        threads = _status(exporter.proc.pid, "Threads")
        assert threads < 100, f"{threads} threads: silent connections must not hold one each"
        # half-open connections are closed once the header timeout passes
        time.sleep(HEADER_TIMEOUT + 1.5)
        closed = sum(_closed_by_peer(sock) for sock in sockets)
        assert closed == len(sockets), f"{len(sockets) - closed} silent connections still open"
        assert _get(exporter.port, "/metrics")[0] == 200
        print(
            f"\n2,500 connections opened in {opened:.2f} s; scrape {scrape * 1000:.0f} ms "
            f"beside them; RSS {rss:.0f} MB, {threads} threads; all closed after "
            f"{HEADER_TIMEOUT:.0f} s of silence"
        )
    finally:
        for sock in sockets:
            sock.close()
        exporter.stop()


def test_past_the_bound_the_longest_idle_keep_alive_makes_room(server: RedisServer) -> None:
    exporter = ExporterProcess(["--redis-url", server.url, "--max-connections", "16"]).start()
    try:
        idle = []
        for _ in range(16):  # 16 keep-alive connections, each idle after one request
            conn = http.client.HTTPConnection(LOOPBACK, exporter.port, timeout=10)
            conn.request("GET", "/healthz")
            assert conn.getresponse().read() == b"ok\n"
            idle.append(conn)
        status, body, _ = _get(exporter.port, "/metrics")  # the 17th: served, not refused
        assert status == 200 and b"redis_up 1" in body
        oldest = idle[0].sock
        assert oldest is not None
        assert _closed_by_peer(oldest) or _closed_later(oldest)
        newest = idle[-1]
        newest.request("GET", "/healthz")  # the most recent idle one was kept
        assert newest.getresponse().read() == b"ok\n"
    finally:
        exporter.stop()


def _closed_later(sock: socket.socket, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _closed_by_peer(sock):
            return True
        time.sleep(0.02)
    return False


def test_the_documented_web_config_loads(certs: dict[str, Path], tmp_path: Path) -> None:
    import re
    import shutil

    from memorywatch.exporter.webconfig import BasicAuth, load

    doc = (Path(__file__).resolve().parents[2] / "docs" / "exporter.md").read_text()
    [block] = re.findall(r"```yaml\n(# /etc/memorywatch/web/web.yml.*?)```", doc, re.DOTALL)
    for source, target in (
        ("server.crt", "tls.crt"),
        ("server.key", "tls.key"),
        ("ca.crt", "ca.crt"),
    ):
        shutil.copy(certs[source], tmp_path / target)
    web = load(_web_config(tmp_path, block))
    assert web.tls is not None and web.tls.verify_mode == ssl.CERT_REQUIRED
    auth = BasicAuth(web.users)
    assert auth.allowed("Basic " + base64.b64encode(b"prometheus:change-me").decode())
    assert not auth.allowed("Basic " + base64.b64encode(b"prometheus:" + b"x" * 100).decode())


def test_a_connection_without_a_thread_is_dropped_and_the_next_is_served(
    server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tasks limit (systemd TasksMax) can refuse a thread: that connection is closed, the
    waiting room keeps serving the ones after it."""
    import socketserver
    import threading

    from memorywatch.exporter.config import build_config
    from memorywatch.exporter.http import ExporterApp, _Handler, _Server
    from memorywatch.exporter.webconfig import BasicAuth

    real = socketserver.ThreadingMixIn.process_request
    refusals = iter([True])

    def once_refused(self: Any, request: Any, address: Any) -> None:
        if next(refusals, False):
            raise RuntimeError("can't start new thread")
        real(self, request, address)

    monkeypatch.setattr(socketserver.ThreadingMixIn, "process_request", once_refused)
    app = ExporterApp(build_config(redis_url=server.url))
    handler = type("Handler", (_Handler,), {"app": app})
    httpd = _Server((LOOPBACK, 0), handler, max_connections=16, tls=None, auth=BasicAuth({}))
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    port = httpd.server_address[1]
    try:
        with pytest.raises((http.client.HTTPException, ConnectionError, OSError)):
            _get(port, "/healthz")
        assert _get(port, "/healthz")[0] == 200
        wait_until(lambda: httpd._active == 0, 5, what="both connections released")
    finally:
        httpd.shutdown()
        httpd.server_close()
        app.close()


def test_stalled_tls_handshakes_do_not_keep_a_tls_scrape_out(
    server: RedisServer, certs: dict[str, Path], tmp_path: Path
) -> None:
    """The handshake is done in the waiting room, non-blocking: a client that connects and
    stops mid-handshake holds no handler (16 of them here, against 200 stalled)."""
    web = _web_config(
        tmp_path,
        f"tls_server_config:\n  cert_file: {certs['server.crt']}\n"
        f"  key_file: {certs['server.key']}\n",
    )
    exporter = _start(server, web, "--max-connections", "16")
    context = ssl.create_default_context(cafile=str(certs["ca.crt"]))
    sockets: list[socket.socket] = []
    try:
        for data in (b"", b"\x16\x03\x01\x00"):  # no ClientHello; part of one
            for _ in range(100):
                sock = socket.create_connection((LOOPBACK, exporter.port), timeout=5)
                sock.sendall(data)
                sockets.append(sock)
        for _ in range(3):
            started = time.monotonic()
            status, body, _ = _get(exporter.port, "/metrics", None, context)
            took = time.monotonic() - started
            assert status == 200 and b"redis_up 1" in body
            assert took < 1.0, f"a TLS scrape took {took:.2f} s beside 200 stalled handshakes"
    finally:
        for sock in sockets:
            sock.close()
        exporter.stop()


def _exchange(sock: socket.socket, head: bytes) -> int | None:
    """Send one request head, read its whole answer; its status code (None: closed unanswered)."""
    sock.settimeout(10)
    sock.sendall(head)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk and not data:
            return None
        assert chunk, f"closed mid-answer to {head!r}"
        data += chunk
    top, _, body = data.partition(b"\r\n\r\n")
    lines = top.decode("latin-1").split("\r\n")
    fields = dict(line.split(": ", 1) for line in lines[1:])
    while len(body) < int(fields.get("Content-Length", "0")):
        chunk = sock.recv(65536)
        assert chunk, "closed mid-body"
        body += chunk
    return int(lines[0].split()[1])


def test_request_heads_of_every_shape_are_read_as_http_says(
    server: RedisServer, tmp_path: Path
) -> None:
    """Plain heads take the exporter's own parser, others the standard library's: either way
    header names are case-blind, the version and Connection decide keep-alive, and a
    folded header is read as before."""
    web = _web_config(tmp_path, f"basic_auth_users:\n  prometheus: {_hash()}\n")
    exporter = _start(server, web)
    token = _auth("prometheus", PASSWORD)["Authorization"].encode()
    cases: list[tuple[bytes, int | None, bool]] = [  # head, status, kept open after it
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nauthorization: " + token + b"\r\n\r\n", 200, True),
        (b"GET /healthz HTTP/1.1\r\nAUTHORIZATION: " + token + b"\r\nConnection: close\r\n\r\n", 200, False),
        (b"GET /healthz HTTP/1.0\r\nAuthorization: " + token + b"\r\n\r\n", 200, False),
        (b"GET /healthz HTTP/1.0\r\nAuthorization:" + token + b"\r\nConnection: Keep-Alive\r\n\r\n", 200, True),
        (b"GET /healthz HTTP/1.1\r\nX-Folded: a\r\n b\r\nAuthorization: " + token + b"\r\n\r\n", 200, True),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 401, True),
        (b"GET /healthz HTTP/1.1\r\nAuthorization: Basic bm9ib2R5Om5vbmU=\r\n\r\n", 401, True),
        (b"GET  /healthz  HTTP/1.1\r\nAuthorization: " + token + b"\r\n\r\n", 200, True),
    ]  # fmt: skip
    try:
        for head, status, kept in cases:
            with socket.create_connection((LOOPBACK, exporter.port), timeout=10) as sock:
                assert _exchange(sock, head) == status, head
                if kept:  # the same connection answers a second request
                    again = b"GET /healthz HTTP/1.1\r\nAuthorization: " + token + b"\r\n\r\n"
                    assert _exchange(sock, again) == 200, head
                else:
                    assert _closed_later(sock), head
    finally:
        exporter.stop()
