"""The exporter-toolkit web configuration file: TLS and basic auth for every endpoint.

The Prometheus ecosystem's exporters (node_exporter, redis_exporter) read this YAML with
``--web.config.file``; ``memorywatch exporter --web-config-file`` reads the same format::

    tls_server_config:
      cert_file: /etc/memorywatch/tls/tls.crt
      key_file: /etc/memorywatch/tls/tls.key
      client_auth_type: RequireAndVerifyClientCert   # or NoClientCert, VerifyClientCertIfGiven
      client_ca_file: /etc/memorywatch/tls/ca.crt
      min_version: TLS12                             # TLS10 .. TLS13
    basic_auth_users:
      prometheus: $2y$10$...                         # bcrypt (htpasswd -nBC 10 "" | tr -d ':')

Relative paths are relative to the file, as in exporter-toolkit. What this server cannot
honour (``RequestClientCert`` and ``RequireAnyClientCert``, which accept unverified
certificates; cipher suites, curves, HTTP/2, extra headers) is refused at start-up in one
line rather than silently ignored. Errors name keys and files, never a hash or a password.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import ssl
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import bcrypt
import yaml

from memorywatch.exporter.caches import remember
from memorywatch.exporter.config import ConfigError

CLIENT_AUTH: Final = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
UNSUPPORTED_CLIENT_AUTH: Final = ("RequestClientCert", "RequireAnyClientCert")
VERSIONS: Final = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
TLS_KEYS: Final = {
    "cert_file",
    "key_file",
    "client_auth_type",
    "client_ca_file",
    "min_version",
    "max_version",
}
TLS_NOT_SUPPORTED: Final = {"cipher_suites", "curve_preferences", "prefer_server_cipher_suites"}
"""exporter-toolkit keys this server cannot honour: refused at start-up, never ignored (every
``http_server_config`` key is refused the same way)."""
AUTH_CACHE_SIZE: Final = 1024


@dataclass(frozen=True)
class WebConfig:
    """What the file asks of the HTTP server."""

    source: Path
    tls: ssl.SSLContext | None = None
    users: Mapping[str, bytes] = field(default_factory=dict)
    """user -> bcrypt hash."""


def load(path: Path) -> WebConfig:
    """Read and check the file; every problem is one :class:`ConfigError` line."""
    where = f"--web-config-file {path}"
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read it: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{where}: not valid YAML{line}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: must be a mapping of tls_server_config, basic_auth_users")
    known = {"tls_server_config", "basic_auth_users", "http_server_config"}
    unknown = sorted(set(map(str, data)) - known)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})"
        )
    http = data.get("http_server_config") or {}
    for key in sorted(http):
        raise ConfigError(f"{where}: http_server_config.{key} is not supported by memorywatch")
    tls = _tls(data.get("tls_server_config"), path.parent, where)
    users = _users(data.get("basic_auth_users"), where)
    return WebConfig(path, tls, users)


def _file(section: Mapping[str, Any], key: str, base: Path, where: str) -> Path:
    value = section.get(key)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: tls_server_config.{key} must name a file")
    found = (base / value) if not Path(value).is_absolute() else Path(value)
    if not found.is_file():
        raise ConfigError(f"{where}: tls_server_config.{key}: no file {found}")
    return found


def _tls(section: Any, base: Path, where: str) -> ssl.SSLContext | None:
    if section is None:
        return None
    if not isinstance(section, dict):
        raise ConfigError(f"{where}: tls_server_config must be a mapping")
    for key in sorted(section):
        if key in TLS_NOT_SUPPORTED:
            raise ConfigError(f"{where}: tls_server_config.{key} is not supported by memorywatch")
        if key not in TLS_KEYS:
            raise ConfigError(f"{where}: unknown key tls_server_config.{key}")
    cert, key = _file(section, "cert_file", base, where), _file(section, "key_file", base, where)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or type(exc).__name__
        raise ConfigError(f"{where}: cert_file and key_file do not load ({reason})") from None
    auth = section.get("client_auth_type", "NoClientCert")
    if auth in UNSUPPORTED_CLIENT_AUTH:
        raise ConfigError(
            f"{where}: client_auth_type {auth} accepts unverified certificates and is not "
            "supported; use RequireAndVerifyClientCert or VerifyClientCertIfGiven"
        )
    if auth not in CLIENT_AUTH:
        raise ConfigError(
            f"{where}: client_auth_type {auth!r} is not one of {', '.join(CLIENT_AUTH)}"
        )
    context.verify_mode = CLIENT_AUTH[auth]
    if auth != "NoClientCert":
        ca = _file(section, "client_ca_file", base, where)
        try:
            context.load_verify_locations(cafile=str(ca))
        except (ssl.SSLError, OSError):
            raise ConfigError(f"{where}: client_ca_file {ca} holds no CA certificate") from None
    elif "client_ca_file" in section:
        raise ConfigError(f"{where}: client_ca_file needs a client_auth_type that verifies")
    for bound in ("min_version", "max_version"):
        if bound in section:
            name = section[bound]
            if name not in VERSIONS:
                raise ConfigError(f"{where}: {bound} {name!r} is not one of {', '.join(VERSIONS)}")
            if bound == "min_version":
                context.minimum_version = VERSIONS[name]
            else:
                context.maximum_version = VERSIONS[name]
    if "min_version" not in section:
        context.minimum_version = ssl.TLSVersion.TLSv1_2  # exporter-toolkit's default
    return context


def _users(section: Any, where: str) -> dict[str, bytes]:
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise ConfigError(f"{where}: basic_auth_users must map user names to bcrypt hashes")
    users = {}
    for user, hashed in section.items():
        if not isinstance(user, str) or not user or ":" in user:
            raise ConfigError(f"{where}: basic_auth_users: a user name is empty or holds ':'")
        if not isinstance(hashed, str) or not hashed.startswith(("$2a$", "$2b$", "$2y$")):
            raise ConfigError(
                f"{where}: basic_auth_users.{user}: not a bcrypt hash ($2a$/$2b$/$2y$)"
            )
        try:
            bcrypt.checkpw(b"", hashed.encode())  # a malformed hash fails here, not per request
        except ValueError:
            raise ConfigError(
                f"{where}: basic_auth_users.{user}: a malformed bcrypt hash"
            ) from None
        users[user] = hashed.encode()
    return users


class BasicAuth:
    """Checks ``Authorization: Basic`` against the bcrypt hashes.

    bcrypt costs tens of milliseconds by design; Prometheus sends the same credentials on
    every scrape, so a success is remembered by a keyed digest of the password (never the
    password itself), bounded in size, as exporter-toolkit does. A failure is never cached."""

    def __init__(self, users: Mapping[str, bytes]) -> None:
        self._users = dict(users)
        self._key = os.urandom(32)
        self._ok: dict[tuple[str, bytes], bool] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return bool(self._users)

    def allowed(self, authorization: str | None) -> bool:
        if not self._users:
            return True
        scheme, _, encoded = (authorization or "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode()
            user, sep, password = decoded.partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        hashed = self._users.get(user)
        if not sep or hashed is None:
            return False
        digest = hmac.new(self._key, password.encode(), "sha256").digest()
        with self._lock:
            if self._ok.get((user, digest)):
                return True
        try:
            if not bcrypt.checkpw(password.encode(), hashed):
                return False
        except ValueError:  # a password bcrypt refuses (over 72 bytes in bcrypt >= 5)
            return False
        with self._lock:
            remember(self._ok, AUTH_CACHE_SIZE, (user, digest), True)
        return True
