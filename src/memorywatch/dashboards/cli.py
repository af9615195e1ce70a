"""`memorywatch dashboards generate|check`: parse, then call a function."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from memorywatch import scope_options
from memorywatch import thresholds as th
from memorywatch.alerts.model import DEFAULT_RUNBOOK_BASE_URL
from memorywatch.dashboards.generate import (
    DEFAULT_OUT_DIR,
    GENERATE_COMMAND,
    DashboardsConfig,
    check,
    generate,
)

_out_dir = click.option(
    "--out-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=DEFAULT_OUT_DIR,
    show_default=True,
    help="Where the dashboard JSON files go.",
)
_thresholds = click.option(
    "--thresholds",
    "thresholds_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="YAML file overriding thresholds (the same file `alerts generate` reads).",
)
_runbook_base_url = click.option(
    "--runbook-base-url",
    default=DEFAULT_RUNBOOK_BASE_URL,
    show_default=True,
    help="Panel runbook links = this + ALERTNAME.md (as the alerts' runbook_url).",
)


def _config(
    out_dir: Path,
    thresholds_file: Path | None,
    runbook_base_url: str,
    cluster_label: str | None,
    selector: str,
) -> DashboardsConfig:
    try:
        table = th.load(thresholds_file)
    except th.ThresholdsError as exc:
        raise click.ClickException(str(exc)) from None
    return DashboardsConfig(
        thresholds=table,
        runbook_base_url=runbook_base_url,
        out_dir=out_dir,
        scope=scope_options.parse(cluster_label, selector),
    )


@click.group("dashboards")
def dashboards() -> None:
    """Grafana dashboards generated with grafanalib."""


@dashboards.command("generate")
@_out_dir
@_thresholds
@_runbook_base_url
@scope_options.cluster_label
@scope_options.selector
def generate_command(**options: Any) -> None:
    """Write dashboards/*.json."""
    written = generate(_config(**options))
    for path in written:
        click.echo(f"wrote {path}")
    if not written:
        click.echo("up to date")


@dashboards.command("check")
@_out_dir
@_thresholds
@_runbook_base_url
@scope_options.cluster_label
@scope_options.selector
def check_command(**options: Any) -> None:
    """Exit 1 if the files on disk differ from what `dashboards generate` would write."""
    drifted = check(_config(**options))
    if drifted:
        click.echo(
            f"out of date: {', '.join(map(str, drifted))}; run `{GENERATE_COMMAND}`", err=True
        )
        sys.exit(1)
    click.echo("up to date")
