"""Benchmark of the LangGraph checkpoint saver against LangGraph's own PostgresSaver.

One run, both peers started by the bench on free loopback ports and stopped by pid:

    python bench/bench_langgraph.py [--supersteps 500] [--rounds 10] [--messages 20]

A superstep is what LangGraph does to its checkpointer on every step of a graph: ``put`` the
new checkpoint, ``put_writes`` of the task that ran, ``get_tuple`` of the thread's latest
checkpoint; timed are those three calls (serialization included), not the building of the
step's messages. The thread holds ``--messages`` chat messages (human and AI messages of about
200 characters, alternating); every step shifts it by one, so the state keeps its size.

  memorywatch    AgentStateSaver on a private redis-server (no modules), SDK defaults
                 (AgentState.from_url: instrumented pool, spans through the global no-op
                 tracer provider)
  postgres       langgraph-checkpoint-postgres' PostgresSaver on Debian's PostgreSQL
                 (initdb in a temp dir, fsync off as for a test database, one connection,
                 autocommit, as ``PostgresSaver.from_conn_string`` opens it)

Rounds alternate the peers (each its own thread); prints per superstep latency p50 / p99 /
mean and the ratio memorywatch / postgres (target: at most 0.5x at p50), and the median of
the per-round p50 ratios (each round measures both peers back to back, so a shared machine's
changing load weighs less on it). PostgreSQL's
binaries are looked up on PATH and in /usr/lib/postgresql/*/bin; without them the bench
prints one line saying how to install them and exits 2.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from harness import LOOPBACK, free_port, redis_server, stop_pid, wait_until
from memorywatch.agent import AgentState

OURS, PEER = "memorywatch", "postgres"


def pg_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def _as_postgres(argv: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run it as the ``postgres`` user then."""
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", "postgres", "--", *argv]


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL cluster in a temp dir on a free loopback port: its URL."""
    initdb, postgres = pg_binary("initdb"), pg_binary("postgres")
    if initdb is None or postgres is None:
        print("bench_langgraph: PostgreSQL binaries not found: apt-get install postgresql")
        raise SystemExit(2)
    with tempfile.TemporaryDirectory(prefix="mw-pg-") as tmp:
        data = Path(tmp) / "data"
        if os.geteuid() == 0:
            shutil.chown(tmp, "postgres", "postgres")
        subprocess.run(
            _as_postgres([initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]),
            check=True,
            stdout=subprocess.DEVNULL,
        )
        port = free_port()
        log = open(Path(tmp) / "postgres.log", "wb")  # noqa: SIM115 (closed below)
        proc = subprocess.Popen(
            _as_postgres(
                [
                    postgres,
                    "-D",
                    str(data),
                    "-p",
                    str(port),
                    "-h",
                    LOOPBACK,
                    "-k",
                    tmp,
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                ]
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"postgresql://postgres@{LOOPBACK}:{port}/postgres"
        try:
            import psycopg

            wait_until(lambda: psycopg.connect(url).close() is None, 30, 0.1, "postgres up")
            yield url
        finally:
            # runuser forwards SIGTERM to postgres (smart shutdown), then exits with it
            stop_pid(proc, grace=15)
            log.close()


def messages(count: int, step: int) -> list[Any]:
    from langchain_core.messages import AIMessage, HumanMessage

    out: list[Any] = []
    for i in range(step, step + count):
        text = f"message {i}: " + "lorem ipsum dolor sit amet " * 7
        cls = HumanMessage if i % 2 == 0 else AIMessage
        out.append(cls(content=text, id=f"m{i}"))
    return out


class Thread:
    """One thread driven superstep by superstep, with the checkpoints LangGraph would write.

    ``prepare`` builds the next step's checkpoint and writes (untimed: building 21 chat
    messages is the graph's work, not the saver's); ``superstep`` makes the three calls."""

    def __init__(self, saver: Any, message_count: int) -> None:
        self.saver = saver
        self.message_count = message_count
        self.thread_id = uuid.uuid4().hex
        self.parent: dict[str, Any] | None = None
        self.step = 0
        self.next: tuple[Any, ...] = ()

    def prepare(self) -> None:
        from langgraph.checkpoint.base import create_checkpoint, empty_checkpoint
        from langgraph.checkpoint.base.id import uuid6

        step = self.step + 1
        checkpoint = create_checkpoint(empty_checkpoint(), None, step)
        checkpoint["id"] = str(uuid6(clock_seq=step))
        checkpoint["channel_values"] = {
            "messages": messages(self.message_count, step),
            "branch:to:model": None,
        }
        checkpoint["channel_versions"] = {"messages": step, "branch:to:model": step}
        checkpoint["versions_seen"] = {"model": {"messages": step - 1}}
        metadata: Any = {"source": "loop", "step": step, "parents": {}}
        versions = {"messages": step, "branch:to:model": step}
        writes = [("messages", messages(1, step + 1000))]
        self.next = (checkpoint, metadata, versions, writes, uuid.uuid4().hex)

    def superstep(self) -> None:
        checkpoint, metadata, versions, writes, task_id = self.next
        self.step += 1
        latest = {"configurable": {"thread_id": self.thread_id, "checkpoint_ns": ""}}
        stored = self.saver.put(self.parent or latest, checkpoint, metadata, versions)
        self.saver.put_writes(stored, writes, task_id, "model")
        found = self.saver.get_tuple(latest)
        assert found is not None and found.checkpoint["id"] == checkpoint["id"]
        self.parent = stored


def timed(thread: Thread, count: int) -> list[float]:
    out = []
    for _ in range(count):
        thread.prepare()
        start = time.perf_counter()
        thread.superstep()
        out.append(time.perf_counter() - start)
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--supersteps", type=int, default=500, help="timed per peer")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--messages", type=int, default=20)
    args = parser.parse_args(argv)
    if args.supersteps < args.rounds or args.rounds < 1:
        parser.error("--supersteps must be at least --rounds, and --rounds at least 1")
    try:
        from langgraph.checkpoint.postgres import PostgresSaver

        from memorywatch.integrations.langgraph import AgentStateSaver
    except ImportError as exc:
        print(f"bench_langgraph: {exc.name} is not installed: pip install -e '.[dev]'")
        return 2

    per_round = args.supersteps // args.rounds
    results: dict[str, list[float]] = {OURS: [], PEER: []}
    paired: list[float] = []  # per round: p50 ours / p50 postgres, measured back to back
    with redis_server() as redis_srv, postgres_server() as pg_url:
        state = AgentState.from_url(redis_srv.url, namespace="bench")
        with PostgresSaver.from_conn_string(pg_url) as pg_saver:
            pg_saver.setup()
            threads = {
                OURS: Thread(AgentStateSaver(state), args.messages),
                PEER: Thread(pg_saver, args.messages),
            }
            for thread in threads.values():  # warm up: connections, prepared statements, caches
                timed(thread, 30)
            for _ in range(args.rounds):
                this_round = {name: timed(thread, per_round) for name, thread in threads.items()}
                for name, values in this_round.items():
                    results[name] += values
                paired.append(pct(this_round[OURS], 0.5) / pct(this_round[PEER], 0.5))
        state.close()
    print(
        f"bench_langgraph {datetime.now(UTC):%Y-%m-%d}: superstep = put + put_writes + "
        f"get_tuple, thread of {args.messages} messages, {per_round * args.rounds} supersteps "
        f"per peer in {args.rounds} alternating rounds"
    )
    print(f"{'peer':<12} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
    for name, values in results.items():
        print(
            f"{name:<12} {pct(values, 0.5) * 1e3:8.3f} {pct(values, 0.99) * 1e3:8.3f} "
            f"{statistics.fmean(values) * 1e3:8.3f}"
        )
    ours, peer = results[OURS], results[PEER]
    p50 = pct(ours, 0.5) / pct(peer, 0.5)
    p99 = pct(ours, 0.99) / pct(peer, 0.99)
    verdict = "met" if p50 <= 0.5 else "MISSED"
    print(
        f"ratio memorywatch/postgres: p50 {p50:.2f}x, p99 {p99:.2f}x, median of the per-round "
        f"p50 ratios {statistics.median(paired):.2f}x (target p50 <= 0.5x: {verdict})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
