"""deploy/systemd: a hardened unit whose command line and environment are the CLI's."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from deploy_helpers import (
    PASSWORD_ENV,
    SYSTEMD,
    cli_envvars,
    exporter_config,
    parse_exporter_args,
    unit_sections,
)

from memorywatch.exporter.config import DEFAULT_LISTEN

UNIT = SYSTEMD / "memorywatch-exporter.service"
ENV_FILE = SYSTEMD / "memorywatch-exporter.env"
ENV_FILE_INSTALLED = "/etc/default/memorywatch-exporter"

HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectControlGroups": "yes",
    "RestrictSUIDSGID": "yes",
    "CapabilityBoundingSet": "",
}


def service() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, value in unit_sections(UNIT.read_text())["Service"]:
        out.setdefault(key, []).append(value)
    return out


def exec_start() -> list[str]:
    (line,) = service()["ExecStart"]
    return shlex.split(line)


def test_unit_has_the_three_sections() -> None:
    sections = unit_sections(UNIT.read_text())
    assert set(sections) == {"Unit", "Service", "Install"}
    assert ("WantedBy", "multi-user.target") in sections["Install"]


def test_exec_start_runs_the_exporter_with_real_flags_on_loopback(tmp_path: Path) -> None:
    argv = exec_start()
    assert argv[0].startswith("/") and argv[0].endswith("/memorywatch")
    assert parse_exporter_args(argv[1:])["--listen"] == [DEFAULT_LISTEN]
    (tmp_path / "redis-password").write_text("secret\n")
    config = exporter_config([a.replace("%d", str(tmp_path)) for a in argv[1:]])
    assert (config.listen_host, config.credentials.password is not None) == ("127.0.0.1", True)


def test_password_is_a_systemd_credential() -> None:
    (password_file,) = parse_exporter_args(exec_start()[1:])["--password-file"]
    directory, _, name = password_file.partition("/")
    assert directory == "%d", "the credentials directory of this service"
    (credential,) = service()["LoadCredential"]
    assert credential.partition(":")[0] == name
    assert credential.partition(":")[2].startswith("/etc/")


def test_service_is_unprivileged_and_hardened() -> None:
    svc = service()
    assert svc.get("DynamicUser") == ["yes"] or svc.get("User", ["root"])[0] not in ("root", "0")
    for key, value in HARDENING.items():
        assert svc.get(key) == [value], f"{key}={value} missing"
    assert svc["Restart"] == ["on-failure"]


def test_environment_file_is_optional_and_in_etc_default() -> None:
    assert service()["EnvironmentFile"] == [f"-{ENV_FILE_INSTALLED}"]


def test_env_file_names_only_variables_the_cli_reads() -> None:
    assignments = re.findall(r"^#?([A-Z][A-Z0-9_]*)=", ENV_FILE.read_text(), re.MULTILINE)
    assert assignments, "the example sets nothing"
    unknown = set(assignments) - cli_envvars()
    assert not unknown, f"not `memorywatch exporter` variables: {unknown}"
    active = re.findall(r"^([A-Z][A-Z0-9_]*)=", ENV_FILE.read_text(), re.MULTILINE)
    assert PASSWORD_ENV not in active, "the unit already gives --password-file"
    assert "MEMORYWATCH_LISTEN" not in active, "--listen in ExecStart overrides it"
