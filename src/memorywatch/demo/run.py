"""`memorywatch demo`: a small agent fleet on loopback, watched by the whole pack.

Starts (or reuses) a Redis master with a replica, the exporter, agent workers using the SDK,
and, when installed, Prometheus with the generated rules (test profile: `for` in seconds)
and Alertmanager. `inject()` causes one of the failures memorywatch exists to catch.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import redis
import yaml

from memorywatch import thresholds
from memorywatch.alerts.generate import GenerateConfig, generate
from memorywatch.alerts.model import AlertsConfig
from memorywatch.demo import worker
from memorywatch.demo.processes import (
    LOOPBACK,
    Child,
    Children,
    DemoError,
    find_binary,
    free_port,
    http_ok,
    wait_for,
)
from memorywatch.exporter.config import ConfigError, parse_target


@dataclass(frozen=True)
class Incident:
    name: str
    alert: str
    severity: str
    what: str


INCIDENTS: dict[str, Incident] = {
    i.name: i
    for i in (
        Incident("eviction", "AgentStateEvicted", "critical", "maxmemory just above use with volatile-lru, then long conversations"),
        Incident("duplicate-tool", "AgentToolDuplicateExecution", "critical", "a tool outlives its deadline and a retry runs it again"),
        Incident("pool-exhaustion", "AgentClientPoolTimeouts", "critical", "an instance with 4 pool connections and 12 blocking threads"),
        Incident("replica-lag", "RedisReplicationLagHigh", "warning", "the replica is frozen (SIGSTOP) while agents write"),
        Incident("broken-link", "RedisReplicationLinkDown", "critical", "the replica is pointed at a master that does not exist"),
        Incident("redis-down", "RedisDown", "critical", "the master is stopped"),
    )
}  # fmt: skip
EXPORTER_JOB = "memorywatch"
REPLICA_JOB = "memorywatch-replica"


@dataclass(frozen=True)
class DemoConfig:
    redis_url: str | None = None
    """Reuse this master instead of starting one."""
    replica_url: str | None = None
    workers: int = 3
    incident: str | None = None
    incident_after: float = 15.0
    duration: float | None = None
    prometheus: bool = True
    webhook_url: str | None = None
    """Alertmanager sends every alert here (the end-to-end tests listen on it)."""
    scrape_interval: float = 1.0
    workdir: Path | None = None


class Demo:
    def __init__(self, config: DemoConfig, say: Callable[[str], None] = print) -> None:
        if config.incident is not None and config.incident not in INCIDENTS:
            raise DemoError(
                f"unknown incident {config.incident!r}: choose from {', '.join(INCIDENTS)}"
            )
        self.config = config
        self.say = say
        self.workdir = config.workdir or Path(tempfile.mkdtemp(prefix="memorywatch-demo-"))
        self.children = Children(self.workdir)
        self.master_url = config.redis_url or ""
        self.replica_url = config.replica_url or ""
        self.master: Child | None = None
        self.replica: Child | None = None
        self.exporter_port = free_port()
        self.prometheus_port: int | None = None
        self.alertmanager_port: int | None = None
        self._workers = 0

    # -- start ------------------------------------------------------------------------------------
    def start(self) -> Demo:
        try:
            self._start_redis()
            self._start_exporter()
            for _ in range(self.config.workers):
                self.add_worker("normal")
            if self.config.prometheus:
                self._start_prometheus()
        except BaseException:
            self.stop()
            raise
        return self

    def _redis(self, name: str, port: int, *extra: str) -> Child:
        exe = find_binary("redis-server")
        if exe is None:
            raise DemoError("redis-server is not installed: apt-get install redis-server")
        data = self.workdir / name
        data.mkdir(exist_ok=True)
        argv = [exe, "--bind", LOOPBACK, "--port", str(port), "--dir", str(data), "--save", "",
                "--appendonly", "no", "--repl-diskless-sync-delay", "0", *extra]  # fmt: skip
        child = self.children.start(name, argv)
        client = redis.Redis(host=LOOPBACK, port=port, socket_timeout=1)
        wait_for(lambda: bool(client.ping()), 10, f"{name} on port {port}")
        client.close()
        self.say(f"started {name} redis://{LOOPBACK}:{port} (pid {child.pid})")
        return child

    def _start_redis(self) -> None:
        if self.master_url:
            try:
                parse_target(self.master_url)
            except ConfigError as exc:
                raise DemoError(f"--redis-url: {exc}") from None
            redis.Redis.from_url(self.master_url, socket_timeout=2).ping()
            self.say(f"reusing master {parse_target(self.master_url)[0].display}")
        else:
            port = free_port()
            self.master = self._redis("redis-master", port)
            self.master_url = f"redis://{LOOPBACK}:{port}"
        if not self.replica_url and self.master is not None:
            port = free_port()
            master_port = self.master_url.rsplit(":", 1)[1]
            self.replica = self._redis("redis-replica", port, "--replicaof", LOOPBACK, master_port)
            self.replica_url = f"redis://{LOOPBACK}:{port}"

    def _start_exporter(self) -> None:
        argv = [sys.executable, "-m", "memorywatch", "exporter", "--redis-url", self.master_url,
                "--listen", f"{LOOPBACK}:{self.exporter_port}", "--queue", worker.QUEUE,
                "--enable-keyspace-events", "--sample-interval", "5"]  # fmt: skip
        if self.replica_url:
            argv += ["--allow-target", parse_target(self.replica_url)[0].display.split("://")[1]]
        child = self.children.start("exporter", argv)
        url = f"http://{LOOPBACK}:{self.exporter_port}"
        try:
            wait_for(lambda: http_ok(url + "/healthz"), 15, "the exporter")
        except DemoError:
            raise DemoError(f"the exporter did not start: {child.tail(3)}") from None
        self.say(f"started exporter {url}/metrics (pid {child.pid})")

    def add_worker(self, mode: str) -> Child:
        self._workers += 1
        name = f"agent-{self._workers}"
        argv = [sys.executable, "-m", "memorywatch.demo.worker", "--redis-url", self.master_url,
                "--instance-id", name, "--mode", mode, "--seed", str(self._workers)]  # fmt: skip
        child = self.children.start(name, argv)
        self.say(f"started {name} ({mode}, pid {child.pid})")
        return child

    def _start_prometheus(self) -> None:
        prometheus = find_binary("prometheus")
        if prometheus is None:
            self.say("prometheus is not installed: skipping it (apt-get install prometheus)")
            return
        rules_dir = self.workdir / "rules"
        generate(
            GenerateConfig(
                AlertsConfig(thresholds=thresholds.load(profile="test")),
                out_dir=rules_dir,
                runbooks_dir=None,
            )
        )
        alertmanager = find_binary("prometheus-alertmanager", "alertmanager")
        interval = f"{self.config.scrape_interval:g}s"
        config: dict[str, object] = {
            "global": {"scrape_interval": interval, "evaluation_interval": interval},
            "rule_files": [str(rules_dir / "memorywatch.rules.yaml")],
            "scrape_configs": [
                {"job_name": EXPORTER_JOB,
                 "static_configs": [{"targets": [f"{LOOPBACK}:{self.exporter_port}"]}]},
            ],
        }  # fmt: skip
        if self.replica_url:
            config["scrape_configs"].append(  # type: ignore[attr-defined]
                {"job_name": REPLICA_JOB, "metrics_path": "/scrape",
                 "params": {"target": [self.replica_url]},
                 "static_configs": [{"targets": [f"{LOOPBACK}:{self.exporter_port}"]}]}
            )  # fmt: skip
        if alertmanager is not None:
            self.alertmanager_port = free_port()
            self._start_alertmanager(alertmanager)
            config["alerting"] = {
                "alertmanagers": [
                    {"static_configs": [{"targets": [f"{LOOPBACK}:{self.alertmanager_port}"]}]}
                ]
            }
        path = self.workdir / "prometheus.yml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.prometheus_port = free_port()
        child = self.children.start("prometheus", [
            prometheus, f"--config.file={path}", f"--storage.tsdb.path={self.workdir / 'tsdb'}",
            f"--web.listen-address={LOOPBACK}:{self.prometheus_port}",
        ])  # fmt: skip
        url = f"http://{LOOPBACK}:{self.prometheus_port}"
        wait_for(lambda: http_ok(url + "/-/ready"), 30, "prometheus")
        self.say(
            f"started prometheus {url} with the generated rules, test profile (pid {child.pid})"
        )

    def _start_alertmanager(self, exe: str) -> None:
        receiver: dict[str, object] = {"name": "demo"}
        if self.config.webhook_url:
            receiver["webhook_configs"] = [{"url": self.config.webhook_url, "send_resolved": False}]
        config = {
            "route": {"receiver": "demo", "group_by": ["alertname", "job", "instance"],
                      "group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h"},
            "receivers": [receiver],
        }  # fmt: skip
        path = self.workdir / "alertmanager.yml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        child = self.children.start("alertmanager", [
            exe, f"--config.file={path}", f"--storage.path={self.workdir / 'alertmanager'}",
            f"--web.listen-address={LOOPBACK}:{self.alertmanager_port}", "--cluster.listen-address=",
        ])  # fmt: skip
        url = f"http://{LOOPBACK}:{self.alertmanager_port}"
        wait_for(lambda: http_ok(url + "/-/ready"), 30, "alertmanager")
        self.say(f"started alertmanager {url} (pid {child.pid})")

    # -- incidents --------------------------------------------------------------------------------
    def inject(self, name: str) -> Incident:
        incident = INCIDENTS[name]
        self.say(f"incident {name}: {incident.what}; expect {incident.alert} ({incident.severity})")
        if name == "eviction":
            client = redis.Redis.from_url(self.master_url)
            used = int(client.info("memory")["used_memory"])
            client.config_set("maxmemory-policy", "volatile-lru")
            client.config_set("maxmemory", str(used + 4 * 1024 * 1024))
            client.close()
            self.add_worker("flood")
        elif name == "duplicate-tool":
            self.add_worker("slow-tool")
        elif name == "pool-exhaustion":
            self.add_worker("pool-hog")
        elif name == "replica-lag":
            os.kill(self._own(self.replica, "replica").pid, signal.SIGSTOP)
        elif name == "broken-link":
            replica = redis.Redis.from_url(self.replica_url)
            replica.replicaof(LOOPBACK, free_port())
            replica.close()
        elif name == "redis-down":
            self._own(self.master, "master").stop()
        return incident

    def _own(self, child: Child | None, what: str) -> Child:
        if child is None:
            raise DemoError(
                f"this incident needs a {what} the demo started itself, not a reused one"
            )
        return child

    # -- run / stop -------------------------------------------------------------------------------
    def urls(self) -> dict[str, str]:
        urls = {
            "redis": self.master_url,
            "metrics": f"http://{LOOPBACK}:{self.exporter_port}/metrics",
        }
        if self.replica_url:
            urls["replica"] = self.replica_url
        if self.prometheus_port:
            urls["prometheus"] = f"http://{LOOPBACK}:{self.prometheus_port}/alerts"
        if self.alertmanager_port:
            urls["alertmanager"] = f"http://{LOOPBACK}:{self.alertmanager_port}"
        return urls

    def stop(self) -> None:
        self.children.stop_all()

    def run(self) -> None:
        """Start, print the URLs, inject the incident, and wait for Ctrl-C or the duration."""
        stop_requested = False

        def request_stop(_signum: int, _frame: object) -> None:
            nonlocal stop_requested
            stop_requested = True

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        self.start()
        try:
            for name, url in self.urls().items():
                self.say(f"{name:>12}: {url}")
            self.say("Ctrl-C stops everything the demo started.")
            started = time.monotonic()
            injected = self.config.incident is None
            while not stop_requested:
                elapsed = time.monotonic() - started
                if self.config.duration is not None and elapsed >= self.config.duration:
                    break
                if not injected and elapsed >= self.config.incident_after:
                    assert self.config.incident is not None
                    self.inject(self.config.incident)
                    injected = True
                time.sleep(0.2)
        finally:
            self.say("stopping")
            self.stop()
