"""`memorywatch demo`: a small agent fleet on loopback, watched by the whole pack.

Starts (or reuses) a Redis master with a replica, the exporter, agent workers using the SDK,
and, when installed, Prometheus with the generated rules (test profile: `for` in seconds)
and Alertmanager with the generated routing and inhibitions (alerts/alertmanager.yaml, its
receivers pointed at the demo's pager). `inject()` causes one of the failures memorywatch
exists to catch.
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
from typing import Any

import redis
import yaml

from memorywatch import thresholds
from memorywatch.alerts import alertmanager
from memorywatch.alerts.generate import GenerateConfig, generate
from memorywatch.alerts.model import AlertsConfig
from memorywatch.demo import worker
from memorywatch.demo.pager import Pager
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
from memorywatch.diagnose.model import Report
from memorywatch.diagnose.prometheus import Prometheus
from memorywatch.diagnose.run import diagnose as run_diagnosis
from memorywatch.exporter.config import ConfigError, ExporterConfig, parse_target
from memorywatch.exporter.fleet_options import FleetOptions
from memorywatch.redisurl import Credentials


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
EVICTION_SETTINGS = ("maxmemory", "maxmemory-policy")
"""What the eviction incident changes on the master; `Demo.stop()` puts the old values back."""
OWN_REDIS_MEMORY = ("--maxmemory", "256mb", "--maxmemory-policy", "noeviction")
"""The master and replica the demo starts are configured as the alerts want them: a
maxmemory (RedisMaxmemoryNotSet), and noeviction, so agent state is refused rather than
silently dropped at the limit (RedisEvictionPolicyUnsafe). The demo uses a few MiB."""


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
        # Credential-free URLs: they are printed and put on command lines. The passwords stay in
        # the credentials and reach children through their environment.
        self.master_url = ""
        self.replica_url = ""
        self.master_credentials = Credentials()
        self.replica_credentials = Credentials()
        self.master: Child | None = None
        self.replica: Child | None = None
        self.exporter_port = free_port()
        self.prometheus_port: int | None = None
        self.alertmanager_port: int | None = None
        self._workers = 0
        self.pager: Pager | None = None
        self.pager_pages: list[tuple[str, str, float]] = []
        """The pages printed, kept after stop()."""
        self.started_at = time.monotonic()
        self.incident_started: float | None = None
        """When the last incident was injected (time.monotonic()); pages count from it."""
        self._restore: dict[str, str] = {}
        """Master settings an incident changed, with their values before it."""

    # -- start ------------------------------------------------------------------------------------
    def start(self) -> Demo:
        try:
            self._start_redis()
            self._start_exporter()
            for _ in range(self.config.workers):
                self.add_worker("normal")
            if self.config.prometheus:
                self.pager = Pager(self.say, self.seconds_into_incident, self.diagnose)
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
                "--appendonly", "no", "--repl-diskless-sync-delay", "0", *OWN_REDIS_MEMORY,
                *extra]  # fmt: skip
        child = self.children.start(name, argv)
        client = redis.Redis(host=LOOPBACK, port=port, socket_timeout=1)
        wait_for(lambda: bool(client.ping()), 10, f"{name} on port {port}")
        client.close()
        self.say(f"started {name} redis://{LOOPBACK}:{port} (pid {child.pid})")
        return child

    def _client(self, url: str, credentials: Credentials, **kwargs: Any) -> redis.Redis:
        """A client of `url` (credential-free) authenticated with `credentials`."""
        password = credentials.password.value if credentials.password is not None else None
        return redis.Redis.from_url(url, username=credentials.username, password=password, **kwargs)

    def master_client(self, **kwargs: Any) -> redis.Redis:
        return self._client(self.master_url, self.master_credentials, **kwargs)

    def _child_env(self, password_var: str, user_var: str) -> dict[str, str]:
        """The master's credentials as environment variables (never on a command line)."""
        env: dict[str, str] = {}
        if self.master_credentials.password is not None:
            env[password_var] = self.master_credentials.password.value
        if self.master_credentials.username is not None:
            env[user_var] = self.master_credentials.username
        return env

    def _start_redis(self) -> None:
        if self.config.redis_url:
            self.master_url, self.master_credentials = _split_url(
                self.config.redis_url, "--redis-url"
            )
            try:
                with self.master_client(socket_timeout=2) as client:
                    client.ping()
            except redis.RedisError as exc:
                raise DemoError(f"--redis-url {self.master_url}: {exc}") from None
            self.say(f"reusing master {self.master_url}")
        else:
            port = free_port()
            self.master = self._redis("redis-master", port)
            self.master_url = f"redis://{LOOPBACK}:{port}"
        if self.config.replica_url:
            self.replica_url, self.replica_credentials = _split_url(
                self.config.replica_url, "--replica-url"
            )
        elif self.master is not None:
            port = free_port()
            master_port = self.master_url.rsplit(":", 1)[1]
            self.replica = self._redis("redis-replica", port, "--replicaof", LOOPBACK, master_port)
            self.replica_url = f"redis://{LOOPBACK}:{port}"

    def _start_exporter(self) -> None:
        # The password travels in the environment: the exporter refuses it twice, and a
        # command line is visible to every user of the machine (ps).
        env = self._child_env("MEMORYWATCH_REDIS_PASSWORD", "MEMORYWATCH_REDIS_USER")
        argv = [sys.executable, "-m", "memorywatch", "exporter", "--redis-url", self.master_url,
                "--listen", f"{LOOPBACK}:{self.exporter_port}", "--queue", worker.QUEUE,
                "--enable-keyspace-events", "--sample-interval", "5"]  # fmt: skip
        if self.replica_url:
            argv += ["--allow-target", self.replica_url.split("://")[1]]
        child = self.children.start("exporter", argv, env)
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
        env = self._child_env(worker.PASSWORD_ENV, worker.USER_ENV)
        child = self.children.start(name, argv, env)
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
        alertmanager_exe = find_binary("prometheus-alertmanager", "alertmanager")
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
        if alertmanager_exe is not None:
            self.alertmanager_port = free_port()
            self._start_alertmanager(alertmanager_exe, rules_dir)
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

    def _start_alertmanager(self, exe: str, rules_dir: Path) -> None:
        """The generated alertmanager.yaml (its route and inhibitions), its receivers posting
        to the pager and the webhook, with the test profile's timings."""
        urls = [self.pager.url] if self.pager is not None else []
        if self.config.webhook_url:
            urls.append(self.config.webhook_url)
        generated = yaml.safe_load((rules_dir / alertmanager.ALERTMANAGER_FILE).read_text())
        config = alertmanager.with_webhooks(generated, urls, alertmanager.DEMO_TIMINGS)
        path = self.workdir / "alertmanager.yml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        child = self.children.start("alertmanager", [
            exe, f"--config.file={path}", f"--storage.path={self.workdir / 'alertmanager'}",
            f"--web.listen-address={LOOPBACK}:{self.alertmanager_port}", "--cluster.listen-address=",
        ])  # fmt: skip
        url = f"http://{LOOPBACK}:{self.alertmanager_port}"
        wait_for(lambda: http_ok(url + "/-/ready"), 30, "alertmanager")
        self.say(
            f"started alertmanager {url} with the generated routing and inhibitions "
            f"(pid {child.pid})"
        )

    # -- incidents --------------------------------------------------------------------------------
    def inject(self, name: str) -> Incident:
        incident = INCIDENTS[name]
        self.incident_started = time.monotonic()
        self.say(f"incident {name}: {incident.what}; expect {incident.alert} ({incident.severity})")
        if name == "eviction":
            with self.master_client() as client:
                used = int(client.info("memory")["used_memory"])
                for setting in EVICTION_SETTINGS:
                    if setting not in self._restore:  # injected twice: keep the first original
                        self._restore[setting] = _config_value(client, setting)
                client.config_set("maxmemory-policy", "volatile-lru")
                client.config_set("maxmemory", str(used + 4 * 1024 * 1024))
            self.add_worker("flood")
        elif name == "duplicate-tool":
            self.add_worker("slow-tool")
        elif name == "pool-exhaustion":
            self.add_worker("pool-hog")
        elif name == "replica-lag":
            os.kill(self._own(self.replica, "replica").pid, signal.SIGSTOP)
        elif name == "broken-link":
            self._own(self.replica, "replica")
            with self._client(self.replica_url, self.replica_credentials) as replica:
                replica.replicaof(LOOPBACK, free_port())
        elif name == "redis-down":
            self._own(self.master, "master").stop()
        return incident

    def _own(self, child: Child | None, what: str) -> Child:
        if child is None:
            raise DemoError(
                f"this incident needs a {what} the demo started itself, not a reused one"
            )
        return child

    # -- pages and their diagnosis --------------------------------------------------------------
    def seconds_into_incident(self) -> float:
        """Seconds since the incident began (since the start, before any incident)."""
        return time.monotonic() - (self.incident_started or self.started_at)

    def diagnose(self, alert: str | None = None) -> Report:
        """`memorywatch diagnose --alert ALERT` against the demo's master and Prometheus."""
        target, _ = parse_target(self.master_url)
        config = ExporterConfig(
            target=target, credentials=self.master_credentials, scrape_timeout=2.0
        )
        prometheus = (
            Prometheus(f"http://{LOOPBACK}:{self.prometheus_port}")
            if self.prometheus_port
            else None
        )
        return run_diagnosis(config, FleetOptions(), thresholds.Thresholds(), prometheus, alert)

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

    def announce(self) -> None:
        """Say where everything is (URLs without credentials)."""
        for name, url in self.urls().items():
            self.say(f"{name:>12}: {url}")
        self.say("Ctrl-C stops everything the demo started.")

    def stop(self) -> None:
        """Stop the agents, put back master settings an incident changed, stop the rest."""
        for child in reversed(self.children.started):
            if child.name.startswith("agent-"):
                child.stop()
        self._restore_settings()
        self.children.stop_all()
        if self.pager is not None:
            self.pager_pages = list(self.pager.pages)
            self.pager.close()

    def _restore_settings(self) -> None:
        if not self._restore:
            return
        if self.master is not None and not self.master.alive():
            self._restore.clear()  # the demo's own master is gone, and its settings with it
            return
        try:
            with self.master_client(socket_timeout=2) as client:
                for setting, value in self._restore.items():
                    client.config_set(setting, value)
        except redis.RedisError as exc:
            settings = " ".join(f"{k} {v}" for k, v in self._restore.items())
            self.say(
                f"could not restore the master's settings ({exc}): "
                f"run CONFIG SET {settings} on {self.master_url}"
            )
        else:
            restored = ", ".join(f"{k} {v}" for k, v in self._restore.items())
            self.say(f"restored {restored} on {self.master_url}")
        self._restore.clear()

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
            self.announce()
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


def _split_url(url: str, option: str) -> tuple[str, Credentials]:
    """`url` without its credentials (safe to print and to pass on a command line), and them."""
    try:
        target, credentials = parse_target(url)
    except ConfigError as exc:
        raise DemoError(f"{option}: {exc}") from None
    return target.display, credentials


def _config_value(client: redis.Redis, setting: str) -> str:
    reply: dict[Any, Any] = client.config_get(setting)
    for name, value in reply.items():
        if (name.decode() if isinstance(name, bytes) else name) == setting:
            return value.decode() if isinstance(value, bytes) else str(value)
    raise DemoError(f"the master has no {setting!r} setting")
