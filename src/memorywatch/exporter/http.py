"""The exporter's HTTP surface: /metrics, /scrape?target=, /healthz.

The standard library's threading HTTP server: request heads (and TLS handshakes) are read
by one selector thread, each whole request is answered by a handler thread of its own so a
slow target cannot hold up the others; HTTP/1.1 keep-alive, hardened (see ``_Server``), with
the exporter-toolkit web configuration (TLS, basic auth). The app is also a WSGI callable,
for embedding: it asks for the web configuration's basic auth users as this server does (TLS
is the embedding server's own).
"""

from __future__ import annotations

import collections
import contextlib
import gzip
import heapq
import io
import logging
import queue
import resource
import selectors
import signal
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final
from urllib.parse import parse_qs

import redis
from prometheus_client.registry import Collector

from memorywatch import __version__
from memorywatch.alerts import runbooks
from memorywatch.exporter.collectors.exporter_self import BuildInfoCollector, ProcessFamilies
from memorywatch.exporter.collectors.fleet import Fleet
from memorywatch.exporter.collectors.target import ScrapeHealth, TargetCollector
from memorywatch.exporter.config import ConfigError, ExporterConfig, parse_target
from memorywatch.exporter.discovery import cluster_primaries, discover
from memorywatch.exporter.evictions import EvictionTracker
from memorywatch.exporter.exposition import CONTENT_TYPE, FamilySource, render
from memorywatch.exporter.primaries import PrimaryWorkers
from memorywatch.exporter.sampler import KeyspaceSampler
from memorywatch.exporter.scrape import ClientCache, Recent
from memorywatch.exporter.webconfig import BasicAuth
from memorywatch.redisurl import Target, Topology

log = logging.getLogger("memorywatch.exporter")

StartResponse = Callable[[str, list[tuple[str, str]]], Any]

INDEX = """<html><head><title>memorywatch exporter</title></head><body>
<h1>memorywatch exporter {version}</h1>
<p>Target: {target}</p>
<ul><li><a href="/metrics">/metrics</a></li>
<li>/scrape?target=redis://host:port (allow-listed targets only)</li>
<li><a href="/healthz">/healthz</a></li>
<li><a href="/runbooks">/runbooks</a>/NAME (one page per alert)</li></ul></body></html>
"""


class ExporterApp:
    """The WSGI application; holds the connection cache and the scrape thread pool."""

    def __init__(self, config: ExporterConfig) -> None:
        self.config = config
        self.clients = ClientCache(config.credentials, config.tls, config.scrape_timeout)
        self.executor = ThreadPoolExecutor(max_workers=32, thread_name_prefix="memorywatch-scrape")
        self.health = ScrapeHealth(pinned=config.target.display)
        # --web-config-file's basic_auth_users, asked of every request by both ways in (the
        # server below and __call__, when embedded)
        self.auth = BasicAuth(config.web.users if config.web is not None else {})
        # /scrape targets already checked (parsed, allow-listed), by their target= text:
        # bounded and forgotten when no longer scraped, as their clients are.
        self.targets: Recent[str, TargetCollector] = Recent()
        self.fleet = self._fleet(config)
        self.main_target = TargetCollector(
            config.target,
            self.clients,
            self.executor,
            self.health,
            config.scrape_timeout,
            self.fleet,
        )
        self.main: list[FamilySource | Collector] = [
            self.main_target,
            BuildInfoCollector(),
            ProcessFamilies(),
        ]

    def _fleet(self, config: ExporterConfig) -> Fleet | None:
        """Fleet metrics for the configured target, with their background workers: on the
        primary, or on every primary of a Cluster."""
        if config.fleet is None:
            return None
        target = config.target
        namespace, profiles = config.fleet.namespace, config.fleet.profiles

        def client_for(host: str, port: int, auth: bool) -> redis.Redis:
            return self.clients.get(host, port, tls=target.tls, authenticate=auth)

        def tracker(factory: Callable[[], redis.Redis]) -> EvictionTracker:
            return EvictionTracker(
                factory, namespace, target.db, config.enable_keyspace_events, profiles=profiles
            )

        def sampler(factory: Callable[[], redis.Redis]) -> KeyspaceSampler:
            return KeyspaceSampler(
                factory, namespace, config.sample_interval, config.sample_budget, profiles=profiles
            )

        def node(host: str, port: int) -> Callable[[], redis.Redis]:
            return lambda: self.clients.uncached(host, port, tls=target.tls, db=target.db)

        if target.topology is Topology.CLUSTER:
            workers = PrimaryWorkers(
                node(*target.hosts[0]),
                lambda: cluster_primaries(target, client_for),
                lambda n: tracker(node(*n)),
                lambda n: sampler(node(*n)),
            )
            return Fleet(config.fleet, workers, workers)

        def primary() -> redis.Redis:
            host, port = discover(target, client_for)[0]
            return self.clients.uncached(host, port, tls=target.tls, db=target.db)

        return Fleet(config.fleet, tracker(primary), sampler(primary))

    def target_collector(self, target: Target) -> TargetCollector:
        """A /scrape target: no fleet metrics, and every node it leads to is allow-listed."""
        return TargetCollector(
            target,
            self.clients,
            self.executor,
            self.health,
            self.config.scrape_timeout,
            node_allowed=self.config.node_allowed,
        )

    def start(self) -> ExporterApp:
        """Start the background workers (eviction tracking, keyspace sampling)."""
        if self.fleet is not None:
            self.fleet.start()
        return self

    def after_request(self) -> None:
        """Work due between requests, run in the thread that just answered one: the keyspace
        sampler's next step, if due (`KeyspaceSampler.after_request`)."""
        if self.fleet is not None:
            self.fleet.after_request()

    def close(self) -> None:
        if self.fleet is not None:
            self.fleet.stop()
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.clients.close()

    def respond(self, method: str, path: str, query: str, accept_encoding: str = "") -> Response:
        """The whole HTTP surface as one function of the request line."""
        if method not in ("GET", "HEAD"):
            return Response(405, b"only GET\n")
        if path == "/metrics":
            return self._metrics(self.main, accept_encoding)
        if path == "/scrape":
            return self._scrape(query, accept_encoding)
        if path == "/healthz":
            return Response(200, b"ok\n")
        if path == "/runbooks" or path.startswith("/runbooks/"):
            return self._runbook(path.removeprefix("/runbooks").strip("/"))
        if path == "/":
            page = INDEX.format(version=__version__, target=self.config.target.display)
            return Response(200, page.encode(), "text/html; charset=utf-8")
        return Response(404, b"not found\n")

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """WSGI, for embedding the exporter in another server (and for tests). Every path
        asks for the web configuration's basic auth, if it has users."""
        extra: list[tuple[str, str]] = []
        if not self.auth.allowed(environ.get("HTTP_AUTHORIZATION")):
            response = UNAUTHORIZED
            extra = [CHALLENGE]
        else:
            response = self.respond(
                environ.get("REQUEST_METHOD", "GET"),
                environ.get("PATH_INFO", "/"),
                environ.get("QUERY_STRING", ""),
                environ.get("HTTP_ACCEPT_ENCODING", ""),
            )
        start_response(
            f"{response.status} {HTTPStatus(response.status).phrase}", extra + response.headers()
        )
        return [response.body]

    def _runbook(self, name: str) -> Response:
        """``/runbooks/NAME`` (the page, Markdown) and ``/runbooks`` (the list), from the
        installed package: a default ``runbook_url`` can point at the exporter itself."""
        directory = runbooks.default_dir()
        if not name:
            listing = "".join(f"{n}\n" for n in runbooks.list_alerts(directory))
            return Response(200, listing.encode()) if listing else Response(404, b"no runbooks\n")
        try:
            page = runbooks.find(name.removesuffix(".md"), directory)
        except runbooks.RunbookError:
            return Response(404, b"no runbook by that name\n")
        return Response(200, page.read_bytes(), "text/markdown; charset=utf-8")

    def _scrape(self, query: str, accept_encoding: str) -> Response:
        values = parse_qs(query).get("target", [])
        if len(values) != 1 or not values[0]:
            return Response(400, b"give exactly one target=\n")
        collector = self.targets.peek(values[0])
        if collector is None:
            checked = self._checked_target(values[0])
            if isinstance(checked, Response):
                return checked
            collector = checked
        self.targets.get(values[0], lambda: collector)  # this target was scraped now
        return self._metrics([collector], accept_encoding)

    def _checked_target(self, text: str) -> TargetCollector | Response:
        try:
            target, credentials = parse_target(text)
        except ConfigError as exc:
            return Response(400, f"bad target: {exc}\n".encode())
        if credentials.password is not None or credentials.username is not None:
            return Response(
                400, b"credentials are not accepted in target=; configure them on the exporter\n"
            )
        if not self.config.target_allowed(target):
            log.warning("refused /scrape of %s: not in --allow-target", target.display)
            return Response(
                403,
                f"target {target.display} is not allowed: add it with --allow-target\n".encode(),
            )
        return self.target_collector(target)

    def _metrics(
        self, collectors: list[FamilySource | Collector], accept_encoding: str
    ) -> Response:
        body = render(collectors)
        if "gzip" in accept_encoding:
            return Response(200, gzip.compress(body, compresslevel=1), CONTENT_TYPE, "gzip")
        return Response(200, body, CONTENT_TYPE)


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    encoding: str | None = None

    def headers(self) -> list[tuple[str, str]]:
        headers = [("Content-Type", self.content_type), ("Content-Length", str(len(self.body)))]
        if self.encoding:
            headers.append(("Content-Encoding", self.encoding))
        return headers


UNAUTHORIZED = Response(401, b"unauthorized\n")
CHALLENGE = ("WWW-Authenticate", 'Basic realm="memorywatch"')

IDLE_TIMEOUT = 65.0
"""Seconds a connection may wait for its next request: longer than the 60 s scrape interval
the slowest Prometheus setups use, so keep-alive survives; a half-open connection is closed."""
HEADER_TIMEOUT = 10.0
"""Seconds a request head may take in all, from its first byte (from the connection's
accept for the first request, TLS handshake included); also each write of a response."""
MAX_HEAD = 65536 + 100 * 1024
"""Bytes a request head may have: the stdlib handler's 64 KiB request line and 100 headers."""
HANDLER_IDLE = 60.0
"""Seconds a handler thread with no request waits for one before it ends."""
ACCEPT_BATCH = 512
"""Connections accepted per wake-up of the accept loop."""
LISTEN_BACKLOG = 4096
"""Pending connections the kernel holds (capped by net.core.somaxconn); the stdlib's 5 made a
burst of a few hundred connections wait 30 s to be accepted."""


class _Conn:
    """A client connection between requests: its socket and what it has sent so far."""

    __slots__ = ("address", "buf", "deadline", "handshaking", "served", "sock", "want")

    def __init__(self, sock: Any, address: Any) -> None:
        self.sock = sock
        self.address = address
        self.buf = b""
        self.deadline = 0.0
        self.handshaking = False
        self.served = False  # has had a request answered: counts toward --max-connections
        self.want = selectors.EVENT_READ

    def buffered(self) -> bool:
        """Whether some of the next request may be read already: a pipelined head in `buf`,
        a TLS handshake under way, or decrypted bytes in the TLS layer (which the selector
        does not see)."""
        return bool(
            self.buf
            or self.handshaking
            or (isinstance(self.sock, ssl.SSLSocket) and self.sock.pending())
        )

    def head(self) -> bytes | None:
        """The complete request head at the front of the buffer, taken off it, or None."""
        ends = [
            (i, i + n) for i, n in ((self.buf.find(b"\r\n\r\n"), 4), (self.buf.find(b"\n\n"), 2))
        ]
        found = [end for end in ends if end[0] >= 0]
        if not found:
            return None
        _, size = min(found)  # the first blank line, whichever line ends the client uses
        head, self.buf = self.buf[:size], self.buf[size:]
        return head


class _WaitingRoom:
    """Every connection waits here, without a thread, until it has sent a whole request head.

    One thread and one selector hold every connection between requests: new ones (after a
    TLS handshake done here, non-blocking), idle keep-alives, and ones part-way through a
    request head. A head must be complete within HEADER_TIMEOUT of its first byte (of the
    accept, for a new connection); an idle keep-alive is closed after IDLE_TIMEOUT. Only a
    whole head goes to a handler thread, so a flood of silent or stalled clients costs a file
    each, never a thread, and the scrape beside them is served at once. Past ``capacity`` new
    connections, the oldest new ones are closed first."""

    def __init__(
        self,
        dispatch: Callable[[_Conn, bytes], None],
        dropped: Callable[[_Conn], None],
        capacity: int,
        tls: ssl.SSLContext | None,
    ) -> None:
        self._dispatch = dispatch
        self._dropped = dropped
        self._capacity = capacity
        self._tls = tls
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._incoming: collections.deque[_Conn] = collections.deque()
        self._deadlines: list[tuple[float, int, _Conn]] = []
        self._seq = 0
        self._waiting: set[_Conn] = set()
        self._new: dict[_Conn, None] = {}  # never served, in order of arrival
        self.idle: dict[_Conn, None] = {}  # served, waiting for their next request, oldest first
        self._lock = threading.Lock()
        """Held by the room's thread while it handles events, and by `readmit`."""
        self._wake_at: float | None = None
        """The deadline the room's thread sleeps until (None: until an event)."""
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="mw-http-waiting", daemon=True)
        self._thread.start()

    def add(self, *conns: _Conn) -> None:
        """Hand connections to the room (from any thread): new, or back after a response."""
        with self._lock:
            self._incoming.extend(conns)
        self._wake()

    def readmit(self, conn: _Conn) -> None:
        """A served connection back from its handler thread, with nothing of its next request
        read yet: registered from that thread, so the room's thread is not woken for it (at a
        scrape a second that wake-up cost about as much as the request's own HTTP handling);
        it is woken only if it would otherwise sleep past this connection's deadline."""
        if conn.buffered():
            self.add(conn)  # the room's thread reads what is buffered
            return
        with self._lock:
            if self._closed:
                _close(conn.sock)
                return
            entered = self._enter(conn, time.monotonic())
            wake = entered and (self._wake_at is None or conn.deadline < self._wake_at)
        if wake:
            self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            self._wake_w.send(b"\0")

    def _admit(self, now: float) -> None:
        arrived, self._incoming = self._incoming, collections.deque()
        for conn in arrived:
            if self._enter(conn, now) and conn.buffered():  # a pipelined head; TLS data
                self._advance(conn)

    def _enter(self, conn: _Conn, now: float) -> bool:
        """Register a connection, new or served, with the selector and the room's books (the
        room's lock held); False if it failed and was dropped."""
        try:
            conn.want = selectors.EVENT_READ
            if conn.served:
                conn.sock.setblocking(False)
                conn.deadline = now + (HEADER_TIMEOUT if conn.buf else IDLE_TIMEOUT)
            else:
                self._accept(conn, now)
            self._selector.register(conn.sock, conn.want, conn)
        except (ValueError, OSError, ssl.SSLError):
            self._drop(conn)
            return False
        self._waiting.add(conn)
        if conn.served:
            self.idle[conn] = None
        else:
            self._new[conn] = None
        self._track(conn)
        return True

    def _accept(self, conn: _Conn, now: float) -> None:
        conn.deadline = now + HEADER_TIMEOUT
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
        conn.sock.setblocking(False)
        if self._tls is not None:
            conn.sock = self._tls.wrap_socket(
                conn.sock, server_side=True, do_handshake_on_connect=False
            )
            conn.handshaking = True

    def _track(self, conn: _Conn) -> None:
        self._seq += 1
        heapq.heappush(self._deadlines, (conn.deadline, self._seq, conn))

    def _forget(self, conn: _Conn) -> None:
        self._waiting.discard(conn)
        self._new.pop(conn, None)
        self.idle.pop(conn, None)
        with contextlib.suppress(KeyError, ValueError, OSError):
            self._selector.unregister(conn.sock)

    def _drop(self, conn: _Conn) -> None:
        self._forget(conn)
        _close(conn.sock)
        self._dropped(conn)

    def close_idle(self, conn: _Conn) -> None:
        """Close a served connection idle in the room (room thread only)."""
        self._drop(conn)

    def _expire(self, now: float) -> None:
        while self._deadlines and self._deadlines[0][0] <= now:
            deadline, _, conn = heapq.heappop(self._deadlines)
            if conn in self._waiting and conn.deadline == deadline:
                self._drop(conn)
        while len(self._new) > self._capacity:
            self._drop(next(iter(self._new)))
        if len(self._deadlines) > 4 * len(self._waiting) + 64:  # stale entries: rebuild
            self._deadlines = [e for e in self._deadlines if e[2] in self._waiting]
            heapq.heapify(self._deadlines)

    def _advance(self, conn: _Conn) -> None:
        """Move a connection on as far as it can go without blocking."""
        sock = conn.sock
        try:
            if conn.handshaking:
                sock.do_handshake()
                conn.handshaking = False
            buf = conn.buf  # may hold a whole pipelined head already
            while b"\r\n\r\n" not in buf and b"\n\n" not in buf and len(buf) <= MAX_HEAD:
                chunk = sock.recv(65536)
                if not chunk:  # the client went away
                    self._drop(conn)
                    return
                if not buf and conn.served:  # a kept-alive one starts its next request
                    conn.deadline = time.monotonic() + HEADER_TIMEOUT
                    self._track(conn)
                buf = conn.buf = buf + chunk
        except ssl.SSLWantReadError:
            self._want(conn, selectors.EVENT_READ)
            return
        except ssl.SSLWantWriteError:
            self._want(conn, selectors.EVENT_WRITE)
            return
        except (BlockingIOError, InterruptedError):
            self._want(conn, selectors.EVENT_READ)
            return
        except (ssl.SSLError, OSError) as exc:  # a plain-text client to TLS, a bad certificate
            log.debug("connection from %s failed: %s", conn.address, exc)
            self._drop(conn)
            return
        head = conn.head()
        if head is None:  # larger than any head we take
            with contextlib.suppress(OSError, ssl.SSLError):
                sock.send(TOO_LARGE)
            self._drop(conn)
            return
        self._forget(conn)
        self._dispatch(conn, head)

    def _want(self, conn: _Conn, events: int) -> None:
        if conn.want != events:
            conn.want = events
            self._selector.modify(conn.sock, events, conn)

    def _run(self) -> None:
        while not self._closed:
            with self._lock:
                deadline = self._wake_at = self._deadlines[0][0] if self._deadlines else None
            # No wake-up but for an event or the next deadline: `add`, `readmit` (for an
            # earlier deadline) and `close` write to the wake socket, so an idle exporter's
            # room sleeps.
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            events = self._selector.select(timeout)
            with self._lock:  # the room's state, shared with `readmit`
                for key, _events in events:
                    if key.fileobj is self._wake_r:
                        with contextlib.suppress(BlockingIOError, OSError):
                            self._wake_r.recv(65536)
                        continue
                    if key.data in self._waiting:
                        self._advance(key.data)
                now = time.monotonic()
                self._admit(now)
                self._expire(now)

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._wake()
        self._thread.join(5)
        for conn in list(self._waiting):
            _close(conn.sock)
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()


def _close(sock: Any) -> None:
    with contextlib.suppress(OSError):
        sock.close()


class _Writer(io.BufferedIOBase):
    """The response side of a connection: every write sent whole (a socket's raw file may
    send part of a large body)."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._sock.sendall(data)
        return len(data)


_MAX_HEADERS: Final = 100
"""As the standard library's parser: a head of more header lines is refused (by it)."""


class _Headers(dict[str, str]):
    """A request's headers by lower-case name (the first of a repeated one), read as the
    handler reads `email.message.Message`: `get` and `in`, whatever the case of the name."""

    def get(self, name: str, default: Any = None) -> Any:
        return super().get(name.lower(), default)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and super().__contains__(name.lower())


class _Handler(BaseHTTPRequestHandler):
    """One request whose head has already been read, answered with HTTP/1.1 keep-alive, so
    Prometheus reuses its connection between scrapes."""

    protocol_version = "HTTP/1.1"
    server_version = f"memorywatch/{__version__}"
    app: ExporterApp
    server: _Server
    request: tuple[_Conn, bytes]
    raw_requestline: bytes

    def setup(self) -> None:
        conn, head = self.request
        self.conn = conn
        self.connection = conn.sock
        conn.sock.settimeout(HEADER_TIMEOUT)  # each write of the response
        self.rfile = io.BytesIO(head)
        self.wfile = _Writer(conn.sock)

    def handle(self) -> None:
        self.close_connection = True
        self.handle_one_request()

    def finish(self) -> None:
        self.wfile.close()

    def parse_request(self) -> bool:
        if not (self._parse_plain() or self._parse_general()):
            return False
        length = self.headers.get("Content-Length", "0").strip()
        if length not in ("", "0") or "Transfer-Encoding" in self.headers:
            self.close_connection = True  # a body is never read: do not take it for a request
        return True

    def _parse_general(self) -> bool:
        """The standard library's parser (the `email` package), for any head `_parse_plain`
        leaves alone; it answers malformed ones with their error."""
        self.rfile.seek(self._head_at)
        return super().parse_request()

    def _parse_plain(self) -> bool:
        """A plain HTTP/1.0 or 1.1 head (what Prometheus, curl and probes send) parsed
        without the `email` package, which cost ~90 us of a ~2 ms scrape: False (and nothing
        consumed) for any other head, left to `_parse_general`."""
        self._head_at = self.rfile.tell()
        words = self.raw_requestline.rstrip(b"\r\n").split(b" ")
        if len(words) != 3 or words[2] not in (b"HTTP/1.1", b"HTTP/1.0"):
            return False
        if words[1].startswith(b"//") or not words[0].isalpha():
            return False
        headers = _Headers()
        lines = self.rfile.read().split(b"\r\n")
        for count, line in enumerate(lines):
            if not line:
                break
            name, colon, value = line.partition(b":")
            if not colon or count >= _MAX_HEADERS or line[0] in b" \t" or b"\n" in line:
                self.rfile.seek(self._head_at)
                return False
            headers.setdefault(
                name.decode("latin-1").strip().lower(), value.decode("latin-1").strip()
            )
        else:
            self.rfile.seek(self._head_at)
            return False  # no blank line ends it
        if "expect" in headers:
            self.rfile.seek(self._head_at)
            return False
        self.requestline = self.raw_requestline.rstrip(b"\r\n").decode("latin-1")
        self.command, self.path = words[0].decode("latin-1"), words[1].decode("latin-1")
        self.request_version = words[2].decode("latin-1")
        self.headers = headers  # type: ignore[assignment]
        connection = headers.get("connection", "").lower()
        self.close_connection = self.request_version == "HTTP/1.0" or connection == "close"
        if connection == "keep-alive":
            self.close_connection = False
        return True

    def _serve(self) -> None:
        if not self.server.auth.allowed(self.headers.get("Authorization")):
            self._send(UNAUTHORIZED, [CHALLENGE])
            return
        path, _, query = self.path.partition("?")
        self._send(
            self.app.respond(self.command, path, query, self.headers.get("Accept-Encoding", ""))
        )

    def _send(self, response: Response, extra: list[tuple[str, str]] | None = None) -> None:
        """Status, headers and body in one write (one system call, one packet for most)."""
        status = HTTPStatus(response.status)
        lines = [
            f"HTTP/1.1 {status.value} {status.phrase}",
            f"Server: {self.version_string()}",
            f"Date: {self.date_time_string()}",
            *(f"{name}: {value}" for name, value in (extra or [])),
            *(f"{name}: {value}" for name, value in response.headers()),
        ]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(head if self.command == "HEAD" else head + response.body)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        """Access logs are left to the proxy in front, if any."""


class _Server(ThreadingHTTPServer):
    """The stdlib's threading server, made to hold up: a deep listen backlog; every
    connection waits in a thread-less waiting room (``_WaitingRoom``) until it has sent a
    whole request head, TLS handshake included, under a total deadline; a handler thread
    answers that one request and hands the connection back. At most ``max_connections``
    connections are served (answered once and kept alive); past the bound, the one idle
    longest is closed to make room, so no flood of connections keeps Prometheus's scrape
    out, and when every one of them is mid-request the newcomer gets a 503 at once."""

    daemon_threads = True
    request_queue_size = LISTEN_BACKLOG

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        *,
        max_connections: int,
        tls: ssl.SSLContext | None,
        auth: BasicAuth,
        after_answer: Callable[[], None] | None = None,
    ) -> None:
        self.tls = tls
        self.auth = auth
        self.after_answer = after_answer
        """Run in a handler thread after each answer, before it waits for the next request
        (the keyspace sampler's step: `ExporterApp.after_request`)."""
        self.max_connections = max_connections
        self._active = 0  # handler threads answering a request
        self._served = 0  # connections answered once and still open
        self._spare = 0  # handler threads waiting for a request
        self._jobs: queue.SimpleQueue[tuple[_Conn, bytes] | None] = queue.SimpleQueue()
        self._guard = threading.Lock()
        self._room = _WaitingRoom(
            self._dispatch, self._dropped, capacity=8 * max_connections, tls=tls
        )
        self._stopping = False
        self._stop_r, self._stop_w = socket.socketpair()
        try:
            super().__init__(address, handler)  # closes the room itself if the bind fails
        except BaseException:
            self._stop_r.close()
            self._stop_w.close()
            raise

    def serve_until_stopped(self) -> None:
        """Accept connections until `stop_serving`. The loop sleeps in select() with no
        timeout: the stdlib's serve_forever wakes every poll interval to look for a shutdown
        request, which at one scrape a second cost an idle exporter more CPU than a scrape's
        own HTTP handling."""
        with selectors.DefaultSelector() as selector:
            selector.register(self.socket, selectors.EVENT_READ)
            selector.register(self._stop_r, selectors.EVENT_READ)
            while not self._stopping:
                for key, _events in selector.select():
                    if key.fileobj is self.socket and not self._stopping:
                        self._handle_request_noblock()

    def stop_serving(self) -> None:
        """End `serve_until_stopped` (from any thread, or a signal handler)."""
        self._stopping = True
        with contextlib.suppress(OSError):
            self._stop_w.send(b"\0")

    def server_activate(self) -> None:
        super().server_activate()
        self.socket.setblocking(False)

    def _handle_request_noblock(self) -> None:
        """Accept every pending connection (up to ACCEPT_BATCH) per wake-up, not one, and
        hand them to the room at once: a burst waiting in the backlog is drained in one go,
        so a scrape queued behind it waits less."""
        accepted = []
        for _ in range(ACCEPT_BATCH):
            try:
                request, client_address = self.socket.accept()
            except OSError:  # nothing more pending (EAGAIN), or the client gave up
                break
            accepted.append(_Conn(request, client_address))
        if accepted:
            self._room.add(*accepted)

    def process_request(self, request: Any, client_address: Any) -> None:
        self._room.add(_Conn(request, client_address))

    def _dropped(self, conn: _Conn) -> None:
        if conn.served:
            with self._guard:
                self._served -= 1

    def _dispatch(self, conn: _Conn, head: bytes) -> None:
        """In the room's thread: a whole head arrived; a handler thread answers it."""
        if not conn.served:
            with self._guard:
                full = self._served >= self.max_connections
            if full and self._room.idle:
                self._room.close_idle(next(iter(self._room.idle)))
                full = False
            if full:  # every served connection is mid-request: say so without a thread
                with contextlib.suppress(OSError, ssl.SSLError):
                    conn.sock.send(BUSY)
                _close(conn.sock)
                return
            conn.served = True
            with self._guard:
                self._served += 1
        with self._guard:
            self._active += 1
            reuse = self._spare > 0
            if reuse:
                self._spare -= 1  # taken: that thread will get this job
        if reuse:
            self._jobs.put((conn, head))
            return
        try:  # a new thread, which stays on to answer later requests
            super().process_request((conn, head), conn.address)  # type: ignore[arg-type]
        except Exception as exc:  # no thread to be had (a tasks limit): this one connection
            # is dropped; raising would end the waiting room's thread and with it every
            # connection still to come
            self._release()
            self._finished(conn, close=True)
            log.warning("dropped a connection: cannot start its handler thread: %s", exc)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        """Answer this request, then wait for others: a thread is started only when none is
        spare, and one left spare for HANDLER_IDLE seconds ends."""
        job: tuple[_Conn, bytes] | None = request
        while job is not None:
            self._answer(job)
            if self.after_answer is not None:
                try:
                    self.after_answer()
                except Exception:  # the handler thread outlives it, as it does a request
                    log.exception("after a request")
            with self._guard:
                self._spare += 1
            try:
                job = self._jobs.get(timeout=HANDLER_IDLE)
            except queue.Empty:
                with self._guard:
                    if self._spare > 0:  # not taken: end
                        self._spare -= 1
                        return
                job = self._jobs.get()  # taken just now: its job is on the way

    def _answer(self, request: tuple[_Conn, bytes]) -> None:
        conn, _head = request
        client_address = conn.address
        close = True
        try:
            handler = self.RequestHandlerClass(request, client_address, self)  # type: ignore[arg-type]
            close = handler.close_connection  # type: ignore[attr-defined]
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self._release()
            self._finished(conn, close)

    def _finished(self, conn: _Conn, close: bool) -> None:
        if close or self._room_closed:
            _close(conn.sock)
            self._dropped(conn)
        else:
            self._room.readmit(conn)

    def _release(self) -> None:
        with self._guard:
            self._active -= 1

    _room_closed = False

    def server_close(self) -> None:
        self._stop_r.close()
        self._stop_w.close()
        self._room_closed = True
        self._room.close()
        with self._guard:
            spare, self._spare = self._spare, 0
        for _ in range(spare):
            self._jobs.put(None)
        super().server_close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that vanished mid-request is not a traceback on stderr."""
        log.debug("connection from %s ended with an error", client_address, exc_info=True)


BUSY = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\n"
    b"Connection: close\r\n\r\n"
)


class _Server6(_Server):
    address_family = socket.AF_INET6


def _raise_open_files_limit() -> None:
    """Every connection is a file: lift the soft limit to the hard one (as Go's runtime does),
    so the connection bound, not a default of 1024 files, decides."""
    with contextlib.suppress(ValueError, OSError):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def serve(config: ExporterConfig) -> None:
    """Serve until SIGTERM or SIGINT."""
    app = ExporterApp(config)
    server_class = _Server6 if ":" in config.listen_host else _Server
    handler = type("Handler", (_Handler,), {"app": app})
    web = config.web
    _raise_open_files_limit()
    try:
        server = server_class(
            (config.listen_host, config.listen_port),
            handler,
            max_connections=config.max_connections,
            tls=web.tls if web is not None else None,
            auth=app.auth,
            after_answer=app.after_request,
        )
    except OSError as exc:
        app.close()
        raise ConfigError(
            f"cannot listen on {config.listen_host}:{config.listen_port}: {exc.strerror}"
        ) from None
    app.start()

    def stop(signum: int, _frame: Any) -> None:
        log.info("received %s, shutting down", signal.Signals(signum).name)
        server.stop_serving()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    host = f"[{config.listen_host}]" if ":" in config.listen_host else config.listen_host
    scheme = "https" if web is not None and web.tls is not None else "http"
    log.info(
        "memorywatch exporter %s serving %s://%s:%d/metrics for %s%s",
        __version__,
        scheme,
        host,
        server.server_port,
        config.target.display,
        " (basic auth)" if server.auth.enabled else "",
    )
    # One scrape now, so an unreachable Redis or a wrong password shows in the log at start.
    threading.Thread(target=app.main_target.families, daemon=True).start()
    try:
        server.serve_until_stopped()
    finally:
        server.server_close()
        app.close()
