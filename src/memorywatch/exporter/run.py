"""Entry points the CLI calls with a frozen config: serve, or check once."""

from __future__ import annotations

from memorywatch.exporter.config import ExporterConfig
from memorywatch.exporter.discovery import DiscoveryError, discover
from memorywatch.exporter.http import serve
from memorywatch.exporter.scrape import ClientCache, classify, describe, fetch_snapshot
from memorywatch.redisurl import Topology, format_addr

__all__ = ["check", "serve"]


def check(config: ExporterConfig) -> tuple[bool, str]:
    """Scrape every node of the target once; one line saying what answered, or what failed."""
    target = config.target
    clients = ClientCache(config.credentials, config.tls, config.scrape_timeout)
    try:
        nodes = discover(
            target, lambda h, p, auth: clients.get(h, p, tls=target.tls, authenticate=auth)
        )
    except DiscoveryError as exc:
        clients.close()
        return False, f"error: {target.display}: discovery failed: {exc}"
    parts = []
    try:
        for host, port in nodes:
            addr = format_addr(host, port)
            client = clients.get(host, port, tls=target.tls, db=target.db)
            try:
                snap, _ = fetch_snapshot(client, cluster=target.topology is Topology.CLUSTER)
            except Exception as exc:  # reported as one line, never a traceback
                return (
                    False,
                    f"error: {target.display} node {addr}: {classify(exc)}: {describe(exc)}",
                )
            info = snap.info
            loading = " loading" if info.get("loading") == "1" else ""
            parts.append(
                f"{addr} {info.get('role')} redis {info.get('redis_version')}{loading} "
                f"used_memory={info.get('used_memory')} maxmemory={info.get('maxmemory')} "
                f"policy={info.get('maxmemory_policy')}"
            )
    finally:
        clients.close()
    return True, f"ok: {target.display}: " + "; ".join(parts)
