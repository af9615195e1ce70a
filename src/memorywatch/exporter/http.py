"""The exporter's HTTP surface: /metrics, /scrape?target=, /healthz.

The standard library's threading HTTP server, one thread per connection so a slow target
cannot hold up the others, speaking HTTP/1.1 keep-alive. The app is also a WSGI callable.
"""

from __future__ import annotations

import gzip
import logging
import signal
import socket
import threading
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
from memorywatch.exporter.config import ConfigError, ExporterConfig, Target, Topology, parse_target
from memorywatch.exporter.discovery import discover
from memorywatch.exporter.evictions import EvictionTracker
from memorywatch.exporter.exposition import CONTENT_TYPE, FamilySource, render
from memorywatch.exporter.sampler import KeyspaceSampler
from memorywatch.exporter.scrape import ClientCache

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
        """Fleet metrics for the configured target, with their background workers."""
        if config.fleet is None:
            return None
        target = config.target
        if target.topology is Topology.CLUSTER:
            # Scrape-time reads only: evictions and the keyspace sampler would need one
            # worker per node.
            return Fleet(config.fleet)

        def primary() -> redis.Redis:
            host, port = discover(
                target, lambda h, p, auth: self.clients.get(h, p, tls=target.tls, authenticate=auth)
            )[0]
            return self.clients.uncached(host, port, tls=target.tls, db=target.db)

        namespace = config.fleet.namespace
        tracker = EvictionTracker(primary, namespace, target.db, config.enable_keyspace_events)
        sampler = KeyspaceSampler(primary, namespace, config.sample_interval, config.sample_budget)
        return Fleet(config.fleet, tracker, sampler)

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


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive, so Prometheus reuses its connection between scrapes."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, a keep-alive client waits for
    # the delayed ACK (~40 ms) before it sees the body.
    disable_nagle_algorithm = True
    server_version = f"memorywatch/{__version__}"
    app: ExporterApp

    def _serve(self) -> None:
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


class _ThreadingServer(ThreadingHTTPServer):
    daemon_threads = True


class _ThreadingServer6(_ThreadingServer):
    address_family = socket.AF_INET6


def serve(config: ExporterConfig) -> None:
    """Serve until SIGTERM or SIGINT."""
    app = ExporterApp(config)
    server_class = _ThreadingServer6 if ":" in config.listen_host else _ThreadingServer
    handler = type("Handler", (_Handler,), {"app": app})
    try:
        server = server_class((config.listen_host, config.listen_port), handler)
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
    log.info(
        "memorywatch exporter %s serving http://%s:%d/metrics for %s",
        __version__,
        host,
        server.server_port,
        config.target.display,
    )
    # One scrape now, so an unreachable Redis or a wrong password shows in the log at start.
    threading.Thread(target=app.main_target.families, daemon=True).start()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        app.close()
