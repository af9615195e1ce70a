"""The exporter's configuration: parsed once from flags and environment, then frozen.

Every error here is a `ConfigError` whose message is one line a user can act on; the CLI
prints it and exits non-zero.
"""

from __future__ import annotations

import enum
import fnmatch
import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote

from memorywatch import schema
from memorywatch.exporter import fleet_options, profiles
from memorywatch.exporter.fleet_options import FleetOptions

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
class Secret:
    """A password that never prints itself, so it cannot leak through a log or repr."""

    value: str = field(repr=False)

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


class Topology(enum.Enum):
    STANDALONE = "standalone"
    SENTINEL = "sentinel"
    CLUSTER = "cluster"


_SCHEMES: dict[str, tuple[Topology, bool]] = {
    "redis": (Topology.STANDALONE, False),
    "rediss": (Topology.STANDALONE, True),
    "redis+sentinel": (Topology.SENTINEL, False),
    "rediss+sentinel": (Topology.SENTINEL, True),
    "redis+cluster": (Topology.CLUSTER, False),
    "rediss+cluster": (Topology.CLUSTER, True),
}


@dataclass(frozen=True)
class Target:
    """What to scrape: one node, a Sentinel master group, or a Cluster seed."""

    topology: Topology
    hosts: tuple[tuple[str, int], ...]
    tls: bool = False
    db: int = 0
    master_name: str | None = None

    @property
    def display(self) -> str:
        """The target without credentials: safe for logs and error messages."""
        scheme = next(k for k, v in _SCHEMES.items() if v == (self.topology, self.tls))
        hosts = ",".join(format_addr(h, p) for h, p in self.hosts)
        path = f"/{self.master_name}" if self.master_name else (f"/{self.db}" if self.db else "")
        return f"{scheme}://{hosts}{path}"


def format_addr(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True)
class Credentials:
    username: str | None = None
    password: Secret | None = None


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
    credentials: Credentials = Credentials()
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


_HOST = re.compile(r"[A-Za-z0-9._\-]+|[0-9A-Fa-f:.]+(%[A-Za-z0-9._\-]+)?")
"""A DNS name, an IPv4 address or an IPv6 address (with a zone): never spaces or controls."""


def _parse_hostport(text: str, default_port: int, url: str) -> tuple[str, int]:
    text = text.strip()
    if not text:
        raise ConfigError(f"no host in {url!r}")
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, ""
    if not host:
        raise ConfigError(f"no host in {url!r}")
    if not _HOST.fullmatch(host):
        raise ConfigError(f"host {host!r} in {url!r} is not a host name or an IP address")
    try:
        port = int(port_text) if port_text else default_port
    except ValueError:
        raise ConfigError(f"port {port_text!r} in {url!r} is not a number") from None
    if not 0 < port < 65536:
        raise ConfigError(f"port {port} in {url!r} is out of range 1-65535")
    return host, port


def parse_target(url: str) -> tuple[Target, Credentials]:
    """Parse a Redis URL into a target and the credentials it carries.

    Accepted: `redis://[user:pass@]host:port[/db]`, `rediss://...` (TLS), a bare
    `host:port`, `redis+sentinel://h1:26379,h2:26379/mastername` and
    `redis+cluster://seed:7000`.
    """
    url = url.strip()
    if "://" not in url:
        url = "redis://" + url
    scheme, _, rest = url.partition("://")
    scheme = scheme.lower()
    if scheme not in _SCHEMES:
        raise ConfigError(
            f"unsupported scheme {scheme!r} in Redis URL: use one of {', '.join(_SCHEMES)}"
        )
    topology, tls = _SCHEMES[scheme]
    # urlsplit cannot hold a comma-separated host list, so split the authority by hand.
    authority, _, path_and_query = rest.partition("/")
    path, _, query = path_and_query.partition("?")
    userinfo, at, hostlist = authority.rpartition("@")
    if not at:
        hostlist, userinfo = authority, ""
    default_port = 26379 if topology is Topology.SENTINEL else 6379
    hosts = tuple(_parse_hostport(h, default_port, _safe(url)) for h in hostlist.split(","))
    if topology is not Topology.SENTINEL and len(hosts) > 1:
        raise ConfigError(f"{_safe(url)}: several hosts are only allowed for redis+sentinel://")

    username = password = None
    if userinfo:
        user, colon, pw = userinfo.partition(":")
        if colon:
            username, password = unquote(user) or None, unquote(pw)
        else:
            # redis://secret@host is the password form used by redis-cli and redis-py.
            password = unquote(user)

    db = 0
    master_name = None
    if topology is Topology.SENTINEL:
        master_name = unquote(path) if path else None
        if not master_name:
            raise ConfigError(
                f"{_safe(url)}: name the master group, e.g. redis+sentinel://h:26379/mymaster"
            )
        db_text = parse_qs(query).get("db", ["0"])[0]
    else:
        db_text = path or parse_qs(query).get("db", ["0"])[0]
    try:
        db = int(db_text)
    except ValueError:
        raise ConfigError(f"database {db_text!r} in {_safe(url)} is not a number") from None
    if db < 0:
        raise ConfigError(f"database {db} in {_safe(url)} is negative")
    target = Target(topology=topology, hosts=hosts, tls=tls, db=db, master_name=master_name)
    return target, Credentials(username, Secret(password) if password is not None else None)


def _safe(url: str) -> str:
    """The URL with any password replaced, for error messages."""
    scheme, sep, rest = url.partition("://")
    authority, slash, tail = rest.partition("/")
    if "@" in authority:
        userinfo, _, hosts = authority.rpartition("@")
        user = userinfo.split(":", 1)[0] if ":" in userinfo else ""
        authority = f"{user}:***@{hosts}" if user else f"***@{hosts}"
    return f"{scheme}{sep}{authority}{slash}{tail}"


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


def read_password_file(path: Path) -> Secret:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read password file {path}: {exc.strerror}") from None
    password = text.rstrip("\r\n")
    if not password:
        raise ConfigError(f"password file {path} is empty")
    return Secret(password)


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
