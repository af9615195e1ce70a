"""/runbooks/NAME: a default runbook_url can point at the exporter itself."""

from __future__ import annotations

from pathlib import Path

from harness import redis_server
from metrics import InProcessExporter, wsgi_get

RUNBOOKS = Path(__file__).resolve().parents[2] / "runbooks"


def test_pages_the_list_and_nothing_else() -> None:
    with redis_server() as server, InProcessExporter(redis_url=server.url) as exporter:
        status, body = wsgi_get(exporter.app, "/runbooks/AgentLockLost")
        assert status.startswith("200")
        assert body.decode() == (RUNBOOKS / "AgentLockLost.md").read_text()
        assert wsgi_get(exporter.app, "/runbooks/agentlocklost.md")[0].startswith("200")
        status, body = wsgi_get(exporter.app, "/runbooks")
        expected = sorted(p.stem for p in RUNBOOKS.glob("*.md") if p.stem != "README")
        assert status.startswith("200") and body.decode().split() == expected
        for path in ("/runbooks/NoSuchAlert", "/runbooks/../README", "/runbooks/%2e%2e/setup.py"):
            status, body = wsgi_get(exporter.app, path)
            assert status.startswith("404"), path
            assert b"#" not in body  # no file content of any kind
