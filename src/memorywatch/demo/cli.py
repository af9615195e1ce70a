"""`memorywatch demo`: parse into a DemoConfig, then run it."""

from __future__ import annotations

from typing import Any

import click

from memorywatch.demo.processes import DemoError
from memorywatch.demo.run import INCIDENTS, Demo, DemoConfig


@click.command()
@click.option(
    "--redis-url",
    envvar="MEMORYWATCH_DEMO_REDIS_URL",
    show_envvar=True,
    help="Reuse this running master instead of starting one (a URL with a password is best "
    "given in the environment, where ps does not show it).",
)
@click.option(
    "--replica-url",
    envvar="MEMORYWATCH_DEMO_REPLICA_URL",
    show_envvar=True,
    help="Reuse this running replica (with --redis-url).",
)
@click.option("--workers", type=click.IntRange(1, 20), default=3, show_default=True)
@click.option(
    "--incident",
    type=click.Choice(sorted(INCIDENTS)),
    help="Inject this failure after --incident-after seconds.",
)
@click.option("--incident-after", type=click.FloatRange(0), default=15.0, show_default=True)
@click.option("--duration", type=click.FloatRange(1), help="Stop after this many seconds.")
@click.option(
    "--prometheus/--no-prometheus",
    default=True,
    show_default=True,
    help="Also start Prometheus (generated rules, test profile) and Alertmanager if installed.",
)
@click.option("--webhook-url", help="Alertmanager sends every alert to this URL.")
def demo(**options: Any) -> None:
    """A small agent fleet on loopback, watched by the exporter, rules and Alertmanager.

    Incidents: eviction, duplicate-tool, pool-exhaustion, replica-lag, broken-link, redis-down.
    """
    try:
        Demo(DemoConfig(**options), say=click.echo).run()
    except DemoError as exc:
        raise click.ClickException(str(exc)) from None
