"""The exporter's HTTP surface: /metrics, /scrape?target=, /healthz.

A small WSGI app on the standard library's threading server: one thread per request, so a
slow target cannot hold up the others.
"""

from __future__ import annotations

import gzip
import logging
import signal
import socket
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from socketserver import ThreadingMixIn
from typing import Any
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import ProcessCollector
from prometheus_client.registry import Collector

from memorywatch import __version__
from memorywatch.exporter.collectors.exporter_self import BuildInfoCollector
from memorywatch.exporter.collectors.target import ScrapeHealth, TargetCollector
from memorywatch.exporter.config import ConfigError, ExporterConfig, Target, parse_target
from memorywatch.exporter.exposition import CONTENT_TYPE, FamilySource, render
from memorywatch.exporter.scrape import ClientCache

log = logging.getLogger("memorywatch.exporter")

StartResponse = Callable[[str, list[tuple[str, str]]], Any]

INDEX = """<html><head><title>memorywatch exporter</title></head><body>
<h1>memorywatch exporter {version}</h1>
<p>Target: {target}</p>
<ul><li><a href="/metrics">/metrics</a></li>
<li>/scrape?target=redis://host:port (allow-listed targets only)</li>
<li><a href="/healthz">/healthz</a></li></ul></body></html>
"""


class ExporterApp:
    """The WSGI application; holds the connection cache and the scrape thread pool."""

    def __init__(self, config: ExporterConfig) -> None:
        self.config = config
        self.clients = ClientCache(config.credentials, config.tls, config.scrape_timeout)
        self.executor = ThreadPoolExecutor(max_workers=32, thread_name_prefix="memorywatch-scrape")
        self.health = ScrapeHealth()
        self.main: list[FamilySource | Collector] = [
            self.target_collector(config.target),
            BuildInfoCollector(),
            ProcessCollector(registry=None),
        ]

    def target_collector(self, target: Target) -> TargetCollector:
        return TargetCollector(
            target, self.clients, self.executor, self.health, self.config.scrape_timeout
        )

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.clients.close()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "/")
        if method not in ("GET", "HEAD"):
            return _reply(start_response, "405 Method Not Allowed", b"only GET\n")
        if path == "/metrics":
            return self._metrics(environ, start_response, self.main)
        if path == "/scrape":
            return self._scrape(environ, start_response)
        if path == "/healthz":
            return _reply(start_response, "200 OK", b"ok\n")
        if path == "/":
            page = INDEX.format(version=__version__, target=self.config.target.display)
            return _reply(start_response, "200 OK", page.encode(), "text/html; charset=utf-8")
        return _reply(start_response, "404 Not Found", b"not found\n")

    def _scrape(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        values = parse_qs(environ.get("QUERY_STRING", "")).get("target", [])
        if len(values) != 1 or not values[0]:
            return _reply(start_response, "400 Bad Request", b"give exactly one target=\n")
        try:
            target, credentials = parse_target(values[0])
        except ConfigError as exc:
            return _reply(start_response, "400 Bad Request", f"bad target: {exc}\n".encode())
        if credentials.password is not None or credentials.username is not None:
            return _reply(
                start_response,
                "400 Bad Request",
                b"credentials are not accepted in target=; configure them on the exporter\n",
            )
        if not self.config.target_allowed(target):
            log.warning("refused /scrape of %s: not in --allow-target", target.display)
            return _reply(
                start_response,
                "403 Forbidden",
                f"target {target.display} is not allowed: add it with --allow-target\n".encode(),
            )
        return self._metrics(environ, start_response, [self.target_collector(target)])

    def _metrics(
        self,
        environ: dict[str, Any],
        start_response: StartResponse,
        collectors: list[FamilySource | Collector],
    ) -> Iterable[bytes]:
        body = render(collectors)
        headers = [("Content-Type", CONTENT_TYPE)]
        if "gzip" in environ.get("HTTP_ACCEPT_ENCODING", ""):
            body = gzip.compress(body, compresslevel=1)
            headers.append(("Content-Encoding", "gzip"))
        headers.append(("Content-Length", str(len(body))))
        start_response("200 OK", headers)
        return [body]


def _reply(
    start_response: StartResponse,
    status: str,
    body: bytes,
    content_type: str = "text/plain; charset=utf-8",
) -> list[bytes]:
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Access logs are left to the proxy in front, if any."""


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _ThreadingServer6(_ThreadingServer):
    address_family = socket.AF_INET6


def serve(config: ExporterConfig) -> None:
    """Serve until SIGTERM or SIGINT."""
    app = ExporterApp(config)
    server_class = _ThreadingServer6 if ":" in config.listen_host else _ThreadingServer
    try:
        server = make_server(
            config.listen_host,
            config.listen_port,
            app,
            server_class=server_class,
            handler_class=_QuietHandler,
        )
    except OSError as exc:
        app.close()
        raise ConfigError(
            f"cannot listen on {config.listen_host}:{config.listen_port}: {exc.strerror}"
        ) from None

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
    threading.Thread(target=app.target_collector(config.target).families, daemon=True).start()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        app.close()
