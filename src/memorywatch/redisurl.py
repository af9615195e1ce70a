"""Redis URLs as the exporter and the SDK both accept them: one node, a Sentinel master group
or a Cluster seed, with the credentials they carry kept out of every printed form."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote


class BadRedisURL(ValueError):
    """A Redis URL that names no usable target; the message is one line and holds no password."""


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


_HOST = re.compile(r"[A-Za-z0-9._\-]+|[0-9A-Fa-f:.]+(%[A-Za-z0-9._\-]+)?")
"""A DNS name, an IPv4 address or an IPv6 address (with a zone): never spaces or controls."""


def _parse_hostport(text: str, default_port: int, url: str) -> tuple[str, int]:
    text = text.strip()
    if not text:
        raise BadRedisURL(f"no host in {url!r}")
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, ""
    if not host:
        raise BadRedisURL(f"no host in {url!r}")
    if not _HOST.fullmatch(host):
        raise BadRedisURL(f"host {host!r} in {url!r} is not a host name or an IP address")
    try:
        port = int(port_text) if port_text else default_port
    except ValueError:
        raise BadRedisURL(f"port {port_text!r} in {url!r} is not a number") from None
    if not 0 < port < 65536:
        raise BadRedisURL(f"port {port} in {url!r} is out of range 1-65535")
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
        raise BadRedisURL(
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
    hosts = tuple(_parse_hostport(h, default_port, safe_url(url)) for h in hostlist.split(","))
    if topology is not Topology.SENTINEL and len(hosts) > 1:
        raise BadRedisURL(f"{safe_url(url)}: several hosts are only allowed for redis+sentinel://")

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
            raise BadRedisURL(
                f"{safe_url(url)}: name the master group, e.g. redis+sentinel://h:26379/mymaster"
            )
        db_text = parse_qs(query).get("db", ["0"])[0]
    else:
        db_text = path or parse_qs(query).get("db", ["0"])[0]
    try:
        db = int(db_text)
    except ValueError:
        raise BadRedisURL(f"database {db_text!r} in {safe_url(url)} is not a number") from None
    if db < 0:
        raise BadRedisURL(f"database {db} in {safe_url(url)} is negative")
    target = Target(topology=topology, hosts=hosts, tls=tls, db=db, master_name=master_name)
    return target, Credentials(username, Secret(password) if password is not None else None)


def safe_url(url: str) -> str:
    """The URL with any password replaced, for error messages."""
    scheme, sep, rest = url.partition("://")
    authority, slash, tail = rest.partition("/")
    if "@" in authority:
        userinfo, _, hosts = authority.rpartition("@")
        user = userinfo.split(":", 1)[0] if ":" in userinfo else ""
        authority = f"{user}:***@{hosts}" if user else f"***@{hosts}"
    return f"{scheme}{sep}{authority}{slash}{tail}"
