"""The thresholds table and its override file: every mistake is one line naming the key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from memorywatch.cli import main
from memorywatch.thresholds import (
    DEFAULTS,
    PAIRS,
    Thresholds,
    ThresholdsError,
    format_duration,
    load,
    parse_duration,
)


def test_issue_defaults() -> None:
    t = Thresholds()
    assert (t["memory_used_warning"].value, t["memory_used_warning"].for_duration) == (0.8, "10m")
    assert (t["memory_used_critical"].value, t["memory_used_critical"].for_duration) == (0.9, "5m")
    assert (t["clients_warning"].value, t["clients_critical"].value) == (0.8, 0.95)
    assert (t["replica_lag_warning"].value, t["replica_lag_critical"].value) == (10, 30)
    assert t["replication_link_down"].for_duration == "1m"
    assert t["lock_contention"].value == 0.2 and t["lock_contention"].for_duration == "10m"
    assert t["lock_wait_p99"].value == 5
    assert t["lock_held_ttl_share"].value == 0.8
    for name in ("lock_lost", "tool_duplicate_execution", "state_misses", "agent_state_evicted"):
        assert (t[name].value, t[name].for_seconds, t[name].severity) == (0, 0, "critical")
    # the heartbeat's expiry is already the wait: a short for, not AgentToolStuckInProgress's
    orphaned = t["tool_orphaned"]
    assert (orphaned.value, orphaned.for_duration, orphaned.severity) == (0, "30s", "critical")
    for row in DEFAULTS:
        assert row.rationale.endswith(".") and len(row.rationale) < 200, row.name


def test_pairs_are_warning_then_critical() -> None:
    t = Thresholds()
    for warning, critical in PAIRS:
        assert (t[warning].severity, t[critical].severity) == ("warning", "critical")


@pytest.mark.parametrize("text", ["0s", "30s", "5m", "1h30m", "1d", "2w"])
def test_duration_round_trip(text: str) -> None:
    assert format_duration(parse_duration(text)) == text


def test_overrides_apply(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("memory_used_warning: 0.7\nlock_wait_p99: {value: 3, for: 15m}\n")
    t = load(path)
    assert t["memory_used_warning"].value == 0.7
    assert (t["lock_wait_p99"].value, t["lock_wait_p99"].for_duration) == (3, "15m")
    assert t["memory_used_critical"] == Thresholds()["memory_used_critical"]


def test_empty_file_is_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("# nothing\n")
    assert load(path) == Thresholds()


def test_test_profile_scales_for_to_seconds() -> None:
    t = load(profile="test")
    assert t["memory_used_warning"].for_duration == "10s"
    assert t["lock_lost"].for_duration == "0s"
    assert t["memory_used_warning"].value == 0.8
    assert Thresholds().with_for_scale(2)["redis_down"].for_duration == "2m"
    assert t["memory_full_forecast"].value == 240  # a horizon is on the same clock as `for`
    assert t["replica_lag_warning"].value == 10  # a measured lag is not


BAD = [
    ("memroy_used_warning: 0.7\n", "unknown threshold 'memroy_used_warning' (did you mean memory_used_warning"),
    ("memory_used_warning: high\n", "memory_used_warning: value must be a number, got str 'high'"),
    ("memory_used_warning: true\n", "memory_used_warning: value must be a number"),
    ("lock_wait_p99: -1\n", "lock_wait_p99: value must be a finite number >= 0, got -1"),
    ("memory_used_warning: 80\n", "memory_used_warning: value is a ratio between 0 and 1"),
    ("memory_used_warning: 0.95\n", "memory_used_warning (0.95) is above memory_used_critical (0.9)"),
    ("replica_lag_warning: {value: 60}\n", "replica_lag_warning (60) is above replica_lag_critical (30)"),
    ("lock_wait_p99: {value: 3, for: 5 minutes}\n", "lock_wait_p99: 'for' must be a duration like 5m"),
    ("lock_wait_p99: {value: 3, for: 5}\n", "lock_wait_p99: 'for' must be a duration string"),
    ("lock_wait_p99: {value: 3, sevrity: critical}\n", "lock_wait_p99: unknown field 'sevrity'"),
    ("redis_down: 1\n", "redis_down: is a condition without a value"),
    ("fragmentation_min_memory: {for: 5m}\n", "fragmentation_min_memory: shapes an expression and has no 'for'"),
    ("- memory_used_warning\n", "expected a mapping of threshold name to value, got list"),
    ("memory_used_warning: [0.7\n", "invalid YAML at line 2"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "message"), BAD)
def test_bad_override_is_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(text)
    with pytest.raises(ThresholdsError) as info:
        load(path)
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    assert str(info.value).startswith(str(path))


def test_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ThresholdsError, match="cannot read"):
        load(tmp_path / "nope.yaml")


@pytest.mark.parametrize(("text", "message"), BAD[:3] + BAD[5:6] + BAD[-1:])
def test_cli_prints_one_line_and_exits_non_zero(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(text)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        ["alerts", "generate", "--thresholds", str(path), "--out-dir", str(out), "--skip-runbooks"],
    )
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.output
    assert not out.exists()


def test_cli_subprocess_has_no_traceback(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("lock_wait_p99: -3\n")
    result = subprocess.run(
        [sys.executable, "-m", "memorywatch", "alerts", "check", "--thresholds", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ},
        cwd=tmp_path,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [f"Error: {path}: lock_wait_p99: value must be a finite number >= 0, got -3"]


def test_thresholds_command_prints_the_table_with_overrides(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("lock_wait_p99: {value: 3, for: 15m}\n")
    result = CliRunner().invoke(main, ["alerts", "thresholds", "--thresholds", str(path)])
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split() for line in result.output.splitlines()[1:]}
    assert set(rows) == {t.name for t in DEFAULTS}
    assert rows["lock_wait_p99"][:5] == ["lock_wait_p99", "3", "s", "15m", "warning"]
    assert rows["memory_used_warning"][1:3] == ["80", "%"]
