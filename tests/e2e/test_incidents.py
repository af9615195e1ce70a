"""Each incident of `memorywatch demo`, end to end: real Redis, exporter, agent processes,
Prometheus evaluating the generated rules (test profile) and Alertmanager, configured from the
generated alerts/alertmanager.yaml (its route and inhibitions), delivering to a webhook
receiver inside the test. The expected alert must arrive with its severity and a runbook_url,
first and in at most two notifications; the healthy fleet must send none at all.

Each scenario is mostly waiting (for `for` durations, scrapes, the observation window), so the
module runs them two at a time in the background; each test asserts on its scenario's outcome."""

from __future__ import annotations

import json
import re
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from memorywatch.demo.pager import Pager
from memorywatch.demo.run import EXPORTER_JOB, INCIDENTS, Demo, DemoConfig
from memorywatch.diagnose.model import Report
from summary import Recorder
from webhook import Notification, Webhook

LOOPBACK = "127.0.0.1"
WORKERS = 2
WINDOW = 20.0
"""Seconds after the injection every notification is counted in (at least until the cause
has arrived and a few seconds more): the test profile's `for` of the symptoms an incident
could bring (10 s at most) plus the time for them to develop."""
MAX_NOTIFICATIONS = 2
PIPELINE_CHECK = "MemorywatchPipelineCheck"
HEALTHY = "(healthy)"
LANES = 2
"""Scenarios running at once: each demo uses about a third of one core."""


Receiver = Webhook
"""Alertmanager's webhook target: keeps every POST it is sent (tests/webhook.py)."""


def _demo(receiver: Receiver, tmp_path: Path) -> Demo:
    config = DemoConfig(workers=WORKERS, webhook_url=receiver.url + "/alerts", workdir=tmp_path)
    return Demo(config, say=lambda line: None).start()


def _query(demo: Demo, promql: str) -> list[dict[str, Any]]:
    """The instant vector `promql` evaluates to in the demo's Prometheus right now."""
    query = urllib.parse.urlencode({"query": promql})
    url = f"http://{LOOPBACK}:{demo.prometheus_port}/api/v1/query?{query}"
    with urllib.request.urlopen(url, timeout=5) as resp:
        body = json.loads(resp.read())
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def _wait_fleet_scraped(demo: Demo, timeout: float = 30) -> None:
    """Until Prometheus has scraped every worker ready and the fleet's tool counters.

    `increase()` only sees a step from a sample Prometheus already has: an incident injected
    before the counters' first scrape would be missed, and its alert would never come."""
    assert demo.prometheus_port is not None, "prometheus did not start"
    job = f'job="{EXPORTER_JOB}"'
    ready_q = f'sum(memorywatch_agent_instances{{state="ready",{job}}})'
    tools_q = f"memorywatch_tool_executions_total{{{job}}}"
    deadline = time.monotonic() + timeout
    ready: list[dict[str, Any]] = []
    tools: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        ready, tools = _query(demo, ready_q), _query(demo, tools_q)
        if ready and float(ready[0]["value"][1]) >= WORKERS and tools:
            return
        time.sleep(0.25)
    raise AssertionError(
        f"prometheus had not scraped the fleet within {timeout:g}s: {ready_q} = {ready}, "
        f"{len(tools)} series of {tools_q}\n{_logs(demo)}"
    )


def _logs(demo: Demo) -> str:
    return "\n".join(f"--- {c.name}\n{c.tail(15)}" for c in demo.children.started)


def _row(name: str, notifications: list[Notification], since: float) -> tuple[str, int, str, str]:
    """(incident, notifications, alerts delivered in order, seconds to the first)."""
    delivered = ", ".join(a for n in notifications for a in n.alerts) or "-"
    first = f"{notifications[0].at - since:.1f}" if notifications else "-"
    return (name, len(notifications), delivered, first)


@dataclass
class Outcome:
    """What one scenario saw; the tests assert on it."""

    name: str
    since: float
    """time.monotonic() of the injection (of the start, for the healthy fleet)."""
    pages: list[Notification]
    alert: dict[str, Any] = field(default_factory=dict)
    """The incident's alert as the receiver got it."""
    unprompted: Report | None = None
    paged: Report | None = None
    pager_pages: list[tuple[str, str, float]] = field(default_factory=list)
    firing: list[str] = field(default_factory=list)

    @property
    def row(self) -> tuple[str, int, str, str]:
        return _row(self.name, self.pages, self.since)


def run_incident(name: str, workdir: Path) -> Outcome:
    incident = INCIDENTS[name]
    receiver = Receiver()
    demo = _demo(receiver, workdir)
    try:
        _wait_fleet_scraped(demo)
        demo.inject(name)
        assert demo.incident_started is not None
        try:
            alert = receiver.wait_for(incident.alert, 75)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{_logs(demo)}") from None
        unprompted = demo.diagnose()  # as an on-call engineer would run it, no --alert
        assert demo.pager is not None
        paged = wait_for_report(demo.pager, incident.alert)
        # Whatever else the incident brings has its window to arrive, inhibited or not.
        until = max(demo.incident_started + WINDOW, time.monotonic() + 3)
        time.sleep(max(until - time.monotonic(), 0))
        pages = receiver.notifications()
    finally:
        demo.stop()
        receiver.close()
    return Outcome(name, demo.incident_started, pages, alert, unprompted, paged, demo.pager_pages)


class Scenarios:
    """The module's scenarios, LANES at a time on threads, started when the first test asks."""

    def __init__(self, names: list[str], workdirs: pytest.TempPathFactory) -> None:
        self._pool = ThreadPoolExecutor(LANES, thread_name_prefix="mw-e2e")
        self._futures: dict[str, Future[Outcome]] = {}
        for name in names:
            workdir = workdirs.mktemp(re.sub(r"\W+", "", name))
            if name == HEALTHY:
                self._futures[name] = self._pool.submit(run_healthy, workdir)
            else:
                self._futures[name] = self._pool.submit(run_incident, name, workdir)

    def outcome(self, name: str) -> Outcome:
        """Its outcome, or the exception it raised (with the demo's logs)."""
        return self._futures[name].result(timeout=110)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def _scenario(item: pytest.Item) -> str | None:
    if item.name.startswith("test_incident_reaches_alertmanager["):
        return str(item.callspec.params["name"])  # type: ignore[attr-defined]
    return HEALTHY if item.name == "test_healthy_fleet_pages_nobody" else None


@pytest.fixture(scope="module")
def scenarios(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Scenarios]:
    """Only the selected tests' scenarios; the healthy fleet (the longest) first."""
    selected = [
        s
        for item in request.session.items
        if item.getparent(pytest.Module) is request.node and (s := _scenario(item))
    ]
    selected.sort(key=lambda name: name != HEALTHY)
    runs = Scenarios(selected, tmp_path_factory)
    yield runs
    runs.close()


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(INCIDENTS))
def test_incident_reaches_alertmanager(
    name: str, scenarios: Scenarios, notification_rows: Recorder
) -> None:
    incident = INCIDENTS[name]
    seen = scenarios.outcome(name)
    notification_rows.append(seen.row)
    print(seen.row)
    assert seen.unprompted is not None and seen.paged is not None
    causes = [c.alert for c in seen.unprompted.causes]
    assert causes and causes[0] == incident.alert, f"diagnose named {causes}"
    assert seen.paged.causes[0].alert == incident.alert
    assert any(page[0] == incident.alert for page in seen.pager_pages)
    assert seen.alert["labels"]["severity"] == incident.severity
    runbook = seen.alert["annotations"]["runbook_url"]
    assert runbook.endswith(f"/{incident.alert}.md")
    assert (Path(__file__).parents[2] / "runbooks" / f"{incident.alert}.md").is_file()
    # One incident, one page: its symptoms are inhibited by the generated alertmanager.yaml.
    pages = seen.pages
    assert pages and pages[0].alerts == (incident.alert,), f"first notification: {seen.row}"
    assert len(pages) <= MAX_NOTIFICATIONS, f"{len(pages)} notifications: {seen.row}"


def wait_for_report(pager: Pager, alert: str, timeout: float = 30) -> Report:
    """The diagnosis the demo's pager printed for ``alert`` when it was paged."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alert in pager.reports:
            return pager.reports[alert]
        time.sleep(0.2)
    raise AssertionError(f"the pager printed no diagnosis for {alert}: {sorted(pager.reports)}")


def _rules(demo: Demo) -> list[dict[str, Any]]:
    url = f"http://{LOOPBACK}:{demo.prometheus_port}/api/v1/rules?type=alert"
    with urllib.request.urlopen(url, timeout=5) as resp:
        body = json.loads(resp.read())
    return [rule for group in body["data"]["groups"] for rule in group["rules"]]


def _send_test_alert(demo: Demo, alertname: str) -> None:
    """An alert posted straight to Alertmanager: proves the route to the receiver works."""
    alert = [{"labels": {"alertname": alertname, "severity": "info"}, "annotations": {}}]
    request = urllib.request.Request(
        f"http://{LOOPBACK}:{demo.alertmanager_port}/api/v2/alerts",
        data=json.dumps(alert).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as resp:  # noqa: S310 -- loopback
        assert resp.status == 200


def run_healthy(workdir: Path) -> Outcome:
    """Silence proves something only if the alerts could have arrived: first the rules are
    loaded and healthy in Prometheus and a test alert travels Alertmanager -> receiver."""
    receiver = Receiver()
    demo = _demo(receiver, workdir)
    try:
        _wait_fleet_scraped(demo)
        committed = (Path(__file__).parents[2] / "alerts" / "memorywatch.rules.yaml").read_text()
        deadline = time.monotonic() + 20
        rules = _rules(demo)
        while time.monotonic() < deadline and not all(r["health"] == "ok" for r in rules):
            time.sleep(0.5)  # a rule is "unknown" until its first evaluation
            rules = _rules(demo)
        assert len(rules) == committed.count("- alert: ") > 0, "the generated rules did not load"
        assert all(rule["health"] == "ok" for rule in rules), [
            (r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"
        ]
        _send_test_alert(demo, PIPELINE_CHECK)
        receiver.wait_for(PIPELINE_CHECK, 30)
        time.sleep(25)  # the rules evaluate the healthy fleet (test profile: `for` in seconds)
        pages = receiver.notifications(ignore=frozenset({PIPELINE_CHECK}))
        firing = _firing_rules(demo)
    finally:
        demo.stop()
        receiver.close()
    return Outcome(HEALTHY, demo.started_at, pages, firing=firing)


@pytest.mark.slow
def test_healthy_fleet_pages_nobody(scenarios: Scenarios, notification_rows: Recorder) -> None:
    seen = scenarios.outcome(HEALTHY)
    notification_rows.append(seen.row)
    print(seen.row)
    assert seen.pages == [], f"the healthy fleet sent notifications: {seen.row}"
    assert seen.firing == [], f"firing in Prometheus (not yet sent): {seen.firing}"


def _firing_rules(demo: Demo) -> list[str]:
    """Alerts firing in Prometheus: what would have been sent a moment later."""
    return sorted(
        {
            a["labels"]["alertname"]
            for r in _rules(demo)
            for a in r.get("alerts", [])
            if a.get("state") == "firing"
        }
    )
