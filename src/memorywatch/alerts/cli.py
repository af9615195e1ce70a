"""`memorywatch alerts generate|check` and `memorywatch runbook`: parse, then call a function."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from memorywatch import scope_options
from memorywatch import thresholds as th
from memorywatch.alerts import alertmanager, runbooks
from memorywatch.alerts.generate import GENERATE_COMMAND, GenerateConfig, check, generate
from memorywatch.alerts.model import (
    DEFAULT_DASHBOARD_BASE_URL,
    DEFAULT_EXPORTER_JOB,
    DEFAULT_RUNBOOK_BASE_URL,
    AlertsConfig,
)


def _options(func: Callable[..., Any]) -> Callable[..., Any]:
    decorators = [
        click.option(
            "--thresholds",
            "thresholds_file",
            type=click.Path(path_type=Path, dir_okay=False),
            help="YAML file overriding thresholds: NAME: VALUE or NAME: {value: V, for: 5m}.",
        ),
        click.option(
            "--profile",
            type=click.Choice(th.PROFILES),
            default="default",
            help="'test' turns every 'for' from minutes into seconds (end-to-end tests).",
        ),
        click.option(
            "--runbook-base-url",
            default=DEFAULT_RUNBOOK_BASE_URL,
            help="runbook_url = this + ALERTNAME.md.",
        ),
        click.option(
            "--dashboard-base-url",
            default=DEFAULT_DASHBOARD_BASE_URL,
            help="dashboard_url = this + dashboard uid (your Grafana's /d/).",
        ),
        click.option(
            "--exporter-job",
            default=None,
            help="Prometheus job label of the memorywatch exporter (for RedisExporterDown). "
            f"Default: the job of --selector, else {DEFAULT_EXPORTER_JOB}.",
        ),
        scope_options.cluster_label,
        scope_options.selector,
        click.option(
            "--identity-label",
            "identity_labels",
            multiple=True,
            default=alertmanager.DEFAULT_IDENTITY_LABELS,
            show_default=True,
            help="alertmanager.yaml: a label naming one Redis deployment on every alert "
            "(repeatable); group_by and every inhibition's equal. --cluster-label adds "
            "the cluster label to them.",
        ),
        click.option(
            "--out-dir",
            type=click.Path(path_type=Path, file_okay=False),
            default=Path("alerts"),
            help="Where the rule files and generated promtool tests go.",
        ),
        click.option(
            "--runbooks-dir",
            type=click.Path(path_type=Path, file_okay=False),
            default=Path("runbooks"),
            help="Runbooks whose threshold blocks are rewritten.",
        ),
        click.option(
            "--skip-runbooks", is_flag=True, help="Do not touch runbooks (e.g. for --profile test)."
        ),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def _config(
    thresholds_file: Path | None,
    profile: str,
    runbook_base_url: str,
    dashboard_base_url: str,
    exporter_job: str | None,
    cluster_label: str | None,
    selector: str,
    identity_labels: tuple[str, ...],
    out_dir: Path,
    runbooks_dir: Path,
    skip_runbooks: bool,
) -> GenerateConfig:
    try:
        table = th.load(thresholds_file, profile)
    except th.ThresholdsError as exc:
        raise click.ClickException(str(exc)) from None
    scope = scope_options.parse(cluster_label, selector)
    selected_job = dict(scope.selector).get("job")
    if exporter_job is not None and selected_job is not None and exporter_job != selected_job:
        raise click.BadParameter(
            f"--exporter-job {exporter_job} differs from the selector's job {selected_job}",
            param_hint="--exporter-job",
        )
    if cluster_label is not None and cluster_label not in identity_labels:
        # one incident of one cluster: grouped and inhibited within that cluster only
        identity_labels = (cluster_label, *identity_labels)
    try:
        routing = alertmanager.RoutingConfig(identity_labels=tuple(identity_labels))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--identity-label") from None
    return GenerateConfig(
        alerts=AlertsConfig(
            thresholds=table,
            runbook_base_url=runbook_base_url,
            dashboard_base_url=dashboard_base_url,
            exporter_job=exporter_job or selected_job or DEFAULT_EXPORTER_JOB,
            scope=scope,
        ),
        out_dir=out_dir,
        runbooks_dir=None if skip_runbooks else runbooks_dir,
        routing=routing,
    )


@click.group("alerts")
def alerts() -> None:
    """Prometheus alerting rules, their promtool tests, Alertmanager routing and runbook
    thresholds."""


@alerts.command("generate")
@_options
def generate_command(**options: Any) -> None:
    """Write the rule file, the PrometheusRule CRD, alertmanager.yaml (routing and
    inhibitions), promtool tests and runbook thresholds."""
    written, warnings = generate(_config(**options))
    for path in written:
        click.echo(f"wrote {path}")
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    if not written:
        click.echo("up to date")


@alerts.command("check")
@_options
def check_command(**options: Any) -> None:
    """Exit 1 if the files on disk differ from what `alerts generate` would write."""
    drifted = check(_config(**options))
    if drifted:
        click.echo(
            f"out of date: {', '.join(map(str, drifted))}; run `{GENERATE_COMMAND}`", err=True
        )
        sys.exit(1)
    click.echo("up to date")


@alerts.command("thresholds")
@click.option(
    "--thresholds",
    "thresholds_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Override file to validate and apply.",
)
@click.option("--profile", type=click.Choice(th.PROFILES), default="default")
def thresholds_command(thresholds_file: Path | None, profile: str) -> None:
    """Print the thresholds table (validating an override file)."""
    try:
        table = th.load(thresholds_file, profile)
    except th.ThresholdsError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(th.render_table(table))


@click.command("runbook")
@click.argument("alert", required=False)
@click.option("--list", "list_all", is_flag=True, help="List the alerts that have a runbook.")
@click.option(
    "--runbooks-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help=f"Default: ${runbooks.ENV_DIR}, else the installed package's, else the checkout's.",
)
def runbook(alert: str | None, list_all: bool, runbooks_dir: Path | None) -> None:
    """Print the runbook of ALERT (or --list them)."""
    directory = runbooks_dir or runbooks.default_dir()
    if list_all:
        names = runbooks.list_alerts(directory)
        if not names:
            raise click.ClickException(f"no runbooks in {directory}")
        click.echo("\n".join(names))
        return
    if alert is None:
        raise click.UsageError("name an ALERT, or pass --list")
    try:
        path = runbooks.find(alert, directory)
    except runbooks.RunbookError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(path.read_text(encoding="utf-8"), nl=False)
