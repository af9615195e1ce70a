"""Real processes for tests: redis-server, redis-sentinel, clusters, the exporter.

Every process is started on a free loopback port, waited for with a deadline and stopped by
its pid. A missing binary is an error, never a skip.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free too."""
    for _ in range(200):
        port = random.randint(20000, 55000)
        try:
            for candidate in (port, port + 10000):
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                    sock.bind((LOOPBACK, candidate))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


def binary(name: str) -> str:
    path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    if path is None:
        raise RuntimeError(f"{name} is not installed: run scripts/setup (apt-get install {name})")
    return path


def wait_until(
    predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02, what: str = ""
) -> Any:
    """Poll `predicate` until it returns a truthy value; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except Exception as exc:  # the thing we wait for may raise until it is ready
            last_error = exc
        else:
            if value:
                return value
        time.sleep(interval)
    raise TimeoutError(
        f"timed out after {timeout}s waiting for {what or predicate}: {last_error!r}"
    )


def stop_pid(proc: subprocess.Popen[Any], grace: float = 5.0) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGCONT)
        os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=grace)


@dataclass
class RedisServer:
    """One redis-server (or redis-sentinel) process on loopback."""

    args: Sequence[str] = ()
    port: int = field(default_factory=free_port)
    sentinel: bool = False
    password: str | None = None
    tls: dict[str, Path] | None = None
    """``make_certs``'s files: serve TLS only (on ``port``) and replicate over TLS."""
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="mw-redis-")))
    proc: subprocess.Popen[bytes] | None = None

    def tls_lines(self) -> list[str]:
        if not self.tls:
            return []
        return [
            "port 0",
            f"tls-port {self.port}",
            f"tls-cert-file {self.tls['server.crt']}",
            f"tls-key-file {self.tls['server.key']}",
            f"tls-ca-cert-file {self.tls['ca.crt']}",
            "tls-auth-clients no",
            "tls-replication yes",
        ]

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}"

    @property
    def log(self) -> str:
        path = self.workdir / "redis.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def client(self, **kwargs: Any) -> redis.Redis:
        kwargs.setdefault("password", self.password)
        if self.tls:
            kwargs.update(ssl=True, ssl_ca_certs=str(self.tls["ca.crt"]))
        return redis.Redis(host=LOOPBACK, port=self.port, decode_responses=True, **kwargs)

    def start(self, wait: bool = True) -> RedisServer:
        conf = self.workdir / ("sentinel.conf" if self.sentinel else "redis.conf")
        lines = [
            f"port {self.port}",
            f"bind {LOOPBACK}",
            f"dir {self.workdir}",
            f"logfile {self.workdir / 'redis.log'}",
            "daemonize no",
        ]
        if not self.sentinel:
            lines += [
                'save ""',
                "appendonly no",
                "enable-debug-command local",
                "repl-diskless-sync-delay 0",
            ]
        if self.password and not self.sentinel:
            lines.append(f"requirepass {self.password}")
        lines += self.tls_lines()
        if not conf.exists():
            conf.write_text("\n".join(lines) + "\n")
        exe = binary("redis-sentinel" if self.sentinel else "redis-server")
        self.proc = subprocess.Popen([exe, str(conf), *self.args], stdout=subprocess.DEVNULL)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 10.0) -> None:
        def pong() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"redis exited with {self.proc.returncode}:\n{self.log}")
            with self.client(socket_timeout=1) as conn:
                return bool(conn.ping())

        try:
            wait_until(pong, timeout, what=f"redis on port {self.port}")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\n--- redis log ---\n{self.log}") from None

    def stop(self) -> None:
        if self.proc is not None:
            stop_pid(self.proc)

    def restart(self) -> None:
        self.stop()
        self.start()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


def restart_loading(server: RedisServer, keys: int = 5000) -> None:
    """Restart `server` so that it spends seconds loading its dump (key-load-delay)."""
    client = server.client()
    client.execute_command("DEBUG", "POPULATE", str(keys))
    client.save()
    server.stop()
    server.args = ("--key-load-delay", "1000", "--loading-process-events-interval-bytes", "1024")
    server.start(wait=False)
    wait_until(lambda: server.client().info("persistence")["loading"] == 1, 10, what="loading")


@contextlib.contextmanager
def redis_server(*args: str, password: str | None = None) -> Iterator[RedisServer]:
    server = RedisServer(args=args, password=password).start()
    try:
        yield server
    finally:
        server.cleanup()


def wait_replica_online(master: RedisServer, replica: RedisServer, timeout: float = 10.0) -> None:
    def online() -> bool:
        info = replica.client().info("replication")
        return (
            info.get("master_link_status") == "up"
            and master.client().info("replication").get("slave0", {}).get("state") == "online"
        )

    wait_until(online, timeout, what="replica online")
    # Redis 7 streams writes to a freshly synced replica only after its first ACK, sent from
    # its once-a-second cron: until then WAIT (durable mode) would see no replica.
    info = master.client().info("replication")
    if info["role"] != "master":
        return  # a chained replica: WAIT is for masters only
    replicas = int(info["connected_slaves"])
    acked = master.client().execute_command("WAIT", replicas, int(timeout * 1000))
    assert int(acked) >= replicas, f"{acked} of {replicas} replicas acknowledged in {timeout}s"


@contextlib.contextmanager
def master_with_replica(*args: str) -> Iterator[tuple[RedisServer, RedisServer]]:
    master = RedisServer(args=args).start()
    replica = RedisServer(args=(*args, "--replicaof", LOOPBACK, str(master.port)))
    try:
        replica.start()
        wait_replica_online(master, replica)
        yield master, replica
    finally:
        replica.cleanup()
        master.cleanup()


def write_sentinel_conf(
    sentinel: RedisServer, name: str, master_port: int, down_after_ms: int, *extra: str
) -> None:
    """One sentinel (quorum 1) watching the master on ``master_port`` as ``name``."""
    lines = [
        f"port {sentinel.port}",
        f"bind {LOOPBACK}",
        f"dir {sentinel.workdir}",
        f"logfile {sentinel.workdir / 'redis.log'}",
        f"sentinel monitor {name} {LOOPBACK} {master_port} 1",
        f"sentinel down-after-milliseconds {name} {down_after_ms}",
        *extra,
    ]
    sentinel.workdir.joinpath("sentinel.conf").write_text("\n".join(lines) + "\n")


@contextlib.contextmanager
def sentinel_group(
    name: str = "agents", *, down_after_ms: int = 5000
) -> Iterator[tuple[RedisServer, RedisServer, RedisServer]]:
    """A master, one replica and one sentinel (quorum 1) that watches them as `name` and
    fails over `down_after_ms` after the master stops answering."""
    with master_with_replica() as (master, replica):
        sentinel = RedisServer(sentinel=True)
        write_sentinel_conf(sentinel, name, master.port, down_after_ms)
        try:
            sentinel.start()

            def knows_replica() -> bool:
                return len(sentinel.client().sentinel_slaves(name)) == 1

            wait_until(knows_replica, 15, interval=0.1, what="sentinel discovers the replica")
            yield master, replica, sentinel
        finally:
            sentinel.cleanup()


@contextlib.contextmanager
def redis_cluster(
    masters: int = 3, tls: dict[str, Path] | None = None
) -> Iterator[list[RedisServer]]:
    """`masters` cluster nodes, slots split evenly, state ok; with `tls` (`make_certs`) the
    clients and the cluster bus speak TLS only."""
    args = ("--cluster-enabled", "yes", *(("--tls-cluster", "yes") if tls else ()))
    nodes = [RedisServer(args=args, port=cluster_port(), tls=tls) for _ in range(masters)]
    tls_cli = ("--tls", "--cacert", str(tls["ca.crt"])) if tls else ()
    try:
        for node in nodes:
            node.start()
        addrs = [f"{LOOPBACK}:{node.port}" for node in nodes]
        subprocess.run(
            [binary("redis-cli"), *tls_cli, "--cluster", "create", *addrs, "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )

        def ok() -> bool:
            return all(n.client().cluster("info")["cluster_state"] == "ok" for n in nodes)

        wait_until(ok, 30, interval=0.1, what="cluster_state ok")
        yield nodes
    finally:
        for node in nodes:
            node.cleanup()


@dataclass
class ExporterProcess:
    """`memorywatch exporter` as a real process with a real HTTP listener."""

    args: Sequence[str]
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    command: Sequence[str] = ()
    """The `memorywatch` to run (default: this interpreter's, `python -m memorywatch`)."""
    proc: subprocess.Popen[str] | None = None
    logfile: Path = field(
        default_factory=lambda: Path(tempfile.mkstemp(prefix="mw-exporter-", suffix=".log")[1])
    )

    @property
    def base(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def log(self) -> str:
        return self.logfile.read_text(errors="replace")

    def start(self) -> ExporterProcess:
        env = {**os.environ, **self.env}
        cmd = [
            *(self.command or (sys.executable, "-m", "memorywatch")),
            "exporter",
            "--listen",
            f"{LOOPBACK}:{self.port}",
            *self.args,
        ]
        with self.logfile.open("w") as log:
            self.proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env=env, text=True
            )

        def healthy() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"exporter exited with {self.proc.returncode}:\n{self.log}")
            return self.get("/healthz")[0] == 200

        try:
            wait_until(healthy, 15, what="exporter /healthz")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\n--- exporter log ---\n{self.log}") from None
        return self

    def get(self, path: str, timeout: float = 10.0) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.base + path, timeout=timeout) as resp:  # noqa: S310
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()

    def stop(self) -> None:
        if self.proc is not None:
            stop_pid(self.proc)

    def cleanup(self) -> None:
        self.stop()
        self.logfile.unlink(missing_ok=True)


@contextlib.contextmanager
def exporter(*args: str, env: dict[str, str] | None = None) -> Iterator[ExporterProcess]:
    proc = ExporterProcess(args=args, env=env or {}).start()
    try:
        yield proc
    finally:
        proc.cleanup()


def make_certs(directory: Path) -> dict[str, Path]:
    """A throwaway CA, a server certificate for 127.0.0.1 and a client certificate it signed
    (``ca.crt``, ``server.crt``/``server.key``, ``client.crt``/``client.key``), by openssl."""

    def openssl(*args: str) -> None:
        subprocess.run(
            ["openssl", *args], check=True, capture_output=True, cwd=directory, timeout=60
        )

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=memorywatch test CA", "-keyout", "ca.key", "-out", "ca.crt")  # fmt: skip
    for name, ext in (
        ("server", "subjectAltName=IP:127.0.0.1\n"),
        ("client", "extendedKeyUsage=clientAuth\n"),
    ):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                "-keyout", f"{name}.key", "-out", f"{name}.csr")  # fmt: skip
        (directory / f"{name}.ext").write_text(ext)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "1", "-extfile", f"{name}.ext", "-out", f"{name}.crt")  # fmt: skip
    names = ("ca.crt", "server.crt", "server.key", "client.crt", "client.key")
    return {name: directory / name for name in names}


# -- failovers ------------------------------------------------------------------------------------
def freeze(server: RedisServer) -> None:
    """SIGSTOP: the process holds its sockets open and answers nothing (a hung or partitioned
    node, as TCP sees it)."""
    assert server.proc is not None
    os.kill(server.proc.pid, signal.SIGSTOP)


def thaw(server: RedisServer) -> None:
    assert server.proc is not None
    os.kill(server.proc.pid, signal.SIGCONT)


def kill(server: RedisServer) -> None:
    """SIGKILL: the node dies with whatever it had not sent to its replicas."""
    assert server.proc is not None
    os.kill(server.proc.pid, signal.SIGKILL)
    server.proc.wait(timeout=10)


@dataclass
class SentinelFailover:
    """A master, the replica Sentinel will promote, a spare replicating from that replica (so
    the promoted master has a replica of its own at once), and one sentinel (quorum 1)."""

    name: str
    master: RedisServer
    replica: RedisServer
    spare: RedisServer
    sentinel: RedisServer

    @property
    def url(self) -> str:
        return f"redis+sentinel://{LOOPBACK}:{self.sentinel.port}/{self.name}"

    def master_port(self) -> int | None:
        """The master's port as Sentinel names it now (None while it names none)."""
        with contextlib.suppress(redis.RedisError):
            addr = self.sentinel.client(socket_timeout=1).sentinel_get_master_addr_by_name(
                self.name
            )
            return int(addr[1]) if addr else None
        return None


@contextlib.contextmanager
def sentinel_failover(
    name: str = "agents",
    down_after_ms: int = 1000,
    password: str | None = None,
    sentinel_password: str | None = None,
    tls: dict[str, Path] | None = None,
) -> Iterator[SentinelFailover]:
    """``password``: the data nodes' (replicas authenticate with it, Sentinel too);
    ``sentinel_password``: the sentinel's own; ``tls`` (``make_certs``): every node and the
    sentinel serve TLS only, and replicate over it."""
    auth = ("--masterauth", password) if password else ()
    master = RedisServer(password=password, tls=tls).start()
    replica = RedisServer(
        args=("--replicaof", LOOPBACK, str(master.port), *auth), password=password, tls=tls
    )
    spare = RedisServer(
        args=("--replicaof", LOOPBACK, str(replica.port), "--replica-priority", "0", *auth),
        password=password,
        tls=tls,
    )
    sentinel = RedisServer(sentinel=True, password=sentinel_password, tls=tls)
    try:
        replica.start()
        wait_replica_online(master, replica)
        spare.start()
        wait_replica_online(replica, spare)
        write_sentinel_conf(
            sentinel,
            name,
            master.port,
            down_after_ms,
            f"sentinel failover-timeout {name} 4000",
            *([f"sentinel auth-pass {name} {password}"] if password else []),
            *([f"requirepass {sentinel_password}"] if sentinel_password else []),
            *sentinel.tls_lines(),
        )
        sentinel.start()
        wait_until(
            lambda: len(sentinel.client().sentinel_slaves(name)) == 1,
            15,
            interval=0.1,
            what="sentinel discovers the replica",
        )
        yield SentinelFailover(name, master, replica, spare, sentinel)
    finally:
        for server in (sentinel, spare, replica, master):
            server.cleanup()


@dataclass
class ClusterFailover:
    """A 3-primary cluster whose primary serving ``key`` has two replicas (the other
    primaries have none): kill it, and one replica takes over with the other as its own."""

    primaries: list[RedisServer]
    primary: RedisServer
    replicas: list[RedisServer]

    @property
    def url(self) -> str:
        return f"redis+cluster://{LOOPBACK}:{self.seed.port}"

    @property
    def seed(self) -> RedisServer:
        return next(node for node in self.primaries if node is not self.primary)

    def serving_port(self, key: str) -> int | None:
        """The port of the primary serving ``key``'s slot, as the cluster says now."""
        with contextlib.suppress(redis.RedisError):
            client = self.seed.client(socket_timeout=1)
            slot = int(client.execute_command("CLUSTER", "KEYSLOT", key))
            for start, end, owner, *_ in client.execute_command("CLUSTER", "SLOTS"):
                if start <= slot <= end:
                    return int(owner[1])
        return None


@contextlib.contextmanager
def cluster_failover(key: str, masters: int = 3, replicas: int = 2) -> Iterator[ClusterFailover]:
    cluster_args = ("--cluster-enabled", "yes", "--cluster-node-timeout", "1000")
    replica_args = (*cluster_args, "--cluster-replica-validity-factor", "0")
    nodes = [RedisServer(args=cluster_args, port=cluster_port()) for _ in range(masters)]
    spares = [RedisServer(args=replica_args, port=cluster_port()) for _ in range(replicas)]
    try:
        for node in nodes:
            node.start()
        subprocess.run(
            [binary("redis-cli"), "--cluster", "create",
             *[f"{LOOPBACK}:{node.port}" for node in nodes], "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        wait_until(
            lambda: all(n.client().cluster("info")["cluster_state"] == "ok" for n in nodes),
            30, interval=0.1, what="cluster_state ok",
        )  # fmt: skip
        found = ClusterFailover(nodes, nodes[0], spares)
        port = found.serving_port(key)
        primary = next(node for node in nodes if node.port == port)
        primary_id = primary.client().execute_command("CLUSTER", "MYID")
        for spare in spares:
            spare.start()
            spare.client().execute_command("CLUSTER", "MEET", LOOPBACK, str(primary.port))
        for spare in spares:
            wait_until(
                lambda s=spare: primary_id in s.client().execute_command("CLUSTER", "NODES"),
                15, interval=0.1, what="replica meets the primary",
            )  # fmt: skip
            spare.client().execute_command("CLUSTER", "REPLICATE", primary_id)

        def replicas_online() -> bool:
            info = primary.client().info("replication")
            online = [info.get(f"slave{i}", {}).get("state") for i in range(replicas)]
            return online == ["online"] * replicas

        wait_until(replicas_online, 30, interval=0.1, what="replicas online")
        # As in wait_replica_online: writes stream to a new replica only after its first ACK.
        acked = primary.client().execute_command("WAIT", replicas, 10_000)
        assert int(acked) >= replicas, f"{acked} of {replicas} replicas acknowledged"
        yield ClusterFailover(nodes, primary, spares)
    finally:
        for node in [*spares, *nodes]:
            node.cleanup()


@dataclass
class PrometheusServer:
    """Debian's prometheus on loopback, scraping every second and evaluating rule files."""

    proc: subprocess.Popen[bytes]
    port: int
    workdir: Path

    @property
    def log(self) -> str:
        path = self.workdir / "prometheus.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector `expr` evaluates to now; a failed query raises with the error."""
        url = f"http://{LOOPBACK}:{self.port}/api/v1/query?" + urllib.parse.urlencode(
            {"query": expr}
        )
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                body = json.load(resp)
        except urllib.error.HTTPError as err:  # a bad query is a 400 with a JSON error body
            body = json.load(err)
        if body.get("status") != "success":
            raise RuntimeError(f"{expr}: {body}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def firing(self, alertname: str) -> list[dict[str, str]]:
        """Label sets of the alerts named `alertname` that are firing now."""
        found = self.query(f'ALERTS{{alertname="{alertname}",alertstate="firing"}}')
        return [r["metric"] for r in found]


@contextlib.contextmanager
def prometheus(
    targets: Sequence[str],
    rule_files: Sequence[Path] = (),
    job: str = "memorywatch",
    target_labels: Mapping[str, Mapping[str, str]] | None = None,
) -> Iterator[PrometheusServer]:
    """Prometheus scraping `targets` as `job` and evaluating `rule_files`, both every second.
    `target_labels`: target -> labels Prometheus attaches to its series (e.g. a cluster)."""
    workdir = Path(tempfile.mkdtemp(prefix="mw-prometheus-"))
    labels = target_labels or {}
    static: list[dict[str, Any]] = [
        {"targets": [t], "labels": dict(labels[t])} for t in targets if t in labels
    ]
    if (rest := [t for t in targets if t not in labels]) or not static:
        static.insert(0, {"targets": rest})
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(Path(f).resolve()) for f in rule_files],
        "scrape_configs": [{"job_name": job, "static_configs": static}],
    }
    (workdir / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
    port = free_port()
    with (workdir / "prometheus.log").open("wb") as log:
        proc = subprocess.Popen(
            [
                binary("prometheus"),
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address={LOOPBACK}:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = PrometheusServer(proc, port, workdir)

    def ready() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"prometheus exited with {proc.returncode}:\n{server.log}")
        url = f"http://{LOOPBACK}:{port}/-/ready"
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(resp.status == 200)

    try:
        try:
            wait_until(ready, 30, interval=0.1, what="prometheus /-/ready")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\n--- prometheus log ---\n{server.log}") from None
        yield server
    finally:
        stop_pid(proc)
        shutil.rmtree(workdir, ignore_errors=True)
