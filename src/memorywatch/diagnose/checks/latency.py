"""A slow or blocked Redis (runbooks RedisBusy, RedisSlowCommands).

Redis runs commands on one thread: while one runs, every other client waits. What Redis
already keeps answers both questions without history: INFO commandstats, read at the start
and at the end of the run's window, gives the time spent per command over the window (the
busy share, and each command's mean); SLOWLOG holds the recent commands past
slowlog-log-slower-than. Commands are named by their name only: arguments may hold user data
and are never read."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from memorywatch import names
from memorywatch.diagnose.checks._util import pct, seconds, stat
from memorywatch.diagnose.facts import Facts, SlowEntry
from memorywatch.diagnose.model import CannotTell, Finding, Hypothesis
from memorywatch.thresholds import Thresholds

SLOWLOG_RECENT = 300.0
"""SLOWLOG entries younger than this many seconds are the recent ones (the alert's 5m)."""
SHOWN = 4


@dataclass(frozen=True)
class CommandTime:
    command: str
    calls: float
    seconds: float


def command_times(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[CommandTime]:
    """Per command, the calls and execution time that INFO commandstats grew by between two
    reads; the costliest first. A reset (CONFIG RESETSTAT, a restart) counts from zero."""
    out = []
    for key, stats in after.items():
        if not key.startswith("cmdstat_") or not isinstance(stats, Mapping):
            continue
        old = before.get(key)
        calls = stat(stats, "calls") - stat(old, "calls")
        usec = stat(stats, "usec") - stat(old, "usec")
        if calls < 0 or usec < 0:
            calls, usec = stat(stats, "calls"), stat(stats, "usec")
        if usec > 0:
            out.append(CommandTime(key.removeprefix("cmdstat_"), calls, usec / 1e6))
    return sorted(out, key=lambda c: -c.seconds)


def _window(facts: Facts) -> tuple[list[CommandTime], float]:
    if facts.window is None:
        raise CannotTell("INFO could not be read a second time, so command time has no rate")
    before = facts.primary.info
    if not any(k.startswith("cmdstat_") for k in before):
        raise CannotTell("INFO holds no commandstats section (an ACL or a renamed INFO?)")
    return command_times(before, facts.window.info), facts.window.seconds


def _blocked(facts: Facts) -> list[str]:
    blocked = facts.primary.number("blocked_clients")
    return (
        [f"{blocked:,.0f} clients blocked in a blocking command (BLPOP, XREAD, WAIT)"]
        if (blocked)
        else []
    )


def busy(facts: Facts, th: Thresholds) -> Finding | None:
    times, window = _window(facts)
    # EXEC's time is its queued commands' time, counted again: left out, as the alert does
    times = [t for t in times if t.command != names.CMD_EXEC]
    limit = th["redis_busy"].number()
    spent = sum(t.seconds for t in times)
    share = spent / window if window > 0 else 0.0
    if share < limit:
        return None
    top = ", ".join(
        f"{t.command} {seconds(t.seconds)} ({pct(t.seconds / spent)}, {t.calls:,.0f} calls)"
        for t in times[:SHOWN]
    )
    return Finding(
        f"Redis's one thread spent {pct(share)} of the last {window:.1f} s executing commands: "
        "every agent command queues behind them.",
        (f"{seconds(spent)} of {window:.1f} s in commands (threshold {pct(limit)}): {top}",
         *_slowlog_lines(facts, th), *_blocked(facts)),
        excess=share / limit if limit else 1.0 + share,
    )  # fmt: skip


def slow_commands(facts: Facts, th: Thresholds) -> Finding | None:
    limit = th["slow_command_seconds"].number()
    times, window = _window(facts)
    slow_now = [t for t in times if t.calls and t.seconds / t.calls >= limit]
    if not slow_now and facts.slow is None:
        raise CannotTell("SLOWLOG GET was refused (an ACL or a renamed command)")
    recent = _recent(facts, th)
    if not slow_now and not recent:
        return None
    evidence = [
        f"in the last {window:.1f} s: {t.command} took {seconds(t.seconds / t.calls)} per call "
        f"({t.calls:,.0f} calls)"
        for t in slow_now[:SHOWN]
    ]
    evidence += _slowlog_lines(facts, th)
    worst = max(
        [t.seconds / t.calls for t in slow_now] + [e.seconds for e in recent], default=limit
    )
    return Finding(
        f"Commands slower than {seconds(limit)} ran: each one held every other client "
        "(the agents) waiting for as long.",
        (*evidence, *_blocked(facts)),
        excess=worst / limit if limit else 1.0 + worst,
    )


def _recent(facts: Facts, th: Thresholds) -> list[SlowEntry]:
    """SLOWLOG's entries of the last 5 min past the threshold ([] when SLOWLOG was refused)."""
    limit = th["slow_command_seconds"].number()
    return [e for e in facts.slow or () if e.age <= SLOWLOG_RECENT and e.seconds >= limit]


def _slowlog_lines(facts: Facts, th: Thresholds) -> list[str]:
    """The recent slow entries by command name: count and longest."""
    recent = _recent(facts, th)
    if not recent:
        return []
    by_command: dict[str, list[float]] = {}
    for entry in recent:
        by_command.setdefault(entry.command, []).append(entry.seconds)
    ranked = sorted(by_command.items(), key=lambda item: -sum(item[1]))
    shown = ", ".join(
        f"{cmd} x{len(took)} (longest {seconds(max(took))})" for cmd, took in ranked[:SHOWN]
    )
    return [
        f"SLOWLOG: {len(recent)} commands over {seconds(th['slow_command_seconds'].number())} in "
        f"the last {SLOWLOG_RECENT:.0f} s: {shown}"
    ]


HYPOTHESES = (
    Hypothesis(
        "RedisBusy",
        "Is Redis's one thread busy executing commands most of the time?",
        "Find the client sending the costly commands (CLIENT LIST: cmd=, age=) and stop or "
        "throttle it; SCAN instead of KEYS, UNLINK instead of DEL, smaller Lua scripts; "
        "shard when the load itself is the cause.",
        busy,
    ),
    Hypothesis(
        "RedisSlowCommands",
        "Did single commands run long enough to stall every other client?",
        "Replace the slow command (KEYS -> SCAN, DEL of a big key -> UNLINK, a long Lua "
        "script -> smaller steps) in the client that sends it; lazyfree-lazy-user-del yes.",
        slow_commands,
    ),
)
