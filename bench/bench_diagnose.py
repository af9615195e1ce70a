"""Benchmark `memorywatch diagnose` against a Redis holding 1M sessions (issue: under 2 s).

Not a test: it starts a redis-server on a free loopback port and fills it with bench_fleet's
agent state (1M sessions, 10k held locks, 100k tool records, counter hashes, through one
`redis-cli --pipe`), seeds real causes (tool claims stuck in progress whose holder sends no
heartbeat; maxmemory just above used memory), then times `python -m memorywatch diagnose
--format json` as a user runs it and `diagnose()` in this process. It prints the commands each
run sent and the slowest of them inside Redis (INFO commandstats delta, SLOWLOG with
slowlog-log-slower-than 0), checks the runs wrote nothing (rdb_changes_since_last_save, DBSIZE),
and, as the peer, times what an on-call engineer types to count sessions by hand:
`redis-cli --scan --pattern 'NS:*:hist:*' | wc -l`. Every process it starts is stopped by its
pid. Exits 0 whatever it finds.

    python bench/bench_diagnose.py [--sessions 1000000] [--runs 5]
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import json
import os
import platform
import pstats
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # harness
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_fleet's fill

import redis

import memorywatch
from bench_fleet import (
    REDIS_CLI,
    FillPlan,
    command_output,
    fill,
    heartbeats,
    percentile,
    text,
)
from harness import LOOPBACK, RedisServer, stop_pid
from memorywatch import schema
from memorywatch import thresholds as th
from memorywatch.diagnose.run import diagnose
from memorywatch.exporter import config as exporter_config
from memorywatch.exporter.fleet_options import FleetOptions
from memorywatch.exporter.scrape import CLIENT_NAME

TARGET_SECONDS = 2.0
BENCH_CLIENT = "bench-diagnose"
STUCK_CLAIMS = 3
"""Seeded tool claims in progress for 10-20 min, held by an instance with no heartbeat."""
STUCK_TOOL = "refund_order"
DEAD_INSTANCE = "agent-dead-0badc0de"
MEMORY_SHARE = 0.85
"""maxmemory is set so that used_memory is this share of it (RedisMemoryHigh warns at 0.8)."""
SEEDED = ("AgentToolOrphaned", "RedisMemoryHigh")
SAMPLE_COMMANDS = ("dbsize", "scan", "type", "pttl", "memory|usage")
"""What the one-shot keyspace sample sends: its time inside Redis is theirs."""
SLOWLOG_MAX_LEN = 100_000
PROFILE_TOP = 12
IMPORT_TOP = 8


# -- helpers -------------------------------------------------------------------------------------
def verdict(ok: bool) -> str:
    return "met" if ok else "missed"


def seconds_summary(values: Sequence[float]) -> str:
    return f"p50 {percentile(values, 50):.3f} s, max {max(values):.3f} s"


def commandstats(conn: redis.Redis) -> dict[str, tuple[int, int]]:
    """command -> (calls, usec) from INFO commandstats."""
    raw: dict[str, Any] = conn.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): (int(v["calls"]), int(v["usec"]))
        for name, v in raw.items()
        if isinstance(v, dict)
    }


def persistence_dirty(conn: redis.Redis) -> int:
    return int(conn.info("persistence")["rdb_changes_since_last_save"])


@dataclass
class RedisSide:
    """What Redis saw during one phase, from clients other than this script's."""

    calls: Counter[str]
    usec: Counter[str]
    slowlog: list[tuple[int, str]]
    """(duration us, command) of the diagnose clients, slowest first."""
    slowlog_other: Counter[str] = field(default_factory=Counter)
    dirty_delta: int = 0
    dbsize_delta: int = 0


def observe(conn: redis.Redis, action: Callable[[], None], client_name: str | None) -> RedisSide:
    """Run ``action`` between two INFO commandstats; read-only check around both."""
    conn.slowlog_reset()
    dirty0, dbsize0 = persistence_dirty(conn), int(conn.dbsize())
    before = commandstats(conn)
    action()
    after = commandstats(conn)
    dirty1, dbsize1 = persistence_dirty(conn), int(conn.dbsize())
    calls: Counter[str] = Counter()
    usec: Counter[str] = Counter()
    for name, (n, us) in after.items():
        n0, us0 = before.get(name, (0, 0))
        if n - n0:
            calls[name] += n - n0
            usec[name] += us - us0
    calls["info"] -= 1  # our own INFO commandstats (the first one, counted by the second)
    calls = +calls
    entries: list[dict[str, Any]] = conn.slowlog_get(SLOWLOG_MAX_LEN)
    ours: list[tuple[int, str]] = []
    other: Counter[str] = Counter()
    for entry in entries:
        name = text(entry.get("client_name", "")) or "(none)"
        command = text(entry.get("command", ""))
        if name == BENCH_CLIENT:
            continue
        if client_name is None or name == client_name:
            ours.append((int(entry["duration"]), command))
        else:
            other[f"{name}: {command.split(' ', 1)[0].upper()}"] += 1
    ours.sort(reverse=True)
    return RedisSide(calls, usec, ours, other, dirty1 - dirty0, dbsize1 - dbsize0)


def print_redis_side(side: RedisSide, runs: int, who: str) -> None:
    total = sum(side.calls.values())
    per_run = ", ".join(
        f"{name} {n / runs:g}" for name, n in sorted(side.calls.items(), key=lambda kv: -kv[1])
    )
    print(
        f"  commands sent (INFO commandstats delta): {total} = {total / runs:g} per run: {per_run}"
    )
    print(
        f"  SLOWLOG (slowlog-log-slower-than 0) entries of client '{who}': {len(side.slowlog)} "
        f"({len(side.slowlog) / runs:g} per run); inside Redis all together "
        f"{sum(d for d, _ in side.slowlog) / runs / 1e3:.2f} ms per run"
        + (f"; other clients: {dict(side.slowlog_other)}" if side.slowlog_other else "")
    )
    for duration, command in side.slowlog[:3]:
        print(f"    slowest: {duration:>6} us  {command[:100]}")
    sampled = {c: side.usec.get(c, 0) for c in SAMPLE_COMMANDS if side.calls.get(c)}
    print(
        f"  the keyspace sample inside Redis: {sum(sampled.values()) / runs / 1e3:.1f} ms per run ("
        + ", ".join(
            f"{c} {side.calls[c] / runs:g} calls {us / runs / 1e3:.1f} ms"
            for c, us in sampled.items()
        )
        + ")"
    )
    ok = side.dirty_delta == 0 and side.dbsize_delta == 0
    print(
        f"  read-only: rdb_changes_since_last_save +{side.dirty_delta}, DBSIZE "
        f"{side.dbsize_delta:+d} -> {'ok' if ok else '!!! THE RUNS WROTE TO REDIS !!!'}"
    )


# -- setup ---------------------------------------------------------------------------------------
def versions() -> None:
    git = subprocess.run(
        ["git", "-C", str(Path(__file__).resolve().parent.parent), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        timeout=10,
    ).stdout.strip()
    rows = {
        "python": sys.version.split()[0],
        "redis-py": redis.__version__,
        "memorywatch": f"{memorywatch.__version__} (git {git or 'unknown'})",
        "redis-server": command_output(["redis-server", "--version"]),
        "redis-cli": command_output([REDIS_CLI, "--version"]),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.release()}",
    }
    for name, value in rows.items():
        print(f"{name:<16}{value}")
    print()


def seed_stuck_claims(conn: redis.Redis, layout: schema.Schema) -> None:
    """Tool claims in progress for 10-20 min whose holder has no heartbeat (it died)."""
    seconds, micros = conn.time()
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    deadline_ms = int(schema.DEFAULT_TOOL_DEADLINE * 1000)
    pipe = conn.pipeline(transaction=False)
    for n in range(STUCK_CLAIMS):
        idem = f"call_stuck_{n:04d}"
        record = layout.tool(idem)
        started = now_ms - (10 + 5 * n) * 60_000
        pipe.hset(
            record,
            mapping={
                schema.TOOL_FIELD_STATE: schema.TOOL_STATE_IN_PROGRESS,
                schema.TOOL_FIELD_TOOL: STUCK_TOOL,
                schema.TOOL_FIELD_LABEL: STUCK_TOOL,
                schema.TOOL_FIELD_FINGERPRINT: f"{n:064x}",
                schema.TOOL_FIELD_OWNER: f"{DEAD_INSTANCE}|{n:012x}",
                schema.TOOL_FIELD_INSTANCE: DEAD_INSTANCE,
                schema.TOOL_FIELD_FENCE: 1,
                schema.TOOL_FIELD_STARTED_MS: started,
                schema.TOOL_FIELD_DEADLINE_MS: started + deadline_ms,
                schema.TOOL_FIELD_RESULT: "",
            },
        )
        pipe.pexpire(record, schema.DEFAULT_TOOL_RETENTION * 1000)
        pipe.zadd(layout.tools_in_progress(idem), {record: started})
    pipe.execute()


# -- the measured things -------------------------------------------------------------------------
def cli_command(url: str, namespace: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "memorywatch", "diagnose", "--redis-url", url,
            "--namespace", namespace, *extra]  # fmt: skip


def cli_env() -> dict[str, str]:
    """The user's environment without anything that would point diagnose elsewhere."""
    return {k: v for k, v in os.environ.items() if not k.startswith("MEMORYWATCH_")}


@dataclass
class CliRun:
    wall: float
    code: int
    report: dict[str, Any]


def run_cli(cmd: Sequence[str]) -> CliRun:
    start = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=cli_env())
    wall = time.perf_counter() - start
    try:
        report = json.loads(out.stdout)
    except ValueError:
        report = {"errors": [f"no JSON (exit {out.returncode}): {out.stderr[-500:]}"]}
    return CliRun(wall, out.returncode, report)


def import_cost(cmd: Sequence[str]) -> None:
    """`python -X importtime`: the start-up's import time by top-level package (self times)."""
    out = subprocess.run(
        [cmd[0], "-X", "importtime", *cmd[1:]],
        capture_output=True, text=True, timeout=60, env=cli_env(),
    )  # fmt: skip
    by_package: Counter[str] = Counter()
    for line in out.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)", line)
        if match:
            by_package[match.group(2).split(".")[0]] += int(match.group(1))
    total = sum(by_package.values())
    top = ", ".join(f"{name} {us / 1e3:.0f}" for name, us in by_package.most_common(IMPORT_TOP))
    print(
        f"  imports of `diagnose --help` (-X importtime): {total / 1e3:.0f} ms; ms by package: {top}"
    )


def profile_once(call: Callable[[], object]) -> None:
    """One in-process run under cProfile: cumulative time of the steps, top by own time."""
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.runcall(call)
    wall = time.perf_counter() - start
    stats = pstats.Stats(profiler)
    raw: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]
    steps = (
        ("facts.py", "gather"),
        ("discovery.py", "discover"),
        ("scrape.py", "fetch_snapshot"),
        ("scrape.py", "parse_info"),
        ("read.py", "read_fleet"),
        ("facts.py", "_clients"),
        ("run.py", "_ask_prometheus"),
    )
    print(f"  one in-process run under cProfile: {wall * 1e3:.1f} ms (profiler overhead included)")
    shown = []
    for (path, _, func), (_, ncalls, _, cum, _) in raw.items():
        for file_end, name in steps:
            if func == name and path.endswith(file_end) and "memorywatch" in path:
                shown.append((cum, f"{name} ({file_end})", ncalls))
    for cum, label, ncalls in sorted(shown, reverse=True):
        print(f"    {label:<32} cumulative {cum * 1e3:8.2f} ms  calls {ncalls}")
    print(f"  top {PROFILE_TOP} functions by own time:")
    ranked = sorted(raw.items(), key=lambda kv: -kv[1][2])[:PROFILE_TOP]
    for (path, line, func), (_, ncalls, tottime, cum, _) in ranked:
        where = f"{Path(path).name}:{line}" if line else path
        print(
            f"    own {tottime * 1e3:7.2f} ms  cum {cum * 1e3:7.2f} ms  calls {ncalls:>6}  "
            f"{func} ({where})"
        )


# -- main ----------------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> None:
    versions()
    layout = schema.Schema(namespace=schema.DEFAULT_NAMESPACE, shards=schema.STANDALONE_SHARDS)
    namespace = layout.namespace
    plan = FillPlan(
        sessions=args.sessions, users=True, locks=10_000, tools=100_000,
        lock_names=100, tool_names=200,
    )  # fmt: skip
    results: dict[str, float] = {}
    with contextlib.ExitStack() as stack:
        server = RedisServer()
        stack.callback(server.cleanup)
        server.start()
        conn = server.client(client_name=BENCH_CLIENT)
        stack.callback(conn.close)
        print(f"redis-server pid {server.proc.pid if server.proc else '?'} on port {server.port}")
        print(
            f"fill: {plan.sessions:,} sessions (with user sets), {plan.locks:,} held locks, "
            f"{plan.tools:,} tool records, counters; {layout.shards} shard, namespace "
            f"'{namespace}' (bench_fleet.fill through redis-cli --pipe)"
        )
        filled = fill(server.port, layout, plan)
        seed_stuck_claims(conn, layout)
        dbsize = int(conn.dbsize())
        expected = filled.expected_keys + STUCK_CLAIMS
        print(
            f"fill time: {filled.seconds:.1f} s ({filled.commands:,} commands); DBSIZE "
            f"{dbsize:,} (expected {expected:,}){'' if dbsize == expected else ' !!! MISMATCH'}"
        )
        used = int(conn.info("memory")["used_memory"])
        maxmemory = int(used / MEMORY_SHARE)
        conn.config_set("maxmemory", maxmemory)
        print(
            f"seeded causes: {STUCK_CLAIMS} '{STUCK_TOOL}' tool claims in progress for 10-20 min "
            f"held by {DEAD_INSTANCE} (no heartbeat); maxmemory {maxmemory / 2**20:,.0f} MiB with "
            f"used_memory {used / 2**20:,.0f} MiB ({MEMORY_SHARE:.0%}); the fill's own state "
            f"also carries counters of lost locks, duplicate runs, state misses, one not-ready "
            f"instance and pool timeouts (bench_fleet)"
        )
        conn.config_set("slowlog-log-slower-than", 0)
        conn.config_set("slowlog-max-len", SLOWLOG_MAX_LEN)

        # -- the CLI, as a user runs it ----------------------------------------------------------
        cmd = cli_command(server.url, namespace, "--format", "json")
        print(f"\nCLI: {' '.join(cmd[1:])} (python {sys.executable}), {args.runs} runs")
        heartbeats(conn, layout, filled.instances)  # live instances for the next minute
        runs: list[CliRun] = []

        def cli_runs() -> None:
            runs.extend(run_cli(cmd) for _ in range(args.runs))

        cli_side = observe(conn, cli_runs, CLIENT_NAME)
        floor = [run_cli([sys.executable, "-m", "memorywatch", "diagnose", "--help"]).wall
                 for _ in range(3)]  # fmt: skip
        walls = [r.wall for r in runs]
        results["cli_p50"] = percentile(walls, 50)
        print(
            "  wall per run: " + ", ".join(f"{w:.3f}" for w in walls) + f" s -> "
            f"{seconds_summary(walls)}"
        )
        reported = [float(r.report.get("elapsed_seconds", "nan")) for r in runs]
        print(
            f"  elapsed_seconds in the JSON (gather + checks, inside the process): "
            f"{seconds_summary(reported)}; process start-up + imports (python -m memorywatch "
            f"diagnose --help, 3 runs): p50 {percentile(floor, 50):.3f} s"
        )
        codes = Counter(r.code for r in runs)
        last = runs[-1].report
        found = [c["alert"] for c in last.get("causes", [])]
        print(f"  exit codes: {dict(codes)} (1 = causes found, 3 = clean but incomplete)")
        print(f"  causes found ({len(found)}, most likely first): {', '.join(found) or 'none'}")
        symptoms = [f"{c['alert']} (of {c['explained_by']})" for c in last.get("symptoms", [])]
        risks = [c["alert"] for c in last.get("risks", [])]
        print(f"  symptoms: {', '.join(symptoms) or 'none'}; risks: {', '.join(risks) or 'none'}")
        print(f"  {last.get('sample')}")
        blind = [c for c in last.get("checked", []) if c["outcome"] == "could not check"]
        if blind:
            print(f"  could not check: {[(c['alert'], c.get('reason')) for c in blind]}")
        missing = [a for a in SEEDED if a not in found]
        print(
            f"  seeded causes found: {', '.join(a for a in SEEDED if a in found) or 'none'}"
            + (f" !!! NOT FOUND: {', '.join(missing)}" if missing else "")
        )
        for cause in last.get("causes", []):
            if cause["alert"] in SEEDED:
                print(f"    {cause['alert']} ({cause['severity']}): {'; '.join(cause['evidence'])}")
        import_cost([sys.executable, "-m", "memorywatch", "diagnose", "--help"])
        if last.get("errors"):
            print(f"  errors: {last['errors']}")
        print_redis_side(cli_side, args.runs, CLIENT_NAME)

        # -- in process ----------------------------------------------------------------------------
        config = exporter_config.build_config(redis_url=server.url, namespace=namespace)
        table = th.load(None)
        options = FleetOptions(namespace=namespace)
        heartbeats(conn, layout, filled.instances)
        walls_in: list[float] = []
        elapsed_in: list[float] = []

        def in_process() -> None:
            for _ in range(args.runs):
                start = time.perf_counter()
                report = diagnose(config, options, table)
                walls_in.append(time.perf_counter() - start)
                elapsed_in.append(report.elapsed)

        print(f"\nin-process diagnose(config, options, table), {args.runs} runs")
        in_side = observe(conn, in_process, CLIENT_NAME)
        print(f"  wall {seconds_summary(walls_in)}; report.elapsed {seconds_summary(elapsed_in)}")
        print_redis_side(in_side, args.runs, CLIENT_NAME)
        profile_once(lambda: diagnose(config, options, table))

        # -- peer: counting sessions by hand ------------------------------------------------------
        conn.config_set("slowlog-log-slower-than", 1000)
        pattern = f"{namespace}:*:{schema.KIND_HISTORY}:*"
        peer_cmd = [REDIS_CLI, "-h", LOOPBACK, "-p", str(server.port), "--scan", "--pattern",
                    pattern]  # fmt: skip
        print(f"\npeer: {' '.join(peer_cmd[0:1] + peer_cmd[5:])} | wc -l  (SCAN of every key)")
        lines = [0]
        peer_wall = [0.0]

        def scan_walk() -> None:
            start = time.perf_counter()
            proc = subprocess.Popen(peer_cmd, stdout=subprocess.PIPE)
            try:
                assert proc.stdout is not None
                lines[0] = sum(1 for _ in proc.stdout)
                proc.wait(timeout=600)
            finally:
                stop_pid(proc)
            peer_wall[0] = time.perf_counter() - start

        peer_side = observe(conn, scan_walk, None)
        results["peer"] = peer_wall[0]
        scans, scan_us = peer_side.calls.get("scan", 0), peer_side.usec.get("scan", 0)
        print(
            f"  wall {peer_wall[0]:.2f} s, {lines[0]:,} session keys counted (sessions "
            f"{plan.sessions:,}); {scans:,} SCAN calls, {scan_us / 1e3:,.0f} ms inside Redis "
            f"({scan_us / max(1, scans):.1f} us each); SCAN calls >= 1 ms: "
            f"{sum(1 for _, c in peer_side.slowlog if c.upper().startswith('SCAN'))}"
        )
        ratio = results["peer"] / results["cli_p50"]
        print(
            f"  ratio: the SCAN walk takes {ratio:.1f}x the CLI's p50 "
            f"({results['peer']:.2f} s / {results['cli_p50']:.3f} s)"
        )

    # -- verdict ------------------------------------------------------------------------------
    p50 = results["cli_p50"]
    print(
        f"\ndiagnose p50 {p50:.3f} s at {args.sessions:,} sessions "
        f"(target < {TARGET_SECONDS:g} s: {verdict(p50 < TARGET_SECONDS)})"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sessions", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    if args.sessions < 1 or args.runs < 1:
        parser.error("--sessions and --runs must be at least 1")
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
