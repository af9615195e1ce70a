"""The command line: clear one-line errors, never a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from harness import LOOPBACK, free_port, redis_server


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "memorywatch", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0 and "memorywatch, version" in result.stdout


def test_bad_inputs_are_one_line(tmp_path: Path) -> None:
    assert "unsupported scheme" in one_line_error(
        run("exporter", "--redis-url", "http://x", "--check")
    )
    assert "cannot read password file" in one_line_error(
        run("exporter", "--password-file", str(tmp_path / "nope"), "--check")
    )
    assert "given twice" in one_line_error(
        run(
            "exporter",
            "--redis-url",
            "redis://:a@127.0.0.1",
            "--check",
            env={"MEMORYWATCH_REDIS_PASSWORD": "b"},
        )
    )


def test_top_instances_from_the_environment_is_validated() -> None:
    result = run("exporter", "--check", env={"MEMORYWATCH_TOP_INSTANCES": "-1"})
    assert "--top-instances must be between 0 and 100" in one_line_error(result)


def test_check_reports_unreachable_and_wrong_password_in_one_line() -> None:
    result = run("exporter", "--redis-url", f"redis://{LOOPBACK}:{free_port()}", "--check")
    assert result.returncode == 1
    assert result.stdout.startswith("error:") and "connection" in result.stdout
    with redis_server(password="right-one") as server:
        wrong = run(
            "exporter",
            "--redis-url",
            server.url,
            "--check",
            env={"MEMORYWATCH_REDIS_PASSWORD": "pw-zz9-bad"},
        )
        assert wrong.returncode == 1 and ": auth:" in wrong.stdout
        assert "pw-zz9-bad" not in wrong.stdout + wrong.stderr
        ok = run(
            "exporter",
            "--redis-url",
            server.url,
            "--check",
            env={"MEMORYWATCH_REDIS_PASSWORD": "right-one"},
        )
        assert ok.returncode == 0 and ok.stdout.startswith("ok:") and "master" in ok.stdout


def test_listen_port_in_use_is_one_line() -> None:
    with socket.socket() as busy:
        busy.bind((LOOPBACK, 0))
        busy.listen()
        port = busy.getsockname()[1]
        line = one_line_error(
            run(
                "exporter", "--listen", f"{LOOPBACK}:{port}", "--redis-url", f"redis://{LOOPBACK}:1"
            )
        )
    assert "cannot listen" in line and "in use" in line
