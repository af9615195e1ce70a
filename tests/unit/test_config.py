"""URL parsing, credential sources and validation: every bad input is one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest

from memorywatch.exporter.config import ConfigError, build_config, parse_listen, parse_target
from memorywatch.redisurl import Secret, Topology


@pytest.mark.parametrize(
    ("url", "topology", "hosts", "tls", "db"),
    [
        ("redis://127.0.0.1:6379", Topology.STANDALONE, (("127.0.0.1", 6379),), False, 0),
        ("127.0.0.1:7000", Topology.STANDALONE, (("127.0.0.1", 7000),), False, 0),
        ("rediss://cache.internal/3", Topology.STANDALONE, (("cache.internal", 6379),), True, 3),
        ("redis://[::1]:6380", Topology.STANDALONE, (("::1", 6380),), False, 0),
        ("redis+cluster://10.0.0.5:7001", Topology.CLUSTER, (("10.0.0.5", 7001),), False, 0),
        (
            "redis+sentinel://s1:26379,s2/agents",
            Topology.SENTINEL,
            (("s1", 26379), ("s2", 26379)),
            False,
            0,
        ),
    ],
)
def test_parse_target(url: str, topology: Topology, hosts: tuple, tls: bool, db: int) -> None:
    target, _ = parse_target(url)
    assert (target.topology, target.hosts, target.tls, target.db) == (topology, hosts, tls, db)


def test_credentials_from_url_never_show_in_display_or_repr() -> None:
    target, creds = parse_target("redis://agent:s%40cret@127.0.0.1:6379/0")
    assert creds.username == "agent"
    assert creds.password == Secret("s@cret")
    assert "s@cret" not in repr(creds) and "s@cret" not in target.display
    assert target.display == "redis://127.0.0.1:6379"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1:6379", "unsupported scheme 'http'"),
        ("redis://127.0.0.1:notaport", "is not a number"),
        ("redis://127.0.0.1:70000", "out of range"),
        ("redis://:hunter2@127.0.0.1:abc", "redis://***@127.0.0.1:abc"),
        ("redis+sentinel://127.0.0.1:26379", "name the master group"),
        ("redis://a:1,b:2", "several hosts"),
        ("redis://127.0.0.1:6379/x", "database 'x'"),
    ],
)
def test_bad_urls_name_the_problem_without_the_password(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=None) as err:
        parse_target(url)
    assert message in str(err.value)
    assert "hunter2" not in str(err.value)
    assert "\n" not in str(err.value)


def test_password_sources_are_exclusive(tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text("from-file\n")
    config = build_config(redis_url="redis://127.0.0.1:6379", password_file=pw)
    assert config.credentials.password == Secret("from-file")
    assert build_config(password_env="from-env").credentials.password == Secret("from-env")
    with pytest.raises(ConfigError, match="given twice"):
        build_config(redis_url="redis://:x@127.0.0.1", password_file=pw)
    with pytest.raises(ConfigError, match="given twice"):
        build_config(password_file=pw, password_env="y")
    with pytest.raises(ConfigError, match="cannot read password file"):
        build_config(password_file=tmp_path / "missing")
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        build_config(password_file=tmp_path / "empty")


def test_listen_and_limits() -> None:
    assert parse_listen("127.0.0.1:9121") == ("127.0.0.1", 9121)
    assert parse_listen("[::1]:9121") == ("::1", 9121)
    assert parse_listen(":9121") == ("0.0.0.0", 9121)
    with pytest.raises(ConfigError):
        parse_listen("9121")
    with pytest.raises(ConfigError, match="between 0 and 300"):
        build_config(scrape_timeout=0)
    with pytest.raises(ConfigError, match="go together"):
        build_config(tls_cert=Path(__file__))
    with pytest.raises(ConfigError, match="host:port"):
        build_config(allow_targets=("10.0.0.*",))


def test_allow_list() -> None:
    config = build_config(
        redis_url="redis://127.0.0.1:6379",
        allow_targets=("10.1.*.*:6379", "172.16.0.0/12:*", "cache-*.internal:6380"),
    )

    def allowed(url: str) -> bool:
        return config.target_allowed(parse_target(url)[0])

    assert allowed("127.0.0.1:6379")  # the configured target
    assert allowed("10.1.2.3:6379")
    assert not allowed("10.1.2.3:6380")
    assert not allowed("127.0.0.1:6380")
    assert allowed("172.20.1.1:7000")
    assert not allowed("172.32.0.1:7000")
    assert allowed("cache-a.internal:6380")
    assert not allowed("cache-a.evil.internal:6380")  # a wildcard never crosses a dot
    # A name dressed as an IP must not pass an IP pattern: the exporter would send it its
    # password, and 10.1.2.3.attacker.example can resolve anywhere.
    assert not allowed("10.1.2.3.attacker.example:6379")
    assert not allowed("10.1.2.3.nip.io:6379")
    assert not allowed("redis+sentinel://10.1.2.3:6379,evil.example:6379/m")
    with pytest.raises(ConfigError, match="CIDR"):
        build_config(allow_targets=("10.0.0.0/99:6379",))
    with pytest.raises(ConfigError, match="host:port"):
        build_config(allow_targets=("10.0.0.1:http",))


def test_top_instances_is_bounded() -> None:
    assert build_config().fleet is not None and build_config().fleet.top_instances == 3
    config = build_config(top_instances=0)
    assert config.fleet is not None and config.fleet.top_instances == 0
    for bad in (-1, 101):
        with pytest.raises(ConfigError, match="--top-instances"):
            build_config(top_instances=bad)
