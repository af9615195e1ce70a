"""The exporter embedded as a WSGI app in another server (wsgiref here, on loopback) asks for
the web configuration's basic auth on /metrics and /scrape, as its own server does."""

from __future__ import annotations

import base64
import http.client
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import bcrypt
import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness import LOOPBACK, RedisServer, redis_server
from memorywatch import names
from memorywatch.exporter.config import build_config
from memorywatch.exporter.http import ExporterApp

PASSWORD = "correct horse battery staple"


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No access log on the test's stderr."""


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    with redis_server() as srv:
        yield srv


@contextmanager
def embedded(app: ExporterApp) -> Iterator[int]:
    """``app`` served by the standard library's WSGI server on a free loopback port."""
    httpd: WSGIServer = make_server(LOOPBACK, 0, app, handler_class=_Quiet)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield httpd.server_address[1]
    finally:
        httpd.shutdown()
        thread.join(10)
        httpd.server_close()
        app.close()


def get(port: int, path: str, user: str | None = None, password: str = "") -> tuple[int, str, str]:
    """Status, body and WWW-Authenticate of one GET."""
    headers = {}
    if user is not None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=10)
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status, response.read().decode(), response.getheader("WWW-Authenticate", "")
    finally:
        conn.close()


def redis_up(body: str) -> float:
    (family,) = [f for f in text_string_to_metric_families(body) if f.name == names.REDIS_UP]
    return float(family.samples[0].value)


def test_wsgi_app_asks_for_the_web_config_users(server: RedisServer, tmp_path: Path) -> None:
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users:\n  prometheus: {hashed}\n")
    config = build_config(
        redis_url=server.url, web_config_file=web, allow_targets=(f"{LOOPBACK}:{server.port}",)
    )
    scrape = f"/scrape?target=redis://{LOOPBACK}:{server.port}"
    with embedded(ExporterApp(config).start()) as port:
        for path in ("/metrics", scrape, "/runbooks/RedisDown"):
            status, _, challenge = get(port, path)
            assert (status, challenge) == (401, 'Basic realm="memorywatch"'), path
            assert get(port, path, "prometheus", "wrong")[0] == 401, path
            assert get(port, path, "nobody", PASSWORD)[0] == 401, path
        for path in ("/metrics", scrape):
            status, body, _ = get(port, path, "prometheus", PASSWORD)
            assert status == 200, (path, body)
            assert redis_up(body) == 1, path


def test_wsgi_app_without_a_web_config_stays_open(server: RedisServer) -> None:
    with embedded(ExporterApp(build_config(redis_url=server.url)).start()) as port:
        status, body, _ = get(port, "/metrics")
    assert status == 200 and redis_up(body) == 1
