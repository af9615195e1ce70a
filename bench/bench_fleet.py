"""Benchmark the agent-fleet scrape of `memorywatch exporter` at 1M sessions (issue 4).

Not a test: it starts a redis-server on a free loopback port, fills it with agent state in the
layout of `memorywatch.schema` (1M sessions, 10k held locks, 100k tool records, counter
hashes), then scrapes `memorywatch exporter` and, as the peer, Debian's
prometheus-redis-exporter with `--check-keys 'mw:*'`. It prints scrape latency, the slowest
Redis command each caused (SLOWLOG, with slowlog-log-slower-than 0) and whether the issue's
targets were met. Every process it starts is stopped by its pid. Exits 0 whatever it finds.

    python bench/bench_fleet.py [--sessions 1000000] [--scrapes 200] [--peer-scrapes 5]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import os
import platform
import random
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import redis

import memorywatch
from harness import LOOPBACK, ExporterProcess, RedisServer, free_port, stop_pid, wait_until
from memorywatch import schema
from memorywatch.agent._values import script_text
from memorywatch.exporter.collectors.fleet import LabelBudget, add_fleet_families, read_fleet
from memorywatch.exporter.exposition import Families
from memorywatch.exporter.fleet_options import FleetOptions
from memorywatch.exporter.scrape import CLIENT_NAME, fetch_snapshot

PEER = "/usr/bin/prometheus-redis-exporter"
PEER_CLIENT_NAME = "redis_exporter"
REDIS_CLI = "/usr/bin/redis-cli"
TICK = os.sysconf("SC_CLK_TCK")
SEED = 4
WARMUP = 5
SETTLE_SECONDS = 3.0
"""Wait after the exporter is healthy so the sampler's first cycle is over before we measure."""
SAMPLE_INTERVAL = "3600"
INSTANCES = 20
HEARTBEAT_PX = 600_000
"""Longer than the SDK's 15 s: no live agent refreshes the heartbeats during the run."""
LOCK_PX = 600_000
ACTIVITY_SPREAD_MS = 600_000
"""Session last activity is spread over the 10 minutes before the fill (window: 30 min)."""
PIPE_CHUNK = 1 << 20
ZADD_BATCH = 500

TARGET_P99_MS = 50.0
TARGET_RATIO = 20.0
TARGET_CMD_US = 5000

TEXTS = (
    "Hi, my order has not arrived yet",
    "Let me check the status of order 4471 for you",
    "Can you reset my password please",
    "I have sent a reset link to the email on file",
    "What is the refund policy for annual plans",
    "Annual plans are refundable within 30 days",
    "Summarise the ticket history",
    "Done: three tickets, two closed, one waiting on billing",
)
LOCK_KINDS = ("ticket", "account", "doc", "order", "job")
TOOL_VERBS = (
    "create",
    "update",
    "close",
    "search",
    "fetch",
    "send",
    "refund",
    "escalate",
    "tag",
    "assign",
    "list",
    "delete",
    "merge",
    "notify",
    "schedule",
    "cancel",
    "approve",
    "reject",
    "archive",
    "export",
)
TOOL_NOUNS = (
    "ticket",
    "order",
    "invoice",
    "email",
    "user",
    "doc",
    "refund",
    "meeting",
    "report",
    "note",
)


# -- small helpers ---------------------------------------------------------------------------------
def b(value: object) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def resp(args: Sequence[bytes]) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        parts.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(parts)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 100]) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def run_queue_wait(pid: int) -> tuple[float, int]:
    """(seconds spent runnable but waiting for a CPU, involuntary context switches) so far."""
    wait_ns = int(Path(f"/proc/{pid}/schedstat").read_text().split()[1])
    match = re.search(
        r"nonvoluntary_ctxt_switches:\s+(\d+)", Path(f"/proc/{pid}/status").read_text()
    )
    return wait_ns / 1e9, int(match.group(1)) if match else -1


def command_output(cmd: Sequence[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unavailable ({exc})"
    return " ".join((out.stdout + out.stderr).split())


def text(value: object) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def verdict(ok: bool) -> str:
    return "MET" if ok else "MISSED"


# -- fill ----------------------------------------------------------------------------------------
class RespPipe:
    """RESP commands streamed into `redis-cli --pipe` (stdout to a file: no pipe deadlock)."""

    def __init__(self, port: int, log: IO[bytes]) -> None:
        self.log = log
        self.proc = subprocess.Popen(
            [REDIS_CLI, "-h", LOOPBACK, "-p", str(port), "--pipe"],
            stdin=subprocess.PIPE,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.buf: list[bytes] = []
        self.size = 0
        self.commands = 0

    def send(self, *args: bytes) -> None:
        data = resp(args)
        self.buf.append(data)
        self.size += len(data)
        self.commands += 1
        if self.size >= PIPE_CHUNK:
            self.flush()

    def flush(self) -> None:
        if self.buf:
            assert self.proc.stdin is not None
            self.proc.stdin.write(b"".join(self.buf))
            self.buf, self.size = [], 0

    def finish(self) -> tuple[int, int, str]:
        """(errors, replies, output) once redis-cli has read every reply."""
        self.flush()
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=900)
        self.log.seek(0)
        text = self.log.read().decode(errors="replace")
        match = re.search(r"errors: (\d+), replies: (\d+)", text)
        if match is None:
            return -1, -1, text
        return int(match.group(1)), int(match.group(2)), text

    def close(self) -> None:
        stop_pid(self.proc)


class ZBatch:
    """ZADD members per key, sent in batches of ZADD_BATCH score/member pairs."""

    def __init__(self, pipe: RespPipe) -> None:
        self.pipe = pipe
        self.pending: dict[bytes, list[bytes]] = defaultdict(list)

    def add(self, key: str, score: int, member: str) -> None:
        items = self.pending[key.encode()]
        items += (b"%d" % score, member.encode())
        if len(items) >= 2 * ZADD_BATCH:
            self._emit(key.encode())

    def _emit(self, key: bytes) -> None:
        items = self.pending.pop(key)
        self.pipe.send(b"ZADD", key, *items)

    def flush(self) -> None:
        for key in list(self.pending):
            self._emit(key)


@dataclass
class FillPlan:
    sessions: int
    users: bool
    locks: int
    tools: int
    lock_names: int
    tool_names: int


@dataclass
class FillResult:
    seconds: float
    commands: int
    expected_keys: int
    in_progress: int
    instances: list[str] = field(default_factory=list)


def fill(port: int, layout: schema.Schema, plan: FillPlan) -> FillResult:
    """Write the agent state through one `redis-cli --pipe`."""
    rng = random.Random(SEED)
    start = time.perf_counter()
    now_ms = int(time.time() * 1000)
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in the finally below
    pipe = RespPipe(port, log)
    try:
        zsets = ZBatch(pipe)
        aux_keys: set[str] = set()
        stats: dict[str, Counter[str]] = defaultdict(Counter)
        sum_fields: dict[str, float] = defaultdict(float)

        def count(family: str, subject: str, name: str, value: int = 1) -> None:
            key = layout.stats(family, subject)
            stats[key][name] += value

        # sessions: history list (1-3 messages, session TTL), index zset, user -> sessions
        session_px = b"%d" % (schema.DEFAULT_SESSION_TTL * 1000)
        users_px = session_px
        group: list[bytes] = []
        roles = ("user", "assistant")
        for i in range(plan.sessions):
            sid = f"sess-{(i * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFF:012x}-{i:07d}"
            last_ms = now_ms - rng.randrange(ACTIVITY_SPREAD_MS)
            n_msgs = 1 + i % 3
            messages = [
                b'{"role":"%s","text":"%s","ts":%.3f}'
                % (
                    roles[m % 2].encode(),
                    TEXTS[(i + m) % len(TEXTS)].encode(),
                    (last_ms - (n_msgs - m) * 4000) / 1000,
                )
                for m in range(n_msgs)
            ]
            hist = layout.history(sid).encode()
            pipe.send(b"RPUSH", hist, *messages)
            pipe.send(b"PEXPIRE", hist, session_px)
            index = layout.sessions_index(sid)
            zsets.add(index, last_ms, sid)
            aux_keys.add(index)
            if n_msgs >= 2:  # a user turn answered: one turn-duration observation
                seconds = rng.lognormvariate(0.8, 0.9)
                stats_key = layout.stats(schema.FAMILY_TURN_DURATION, sid)
                le = schema.bucket_le(seconds, schema.TURN_BUCKETS)
                stats[stats_key][f"{schema.TURN_HISTOGRAM_NAME}|{le}"] += 1
                sum_fields[stats_key] += seconds
            if plan.users:
                group.append(sid.encode())
                if len(group) == 3 or i == plan.sessions - 1:
                    usess = layout.user_sessions(f"user-{i // 3:07d}").encode()
                    pipe.send(b"SADD", usess, *group)
                    pipe.send(b"PEXPIRE", usess, users_px)
                    group = []
        users = -(-plan.sessions // 3) if plan.users else 0
        for key, total in sum_fields.items():
            stats[key][f"{schema.TURN_HISTOGRAM_NAME}|{schema.SUM_SUFFIX}"] = round(total, 3)
        sum_fields.clear()
        for n in range(16):
            count(
                schema.FAMILY_STATE_MISSES, f"miss-{n}", schema.MISS_HISTORY, rng.randrange(1, 40)
            )

        # locks: "{fence}|{instance}|{nonce}" with PX, fence counter, locks:exp / locks:since
        instances = [f"agent-{k:02d}-{rng.getrandbits(32):08x}" for k in range(INSTANCES)]
        lock_names = [f"{LOCK_KINDS[n % len(LOCK_KINDS)]}:{100000 + n}" for n in range(plan.locks)]
        fences: dict[str, int] = {}
        for n, name in enumerate(lock_names):
            fence = 1 + n
            owner = f"{instances[n % INSTANCES]}|{rng.getrandbits(48):012x}"
            since = now_ms - rng.randrange(60_000)
            fences[layout.fence(name)] = max(fence, fences.get(layout.fence(name), 0))
            pipe.send(
                b"SET",
                layout.lock(name).encode(),
                f"{fence}|{owner}".encode(),
                b"PX",
                b"%d" % LOCK_PX,
            )
            member = schema.lock_member(LOCK_KINDS[n % len(LOCK_KINDS)], name)
            zsets.add(layout.locks_expiry(name), now_ms + LOCK_PX, member)
            zsets.add(layout.locks_since(name), since, member)
            aux_keys.update((layout.locks_expiry(name), layout.locks_since(name)))
        for key, fence in fences.items():  # schema v2: one fencing counter per shard
            pipe.send(b"SET", key.encode(), b"%d" % fence)
        # schema v2 counts lock kinds, at most the name cap of them
        kinds = [f"kind{n:03d}" for n in range(min(plan.lock_names, schema.DEFAULT_NAME_CAP))]
        for name in kinds:
            if rng.random() < 0.7:
                count(schema.FAMILY_LOCK_CONTENDED, name, name, rng.randrange(1, 500))
            if rng.random() < 0.15:
                count(schema.FAMILY_LOCK_TIMEOUTS, name, name, rng.randrange(1, 20))
            if rng.random() < 0.03:
                count(schema.FAMILY_LOCKS_LOST, name, name, rng.randrange(1, 3))
            total = 0.0
            for bound in rng.sample(schema.LOCK_WAIT_BUCKETS[:8], 4):
                observed = rng.randrange(1, 2000)
                count(schema.FAMILY_LOCK_WAIT, name, f"{name}|{schema.format_le(bound)}", observed)
                total += observed * bound / 2
            stats[layout.stats(schema.FAMILY_LOCK_WAIT, name)][f"{name}|{schema.SUM_SUFFIX}"] = (
                round(total, 3)
            )

        # tool records: mostly completed, some failed, ~2% in progress (indexed)
        tools = [f"{v}_{o}" for v in TOOL_VERBS for o in TOOL_NOUNS][: plan.tool_names]
        retention_px = b"%d" % (schema.DEFAULT_TOOL_RETENTION * 1000)
        deadline_ms = int(schema.DEFAULT_TOOL_DEADLINE * 1000)
        in_progress = 0
        for n in range(plan.tools):
            tool = tools[int(len(tools) * rng.random() ** 2)]
            idem = f"call_{hashlib.blake2b(b'%d' % n, digest_size=12).hexdigest()}"
            rec = layout.tool(idem)
            instance = instances[n % INSTANCES]
            roll = rng.random()
            started = now_ms - rng.randrange(3_600_000)
            fields: list[bytes] = [
                b"tool",
                tool.encode(),
                b"fp",
                hashlib.sha256(b"%s:%d" % (tool.encode(), n % 5000)).hexdigest().encode(),
                b"owner",
                f"{instance}|{rng.getrandbits(48):012x}".encode(),
                b"instance",
                instance.encode(),
                b"fence",
                b"1",
            ]
            if roll < 0.02:
                in_progress += 1
                started = now_ms - rng.randrange(20_000)
                fields += (b"state", b"in_progress", b"started_ms", b"%d" % started)
                fields += (b"deadline_ms", b"%d" % (started + deadline_ms), b"result", b"")
                zsets.add(layout.tools_in_progress(idem), started, rec)
                aux_keys.add(layout.tools_in_progress(idem))
            else:
                status = schema.TOOL_STATUS_FAILED if roll < 0.05 else schema.TOOL_STATUS_COMPLETED
                result = (
                    b'{"type":"HTTPError","message":"502 from upstream"}'
                    if status == schema.TOOL_STATUS_FAILED
                    else b'{"ok":true,"id":"%d"}' % n
                )
                fields += (b"state", status.encode(), b"started_ms", b"%d" % started)
                fields += (b"deadline_ms", b"%d" % (started + deadline_ms))
                fields += (b"ended_ms", b"%d" % (started + rng.randrange(50, 8000)))
                fields += (b"result", result)
                count(schema.FAMILY_TOOL_EXECUTIONS, idem, f"{tool}|{status}")
                extra = rng.random()
                if extra < 0.05:
                    count(schema.FAMILY_TOOL_DUPLICATES_SUPPRESSED, idem, tool)
                elif extra < 0.06:
                    count(
                        schema.FAMILY_TOOL_EXECUTIONS,
                        idem,
                        f"{tool}|{schema.TOOL_STATUS_RETRYABLE}",
                    )
                elif extra < 0.062:
                    count(schema.FAMILY_TOOL_RECLAIMS, idem, tool)
                elif extra < 0.063:
                    count(schema.FAMILY_TOOL_FINGERPRINT_MISMATCHES, idem, tool)
                elif extra < 0.068:
                    count(schema.FAMILY_TOOL_IN_PROGRESS_CONFLICTS, idem, tool)
                elif extra < 0.0685:
                    count(schema.FAMILY_TOOL_DUPLICATE_EXECUTIONS, idem, tool)
                    count(schema.FAMILY_TOOL_CLAIMS_LOST, idem, tool)
            pipe.send(b"HSET", rec.encode(), *fields)
            pipe.send(b"PEXPIRE", rec.encode(), retention_px)
        count(schema.FAMILY_STATE_MISSES, "miss-tool", schema.MISS_TOOL_RECORD, 3)

        zsets.flush()
        for key, counters in stats.items():
            pairs = [x for name, value in counters.items() for x in (b(name), b(value))]
            pipe.send(b"HSET", key.encode(), *pairs)
            aux_keys.add(key)
        pipe.send(
            b"HSET",
            layout.schema_key().encode(),
            schema.SCHEMA_FIELD_VERSION.encode(),
            b"%d" % schema.SCHEMA_VERSION,
            schema.SCHEMA_FIELD_SHARDS.encode(),
            b"%d" % layout.shards,
        )
        aux_keys.add(layout.schema_key())
        errors, replies, output = pipe.finish()
        if errors != 0 or replies != pipe.commands:
            print(f"!!! FILL PROBLEM: errors={errors} replies={replies} sent={pipe.commands}")
            print(output[-2000:])
        # per lock: its key; per shard: one fencing counter (schema v2)
        expected = plan.sessions + users + plan.locks + len(fences) + plan.tools + len(aux_keys)
        return FillResult(
            seconds=time.perf_counter() - start,
            commands=pipe.commands,
            expected_keys=expected,
            in_progress=in_progress,
            instances=instances,
        )
    finally:
        pipe.close()
        log.close()


def heartbeats(conn: redis.Redis, layout: schema.Schema, instances: Sequence[str]) -> None:
    """Each live agent's beat, through the SDK's own heartbeat.lua; refreshed right before
    the scrapes."""
    script = script_text("heartbeat")
    pipe = conn.pipeline(transaction=False)
    for n, instance in enumerate(instances):
        keys = [
            layout.heartbeat(instance),
            layout.instances_index(instance),
            layout.pool_index(instance),
            *layout.pool_aggregate_keys(instance),
        ]
        fields = {
            "ready": 0 if n == 0 else 1,
            "pool_in_use": n % 7,
            "pool_max": 20,
            "pool_pending": 0,
            "pool_timeouts": n % 3,
            "sdk_version": memorywatch.__version__,
            "schema_version": schema.SCHEMA_VERSION,
        }
        pairs = [x for pair in fields.items() for x in pair]
        pipe.eval(script, len(keys), *keys, instance, HEARTBEAT_PX, *pairs)
    pipe.execute()


# -- scraping ------------------------------------------------------------------------------------
class Scraper:
    """GET /metrics over one keep-alive HTTP/1.1 connection."""

    def __init__(self, port: int, timeout: float) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
        self.latencies: list[float] = []
        self.body = ""

    def get(self, record: bool = True) -> float:
        start = time.perf_counter()
        self.conn.request("GET", "/metrics")
        resp_ = self.conn.getresponse()
        body = resp_.read()
        elapsed = time.perf_counter() - start
        if resp_.status != 200:
            raise RuntimeError(f"port {self.port}: HTTP {resp_.status}: {body[:300]!r}")
        if resp_.will_close:
            self.conn.close()  # reconnects on the next request
        self.body = body.decode(errors="replace")
        if record:
            self.latencies.append(elapsed)
        return elapsed

    def close(self) -> None:
        self.conn.close()


def metric_value(body: str, name: str) -> float | None:
    match = re.search(rf"^{re.escape(name)}(?:\{{\}})? (\S+)$", body, re.MULTILINE)
    return float(match.group(1)) if match else None


def summary(latencies: Sequence[float]) -> tuple[float, float, float]:
    return (
        percentile(latencies, 50) * 1e3,
        percentile(latencies, 99) * 1e3,
        max(latencies) * 1e3,
    )


def wait_tcp(port: int, proc: subprocess.Popen[Any], what: str) -> None:
    def listening() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        with socket.create_connection((LOOPBACK, port), timeout=1):
            return True

    wait_until(listening, 15, what=what)


@dataclass
class SlowStats:
    entries: int
    top: list[tuple[int, str]]
    by_command: dict[str, tuple[int, int, float, int]]
    """command -> (count, max us, mean us, p99 us)"""
    over_1ms: int
    over_5ms: int


def slowlog_of(entries: Sequence[dict[str, Any]], client_name: str) -> SlowStats:
    ours = [e for e in entries if text(e.get("client_name", "")) == client_name]
    durations: dict[str, list[int]] = defaultdict(list)
    for entry in ours:
        command = text(entry.get("command", ""))
        durations[command.split(" ", 1)[0].upper()].append(int(entry["duration"]))
    top = sorted(((int(e["duration"]), text(e.get("command", ""))) for e in ours), reverse=True)
    return SlowStats(
        entries=len(ours),
        top=top[:5],
        by_command={
            cmd: (len(ds), max(ds), sum(ds) / len(ds), int(percentile(ds, 99)))
            for cmd, ds in sorted(durations.items(), key=lambda kv: -max(kv[1]))
        },
        over_1ms=sum(1 for d, _ in top if d >= 1000),
        over_5ms=sum(1 for d, _ in top if d >= TARGET_CMD_US),
    )


def print_slow(stats: SlowStats, who: str) -> None:
    print(
        f"SLOWLOG entries from client '{who}': {stats.entries}; >= 1 ms: {stats.over_1ms}, "
        f">= {TARGET_CMD_US} us: {stats.over_5ms}"
    )
    for cmd, (n, worst, mean, p99) in stats.by_command.items():
        print(f"  {cmd:<14} n={n:<7} max={worst:>6} us  p99={p99:>5} us  mean={mean:>7.1f} us")
    for duration, command in stats.top:
        print(f"  slowest: {duration:>7} us  {command[:110]}")


def timed(fn: Callable[[], object], n: int) -> list[float]:
    out: list[float] = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


# -- main ----------------------------------------------------------------------------------------
def versions(redis_port: int | None = None) -> None:
    git = subprocess.run(
        ["git", "-C", str(Path(__file__).resolve().parent.parent), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        timeout=10,
    ).stdout.strip()
    peer = command_output([PEER, "-version"])
    peer_match = re.search(r"Redis Metrics Exporter (\S+)", peer)
    rows = {
        "python": sys.version.split()[0],
        "redis-py": redis.__version__,
        "memorywatch": f"{memorywatch.__version__} (git {git or 'unknown'})",
        "redis-server": command_output(["redis-server", "--version"]),
        "redis-cli": command_output([REDIS_CLI, "--version"]),
        "prometheus-redis-exporter": peer_match.group(1) if peer_match else peer,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.release()}",
    }
    for name, value in rows.items():
        print(f"{name:<28}{value}")
    print()


def run(args: argparse.Namespace) -> None:
    versions()
    # what the SDK writes on a standalone Redis (16 shards only on Cluster)
    layout = schema.Schema(shards=schema.STANDALONE_SHARDS)
    plan = FillPlan(
        sessions=args.sessions,
        users=not args.no_users,
        locks=args.locks,
        tools=args.tools,
        lock_names=args.lock_names,
        tool_names=args.tool_names,
    )
    results: dict[str, float] = {}
    with contextlib.ExitStack() as stack:
        server = RedisServer()
        stack.callback(server.cleanup)
        server.start()
        conn = server.client()
        stack.callback(conn.close)
        print(f"redis-server pid {server.proc.pid if server.proc else '?'} on port {server.port}")
        print(
            f"fill: {plan.sessions} sessions ({'with' if plan.users else 'without'} user sets), "
            f"{plan.locks} held locks, {plan.tools} tool records, counters for "
            f"{plan.lock_names} lock / {plan.tool_names} tool names, {layout.shards} shards"
        )
        filled = fill(server.port, layout, plan)
        dbsize = int(conn.dbsize())
        memory = conn.info("memory")
        print(
            f"fill time: {filled.seconds:.1f} s ({filled.commands} commands via redis-cli --pipe, "
            f"{filled.commands / filled.seconds:,.0f}/s)"
        )
        print(f"keys: DBSIZE {dbsize}, expected {filled.expected_keys}")
        if dbsize != filled.expected_keys:
            print("!!! KEY COUNT MISMATCH")
        print(f"INFO keyspace: {conn.info('keyspace')}")
        print(
            f"used_memory: {memory['used_memory_human']} ({memory['used_memory']} bytes), "
            f"rss {memory['used_memory_rss_human']}"
        )
        heartbeats(conn, layout, filled.instances)

        # -- memorywatch ------------------------------------------------------------------------
        total_scrapes = WARMUP + args.scrapes
        max_len = max(100_000, 1000 * total_scrapes + 20_000)
        conn.config_set("slowlog-log-slower-than", 0)
        conn.config_set("slowlog-max-len", max_len)
        conn.config_set("latency-monitor-threshold", 1)
        conn.slowlog_reset()
        conn.execute_command("LATENCY", "RESET")
        exporter = ExporterProcess(
            args=["--redis-url", server.url, "--sample-interval", SAMPLE_INTERVAL]
        )
        stack.callback(exporter.cleanup)
        exporter.start()
        assert exporter.proc is not None
        print(
            f"\nmemorywatch exporter pid {exporter.proc.pid} on port {exporter.port} "
            f"(--sample-interval {SAMPLE_INTERVAL}: the sampler's first cycle ran during the "
            f"{SETTLE_SECONDS:.0f} s settle, then it sleeps; slowlog covers it too)"
        )
        time.sleep(SETTLE_SECONDS)
        mine = Scraper(exporter.port, timeout=30)
        stack.callback(mine.close)
        for _ in range(WARMUP):
            mine.get(record=False)
        assert server.proc is not None
        cpu0 = cpu_seconds(exporter.proc.pid)
        wait0, switches0 = run_queue_wait(server.proc.pid)
        phase_start = time.perf_counter()
        for _ in range(args.scrapes):
            mine.get()
        phase = time.perf_counter() - phase_start
        cpu_ms = (cpu_seconds(exporter.proc.pid) - cpu0) / args.scrapes * 1e3
        wait1, switches1 = run_queue_wait(server.proc.pid)
        p50, p99, worst = summary(mine.latencies)
        results["mw_p50"], results["mw_p99"] = p50, p99
        samples = sum(1 for ln in mine.body.splitlines() if ln and not ln.startswith("#"))
        print(
            f"memorywatch scrape over {args.scrapes} keep-alive GETs ({WARMUP} warm-up not "
            f"counted): p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {worst:.2f} ms; "
            f"exporter CPU {cpu_ms:.2f} ms/scrape; {samples} samples, {len(mine.body)} bytes"
        )
        print(
            f"  CPU contention ({os.cpu_count()} CPUs shared by redis-server, the exporter and "
            f"this client): redis-server waited {(wait1 - wait0) * 1e3:.0f} ms runnable for a "
            f"CPU during the {phase:.1f} s of scrapes, {switches1 - switches0} involuntary "
            "context switches"
        )
        sessions_seen = metric_value(mine.body, "memorywatch_sessions_active")
        locks_seen = metric_value(mine.body, "memorywatch_locks_held")
        tools_seen = metric_value(mine.body, "memorywatch_tools_in_progress")
        for label, seen, want in (
            ("memorywatch_sessions_active", sessions_seen, plan.sessions),
            ("memorywatch_locks_held", locks_seen, plan.locks),
            ("memorywatch_tools_in_progress", tools_seen, filled.in_progress),
        ):
            ok = seen is not None and int(seen) == want
            print(f"  {label} = {seen} (expected {want}) {'ok' if ok else '!!! MISMATCH !!!'}")
        for line in mine.body.splitlines():
            if line.startswith(("redis_up", "memorywatch_schema_errors{", "memorywatch_scrape")):
                print(f"  {line}")

        # -- what Redis saw from it ---------------------------------------------------------------
        entries: list[dict[str, Any]] = conn.slowlog_get(-1)
        slowlog_len = int(conn.slowlog_len())
        latency = conn.execute_command("LATENCY", "LATEST")
        print(
            f"\nSLOWLOG (slowlog-log-slower-than 0, max-len {max_len}): {slowlog_len} entries"
            + (" !!! FULL: oldest entries were dropped" if slowlog_len >= max_len else "")
        )
        by_client = Counter(text(e.get("client_name", "")) or "(none)" for e in entries)
        print(f"  entries by client name: {dict(by_client)}")
        ours = slowlog_of(entries, CLIENT_NAME)
        print_slow(ours, CLIENT_NAME)
        slowest_us = ours.top[0][0] if ours.top else 0
        results["slowest_us"] = slowest_us
        per_scrape = ours.entries / total_scrapes if total_scrapes else 0.0
        print(f"  commands per scrape (incl. sampler's first cycle): {per_scrape:.0f}")
        print(f"LATENCY LATEST (threshold 1 ms): {latency or 'no events'}")

        # -- where the time goes: the same reads in this process ---------------------------------
        probe = redis.Redis(
            host=LOOPBACK, port=server.port, decode_responses=True, client_name="bench-probe"
        )
        stack.callback(probe.close)
        probe.set_response_callback("INFO", lambda response, **_: response)  # as the exporter
        options = FleetOptions()
        fleet_t = timed(lambda: read_fleet(probe, options), 50)
        snap = read_fleet(probe, options)
        budget = LabelBudget(options.max_label_values)
        expo_t = timed(lambda: add_fleet_families(snap, Families(), budget), 50)
        fields = sum(
            int(probe.hlen(key))
            for family in (*schema.COUNTER_FAMILIES, *schema.HISTOGRAM_FAMILIES)
            for key in layout.stats_keys(family)
        )
        snap_t = timed(lambda: fetch_snapshot(probe), 50)
        ping_t = timed(probe.ping, 50)
        print(
            "in-process breakdown (50 calls each, p50/p99 ms): "
            f"read_fleet {percentile(fleet_t, 50) * 1e3:.2f}/{percentile(fleet_t, 99) * 1e3:.2f}, "
            f"fetch_snapshot (INFO ALL, CONFIG, SLOWLOG) "
            f"{percentile(snap_t, 50) * 1e3:.2f}/{percentile(snap_t, 99) * 1e3:.2f}, "
            f"PING {percentile(ping_t, 50) * 1e3:.3f}; add_fleet_families (exposition of the "
            f"fleet families) {percentile(expo_t, 50) * 1e3:.2f}/{percentile(expo_t, 99) * 1e3:.2f}"
        )
        print(f"  counter/histogram hash fields read per scrape (HGETALL of all shards): {fields}")
        mine.close()
        exporter.stop()

        # -- peer ---------------------------------------------------------------------------------
        conn.config_set("slowlog-log-slower-than", 1000)
        conn.config_set("slowlog-max-len", 100_000)
        conn.slowlog_reset()
        peer_log = stack.enter_context(tempfile.TemporaryFile())
        peer_port = free_port()
        pattern = f"{layout.namespace}:*"
        peer = subprocess.Popen(
            [
                PEER,
                "--redis.addr",
                server.url,
                "--web.listen-address",
                f"{LOOPBACK}:{peer_port}",
                "--check-keys",
                pattern,
                "--check-keys-batch-size",
                str(args.peer_batch),
            ],
            stdout=peer_log,
            stderr=subprocess.STDOUT,
        )
        stack.callback(stop_pid, peer)
        wait_tcp(peer_port, peer, "prometheus-redis-exporter")
        print(
            f"\npeer: prometheus-redis-exporter pid {peer.pid}, --check-keys '{pattern}' "
            f"--check-keys-batch-size {args.peer_batch}, up to {args.peer_scrapes} scrapes "
            f"(stops early past {args.peer_budget:.0f} s)"
        )
        theirs = Scraper(peer_port, timeout=args.peer_budget + 600)
        stack.callback(theirs.close)
        peer_start = time.perf_counter()
        for n in range(args.peer_scrapes):
            elapsed = theirs.get()
            print(f"  peer scrape {n + 1}: {elapsed:.2f} s", flush=True)
            if time.perf_counter() - peer_start > args.peer_budget:
                print(f"  (budget of {args.peer_budget:.0f} s spent: stopping)")
                break
        if not theirs.latencies:
            print("  (--peer-scrapes 0: the peer is not scraped)")
            return
        ppeer50, ppeer99, _ = summary(theirs.latencies)
        results["peer_p50"] = ppeer50
        key_series = sum(1 for ln in theirs.body.splitlines() if ln.startswith("redis_key_size{"))
        print(
            f"peer --check-keys over {len(theirs.latencies)} scrapes: p50 {ppeer50:.1f} ms, "
            f"p99 {ppeer99:.1f} ms; redis_key_size series {key_series} (DBSIZE {dbsize}); "
            f"{len(theirs.body)} bytes"
        )
        peer_slow = slowlog_of(conn.slowlog_get(-1), PEER_CLIENT_NAME)
        print("peer commands >= 1 ms inside Redis (slowlog-log-slower-than 1000):")
        print_slow(peer_slow, PEER_CLIENT_NAME)
        theirs.close()
        stop_pid(peer)

        # context: the peer reading one key instead of scanning
        single_key = layout.sessions_keys()[0]
        single_port = free_port()
        single = subprocess.Popen(
            [
                PEER,
                "--redis.addr",
                server.url,
                "--web.listen-address",
                f"{LOOPBACK}:{single_port}",
                "--check-single-keys",
                single_key,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        stack.callback(stop_pid, single)
        wait_tcp(single_port, single, "prometheus-redis-exporter (single key)")
        one = Scraper(single_port, timeout=60)
        stack.callback(one.close)
        for _ in range(WARMUP):
            one.get(record=False)
        for _ in range(args.single_scrapes):
            one.get()
        s50, s99, _ = summary(one.latencies)
        print(
            f"context: peer --check-single-keys {single_key} over {args.single_scrapes} scrapes: "
            f"p50 {s50:.2f} ms, p99 {s99:.2f} ms"
        )
        one.close()
        stop_pid(single)

    # -- verdict ------------------------------------------------------------------------------
    ratio = results["peer_p50"] / results["mw_p50"]
    print("\nTargets:")
    print(
        f"  p99 scrape < {TARGET_P99_MS:.0f} ms: {results['mw_p99']:.2f} ms -> "
        f"{verdict(results['mw_p99'] < TARGET_P99_MS)}"
    )
    print(
        f"  >= {TARGET_RATIO:.0f}x faster than the peer (p50 {results['peer_p50']:.1f} ms / "
        f"{results['mw_p50']:.2f} ms): {ratio:,.0f}x -> {verdict(ratio >= TARGET_RATIO)}"
    )
    print(
        f"  no command of ours slower than {TARGET_CMD_US} us inside Redis: slowest "
        f"{results['slowest_us']:.0f} us -> {verdict(results['slowest_us'] < TARGET_CMD_US)}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sessions", type=int, default=1_000_000)
    parser.add_argument("--locks", type=int, default=10_000)
    parser.add_argument("--tools", type=int, default=100_000)
    parser.add_argument("--lock-names", type=int, default=100, help="lock kinds with counters")
    parser.add_argument("--tool-names", type=int, default=200, help="distinct tool names")
    parser.add_argument("--no-users", action="store_true", help="skip the user->sessions sets")
    parser.add_argument("--scrapes", type=int, default=200)
    parser.add_argument("--peer-scrapes", type=int, default=5)
    parser.add_argument("--peer-budget", type=float, default=600.0, help="seconds for the peer")
    parser.add_argument("--peer-batch", type=int, default=1000, help="--check-keys-batch-size")
    parser.add_argument("--single-scrapes", type=int, default=50)
    args = parser.parse_args(argv)
    if args.lock_names > args.locks:
        parser.error("--lock-names must not exceed --locks")
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
