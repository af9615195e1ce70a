"""What every operation of the SDK shares: the layout, the settings, telemetry, and the schema
check that makes a fleet visible to the exporter from its first write."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, TypeVar

from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from memorywatch import schema
from memorywatch.agent import _values
from memorywatch.agent import attributes as attr
from memorywatch.agent._effects import Command, Op, Replicated, Script
from memorywatch.agent.errors import AgentStateError, SchemaMismatch, StateNotDurable
from memorywatch.agent.telemetry import Telemetry

T = TypeVar("T")


@dataclass
class Core:
    """The state of one client that is not a connection: identical for both drivers."""

    schema: schema.Schema
    instance_id: str
    settings: _values.Settings
    telemetry: Telemetry
    pool_stats: Callable[[], Mapping[str, int]]
    """The client pool's numbers for the heartbeat (``pool.pool_numbers``)."""
    schema_checked: bool = False
    ready_flag: bool = True
    heartbeat: Any = None
    """The running heartbeat loop's handle, if any."""
    labels: dict[tuple[str, int, str], str] = field(default_factory=dict)
    """(lock or tool, shard, name) -> the label the shard's script gave the name: sent back
    instead of the cap, so the script skips its registry lookup. At most LABELS_KEPT."""
    shard_keys: dict[tuple[str, int], Any] = field(default_factory=dict)
    """Keys every lock or tool call of a shard shares, built once per (what, shard)."""


LABELS_KEPT = 4096
K = TypeVar("K")


def shard_keys(core: Core, what: str, subject: str, build: Callable[[schema.Schema, str], K]) -> K:
    """The keys that every ``what`` (lock, tool) of ``subject``'s shard shares, built once."""
    slot = (what, core.schema.shard(subject))
    found: K | None = core.shard_keys.get(slot)
    if found is None:
        found = core.shard_keys[slot] = build(core.schema, subject)
    return found


def remember_label(core: Core, key: tuple[str, int, str], label: str) -> None:
    if len(core.labels) >= LABELS_KEPT:
        core.labels.clear()
    core.labels[key] = label


def ensure_schema(core: Core, op: str = "schema.check") -> Op[None]:
    """Write ``{ns}:schema`` if absent (one script call), refuse another layout."""
    stored = yield Script(
        "schema_init",
        [core.schema.schema_key()],
        [schema.SCHEMA_VERSION, core.schema.shards],
        op,
    )
    check_schema(_values.pairs(stored), core.schema)
    core.schema_checked = True


def check_schema(stored: Mapping[str, str], sch: schema.Schema) -> None:
    version = stored.get(schema.SCHEMA_FIELD_VERSION)
    shards = stored.get(schema.SCHEMA_FIELD_SHARDS)
    if version != str(schema.SCHEMA_VERSION):
        raise SchemaMismatch(
            f"{sch.schema_key()} holds schema version {version} data and this SDK writes "
            f"version {schema.SCHEMA_VERSION}: use a new namespace, or delete the old keys "
            "first (docs/schema.md, 'From version 1')"
        )
    if shards != str(sch.shards):
        raise SchemaMismatch(
            f"{sch.schema_key()} says {shards} shards, this client is configured with {sch.shards}"
        )


def prepared(core: Core, op: Op[T]) -> Op[T]:
    """``op`` with the schema check before its first command while the check has not
    succeeded yet, so the first write of any client, sync or asyncio, makes the fleet
    visible to the exporter. A failure of the check is named after ``op``'s own first
    command (``history.append: Redis unreachable ...``) and raised inside ``op``, so its
    span records it."""
    try:
        effect = next(op)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    if not core.schema_checked:
        name = getattr(effect, "op", None)
        try:
            yield from ensure_schema(core, name if isinstance(name, str) else "schema.check")
        except BaseException as exc:
            try:
                effect = op.throw(exc)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
    while True:
        try:
            reply = yield effect
        except BaseException as exc:
            thrown: BaseException | None = exc
        else:
            thrown = None
        try:
            effect = op.send(reply) if thrown is None else op.throw(thrown)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]


def durable(
    core: Core,
    script: Script,
    what: str,
    subject: str,
    matters: Callable[[Any], bool] | None = None,
    give_back: Callable[[Any], Op[None]] | None = None,
) -> Op[Any]:
    """``script``'s reply; in durable mode (``min_replicas`` > 0) only once that many
    replicas have its write. ``WAIT`` rides behind the script on its connection, so the
    cost is the replicas' acknowledgement, not another round trip. Too few in time: the
    refusal is counted (fleet counter ``state_not_durable``, field ``what``; the OTel
    counter; a span), ``give_back(value)`` returns what the script took (a claim, a lock;
    its failure becomes a note), and :class:`StateNotDurable` is raised. ``matters(value)``
    False lets a reply through whatever the replicas did (a lock attempt that took nothing)."""
    wanted = core.settings.min_replicas
    if wanted <= 0:
        return (yield script)
    timeout = core.settings.replica_timeout
    reply = yield script._replace(replicas=wanted, replica_timeout_ms=_values.ms(timeout))
    assert isinstance(reply, Replicated)
    if reply.acked >= wanted or (matters is not None and not matters(reply.value)):
        return reply.value
    attributes = {attr.DURABLE_OP: what}
    core.telemetry.not_durable.add(1, attributes)
    error = StateNotDurable(
        what,
        reply.acked,
        wanted,
        f"{script.op}: {reply.acked} of {wanted} replicas acknowledged the write within "
        f"{timeout:g}s; it may not survive a failover, so it is refused",
    )
    span = core.telemetry.tracer.start_span(
        attr.STATE_NOT_DURABLE,
        kind=SpanKind.CLIENT,
        attributes={
            **attributes,
            attr.REPLICAS_ACKED: reply.acked,
            attr.REPLICAS_WANTED: wanted,
            attr.REPLICA_TIMEOUT: timeout,
        },
    )
    fail_span(span, error)
    span.end()
    stats = f"{core.schema.prefix(core.schema.shard(subject))}stats:"
    # If the master is going away the count is lost with it: the caller must see the refusal.
    with suppress(AgentStateError):
        yield Command(("HINCRBY", f"{stats}{schema.FAMILY_STATE_NOT_DURABLE}", what, 1), script.op)
    if give_back is not None:
        try:
            yield from give_back(reply.value)
        except AgentStateError as err:
            error.add_note(f"memorywatch: giving back what {script.op} took failed: {err!r}")
    raise error


def fail_span(span: Span, exc: BaseException) -> None:
    span.set_attribute(attr.ERROR_TYPE, type(exc).__qualname__)
    span.set_status(Status(StatusCode.ERROR, str(exc)))


@contextmanager
def client_span(
    core: Core, name: str, attributes: Mapping[str, Any], current: bool = False
) -> Iterator[Span]:
    """A span that records the error type of what escapes it; ``current`` makes it the parent
    of spans started meanwhile (the user's tool function)."""
    tracer = core.telemetry.tracer
    if current:
        with tracer.start_as_current_span(
            name,
            kind=SpanKind.INTERNAL,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                yield span
            except Exception as exc:
                fail_span(span, exc)
                raise
        return
    span = tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes)
    try:
        yield span
    except Exception as exc:
        fail_span(span, exc)
        raise
    finally:
        span.end()


def now_ns_minus(started_monotonic: float) -> int:
    """Wall-clock ns of a moment given by ``time.monotonic()`` (a span started late)."""
    return time.time_ns() - int((time.monotonic() - started_monotonic) * 1e9)
