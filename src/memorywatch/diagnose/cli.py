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
from memorywatch.diagnose.facts import ReadOptions
from memorywatch.diagnose.model import (
    COULD_NOT_CHECK,
    EXIT_UNCHECKED,
    NEEDS_PROMETHEUS,
    RULED_OUT,
    Cause,
    Report,
)
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
    "--sample-keys",
    type=click.IntRange(0, 1_000_000),
    default=ReadOptions.sample_keys,
    show_default=True,
    help="Keys the one-shot keyspace sample may walk (SCAN, TYPE, PTTL, MEMORY USAGE; "
    "read-only). 0: no sample (who holds the memory is then not checked).",
)
@click.option(
    "--sample-seconds",
    type=click.FloatRange(0.05, 30),
    default=ReadOptions.sample_seconds,
    show_default=True,
    help="Time the keyspace sample may take.",
)
@click.option(
    "--window",
    type=click.FloatRange(0.2, 60),
    default=ReadOptions.window,
    show_default=True,
    help="Seconds between the two reads of INFO: command time and errors are read as rates "
    "over it.",
)
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
    sample_keys: int,
    sample_seconds: float,
    window: float,
    namespace: str,
    queues: tuple[str, ...],
    **connection: Any,
) -> None:
    """Run the runbooks' checks against a live Redis (read-only) and print the causes found,
    most likely first, then their symptoms and the risks in the configuration.

    Exit 0: clean, every hypothesis the given sources answer was checked (risks may be
    listed); 1: causes found; 2: could not check (Redis did not answer, bad input);
    3: no cause found but incomplete (a hypothesis the sources should answer was not:
    the output says which and why)."""
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
        budget = ReadOptions(sample_keys, sample_seconds, window)
        report = run_diagnosis(config, options, table, prometheus, alert, budget)
    except (exporter_config.ConfigError, th.ThresholdsError, ValueError) as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(EXIT_UNCHECKED)
    if output == "json":
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        click.echo(render_text(report, alert))
    sys.exit(report.exit_code)


def render_text(report: Report, alert: str | None = None) -> str:
    lines = [f"memorywatch diagnose {report.target} ({report.elapsed:.2f} s)"]
    shown = {line for cause in report.causes for line in cause.evidence}
    lines += [f"error: {error}" for error in report.errors if error not in shown]
    if report.sample:
        lines.append(report.sample)
    lines.append(report.verdict + (", most likely first:" if report.causes else ""))
    for n, cause in enumerate(report.causes, 1):
        lines += _finding(f"{n}.", cause)
    if report.symptoms:
        lines.append(f"symptoms ({len(report.symptoms)}), each a consequence of a cause above:")
        for cause in report.symptoms:
            lines += _finding("-", cause)[:2]
            lines.append(f"   a consequence of {cause.explained_by}: {cause.because}")
    if report.risks:
        lines.append(f"risks in the configuration ({len(report.risks)}), not causes:")
        for cause in report.risks:
            lines += _finding("-", cause)
    if alert is not None:
        lines.append(report.verdict_on(alert))
    ruled_out = [c.alert for c in report.outcome(RULED_OUT)]
    lines.append(f"ruled out ({len(ruled_out)}): {', '.join(ruled_out) if ruled_out else 'none'}")
    blind = report.outcome(COULD_NOT_CHECK)
    if blind:
        lines.append(f"could not check ({len(blind)}), so this is not an all-clear for them:")
        lines += [f"   {c.alert}: {c.reason}" for c in blind]
    history = [c.alert for c in report.outcome(NEEDS_PROMETHEUS)]
    if history:
        lines.append(
            f"need history, not counted against this result ({len(history)}; give "
            f"--prometheus-url): {', '.join(history)}"
        )
    return "\n".join(lines)


def _finding(head: str, cause: Cause) -> list[str]:
    lines = [f"{head} {cause.alert} ({cause.severity}): {cause.summary}"]
    lines += [f"   - {line}" for line in cause.evidence]
    lines.append(f"   mitigation: {cause.mitigation}")
    lines.append(f"   runbook: {cause.runbook}")
    return lines
