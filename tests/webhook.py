"""Alertmanager's webhook target on loopback, as a pager is: it keeps every POST it is sent
(when, to which path, which alerts) and counts notifications the way a pager rings."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class Post:
    at: float
    """time.monotonic() when it arrived."""
    path: str
    alerts: list[dict[str, Any]]


@dataclass(frozen=True)
class Notification:
    """One POST that carried a firing alert not sent before: what a pager would ring for."""

    at: float
    alerts: tuple[str, ...]
    """Names of the alerts it newly delivered."""


class Webhook:
    def __init__(self) -> None:
        self.posts: list[Post] = []
        self._lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                with hook._lock:
                    hook.posts.append(Post(time.monotonic(), self.path, body.get("alerts", [])))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self.url = f"http://{LOOPBACK}:{self.server.server_port}"
        """The base URL: a receiver posts to any path below it."""
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def received(self) -> list[Post]:
        with self._lock:
            return list(self.posts)

    def firing(self) -> list[dict[str, Any]]:
        return [a for post in self.received() for a in post.alerts if a.get("status") == "firing"]

    def wait_for(self, alertname: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for alert in self.firing():
                if alert["labels"].get("alertname") == alertname:
                    return alert
            time.sleep(0.2)
        seen = sorted({a["labels"].get("alertname", "?") for a in self.firing()})
        raise AssertionError(f"{alertname} did not arrive within {timeout:g}s; arrived: {seen}")

    def notifications(self, ignore: frozenset[str] = frozenset()) -> list[Notification]:
        """Each POST that carried a firing alert (by fingerprint) no earlier POST carried;
        Alertmanager re-posts a group every group_interval, a pager rings once."""
        seen: set[str] = set()
        out = []
        for post in self.received():
            new = [
                a
                for a in post.alerts
                if a.get("status") == "firing"
                and a["labels"].get("alertname") not in ignore
                and a.get("fingerprint", json.dumps(a["labels"], sort_keys=True)) not in seen
            ]
            seen.update(a.get("fingerprint", json.dumps(a["labels"], sort_keys=True)) for a in new)
            if new:
                names = dict.fromkeys(str(a["labels"].get("alertname", "?")) for a in new)
                out.append(Notification(post.at, tuple(names)))
        return out

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
