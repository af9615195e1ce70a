"""`memorywatch diagnose`: from a page to its cause in one command."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from memorywatch import clioptions
from memorywatch import thresholds as th
from memorywatch.diagnose.model import Report
from memorywatch.diagnose.prometheus import Prometheus
from memorywatch.diagnose.run import diagnose as run_diagnosis
from memorywatch.exporter import config as exporter_config
from memorywatch.exporter.fleet_options import FleetOptions


@click.command("diagnose")
@clioptions.redis_connection
@clioptions.fleet_identity
@click.option(
    "--prometheus-url",
    envvar="MEMORYWATCH_PROMETHEUS_URL",
    show_envvar=True,
    help="Also evaluate each alert's own expression there, and the alert's last hour.",
)
@click.option("--alert", "alert", help="The alert you were paged for: its hypotheses first.")
@click.option("--format", "output", type=click.Choice(["text", "json"]), default="text")
@click.option(
    "--thresholds",
    "thresholds_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="The same override file as `memorywatch alerts generate --thresholds`.",
)
def diagnose(
    prometheus_url: str | None,
    alert: str | None,
    output: str,
    thresholds_file: Path | None,
    namespace: str,
    queues: tuple[str, ...],
    **connection: Any,
) -> None:
    """Run the runbooks' checks against a live Redis (read-only) and print the causes found,
    most likely first. Exit 0: nothing wrong; 1: causes found; 2: could not check."""
    try:
        config = exporter_config.build_config(
            password_env=os.environ.get("MEMORYWATCH_REDIS_PASSWORD"),
            namespace=namespace,
            queues=queues,
            **connection,
        )
        table = th.load(thresholds_file)
        options = FleetOptions(namespace=namespace, queues=queues)
        prometheus = Prometheus(prometheus_url) if prometheus_url else None
        report = run_diagnosis(config, options, table, prometheus, alert)
    except (exporter_config.ConfigError, th.ThresholdsError, ValueError) as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)
    if output == "json":
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        click.echo(render_text(report, alert))
    sys.exit(report.exit_code)


def render_text(report: Report, alert: str | None = None) -> str:
    lines = [f"memorywatch diagnose {report.target} ({report.elapsed:.2f} s)"]
    shown = {line for cause in report.causes for line in cause.evidence}
    lines += [f"error: {error}" for error in report.errors if error not in shown]
    if not report.causes:
        lines.append("no cause found" if not report.unreachable else "could not check Redis")
    else:
        lines.append(f"{len(report.causes)} causes, most likely first:")
    for n, cause in enumerate(report.causes, 1):
        lines.append(f"{n}. {cause.alert} ({cause.severity}): {cause.summary}")
        lines += [f"   - {line}" for line in cause.evidence]
        lines.append(f"   mitigation: {cause.mitigation}")
        lines.append(f"   runbook: {cause.runbook}")
    ruled_out = [c.alert for c in report.checked if c.outcome == "ruled out"]
    unknown = [c.alert for c in report.checked if c.outcome == "unknown"]
    if alert is not None:
        mine = next((c for c in report.checked if c.alert == alert), None)
        rank = report.rank(alert)
        if rank is not None:
            lines.append(f"{alert}: found, cause {rank} of {len(report.causes)}")
        elif mine is not None and mine.outcome == "ruled out":
            lines.append(f"{alert}: ruled out ({mine.question})")
        elif mine is not None and mine.outcome == "unknown":
            lines.append(f"{alert}: not checked: Redis alone cannot tell; give --prometheus-url")
    lines.append(f"ruled out: {', '.join(ruled_out) if ruled_out else 'none'}")
    if unknown:
        lines.append(f"not checked ({len(unknown)}: need --prometheus-url or a reachable Redis): "
                     + ", ".join(unknown))  # fmt: skip
    return "\n".join(lines)
