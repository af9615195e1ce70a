"""Why the exporter writes its own text exposition: the number, against prometheus_client.

    python bench/bench_exposition.py [--rounds 200]

Not a test. A real scrape of a real Redis (master with a replica, 10k keys, an SDK fleet)
gives the families and samples one scrape publishes. Both encoders then turn those same
samples into the text format, timed in CPU per scrape:

- memorywatch: ``exposition.Families`` (a sample is formatted into text as it is added);
- prometheus_client: ``Metric`` objects with ``add_sample`` from a collector, rendered by
  ``generate_latest`` on a private ``CollectorRegistry`` (what a client_python exporter does).

Prints both, their ratio, and whether both texts hold the same samples.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families

from harness import master_with_replica
from memorywatch.agent import AgentState
from memorywatch.exporter.exposition import Families
from metrics import InProcessExporter

Sample = tuple[str, dict[str, str], float]
Family = tuple[str, str, str, list[Sample]]


def one_scrape() -> list[Family]:
    with master_with_replica() as (master, _replica):
        master.client().execute_command("DEBUG", "POPULATE", "10000")
        state = AgentState.from_url(master.url, instance_id="bench")
        for i in range(20):
            with state.lock("charge", f"order-{i}"):
                pass
            state.run_tool(f"tool{i % 5}", f"key-{i}", lambda ctx: 1)
            state.history(f"s{i}").append("user", "hi")
        state.heartbeat()
        state.close()
        with InProcessExporter(redis_url=master.url, sample_interval=3600) as exporter:
            text = exporter.scrape().text
    return [
        (
            f.name,
            f.documentation,
            f.type,
            [(s.name, dict(s.labels), float(s.value)) for s in f.samples],
        )
        for f in text_string_to_metric_families(text)
    ]


def ours(families: list[Family]) -> bytes:
    out = Families()
    for name, help_text, kind, samples in families:
        out.declare(name, help_text, kind)
        for sample, labels, value in samples:
            out.add(name, help_text, kind, value, labels, sample)
    lines: list[str] = []
    out.render_into(lines)
    lines.append("")
    return "\n".join(lines).encode()


class _Collector:
    def __init__(self, families: list[Family]) -> None:
        self._families = families

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        for name, help_text, kind, samples in self._families:
            metric = Metric(name, help_text, kind if kind != "unknown" else "untyped")
            for sample, labels, value in samples:
                metric.add_sample(sample, labels, value)
            yield metric


def theirs(families: list[Family]) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(families))  # type: ignore[arg-type]
    return generate_latest(registry)


def cpu_ms(encode: object, families: list[Family], rounds: int) -> float:
    fn = encode  # a callable
    for _ in range(10):
        fn(families)  # type: ignore[operator]
    started = time.process_time()
    for _ in range(rounds):
        fn(families)  # type: ignore[operator]
    return (time.process_time() - started) / rounds * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    families = one_scrape()
    samples = sum(len(f[3]) for f in families)
    mine, peer = [], []
    for _ in range(5):  # interleaved
        mine.append(cpu_ms(ours, families, args.rounds))
        peer.append(cpu_ms(theirs, families, args.rounds))
    a, b = statistics.median(mine), statistics.median(peer)
    same = {
        (s.name, tuple(sorted(s.labels.items())), s.value)
        for f in text_string_to_metric_families(ours(families).decode())
        for s in f.samples
    } == {
        (s.name, tuple(sorted(s.labels.items())), s.value)
        for f in text_string_to_metric_families(theirs(families).decode())
        for s in f.samples
    }
    print(f"one scrape: {len(families)} families, {samples} samples")
    print(f"  memorywatch exposition.Families       {a:6.3f} ms CPU per scrape")
    print(f"  prometheus_client Metric + generate_latest {b:6.3f} ms CPU per scrape")
    print(f"  ratio memorywatch / prometheus_client: {a / b:.2f}x; same samples: {same}")


if __name__ == "__main__":
    main()
