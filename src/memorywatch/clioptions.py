"""Command-line options that several commands share, written once: how to reach Redis (the
exporter, `diagnose`) and which agent state to read."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from memorywatch import names, schema
from memorywatch.exporter import config as exporter_config

F = TypeVar("F", bound=Callable[..., Any])


def redis_connection(command: F) -> F:
    """--redis-url, credentials (never on the command line), TLS and the Redis timeout."""
    for option in reversed(
        [
            click.option(
                "--redis-url",
                envvar="MEMORYWATCH_REDIS_URL",
                show_envvar=True,
                default=exporter_config.DEFAULT_REDIS_URL,
                help="redis://[user:pass@]host:port[/db], rediss:// for TLS, "
                "redis+sentinel://h1:26379,h2:26379/master, redis+cluster://seed:port.",
            ),
            click.option(
                "--redis-user",
                "username",
                envvar="MEMORYWATCH_REDIS_USER",
                show_envvar=True,
                help="ACL user.",
            ),
            click.option(
                "--password-file",
                envvar="MEMORYWATCH_PASSWORD_FILE",
                show_envvar=True,
                type=click.Path(path_type=Path, dir_okay=False),
                help="File holding the Redis password (or set MEMORYWATCH_REDIS_PASSWORD).",
            ),
            click.option(
                "--tls-ca-cert",
                envvar="MEMORYWATCH_TLS_CA_CERT",
                show_envvar=True,
                type=click.Path(path_type=Path),
            ),
            click.option(
                "--tls-cert",
                envvar="MEMORYWATCH_TLS_CERT",
                show_envvar=True,
                type=click.Path(path_type=Path),
            ),
            click.option(
                "--tls-key",
                envvar="MEMORYWATCH_TLS_KEY",
                show_envvar=True,
                type=click.Path(path_type=Path),
            ),
            click.option(
                "--tls-insecure-skip-verify",
                envvar="MEMORYWATCH_TLS_INSECURE_SKIP_VERIFY",
                show_envvar=True,
                is_flag=True,
                help="Do not verify the server certificate (testing only).",
            ),
            click.option(
                "--scrape-timeout",
                envvar="MEMORYWATCH_SCRAPE_TIMEOUT",
                show_envvar=True,
                type=float,
                default=exporter_config.DEFAULT_SCRAPE_TIMEOUT,
                help=f"Seconds to wait for Redis (the exporter reports {names.REDIS_UP} 0 past it).",
            ),
        ]
    ):
        command = option(command)
    return command


def fleet_identity(command: F) -> F:
    """--namespace and --queue: which agent state to read."""
    for option in reversed(
        [
            click.option(
                "--namespace",
                envvar="MEMORYWATCH_NAMESPACE",
                show_envvar=True,
                default=schema.DEFAULT_NAMESPACE,
                help="Key namespace of the agents' state schema.",
            ),
            click.option(
                "--queue",
                "queues",
                envvar="MEMORYWATCH_QUEUES",
                show_envvar=True,
                multiple=True,
                help="Stream or list key to report as a work queue (autoscaling signal); repeatable.",
            ),
        ]
    ):
        command = option(command)
    return command
