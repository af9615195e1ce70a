"""/livez and /readyz as WSGI (served by wsgiref, queried over HTTP) and ASGI apps."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest

from harness import LOOPBACK, RedisServer
from memorywatch.agent import AgentState, aio, asgi_app, wsgi_app


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@pytest.fixture
def own_server() -> Iterator[RedisServer]:
    srv = RedisServer().start()
    yield srv
    srv.cleanup()


def test_wsgi_readyz_turns_503_when_redis_goes(own_server: RedisServer) -> None:
    state = AgentState.from_url(own_server.url, namespace="h", socket_timeout=0.5)
    httpd = make_server(LOOPBACK, 0, wsgi_app(state, deadline=0.5), handler_class=_Quiet)
    base = f"http://{LOOPBACK}:{httpd.server_port}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        assert get(base + "/livez")[0] == 200
        status, body = get(base + "/readyz")
        assert status == 200 and body["ready"] and body["writable"]
        own_server.stop()
        status, body = get(base + "/readyz")
        assert status == 503 and not body["reachable"] and "unreachable" in body["error"]
        assert get(base + "/livez")[0] == 200  # alive, just not ready
        assert get(base + "/nope")[0] == 404
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)
        state.close()


def _asgi_get(app: Any, path: str) -> tuple[int, dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def main() -> None:
        await app({"type": "http", "path": path, "method": "GET"}, receive, send)

    asyncio.run(main())
    return sent[0]["status"], json.loads(sent[1]["body"])


def test_asgi_with_sync_and_async_state(own_server: RedisServer) -> None:
    sync_state = AgentState.from_url(own_server.url, namespace="h")
    assert _asgi_get(asgi_app(sync_state), "/readyz")[0] == 200
    assert _asgi_get(asgi_app(sync_state), "/livez")[0] == 200

    # an aio state must be created inside the loop it is used from: build one per request loop
    def async_ready(path: str) -> tuple[int, dict[str, Any]]:
        holder: dict[str, Any] = {}

        async def app(scope: Any, receive: Any, send: Any) -> None:
            state = aio.AgentState.from_url(own_server.url, namespace="h", socket_timeout=0.5)
            holder["state"] = state
            await asgi_app(state, deadline=0.5)(scope, receive, send)
            await state.aclose()

        return _asgi_get(app, path)

    assert async_ready("/readyz")[0] == 200
    own_server.stop()
    status, body = async_ready("/readyz")
    assert status == 503 and not body["ready"]
    assert _asgi_get(asgi_app(sync_state, deadline=0.5), "/readyz")[0] == 503
    sync_state.close()
