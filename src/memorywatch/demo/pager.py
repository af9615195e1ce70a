"""The demo's pager: Alertmanager's webhook receiver inside `memorywatch demo`. Each alert is
printed as it arrives (name, severity, seconds since the incident began, the runbook
command), then `diagnose` runs for it and its summary is printed, so a person watching the
terminal sees the incident travel from fault to page to cause."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from memorywatch.demo.processes import LOOPBACK
from memorywatch.diagnose.model import Report
from memorywatch.diagnose.run import runbook_command


class Pager:
    """Receives Alertmanager's webhook posts; prints each firing alert once, then its
    diagnosis (``diagnose(alert) -> Report``), on a thread of its own so a slow diagnosis
    never holds up Alertmanager."""

    def __init__(
        self,
        say: Callable[[str], None],
        since: Callable[[], float],
        diagnose: Callable[[str], Report],
    ) -> None:
        self._say = say
        self._since = since
        self._diagnose = diagnose
        self._seen: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._work: queue.Queue[str | None] = queue.Queue()
        self.pages: list[tuple[str, str, float]] = []
        """(alert, severity, seconds since the incident) of every page printed."""
        self.reports: dict[str, Report] = {}
        self._closed = False
        pager = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    alerts = json.loads(body).get("alerts", [])
                except ValueError:
                    alerts = []
                pager.receive(alerts)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self.url = f"http://{LOOPBACK}:{self._server.server_port}/alerts"
        self._threads = [
            threading.Thread(target=self._server.serve_forever, name="mw-pager", daemon=True),
            threading.Thread(target=self._diagnose_loop, name="mw-pager-diagnose", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def receive(self, alerts: list[dict[str, Any]]) -> None:
        for alert in alerts:
            if alert.get("status") != "firing":
                continue
            labels = alert.get("labels", {})
            name = str(labels.get("alertname", "?"))
            severity = str(labels.get("severity", "?"))
            with self._lock:
                if (name, severity) in self._seen:
                    continue
                self._seen.add((name, severity))
                seconds = self._since()
                self.pages.append((name, severity, seconds))
            kind = "PAGE" if severity == "critical" else "TICKET"  # the route's receivers
            self._say(f"[+{seconds:6.1f}s] {kind} {name} ({severity})  ->  {runbook_command(name)}")
            self._work.put(name)

    def _diagnose_loop(self) -> None:
        while (name := self._work.get()) is not None:
            try:
                report = self._diagnose(name)
            except Exception as exc:  # the demo goes on; the line says why
                self._say(f"          diagnose {name}: failed: {type(exc).__name__}: {exc}")
                continue
            self.reports[name] = report
            for line in summary(report, name):
                self._say(f"          {line}")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._work.put(None)
        self._server.shutdown()
        self._server.server_close()


def summary(report: Report, alert: str) -> list[str]:
    """Three lines or so: the most likely cause, its first evidence, and what became of the
    paged alert (a cause, a consequence of one along the causality table, a risk, ...)."""
    if not report.causes:
        return [
            f"diagnose --alert {alert}: {report.verdict} ({report.elapsed:.2f} s)",
            f"  {report.verdict_on(alert)}",
        ]
    top = report.causes[0]
    lines = [
        f"diagnose --alert {alert} ({report.elapsed:.2f} s): most likely {top.alert}: {top.summary}"
    ]
    if top.evidence:
        lines.append(f"  evidence: {top.evidence[0]}")
    lines.append(f"  mitigation: {top.mitigation}")
    others = [c.alert for c in report.causes[1:4]]
    if others:
        lines.append(f"  also: {', '.join(others)}")
    if report.symptoms:
        lines.append(
            "  symptoms: "
            + ", ".join(f"{c.alert} (of {c.explained_by})" for c in report.symptoms[:4])
        )
    if top.alert != alert:
        lines.append(f"  {report.verdict_on(alert)}")
    return lines
