"""The exporter's configuration: parsed once from flags and environment, then frozen.

Every error here is a `ConfigError` whose message is one line a user can act on; the CLI
prints it and exits non-zero.
"""

from __future__ import annotations

import fnmatch
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from memorywatch import redisurl, schema
from memorywatch.exporter import fleet_options, profiles
from memorywatch.exporter.fleet_options import FleetOptions
from memorywatch.redisurl import Credentials, Secret, Target

if TYPE_CHECKING:
    from memorywatch.exporter.webconfig import WebConfig

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379"
DEFAULT_LISTEN_HOST = "127.0.0.1"
DEFAULT_LISTEN_PORT = 9121
DEFAULT_LISTEN = f"{DEFAULT_LISTEN_HOST}:{DEFAULT_LISTEN_PORT}"
LOG_LEVELS = ("debug", "info", "warning", "error")
DEFAULT_LOG_LEVEL = "info"
DEFAULT_SCRAPE_TIMEOUT = 5.0


class ConfigError(ValueError):
    """A configuration value the exporter cannot run with."""


@dataclass(frozen=True)
class TLSOptions:
    ca_cert: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    insecure_skip_verify: bool = False


DEFAULT_MAX_CONNECTIONS = 1024
"""Connections the HTTP side holds at once; past it, the longest-idle one makes room."""


@dataclass(frozen=True)
class ExporterConfig:
    target: Target
    credentials: Credentials = field(default_factory=Credentials)
    tls: TLSOptions = TLSOptions()
    listen_host: str = DEFAULT_LISTEN_HOST
    listen_port: int = DEFAULT_LISTEN_PORT
    scrape_timeout: float = DEFAULT_SCRAPE_TIMEOUT
    allow_targets: tuple[AllowPattern, ...] = ()
    log_level: str = DEFAULT_LOG_LEVEL
    fleet: FleetOptions | None = field(default_factory=FleetOptions)
    enable_keyspace_events: bool = False
    sample_interval: float = fleet_options.DEFAULT_SAMPLE_INTERVAL
    sample_budget: int = fleet_options.DEFAULT_SAMPLE_BUDGET
    web: WebConfig | None = None
    """--web-config-file: TLS and basic auth of the HTTP side."""
    max_connections: int = DEFAULT_MAX_CONNECTIONS

    def target_allowed(self, target: Target) -> bool:
        """Multi-target scrapes go only to the configured hosts and the allow-list."""
        return all(self.node_allowed(host, port) for host, port in target.hosts)

    def node_allowed(self, host: str, port: int) -> bool:
        if (host, port) in self.target.hosts:
            return True
        return any(pattern.matches(host, port) for pattern in self.allow_targets)


@dataclass(frozen=True)
class AllowPattern:
    """One `--allow-target`: `host:port`, where host is a name, an IP with `*` per octet
    (`10.0.0.*`) or a CIDR block (`10.0.0.0/24`), and port a number or `*`.

    A wildcard never crosses a dot, and an IP pattern only admits IP literals: with a plain
    glob, `10.0.0.*` would also admit the name `10.0.0.1.attacker.example`, and the exporter
    would send it its Redis password.
    """

    host: str
    port: str

    @classmethod
    def parse(cls, text: str) -> AllowPattern:
        host, sep, port = text.strip().rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if not sep or not host or not (port == "*" or port.isdigit()):
            raise ConfigError(
                f"--allow-target {text!r} must be host:port, e.g. 10.0.0.*:6379, "
                "10.0.0.0/24:6379 or cache.internal:*"
            )
        if "/" in host:
            try:
                ipaddress.ip_network(host, strict=False)
            except ValueError:
                raise ConfigError(
                    f"--allow-target {text!r}: {host!r} is not a CIDR block"
                ) from None
        return cls(host.lower(), port)

    def matches(self, host: str, port: int) -> bool:
        if self.port != "*" and int(self.port) != port:
            return False
        host = host.lower()
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            address = None
        if "/" in self.host:
            return address is not None and address in ipaddress.ip_network(self.host, strict=False)
        if _looks_like_ip(self.host) and address is None:
            return False
        labels, wanted = host.split("."), self.host.split(".")
        return len(labels) == len(wanted) and all(
            fnmatch.fnmatchcase(label, pattern)
            for label, pattern in zip(labels, wanted, strict=True)
        )


def _looks_like_ip(pattern: str) -> bool:
    return ":" in pattern or all(part == "*" or part.isdigit() for part in pattern.split("."))


def parse_listen(text: str) -> tuple[str, int]:
    """`host:port`, `[v6]:port` or `:port` (every interface, a deliberate choice)."""
    text = text.strip()
    if text.startswith(":"):
        host, port_text = "0.0.0.0", text[1:]
    elif text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest.lstrip(":")
    else:
        host, _, port_text = text.rpartition(":")
    if not host or not port_text.isdigit() or not 0 <= int(port_text) < 65536:
        raise ConfigError(f"--listen {text!r} is not host:port (for example 127.0.0.1:9121)")
    return host, int(port_text)


def parse_target(url: str) -> tuple[Target, Credentials]:
    """:func:`memorywatch.redisurl.parse_target`, its errors as ``ConfigError``."""
    try:
        return redisurl.parse_target(url)
    except redisurl.BadRedisURL as exc:
        raise ConfigError(str(exc)) from None


def read_password_file(path: Path) -> Secret:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read password file {path}: {exc.strerror}") from None
    password = text.rstrip("\r\n")
    if not password:
        raise ConfigError(f"password file {path} is empty")
    return Secret(password)


MAX_TOP_INSTANCES = 100
"""A named instance is a series per pod per deploy: more than a page of them is a fleet view,
which the pool-use distribution already is."""


def build_config(
    *,
    redis_url: str = DEFAULT_REDIS_URL,
    listen: str = DEFAULT_LISTEN,
    username: str | None = None,
    password_file: Path | None = None,
    password_env: str | None = None,
    tls_ca_cert: Path | None = None,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    tls_insecure_skip_verify: bool = False,
    scrape_timeout: float = DEFAULT_SCRAPE_TIMEOUT,
    allow_targets: tuple[str, ...] = (),
    log_level: str = DEFAULT_LOG_LEVEL,
    fleet: bool = True,
    namespace: str = schema.DEFAULT_NAMESPACE,
    queues: tuple[str, ...] = (),
    key_profiles: tuple[str, ...] = (),
    key_profile_files: tuple[Path, ...] = (),
    max_label_values: int = fleet_options.DEFAULT_MAX_LABEL_VALUES,
    top_instances: int = fleet_options.DEFAULT_TOP_INSTANCES,
    session_window: float = fleet_options.DEFAULT_SESSION_WINDOW,
    enable_keyspace_events: bool = False,
    sample_interval: float = fleet_options.DEFAULT_SAMPLE_INTERVAL,
    sample_budget: int = fleet_options.DEFAULT_SAMPLE_BUDGET,
    web_config_file: Path | None = None,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
) -> ExporterConfig:
    """Validate every input and return the frozen configuration."""
    from memorywatch.exporter import webconfig  # imports this module: loaded on use

    web = webconfig.load(web_config_file) if web_config_file is not None else None
    if max_connections < 16:
        raise ConfigError(f"--max-connections {max_connections} must be at least 16")
    target, url_creds = parse_target(redis_url)
    sources = [
        name
        for name, given in (
            ("the URL", url_creds.password is not None),
            ("--password-file", password_file is not None),
            ("MEMORYWATCH_REDIS_PASSWORD", bool(password_env)),
        )
        if given
    ]
    if len(sources) > 1:
        raise ConfigError(
            f"the Redis password is given twice ({' and '.join(sources)}): give it once"
        )
    password = url_creds.password
    if password_file is not None:
        password = read_password_file(password_file)
    elif password_env:
        password = Secret(password_env)
    if username and url_creds.username and username != url_creds.username:
        raise ConfigError(
            "the Redis user is given twice (the URL and --redis-user) with different values"
        )
    credentials = Credentials(username or url_creds.username, password)

    for flag, path in (
        ("--tls-ca-cert", tls_ca_cert),
        ("--tls-cert", tls_cert),
        ("--tls-key", tls_key),
    ):
        if path is not None and not path.is_file():
            raise ConfigError(f"{flag} {path}: no such file")
    if (tls_cert is None) != (tls_key is None):
        raise ConfigError("--tls-cert and --tls-key go together: give both or neither")
    if scrape_timeout <= 0 or scrape_timeout > 300:
        raise ConfigError(f"--scrape-timeout {scrape_timeout} must be between 0 and 300 seconds")
    patterns = tuple(AllowPattern.parse(pattern) for pattern in allow_targets)
    host, port = parse_listen(listen)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if host != "localhost":
            raise ConfigError(
                f"--listen host {host!r} must be an IP address or localhost"
            ) from None
    if not namespace or any(c in namespace for c in "{}*?[] "):
        raise ConfigError(
            f"--namespace {namespace!r} must be non-empty without braces, spaces or wildcards"
        )
    if max_label_values < 1:
        raise ConfigError("--max-label-values must be at least 1")
    if not 0 <= top_instances <= MAX_TOP_INSTANCES:
        raise ConfigError(f"--top-instances must be between 0 and {MAX_TOP_INSTANCES}")
    try:
        known_profiles, chosen = profiles.resolve(key_profiles, key_profile_files)
    except profiles.ProfileError as exc:
        raise ConfigError(str(exc)) from None
    if session_window <= 0 or sample_interval <= 0 or sample_budget < 1:
        raise ConfigError(
            "--session-window, --sample-interval and --sample-budget must be positive"
        )
    return ExporterConfig(
        fleet=FleetOptions(
            namespace=namespace,
            queues=queues,
            max_label_values=max_label_values,
            top_instances=top_instances,
            session_window=session_window,
            profiles=known_profiles,
            chosen_profiles=chosen,
        )
        if fleet
        else None,
        enable_keyspace_events=enable_keyspace_events,
        sample_interval=sample_interval,
        sample_budget=sample_budget,
        web=web,
        max_connections=max_connections,
        target=target,
        credentials=credentials,
        tls=TLSOptions(tls_ca_cert, tls_cert, tls_key, tls_insecure_skip_verify),
        listen_host=host,
        listen_port=port,
        scrape_timeout=scrape_timeout,
        allow_targets=patterns,
        log_level=log_level,
    )
