"""The `memorywatch` command. Callbacks only parse into frozen configs and call `run`."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from memorywatch import __version__
from memorywatch.exporter import config as exporter_config

LOG_LEVELS = ("debug", "info", "warning", "error")


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s level=%(levelname)s logger=%(name)s msg=%(message)s",
        stream=sys.stderr,
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name="memorywatch")
def main() -> None:
    """Observability for AI agent fleets that keep their memory in Redis."""


@main.command()
@click.option(
    "--redis-url",
    envvar="MEMORYWATCH_REDIS_URL",
    show_envvar=True,
    default=exporter_config.DEFAULT_REDIS_URL,
    help="redis://[user:pass@]host:port[/db], rediss:// for TLS, "
    "redis+sentinel://h1:26379,h2:26379/master, redis+cluster://seed:port.",
)
@click.option(
    "--listen",
    envvar="MEMORYWATCH_LISTEN",
    show_envvar=True,
    default=exporter_config.DEFAULT_LISTEN,
    help="Address for /metrics; loopback unless you choose otherwise (':9121' = every interface).",
)
@click.option("--redis-user", envvar="MEMORYWATCH_REDIS_USER", show_envvar=True, help="ACL user.")
@click.option(
    "--password-file",
    envvar="MEMORYWATCH_PASSWORD_FILE",
    show_envvar=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="File holding the Redis password (or set MEMORYWATCH_REDIS_PASSWORD).",
)
@click.option(
    "--tls-ca-cert",
    envvar="MEMORYWATCH_TLS_CA_CERT",
    show_envvar=True,
    type=click.Path(path_type=Path),
)
@click.option(
    "--tls-cert", envvar="MEMORYWATCH_TLS_CERT", show_envvar=True, type=click.Path(path_type=Path)
)
@click.option(
    "--tls-key", envvar="MEMORYWATCH_TLS_KEY", show_envvar=True, type=click.Path(path_type=Path)
)
@click.option(
    "--tls-insecure-skip-verify",
    envvar="MEMORYWATCH_TLS_INSECURE_SKIP_VERIFY",
    show_envvar=True,
    is_flag=True,
    help="Do not verify the server certificate (testing only).",
)
@click.option(
    "--scrape-timeout",
    envvar="MEMORYWATCH_SCRAPE_TIMEOUT",
    show_envvar=True,
    type=float,
    default=exporter_config.DEFAULT_SCRAPE_TIMEOUT,
    help="Seconds a scrape may wait for Redis before it reports redis_up 0.",
)
@click.option(
    "--allow-target",
    "allow_targets",
    envvar="MEMORYWATCH_ALLOW_TARGETS",
    show_envvar=True,
    multiple=True,
    help="host:port pattern (shell wildcards) that /scrape?target= may reach; repeatable.",
)
@click.option(
    "--log-level",
    envvar="MEMORYWATCH_LOG_LEVEL",
    show_envvar=True,
    type=click.Choice(LOG_LEVELS),
    default="info",
)
@click.option(
    "--check",
    is_flag=True,
    help="Scrape the target once, print one line and exit 0 if Redis answered, 1 if not.",
)
def exporter(
    redis_url: str,
    listen: str,
    redis_user: str | None,
    password_file: Path | None,
    tls_ca_cert: Path | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    tls_insecure_skip_verify: bool,
    scrape_timeout: float,
    allow_targets: tuple[str, ...],
    log_level: str,
    check: bool,
) -> None:
    """Serve Prometheus metrics for a Redis that holds agent state."""
    import os

    from memorywatch.exporter import run

    try:
        config = exporter_config.build_config(
            redis_url=redis_url,
            listen=listen,
            username=redis_user,
            password_file=password_file,
            password_env=os.environ.get("MEMORYWATCH_REDIS_PASSWORD"),
            tls_ca_cert=tls_ca_cert,
            tls_cert=tls_cert,
            tls_key=tls_key,
            tls_insecure_skip_verify=tls_insecure_skip_verify,
            scrape_timeout=scrape_timeout,
            allow_targets=allow_targets,
            log_level=log_level,
        )
    except exporter_config.ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    setup_logging(log_level)
    if check:
        ok, line = run.check(config)
        click.echo(line)
        sys.exit(0 if ok else 1)
    try:
        run.serve(config)
    except exporter_config.ConfigError as exc:
        raise click.ClickException(str(exc)) from None
