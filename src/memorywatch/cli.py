"""The `memorywatch` command. Callbacks only parse into frozen configs and call `run`."""

from __future__ import annotations

import importlib
import logging
import os
import sys
from pathlib import Path
from typing import Any, ClassVar

import click

from memorywatch import __version__, clioptions
from memorywatch.exporter import config as exporter_config
from memorywatch.exporter import fleet_options
from memorywatch.exporter.profiles import BUILTIN
from memorywatch.logfmt import OneLineFormatter


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        OneLineFormatter("%(asctime)s level=%(levelname)s logger=%(name)s msg=%(message)s")
    )
    logging.basicConfig(level=getattr(logging, level.upper()), handlers=[handler])


class LazyGroup(click.Group):
    """Subcommands imported on first use: `memorywatch exporter` never loads grafanalib,
    the alert generators or the demo, which keeps its start-up time and RSS down."""

    LAZY: ClassVar[dict[str, str]] = {
        "alerts": "memorywatch.alerts.cli:alerts",
        "runbook": "memorywatch.alerts.cli:runbook",
        "dashboards": "memorywatch.dashboards.cli:dashboards",
        "demo": "memorywatch.demo.cli:demo",
        "diagnose": "memorywatch.diagnose.cli:diagnose",
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.LAZY])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.LAZY:
            module, _, attr = self.LAZY[cmd_name].partition(":")
            command = getattr(importlib.import_module(module), attr)
            assert isinstance(command, click.Command)
            return command
        return super().get_command(ctx, cmd_name)


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "show_default": True},
)
@click.version_option(__version__, prog_name="memorywatch")
def main() -> None:
    """Observability for AI agent fleets that keep their memory in Redis."""


@main.command()
@click.option(
    "--listen",
    envvar="MEMORYWATCH_LISTEN",
    show_envvar=True,
    default=exporter_config.DEFAULT_LISTEN,
    help="Address for /metrics; loopback unless you choose otherwise (':9121' = every interface).",
)
@click.option(
    "--allow-target",
    "allow_targets",
    envvar="MEMORYWATCH_ALLOW_TARGETS",
    show_envvar=True,
    multiple=True,
    help="host:port that /scrape?target= may reach: a name (cache-*.internal), an IP with * "
    "per octet or a CIDR block; port a number or *. Repeatable.",
)
@click.option(
    "--log-level",
    envvar="MEMORYWATCH_LOG_LEVEL",
    show_envvar=True,
    type=click.Choice(exporter_config.LOG_LEVELS),
    default=exporter_config.DEFAULT_LOG_LEVEL,
)
@click.option(
    "--fleet/--no-fleet",
    envvar="MEMORYWATCH_FLEET",
    show_envvar=True,
    default=True,
    help="Read memorywatch_* agent-fleet metrics from the state schema.",
)
@click.option(
    "--key-profile",
    "key_profiles",
    envvar="MEMORYWATCH_KEY_PROFILES",
    show_envvar=True,
    multiple=True,
    help="Publish this key profile from the start (built-in: "
    + ", ".join(BUILTIN)
    + "; others from --key-profile-file). Any profile is published once its keys are seen.",
)
@click.option(
    "--key-profile-file",
    "key_profile_files",
    envvar="MEMORYWATCH_KEY_PROFILE_FILES",
    show_envvar=True,
    multiple=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="YAML file of your own key profiles (docs/profiles.md); repeatable.",
)
@click.option(
    "--max-label-values",
    envvar="MEMORYWATCH_MAX_LABEL_VALUES",
    show_envvar=True,
    type=int,
    default=fleet_options.DEFAULT_MAX_LABEL_VALUES,
    help="Distinct tool/lock label values per family; the rest are summed into 'other'.",
)
@click.option(
    "--top-instances",
    envvar="MEMORYWATCH_TOP_INSTANCES",
    show_envvar=True,
    type=int,
    default=fleet_options.DEFAULT_TOP_INSTANCES,
    help="Agent instances with the most used Redis pool named by instance_id (0: none); "
    "every other pool figure is a fleet aggregate.",
)
@click.option(
    "--session-window",
    envvar="MEMORYWATCH_SESSION_WINDOW",
    show_envvar=True,
    type=float,
    default=fleet_options.DEFAULT_SESSION_WINDOW,
    help="Seconds of inactivity after which a session no longer counts as active.",
)
@click.option(
    "--enable-keyspace-events",
    envvar="MEMORYWATCH_ENABLE_KEYSPACE_EVENTS",
    show_envvar=True,
    is_flag=True,
    help="Allow the exporter to add 'Ee' to notify-keyspace-events to classify evictions.",
)
@click.option(
    "--sample-interval",
    envvar="MEMORYWATCH_SAMPLE_INTERVAL",
    show_envvar=True,
    type=float,
    default=fleet_options.DEFAULT_SAMPLE_INTERVAL,
    help="The keyspace sampler's period (keys and bytes by key profile and class, keys without "
    "TTL, schema errors): it walks --sample-budget keys per period, evenly, and starts a "
    "new pass at most once per period.",
)
@click.option(
    "--sample-budget",
    envvar="MEMORYWATCH_SAMPLE_BUDGET",
    show_envvar=True,
    type=int,
    default=fleet_options.DEFAULT_SAMPLE_BUDGET,
    help="Keys the sampler walks per --sample-interval at most, matching or not (default: "
    "1,800 keys/s, a pass over 1M keys in 9.3 min; each key costs ~3 us of Redis CPU).",
)
@click.option(
    "--web-config-file",
    envvar="MEMORYWATCH_WEB_CONFIG_FILE",
    show_envvar=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="exporter-toolkit web configuration: TLS (tls_server_config) and basic auth "
    "(basic_auth_users, bcrypt) for every endpoint.",
)
@click.option(
    "--max-connections",
    envvar="MEMORYWATCH_MAX_CONNECTIONS",
    show_envvar=True,
    type=int,
    default=exporter_config.DEFAULT_MAX_CONNECTIONS,
    help="HTTP connections held at once; past it the longest-idle one is closed.",
)
@click.option(
    "--check",
    is_flag=True,
    help="Scrape the target once, print one line and exit 0 if Redis answered, 1 if not.",
)
@clioptions.fleet_identity
@clioptions.redis_connection
def exporter(check: bool, **options: Any) -> None:
    """Serve Prometheus metrics for a Redis that holds agent state."""
    from memorywatch.exporter import run

    try:
        config = exporter_config.build_config(
            password_env=os.environ.get("MEMORYWATCH_REDIS_PASSWORD"), **options
        )
    except exporter_config.ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    setup_logging(config.log_level)
    if check:
        ok, line = run.check(config)
        click.echo(line)
        sys.exit(0 if ok else 1)
    try:
        run.serve(config)
    except exporter_config.ConfigError as exc:
        raise click.ClickException(str(exc)) from None
