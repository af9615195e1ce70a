"""Readiness, heartbeats and turn timings, as sans-I/O operations."""

from __future__ import annotations

import time
from typing import Any

from memorywatch import __version__, schema
from memorywatch.agent import _values
from memorywatch.agent._context import Core, prepared
from memorywatch.agent._effects import Deadline, DeadlineExceeded, Join, Op, Pause, Script, Spawn
from memorywatch.agent.errors import (
    AgentStateError,
    StateLoading,
    StateOutOfMemory,
    StateReadOnly,
    StateUnavailable,
    add_failure_note,
)


def probe(core: Core) -> Op[None]:
    """One scripted write: refused up front by a Redis that is loading, read-only or out of
    memory, so it proves reachable, writable and not loading at once."""
    yield Script(
        "ready", [core.schema.probe(core.instance_id)], [_values.ms(schema.PROBE_TTL)], "ready"
    )


def report_for(exc: AgentStateError, latency: float, deadline: float) -> _values.ReadyReport:
    error = str(exc)
    if isinstance(exc, StateLoading):
        return _values.ReadyReport(False, True, False, True, latency, deadline, error)
    if isinstance(exc, StateUnavailable):
        return _values.ReadyReport(False, False, False, False, None, deadline, error)
    if isinstance(exc, StateReadOnly | StateOutOfMemory):
        return _values.ReadyReport(False, True, False, False, latency, deadline, error)
    return _values.ReadyReport(False, True, False, False, latency, deadline, error)


def ready(core: Core, deadline: float) -> Op[_values.ReadyReport]:
    """Can this instance serve a user with memory right now? Reachable, writable, not
    loading, and answering within ``deadline`` seconds. Never raises."""
    started = time.monotonic()
    try:
        yield Deadline(prepared(core, probe(core)), deadline)
    except DeadlineExceeded:
        report = _values.ReadyReport(
            False, False, False, False, None, deadline, f"no answer within {deadline}s"
        )
    except AgentStateError as exc:
        report = report_for(exc, time.monotonic() - started, deadline)
    else:
        latency = time.monotonic() - started
        ok = latency <= deadline
        report = _values.ReadyReport(
            ok, True, True, False, latency, deadline, None if ok else "too slow"
        )
    core.ready_flag = report.ready
    return report


def heartbeat(core: Core, ready_flag: bool | None = None) -> Op[None]:
    """Publish this instance's hash (ready flag, pool use, versions) with a short TTL, on a
    connection beside the pool (``side``): the report of an exhausted pool must not wait for
    that pool."""
    flag = core.ready_flag if ready_flag is None else ready_flag
    fields: dict[str, Any] = {
        schema.HEARTBEAT_READY: int(flag),
        **core.pool_stats(),
        schema.HEARTBEAT_SDK_VERSION: __version__,
        schema.HEARTBEAT_SCHEMA_VERSION: schema.SCHEMA_VERSION,
    }
    sch = core.schema
    yield Script(
        "heartbeat",
        [
            sch.heartbeat(core.instance_id),
            sch.instances_index(core.instance_id),
            sch.pool_index(core.instance_id),
            *sch.pool_aggregate_keys(core.instance_id),
        ],
        [
            core.instance_id,
            _values.ms(core.settings.heartbeat_ttl),
            *[x for pair in fields.items() for x in pair],
        ],
        "heartbeat",
        side=True,
    )


class Heartbeat:
    """A running heartbeat loop: ``beats`` published, ``last_error`` of the last cycle."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.beats = 0
        self.last_error: AgentStateError | None = None
        self.handle: Any = None


def _beat(core: Core, status: Heartbeat, ready_deadline: float) -> Op[None]:
    while True:
        yield from ready(core, ready_deadline)  # sets the flag the heartbeat publishes
        try:
            yield from heartbeat(core)  # unprepared: a client refused by the schema check
            # (its ready() just said so) still publishes itself as not ready
        except AgentStateError as exc:
            status.last_error = exc
        else:
            status.beats += 1
            status.last_error = None
        if (yield Pause(status.interval)):
            return


def start_heartbeat(core: Core, interval: float | None, ready_deadline: float) -> Op[Heartbeat]:
    """Every ``interval`` (default heartbeat TTL / 3) in the background: the readiness probe
    (bounded by ``ready_deadline``), then the heartbeat with its verdict."""
    if core.heartbeat is None:
        status = Heartbeat(interval or core.settings.heartbeat_ttl / 3)
        status.handle = yield Spawn(_beat(core, status, ready_deadline), "mw-heartbeat")
        core.heartbeat = status
    found: Heartbeat = core.heartbeat
    return found


def stop_heartbeat(core: Core) -> Op[None]:
    status, core.heartbeat = core.heartbeat, None
    if status is not None:
        yield Join(status.handle)


class TurnBase:
    """One user turn (a context manager on each client); its duration goes into the fleet
    ``turn_duration_seconds`` histogram, also when the turn raises."""

    def __init__(self, state: Any, session_id: str) -> None:
        if not session_id:
            raise ValueError("a session id is required")
        self._state = state
        self.core: Core = state._core
        self.session_id = session_id
        self.started = time.monotonic()


def end_turn(turn: TurnBase, in_flight: BaseException | None) -> Op[None]:
    """Record the turn and touch the session's last activity; a failure to record is attached
    to the turn's own exception as a note, never put in its place."""
    duration = time.monotonic() - turn.started
    core = turn.core
    le = schema.bucket_le(duration, schema.TURN_BUCKETS)
    try:
        yield Script(
            "turn_end",
            [
                core.schema.sessions_index(turn.session_id),
                core.schema.stats(schema.FAMILY_TURN_DURATION, turn.session_id),
            ],
            [
                turn.session_id,
                schema.counter_field(schema.TURN_HISTOGRAM_NAME, le),
                f"{duration:.6f}",
            ],
            "turn.record",
        )
    except Exception as err:
        if in_flight is None:
            raise
        add_failure_note(in_flight, "the turn could not be recorded", err)
