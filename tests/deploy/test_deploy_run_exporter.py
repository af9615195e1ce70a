"""scripts/run-exporter as systemd, `timeout` or a container runtime stop it: one signal to the
script's pid, and both its Redis and its exporter are gone."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from harness import LOOPBACK, free_port, wait_until

REPO = Path(__file__).resolve().parents[2]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def healthy(port: int) -> bool:
    with urllib.request.urlopen(f"http://{LOOPBACK}:{port}/healthz", timeout=2) as resp:
        return bool(resp.status == 200)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_the_script_stops_redis_and_the_exporter(
    signum: signal.Signals, tmp_path: Path
) -> None:
    redis_port, exporter_port = free_port(), free_port()
    command = tmp_path / "memorywatch"  # this interpreter's memorywatch (the checkout's code)
    command.write_text(f'#!/bin/sh\nexec {sys.executable} -m memorywatch "$@"\n')
    command.chmod(0o755)
    env = {
        **os.environ,
        "RUN_EXPORTER_SETUP": "0",
        "RUN_EXPORTER_REDIS_PORT": str(redis_port),
        "RUN_EXPORTER_COMMAND": str(command),
        "MEMORYWATCH_LISTEN": f"{LOOPBACK}:{exporter_port}",
    }
    log = tmp_path / "run-exporter.log"
    with log.open("w") as out:
        script = subprocess.Popen(
            ["bash", str(REPO / "scripts" / "run-exporter"), "--no-fleet"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    pids: dict[str, int] = {}
    try:

        def started() -> bool:
            text = log.read_text()
            if script.poll() is not None:
                raise RuntimeError(f"run-exporter exited with {script.returncode}:\n{text}")
            for name in ("redis-server", "exporter"):
                found = re.search(rf"{name} \(pid (\d+)\)", text)
                if found:
                    pids[name] = int(found[1])
            return len(pids) == 2 and healthy(exporter_port)

        wait_until(started, 20, interval=0.05, what="run-exporter's redis and exporter")
        assert all(alive(pid) for pid in pids.values())
        begun = time.monotonic()
        script.send_signal(signum)
        code = script.wait(timeout=15)
        took = time.monotonic() - begun
        gone = {name: not alive(pid) for name, pid in pids.items()}
        assert gone == {"redis-server": True, "exporter": True}, log.read_text()
        assert code == 128 + signum, log.read_text()
        assert took < 10, f"stopping took {took:.1f}s"
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://{LOOPBACK}:{exporter_port}/healthz", timeout=2)
    finally:
        if script.poll() is None:
            script.kill()
            script.wait(timeout=10)
        for pid in pids.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
def test_the_exporter_ending_by_itself_stops_redis(tmp_path: Path) -> None:
    """A bad flag ends the exporter at once: the Redis the script started does not stay."""
    redis_port = free_port()
    env = {
        **os.environ,
        "RUN_EXPORTER_SETUP": "0",
        "RUN_EXPORTER_REDIS_PORT": str(redis_port),
        "RUN_EXPORTER_COMMAND": sys.executable,  # `python exporter ...`: fails at once
        "MEMORYWATCH_LISTEN": f"{LOOPBACK}:{free_port()}",
    }
    proc = subprocess.run(
        ["bash", str(REPO / "scripts" / "run-exporter")],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )
    assert proc.returncode != 0
    found = re.search(r"redis-server \(pid (\d+)\)", proc.stdout)
    assert found, proc.stdout + proc.stderr
    assert not alive(int(found[1]))
