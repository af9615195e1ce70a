"""The exporter's HTTP surface: /metrics, /scrape?target=, /healthz.

The standard library's threading HTTP server, one thread per connection so a slow target
cannot hold up the others, speaking HTTP/1.1 keep-alive, hardened (see ``_Server``), with
the exporter-toolkit web configuration (TLS, basic auth). The app is also a WSGI callable.
"""

from __future__ import annotations

import collections
import contextlib
import gzip
import logging
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
from typing import Any
from urllib.parse import parse_qs

import redis
from prometheus_client import ProcessCollector
from prometheus_client.registry import Collector

from memorywatch import __version__
from memorywatch.alerts import runbooks
from memorywatch.exporter.collectors.exporter_self import BuildInfoCollector
from memorywatch.exporter.collectors.fleet import Fleet
from memorywatch.exporter.collectors.target import ScrapeHealth, TargetCollector
from memorywatch.exporter.config import ConfigError, ExporterConfig, parse_target
from memorywatch.exporter.discovery import cluster_primaries, discover
from memorywatch.exporter.evictions import EvictionTracker
from memorywatch.exporter.exposition import CONTENT_TYPE, FamilySource, render
from memorywatch.exporter.primaries import PrimaryWorkers
from memorywatch.exporter.sampler import KeyspaceSampler
from memorywatch.exporter.scrape import ClientCache
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
        self.health = ScrapeHealth()
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
            ProcessCollector(registry=None),
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
        """WSGI, for embedding the exporter in another server (and for tests)."""
        response = self.respond(
            environ.get("REQUEST_METHOD", "GET"),
            environ.get("PATH_INFO", "/"),
            environ.get("QUERY_STRING", ""),
            environ.get("HTTP_ACCEPT_ENCODING", ""),
        )
        start_response(
            f"{response.status} {HTTPStatus(response.status).phrase}", response.headers()
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
        try:
            target, credentials = parse_target(values[0])
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
        return self._metrics([self.target_collector(target)], accept_encoding)

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


IDLE_TIMEOUT = 65.0
"""Seconds a connection may wait for its next request: longer than the 60 s scrape interval
the slowest Prometheus setups use, so keep-alive survives; a half-open connection is closed."""
HEADER_TIMEOUT = 10.0
"""Seconds each read may take once a request has started, and the TLS handshake."""
LISTEN_BACKLOG = 4096
"""Pending connections the kernel holds (capped by net.core.somaxconn); the stdlib's 5 made a
burst of a few hundred connections wait 30 s to be accepted."""


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive, so Prometheus reuses its connection between scrapes."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, a keep-alive client waits for
    # the delayed ACK (~40 ms) before it sees the body.
    disable_nagle_algorithm = True
    server_version = f"memorywatch/{__version__}"
    app: ExporterApp
    server: _Server

    def setup(self) -> None:
        self.raw = self.request
        self.refused = False
        tls = self.server.tls
        if tls is not None:
            self.request.settimeout(HEADER_TIMEOUT)
            try:
                self.request = tls.wrap_socket(self.request, server_side=True)
            except (ssl.SSLError, OSError) as exc:  # a plain-text client, a bad certificate
                log.debug("TLS handshake with %s failed: %s", self.client_address[0], exc)
                self.refused = True
        super().setup()

    def handle(self) -> None:
        if not self.refused:
            super().handle()

    def handle_one_request(self) -> None:
        self.connection.settimeout(IDLE_TIMEOUT)
        self.server.waiting(self, True)
        try:
            super().handle_one_request()
        finally:
            self.server.waiting(self, False)

    def parse_request(self) -> bool:
        self.server.waiting(self, False)  # a request line arrived: no longer idle
        self.connection.settimeout(HEADER_TIMEOUT)
        return super().parse_request()

    def _serve(self) -> None:
        if not self.server.auth.allowed(self.headers.get("Authorization")):
            body = b"unauthorized\n"
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="memorywatch"')
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            return
        path, _, query = self.path.partition("?")
        response = self.app.respond(
            self.command, path, query, self.headers.get("Accept-Encoding", "")
        )
        self.send_response(response.status)
        for name, value in response.headers():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        """Access logs are left to the proxy in front, if any."""


class _WaitingRoom:
    """New connections wait here, without a thread, until their first bytes arrive.

    One thread and one selector hold every connection that has not sent anything yet: a
    flood of silent (half-open) connections costs a file each, not a thread each, and the
    accept loop only registers a socket. A connection that speaks within HEADER_TIMEOUT gets
    its handler thread; one that stays silent is closed, and past ``capacity`` the oldest
    waiting ones are closed first."""

    def __init__(self, dispatch: Callable[[Any, Any], None], capacity: int) -> None:
        self._dispatch = dispatch
        self._capacity = capacity
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._incoming: collections.deque[tuple[Any, Any]] = collections.deque()
        self._order: collections.deque[tuple[float, Any]] = collections.deque()
        self._addresses: dict[Any, Any] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="mw-http-waiting", daemon=True)
        self._thread.start()

    def add(self, sock: Any, address: Any) -> None:
        with self._lock:
            self._incoming.append((sock, address))
        with contextlib.suppress(BlockingIOError, OSError):
            self._wake_w.send(b"\0")

    def _admit(self, now: float) -> None:
        with self._lock:
            arrived, self._incoming = list(self._incoming), collections.deque()
        for sock, address in arrived:
            try:
                self._selector.register(sock, selectors.EVENT_READ)
            except (ValueError, OSError):
                _close(sock)
                continue
            self._addresses[sock] = address
            self._order.append((now + HEADER_TIMEOUT, sock))

    def _expire(self, now: float) -> None:
        while self._order and (self._order[0][0] <= now or len(self._addresses) > self._capacity):
            _, sock = self._order.popleft()
            if sock in self._addresses:  # still silent
                del self._addresses[sock]
                self._selector.unregister(sock)
                _close(sock)

    def _run(self) -> None:
        while not self._closed:
            deadline = self._order[0][0] if self._order else None
            timeout = 1.0 if deadline is None else max(0.0, deadline - time.monotonic())
            for key, _events in self._selector.select(min(timeout, 1.0)):
                if key.fileobj is self._wake_r:
                    with contextlib.suppress(BlockingIOError, OSError):
                        self._wake_r.recv(65536)
                    continue
                sock = key.fileobj
                self._selector.unregister(sock)
                address = self._addresses.pop(sock, None)
                self._dispatch(sock, address)
            now = time.monotonic()
            self._admit(now)
            self._expire(now)

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")
        self._thread.join(5)
        for sock in list(self._addresses):
            _close(sock)
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()


def _close(sock: Any) -> None:
    with contextlib.suppress(OSError):
        sock.close()


class _Server(ThreadingHTTPServer):
    """The stdlib's threading server, made to hold up: a deep listen backlog; new
    connections wait for their first bytes in a thread-less waiting room (``_WaitingRoom``);
    header and idle timeouts; TLS handshakes in the connection's own thread, never in the
    accept loop; at most ``max_connections`` handler threads. Past the bound, the connection
    that has waited longest for its next request (an idle keep-alive) is closed to make room,
    so no flood of connections keeps Prometheus's scrape out."""

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
    ) -> None:
        self.tls = tls
        self.auth = auth
        self.max_connections = max_connections
        self._active = 0
        self._idle: dict[_Handler, float] = {}
        self._guard = threading.Lock()
        self._room = _WaitingRoom(self._dispatch, capacity=8 * max_connections)
        super().__init__(address, handler)  # closes the room itself if the bind fails

    def waiting(self, handler: _Handler, idle: bool) -> None:
        with self._guard:
            if idle:
                self._idle[handler] = time.monotonic()
            else:
                self._idle.pop(handler, None)

    def process_request(self, request: Any, client_address: Any) -> None:
        self._room.add(request, client_address)

    def _dispatch(self, request: Any, client_address: Any) -> None:
        with self._guard:
            victim = None
            if self._active >= self.max_connections and self._idle:
                victim = min(self._idle, key=self._idle.__getitem__)
                del self._idle[victim]
            full = self._active >= self.max_connections and victim is None
            if not full:
                self._active += 1
        if victim is not None:
            with contextlib.suppress(OSError):
                victim.raw.shutdown(socket.SHUT_RDWR)
        if full:  # every handler is mid-request: say so without a thread
            if self.tls is None:
                with contextlib.suppress(OSError):
                    request.sendall(BUSY)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except Exception as exc:  # no thread to be had (a tasks limit): this one connection
            # is dropped; raising would end the waiting room's thread and with it every
            # connection still to come
            self._release()
            log.warning("dropped a connection: cannot start its handler thread: %s", exc)
            self.shutdown_request(request)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release()

    def _release(self) -> None:
        with self._guard:
            self._active -= 1

    def server_close(self) -> None:
        self._room.close()
        super().server_close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that vanished mid-request is not a traceback on stderr."""
        log.debug("connection from %s ended with an error", client_address, exc_info=True)


BUSY = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


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
            auth=BasicAuth(web.users if web is not None else {}),
        )
    except OSError as exc:
        app.close()
        raise ConfigError(
            f"cannot listen on {config.listen_host}:{config.listen_port}: {exc.strerror}"
        ) from None
    app.start()

    def stop(signum: int, _frame: Any) -> None:
        log.info("received %s, shutting down", signal.Signals(signum).name)
        threading.Thread(target=server.shutdown, daemon=True).start()

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
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        app.close()
