"""Benchmark of durable mode (``min_replicas=1``) against the default mode and plain redis-py.

One run on a private redis-server master with one real replica (tests/harness.py):

    python bench/bench_durable.py [--calls 2000] [--rounds 20] [--count-calls 500] [--no-asyncio]

For ``run_tool`` (claim + complete), ``history(...).append`` and ``lock`` acquire+release,
sync and asyncio clients, prints per call latency (p50, p99, mean, calls/s) of four
contenders measured in interleaved rounds:

  memorywatch default          the SDK, no replication wait
  memorywatch min_replicas=1   durable mode: ``WAIT 1 timeout`` pipelined behind each write
  redis-py                     the minimal raw commands of the same operation:
                                 run_tool  SET NX PX (claim), SET PX (result): 2 round trips
                                 append    RPUSH + PEXPIRE in one pipeline: 1 round trip
                                 lock      SET NX PX, compare-and-delete script: 2 round trips
  redis-py + WAIT 1            the same with ``WAIT 1 timeout`` behind each write in the same
                               non-transactional pipeline (what durable mode does)

then ratios (durable/default; each against its redis-py peer; the microseconds WAIT adds)
and the round trips and commands per call counted on the master from ``INFO stats``
(``total_reads_processed``, minus the replica's ``REPLCONF ACK`` reads) and
``INFO commandstats`` deltas. Only loopback; both servers are stopped by their pids.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import itertools
import json
import os
import re
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import redis
import redis.asyncio as aredis

from harness import master_with_replica
from memorywatch.agent import AgentState, ToolContext, _values, aio
from memorywatch.agent.errors import StateNotDurable

OPS = ("run_tool", "history.append", "lock")
OURS, OURS_DURABLE, PEER, PEER_DURABLE = (
    "memorywatch default",
    "memorywatch min_replicas=1",
    "redis-py",
    "redis-py + WAIT 1",
)
CONTENDERS = (OURS, OURS_DURABLE, PEER, PEER_DURABLE)
TEXT = "A message of typical length for a chat turn, about a hundred characters long......"
SCRIPT_COMMANDS = frozenset(
    cmd.lower()
    for text in _values.SCRIPT_TEXTS.values()
    for cmd in re.findall(r"redis\.call\('([A-Z]+)'", text)
)
# The peer's lock release: compare-and-delete, as redis-py's own Lock does it.
PEER_RELEASE = (
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
)
PEER_RELEASE_COMMANDS = frozenset({"get", "del"})
# Commands the bench itself (admin connection) and the replication link send.
NOT_THE_CLIENT = frozenset({"config|resetstat", "info", "replconf"})


@dataclass
class Contender:
    op: str
    name: str
    call: Callable[[int], Any]
    """One operation; the argument makes its keys unique. Returns an awaitable on asyncio."""
    inside: frozenset[str]
    """Commands its scripts run inside Redis (counted by commandstats, not sent by it)."""
    rounds: list[list[int]] = field(default_factory=list)
    """Per-call latencies, ns, one list per round."""
    cpu: list[float] = field(default_factory=list)
    """Client CPU (this process, all threads), us per call, one value per round."""
    refused: int = 0
    """Writes fewer replicas acknowledged than asked (StateNotDurable, or WAIT said 0)."""
    trips: float = 0.0
    sent: dict[str, float] = field(default_factory=dict)
    counter: Iterator[int] = field(default_factory=itertools.count)

    def latencies(self) -> list[int]:
        return [ns for one in self.rounds for ns in one]


# -- the contenders -------------------------------------------------------------------------------
def tool(ctx: ToolContext, n: int) -> dict[str, int]:
    return {"n": n}


async def atool(ctx: ToolContext, n: int) -> dict[str, int]:
    return {"n": n}


def refusing(contender: Contender, fn: Callable[[int], Any]) -> Callable[[int], Any]:
    def call(i: int) -> None:
        try:
            fn(i)
        except StateNotDurable:
            contender.refused += 1

    return call


def arefusing(contender: Contender, fn: Callable[[int], Awaitable[Any]]) -> Callable[[int], Any]:
    async def call(i: int) -> None:
        try:
            await fn(i)
        except StateNotDurable:
            contender.refused += 1

    return call


@dataclass(frozen=True)
class PeerSettings:
    """What the raw peer writes, taken from the SDK's own defaults."""

    wait_ms: int
    claim_px: int = _values.ms(_values.Settings().tool_deadline)
    retention_px: int = _values.ms(_values.Settings().tool_retention)
    session_px: int = _values.ms(_values.Settings().session_ttl)
    lock_px: int = 30_000


def sync_contenders(url: str, timeout: float, closers: list[Callable[[], Any]]) -> list[Contender]:
    default = AgentState.from_url(url, namespace="bd-sync", instance_id="bench")
    durable = AgentState.from_url(
        url,
        namespace="bd-sync-durable",
        instance_id="bench",
        min_replicas=1,
        replica_timeout=timeout,
    )
    client = redis.Redis.from_url(url)
    closers += [default.close, durable.close, client.close]
    release_sha = client.script_load(PEER_RELEASE)
    peer = PeerSettings(wait_ms=_values.ms(timeout))
    found: list[Contender] = []

    for name, state in ((OURS, default), (OURS_DURABLE, durable)):
        history = state.history("bench-session")

        def run_tool(i: int, state: AgentState = state) -> None:
            state.run_tool("create_ticket", f"key-{i}", tool, i)

        def append(i: int, history: Any = history) -> None:
            history.append("user", TEXT)

        def lock(i: int, state: AgentState = state) -> None:
            with state.lock("bench", "order-42", ttl=30, wait=1):
                pass

        for op, fn in zip(OPS, (run_tool, append, lock), strict=True):
            contender = Contender(op, name, fn, SCRIPT_COMMANDS)
            contender.call = refusing(contender, fn)
            found.append(contender)

    for name, wait in ((PEER, False), (PEER_DURABLE, True)):
        ns = "bd-peer-durable" if wait else "bd-peer"

        def write(contender: Contender, *command: Any, wait: bool = wait) -> Any:
            """One write, alone or with WAIT behind it in a non-transactional pipeline."""
            if not wait:
                return client.execute_command(*command)
            pipe = client.pipeline(transaction=False)
            pipe.execute_command(*command)
            pipe.execute_command("WAIT", 1, peer.wait_ms)
            reply, acked = pipe.execute()
            if int(acked) < 1:
                contender.refused += 1
            return reply

        tool_c = Contender("run_tool", name, lambda i: None, frozenset())
        append_c = Contender("history.append", name, lambda i: None, frozenset())
        lock_c = Contender("lock", name, lambda i: None, PEER_RELEASE_COMMANDS)

        def peer_tool(i: int, c: Contender = tool_c, write: Any = write, ns: str = ns) -> None:
            key = f"{ns}:tool:key-{i}"
            if not write(c, "SET", key, "in_progress|bench", "NX", "PX", peer.claim_px):
                raise RuntimeError(f"{key} already claimed")
            result = json.dumps(tool(None, i))  # type: ignore[arg-type]
            write(c, "SET", key, result, "PX", peer.retention_px)

        def peer_append(i: int, c: Contender = append_c, wait: bool = wait, ns: str = ns) -> None:
            key = f"{ns}:hist:bench-session"
            message = json.dumps({"role": "user", "text": TEXT, "ts": time.time()})
            pipe = client.pipeline(transaction=False)
            pipe.rpush(key, message)
            pipe.pexpire(key, peer.session_px)
            if wait:
                pipe.execute_command("WAIT", 1, peer.wait_ms)
                *_, acked = pipe.execute()
                if int(acked) < 1:
                    c.refused += 1
            else:
                pipe.execute()

        def peer_lock(i: int, c: Contender = lock_c, write: Any = write, ns: str = ns) -> None:
            key, token = f"{ns}:lock:order-42", f"bench|{i}"
            if not write(c, "SET", key, token, "NX", "PX", peer.lock_px):
                raise RuntimeError(f"{key} is held")
            client.evalsha(release_sha, 1, key, token)

        tool_c.call, append_c.call, lock_c.call = peer_tool, peer_append, peer_lock
        found += [tool_c, append_c, lock_c]
    return found


def async_contenders(url: str, timeout: float, closers: list[Callable[[], Any]]) -> list[Contender]:
    """Made inside the running loop (redis.asyncio binds its connections to it)."""
    default = aio.AgentState.from_url(url, namespace="bd-aio", instance_id="bench")
    durable = aio.AgentState.from_url(
        url,
        namespace="bd-aio-durable",
        instance_id="bench",
        min_replicas=1,
        replica_timeout=timeout,
    )
    client = aredis.Redis.from_url(url)
    closers += [default.aclose, durable.aclose, client.aclose]
    peer = PeerSettings(wait_ms=_values.ms(timeout))
    found: list[Contender] = []

    for name, state in ((OURS, default), (OURS_DURABLE, durable)):
        history = state.history("bench-session")

        async def run_tool(i: int, state: aio.AgentState = state) -> None:
            await state.run_tool("create_ticket", f"key-{i}", atool, i)

        async def append(i: int, history: Any = history) -> None:
            await history.append("user", TEXT)

        async def lock(i: int, state: aio.AgentState = state) -> None:
            async with state.lock("bench", "order-42", ttl=30, wait=1):
                pass

        for op, fn in zip(OPS, (run_tool, append, lock), strict=True):
            contender = Contender(op, name, fn, SCRIPT_COMMANDS)
            contender.call = arefusing(contender, fn)
            found.append(contender)

    release_sha: list[str] = []

    for name, wait in ((PEER, False), (PEER_DURABLE, True)):
        ns = "bd-apeer-durable" if wait else "bd-apeer"

        async def write(contender: Contender, *command: Any, wait: bool = wait) -> Any:
            if not wait:
                return await client.execute_command(*command)
            pipe = client.pipeline(transaction=False)
            pipe.execute_command(*command)
            pipe.execute_command("WAIT", 1, peer.wait_ms)
            reply, acked = await pipe.execute()
            if int(acked) < 1:
                contender.refused += 1
            return reply

        tool_c = Contender("run_tool", name, lambda i: None, frozenset())
        append_c = Contender("history.append", name, lambda i: None, frozenset())
        lock_c = Contender("lock", name, lambda i: None, PEER_RELEASE_COMMANDS)

        async def peer_tool(
            i: int, c: Contender = tool_c, write: Any = write, ns: str = ns
        ) -> None:
            key = f"{ns}:tool:key-{i}"
            if not await write(c, "SET", key, "in_progress|bench", "NX", "PX", peer.claim_px):
                raise RuntimeError(f"{key} already claimed")
            result = json.dumps(await atool(None, i))  # type: ignore[arg-type]
            await write(c, "SET", key, result, "PX", peer.retention_px)

        async def peer_append(
            i: int, c: Contender = append_c, wait: bool = wait, ns: str = ns
        ) -> None:
            key = f"{ns}:hist:bench-session"
            message = json.dumps({"role": "user", "text": TEXT, "ts": time.time()})
            pipe = client.pipeline(transaction=False)
            pipe.rpush(key, message)
            pipe.pexpire(key, peer.session_px)
            if wait:
                pipe.execute_command("WAIT", 1, peer.wait_ms)
                *_, acked = await pipe.execute()
                if int(acked) < 1:
                    c.refused += 1
            else:
                await pipe.execute()

        async def peer_lock(
            i: int, c: Contender = lock_c, write: Any = write, ns: str = ns
        ) -> None:
            if not release_sha:
                release_sha.append(await client.script_load(PEER_RELEASE))
            key, token = f"{ns}:lock:order-42", f"bench|{i}"
            if not await write(c, "SET", key, token, "NX", "PX", peer.lock_px):
                raise RuntimeError(f"{key} is held")
            await client.evalsha(release_sha[0], 1, key, token)

        tool_c.call, append_c.call, lock_c.call = peer_tool, peer_append, peer_lock
        found += [tool_c, append_c, lock_c]
    return found


# -- measuring ------------------------------------------------------------------------------------
WARMUP = 20  # connections made, scripts loaded, schema written


def round_robin(contenders: list[Contender], rounds: int) -> Iterator[tuple[Contender, int]]:
    """Many short rounds per operation, in alternating order: on a shared VM the speed
    drifts within a minute, which one long run per contender turns into an error in the
    ratio. Yields (contender, round)."""
    for op in OPS:
        mine = [c for c in contenders if c.op == op]
        for round_no in range(rounds):
            for contender in mine if round_no % 2 else reversed(mine):
                yield contender, round_no


def measure_sync(contenders: list[Contender], calls: int, rounds: int) -> None:
    for c in contenders:
        for _ in range(WARMUP):
            c.call(next(c.counter))
    per_round = max(1, calls // rounds)
    clock, cpu_clock = time.perf_counter_ns, time.process_time_ns
    for c, _ in round_robin(contenders, rounds):
        out: list[int] = []
        call, counter = c.call, c.counter
        cpu = cpu_clock()
        for _ in range(per_round):
            i = next(counter)
            started = clock()
            call(i)
            out.append(clock() - started)
        c.cpu.append((cpu_clock() - cpu) / per_round / 1e3)
        c.rounds.append(out)


async def measure_async(contenders: list[Contender], calls: int, rounds: int) -> None:
    for c in contenders:
        for _ in range(WARMUP):
            await c.call(next(c.counter))
    per_round = max(1, calls // rounds)
    clock, cpu_clock = time.perf_counter_ns, time.process_time_ns
    for c, _ in round_robin(contenders, rounds):
        out: list[int] = []
        call, counter = c.call, c.counter
        cpu = cpu_clock()
        for _ in range(per_round):
            i = next(counter)
            started = clock()
            await call(i)
            out.append(clock() - started)
        c.cpu.append((cpu_clock() - cpu) / per_round / 1e3)
        c.rounds.append(out)


@contextlib.contextmanager
def counting(admin: redis.Redis, contender: Contender, calls: int) -> Iterator[None]:
    """Round trips and commands per call of what runs inside, from the master's INFO."""
    admin.config_resetstat()
    yield
    info = admin.execute_command("INFO", "stats", "commandstats")
    stats = {k.removeprefix("cmdstat_"): v["calls"] for k, v in info.items() if "cmdstat_" in k}
    # Every socket read of the master: the client's requests, the replica's REPLCONF ACKs
    # (one per WAIT, one a second) and this INFO.
    reads = info["total_reads_processed"] - stats.get("replconf", 0) - 1
    contender.trips = reads / calls
    contender.sent = {
        cmd: n / calls
        for cmd, n in sorted(stats.items())
        if cmd not in NOT_THE_CLIENT and cmd.split("|")[0] not in contender.inside
    }


def count_sync(admin: redis.Redis, contenders: list[Contender], calls: int) -> None:
    for c in contenders:
        with counting(admin, c, calls):
            for _ in range(calls):
                c.call(next(c.counter))


async def count_async(admin: redis.Redis, contenders: list[Contender], calls: int) -> None:
    for c in contenders:
        with counting(admin, c, calls):  # the admin is sync: nothing else runs meanwhile
            for _ in range(calls):
                await c.call(next(c.counter))


async def run_async(url: str, timeout: float, args: argparse.Namespace) -> list[Contender]:
    admin = redis.Redis.from_url(url, decode_responses=True)
    closers: list[Callable[[], Any]] = []
    try:
        contenders = async_contenders(url, timeout, closers)
        await measure_async(contenders, args.calls, args.rounds)
        await count_async(admin, contenders, args.count_calls)
        return contenders
    finally:
        for close in closers:
            result = close()
            if inspect.isawaitable(result):
                await result
        admin.close()


# -- printing -------------------------------------------------------------------------------------
def pct(values: list[int], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


@dataclass(frozen=True)
class Numbers:
    p50: float
    p99: float
    mean: float
    per_second: float
    cpu: float


def numbers(c: Contender) -> Numbers:
    ns = c.latencies()
    total = sum(ns)
    return Numbers(
        pct(ns, 50) / 1e3,
        pct(ns, 99) / 1e3,
        total / len(ns) / 1e3,
        len(ns) / total * 1e9,
        statistics.median(c.cpu),
    )


def ratio(a: Contender, b: Contender) -> tuple[float, float, float]:
    """(median, lower and upper quartile) over rounds of p50(a) / p50(b)."""
    per_round = sorted(
        statistics.median(x) / statistics.median(y) for x, y in zip(a.rounds, b.rounds, strict=True)
    )
    if len(per_round) < 2:
        return per_round[0], per_round[0], per_round[0]
    q1, q2, q3 = statistics.quantiles(per_round, n=4, method="inclusive")
    return q2, q1, q3


def fmt_ratio(r: tuple[float, float, float]) -> str:
    return f"{r[0]:.2f}x ({r[1]:.2f}-{r[2]:.2f})"


def fmt_sent(sent: dict[str, float]) -> str:
    return ", ".join(f"{cmd} {n:.2f}" for cmd, n in sent.items()) or "-"


def report(title: str, contenders: list[Contender], calls: int, rounds: int) -> dict[str, Any]:
    by = {(c.op, c.name): c for c in contenders}
    per_round = max(1, calls // rounds)
    print(f"\n{title}: {per_round * rounds} timed calls per contender, {rounds} interleaved rounds")
    summary: dict[str, Any] = {}
    for op in OPS:
        print(
            f"  {op:<28} {'p50 us':>9} {'p99 us':>9} {'mean us':>9} {'calls/s':>9} {'cpu us':>7}  refused"
        )
        got = {name: numbers(by[op, name]) for name in CONTENDERS}
        for name in CONTENDERS:
            n = got[name]
            print(
                f"    {name:<26} {n.p50:9.1f} {n.p99:9.1f} {n.mean:9.1f} {n.per_second:9.0f}"
                f" {n.cpu:7.0f}  {by[op, name].refused}"
            )
        ours_cost = ratio(by[op, OURS_DURABLE], by[op, OURS])
        peer_cost = ratio(by[op, PEER_DURABLE], by[op, PEER])
        vs_default = ratio(by[op, OURS], by[op, PEER])
        vs_durable = ratio(by[op, OURS_DURABLE], by[op, PEER_DURABLE])
        mean_cost = got[OURS_DURABLE].mean / got[OURS].mean
        print(
            f"    durable/default (p50, per-round quartiles): memorywatch {fmt_ratio(ours_cost)}, "
            f"redis-py {fmt_ratio(peer_cost)}; mean {mean_cost:.2f}x"
        )
        print(
            f"    memorywatch / redis-py (p50): default {fmt_ratio(vs_default)}, "
            f"durable {fmt_ratio(vs_durable)}"
        )
        print(
            f"    WAIT adds (p50): memorywatch {got[OURS_DURABLE].p50 - got[OURS].p50:+.0f} us, "
            f"redis-py {got[PEER_DURABLE].p50 - got[PEER].p50:+.0f} us"
        )
        summary[op] = {
            "cost": ours_cost[0],
            "peer_cost": peer_cost[0],
            "vs_default": vs_default[0],
            "vs_durable": vs_durable[0],
            "added": got[OURS_DURABLE].p50 - got[OURS].p50,
            "peer_added": got[PEER_DURABLE].p50 - got[PEER].p50,
            "trips": (by[op, OURS].trips, by[op, OURS_DURABLE].trips),
            "waits": by[op, OURS_DURABLE].sent.get("wait", 0.0),
        }
    return summary


def report_trips(title: str, contenders: list[Contender], calls: int) -> None:
    print(
        f"\n{title}: round trips and commands per call, from the master's INFO deltas "
        f"({calls} calls each; round trips = total_reads_processed minus the replica's REPLCONF)"
    )
    for c in contenders:
        print(f"  {c.op:<15} {c.name:<26} {c.trips:5.2f} round trips   sent: {fmt_sent(c.sent)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="timed calls per contender")
    parser.add_argument("--rounds", type=int, default=20, help="interleaved rounds")
    parser.add_argument("--count-calls", type=int, default=500, help="calls per INFO count")
    parser.add_argument("--replica-timeout", type=float, default=_values.DEFAULT_REPLICA_TIMEOUT)
    parser.add_argument(
        "--asyncio",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="bench the asyncio client too (default: yes)",
    )
    args = parser.parse_args()
    if args.calls < args.rounds or args.rounds < 1:
        parser.error("--calls must be at least --rounds, which must be at least 1")
    started = time.monotonic()
    with master_with_replica() as (master, replica):
        admin = master.client()
        replication = admin.info("replication")
        print(
            f"redis-server {admin.info('server')['redis_version']} master on {master.url} "
            f"(pid {master.proc.pid if master.proc else '?'}), "
            f"{replication['connected_slaves']} replica on {replica.url} "
            f"(pid {replica.proc.pid if replica.proc else '?'}, link "
            f"{replica.client().info('replication')['master_link_status']})\n"
            f"redis-py {redis.__version__}, Python {sys.version.split()[0]}, "
            f"{os.cpu_count()} CPUs; durable: min_replicas=1, "
            f"replica_timeout={args.replica_timeout:g}s (WAIT 1 {_values.ms(args.replica_timeout)})"
        )
        closers: list[Callable[[], Any]] = []
        try:
            sync = sync_contenders(master.url, args.replica_timeout, closers)
            measure_sync(sync, args.calls, args.rounds)
            count_sync(admin, sync, args.count_calls)
        finally:
            for close in closers:
                close()
        aio_contenders = (
            asyncio.run(run_async(master.url, args.replica_timeout, args)) if args.asyncio else []
        )
        replica_offset = replica.client().info("replication").get("master_repl_offset")
        offset = admin.info("replication")["master_repl_offset"]
        admin.close()
    # the servers are stopped (by pid) when master_with_replica exits

    sync_summary = report(
        "sync client (memorywatch.agent.AgentState)", sync, args.calls, args.rounds
    )
    report_trips("sync client", sync, args.count_calls)
    aio_summary: dict[str, Any] = {}
    if aio_contenders:
        aio_summary = report(
            "asyncio client (memorywatch.agent.aio.AgentState)",
            aio_contenders,
            args.calls,
            args.rounds,
        )
        report_trips("asyncio client", aio_contenders, args.count_calls)

    refused = sum(c.refused for c in [*sync, *aio_contenders])
    print(f"\nreplication offset at the end: master {offset}, replica {replica_offset}")
    print(f"\nsummary ({time.monotonic() - started:.0f} s; p50, ratios are medians over rounds):")
    print(
        f"  {'':<23} {'durable/default':^17} {'WAIT adds, us':^17} "
        f"{'/ redis-py':^15} round trips per call"
    )
    print(
        f"  {'client  operation':<23} {'ours':>8} {'redis-py':>8} {'ours':>8} {'redis-py':>8} "
        f"{'default':>7} {'durable':>7} default -> durable (WAITs)"
    )
    for label, found in (("sync", sync_summary), ("asyncio", aio_summary)):
        for op, s in found.items():
            print(
                f"  {label:<7} {op:<15} {s['cost']:7.2f}x {s['peer_cost']:7.2f}x "
                f"{s['added']:+8.0f} {s['peer_added']:+8.0f} "
                f"{s['vs_default']:6.2f}x {s['vs_durable']:6.2f}x "
                f"{s['trips'][0]:.2f} -> {s['trips'][1]:.2f} ({s['waits']:.2f})"
            )
    print(f"  writes refused (fewer replicas than asked in time): {refused}")


if __name__ == "__main__":
    main()
