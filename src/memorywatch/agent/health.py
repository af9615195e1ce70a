"""``/livez`` and ``/readyz`` for load balancers, as WSGI and ASGI apps.

``/livez`` answers 200 while the process serves HTTP (restart me if not). ``/readyz`` answers
200 only when ``state.ready()`` does: Redis reachable, writable, not loading, within the
deadline. A load balancer then drops the instance the moment it loses Redis, before it answers
a user with no memory. Any other path is 404, so the apps can be mounted or wrapped.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any, Protocol

from memorywatch.agent._values import ReadyReport

LIVEZ = "/livez"
READYZ = "/readyz"
_JSON = [("Content-Type", "application/json"), ("Cache-Control", "no-store")]


class _SyncReady(Protocol):
    def ready(self, deadline: float = ...) -> ReadyReport: ...


def _body(report: ReadyReport | None) -> tuple[int, bytes]:
    if report is None:
        return 200, b'{"live":true}'
    return (200 if report.ready else 503), json.dumps(report.as_dict()).encode()


StartResponse = Callable[[str, list[tuple[str, str]]], Any]
_REASONS = {200: "200 OK", 404: "404 Not Found", 503: "503 Service Unavailable"}


def wsgi_app(
    state: _SyncReady, deadline: float = 1.0
) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    """A WSGI app serving ``/livez`` and ``/readyz`` for a sync :class:`AgentState`."""

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == LIVEZ:
            status, body = _body(None)
        elif path == READYZ:
            status, body = _body(state.ready(deadline))
        else:
            status, body = 404, b'{"error":"not found"}'
        start_response(_REASONS[status], [*_JSON, ("Content-Length", str(len(body)))])
        return [body]

    return app


Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def asgi_app(
    state: Any, deadline: float = 1.0
) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """An ASGI app serving ``/livez`` and ``/readyz``.

    ``state`` is a :class:`memorywatch.agent.aio.AgentState` (awaited) or a sync
    :class:`AgentState` (run in a worker thread, never blocking the event loop).
    """
    import asyncio

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                kind = message["type"]
                if kind == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif kind == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        path = scope.get("path", "")
        if path == LIVEZ:
            status, body = _body(None)
        elif path == READYZ:
            if inspect.iscoroutinefunction(state.ready):
                report = await state.ready(deadline)
            else:
                report = await asyncio.to_thread(state.ready, deadline)
            status, body = _body(report)
        else:
            status, body = 404, b'{"error":"not found"}'
        headers = [(k.lower().encode(), v.encode()) for k, v in _JSON]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app
