"""Locks named by a kind and a resource, with a TTL that is never none, fencing tokens from the
shard's counter, jittered waits and loud losses, as sans-I/O operations.

The kind is what the fleet counts (the ``lock`` label, the counter field, capped inside the
script); the resource only ever appears in the lock's own key and its held-lock index entry,
both of which expire or are removed with the lease. ``lock("order-42")``, the one-argument
form, keeps working: the lock is the name itself, and the kind it is counted under is the name
without its trailing ids (``order``), so per-entity names stay a handful of labels.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any, ClassVar

from memorywatch import schema
from memorywatch.agent import _context, _values
from memorywatch.agent import attributes as attr
from memorywatch.agent._context import Core, durable, fail_span, now_ns_minus, remember_label
from memorywatch.agent._effects import Join, Op, Pause, Script, Sleep, Spawn
from memorywatch.agent.errors import AgentStateError, LockLost, LockTimeout, add_failure_note

MAX_KIND_LENGTH = 100
_ID_SEGMENT = re.compile(
    r"[-_:/.#@ ]+(?:\d+|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|(?=[0-9a-zA-Z]*\d)[0-9a-fA-F]{8,}|[0-9A-HJKMNP-TV-Z]{26})$"
)


def derive_kind(name: str) -> str:
    """The kind of a one-argument lock name: without its trailing id segments (digits, UUIDs,
    hex of 8+ characters with a digit, ULIDs), so ``order-42`` and ``order:7f3a9c01d2`` are
    both counted as ``order``. A name that is only an id is counted as ``other``."""
    kind = name
    for _ in range(4):
        stripped = _ID_SEGMENT.sub("", kind)
        if stripped == kind:
            break
        kind = stripped
    if not kind or kind.isdigit():
        return schema.OTHER
    return kind.partition(schema.LOCK_MEMBER_SEP)[0][:MAX_KIND_LENGTH] or schema.OTHER


def identity(kind: str, resource: str | None) -> tuple[str, str]:
    """(kind counted, lock id) of ``lock(kind, resource)``; ValueError on a bad name."""
    if not isinstance(kind, str) or not kind:
        raise ValueError("a lock needs a kind (a non-empty str)")
    if resource is None:
        return derive_kind(kind), kind
    if not isinstance(resource, str) or not resource:
        raise ValueError("a lock resource, when given, must be a non-empty str")
    if schema.LOCK_MEMBER_SEP in kind or len(kind) > MAX_KIND_LENGTH:
        raise ValueError(
            f"lock kind {kind[:40]!r}: at most {MAX_KIND_LENGTH} characters and no "
            f"{schema.LOCK_MEMBER_SEP!r} (the kind is a label; ids go in the resource)"
        )
    return kind, schema.lock_id(kind, resource)


class ShardKeys:
    """The keys of one shard that every lock of the shard shares (built once per shard)."""

    __slots__ = ("acquire", "extend", "release", "shard")

    def __init__(self, sch: schema.Schema, subject: str) -> None:
        self.shard = sch.shard(subject)
        prefix = sch.prefix(self.shard)
        exp, since = f"{prefix}locks:exp", f"{prefix}locks:since"
        self.acquire = [
            sch.fence(subject),
            f"{prefix}stats:{schema.FAMILY_LOCK_WAIT}",
            f"{prefix}stats:{schema.FAMILY_LOCK_CONTENDED}",
            f"{prefix}stats:{schema.FAMILY_LOCK_TIMEOUTS}",
            exp,
            since,
            sch.names(schema.NAMES_LOCK, subject),
        ]
        self.release = [f"{prefix}stats:{schema.FAMILY_LOCKS_LOST}", exp, since]
        self.extend = [exp, since]


def shard_keys(core: Core, lock_id: str) -> ShardKeys:
    return _context.shard_keys(core, schema.NAMES_LOCK, lock_id, ShardKeys)


_ZERO_LE = schema.bucket_le(0.0, schema.LOCK_WAIT_BUCKETS)


class LeaseBase:
    """A held lock. ``fencing_token`` rises on every acquisition of any lock of the shard:
    pass it to the systems you write to, so they reject a late write from a holder whose
    lease expired. ``lost`` is set when a renewal or the release found the lock gone."""

    event_type: ClassVar[type[Any]]

    __slots__ = (
        "_key",
        "_lost",
        "_member",
        "_released",
        "_renewal",
        "_shard",
        "_state",
        "_value",
        "core",
        "fencing_token",
        "kind",
        "label",
        "name",
        "resource",
        "ttl",
    )

    def __init__(
        self,
        state: Any,
        kind: str,
        resource: str | None,
        lock_id: str,
        label: str,
        fencing_token: int,
        owner: str,
        ttl: float,
        key: str,
        shard: ShardKeys,
    ) -> None:
        self._state = state
        self.core: Core = state._core
        self.kind = kind
        self.resource = resource
        self.name = lock_id
        self.label = label
        self.fencing_token = fencing_token
        self.ttl = ttl
        self._key = key
        self._shard = shard
        self._value = f"{fencing_token}|{owner}"
        self._member = schema.lock_member(label, lock_id)
        self._released = False
        self._renewal: Any = None
        self._lost: Any = None

    @property
    def lost(self) -> Any:
        if self._lost is None:
            self._lost = self.event_type()
        return self._lost

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.kind!r} fencing_token={self.fencing_token}>"


def _took_lock(reply: Any) -> bool:
    return bool(int(reply[0]))


def acquire(
    core: Core,
    new_lease: Callable[..., LeaseBase],
    kind: str,
    resource: str | None,
    ttl: float | None,
    wait: float,
    renew: bool,
) -> Op[LeaseBase]:
    """One round trip when the lock is free; jittered retries (2-50 ms) up to ``wait``."""
    counted, lock_id = identity(kind, resource)
    ttl = ttl or core.settings.lock_ttl
    ttl_ms = _values.ms(ttl)
    key = core.schema.lock(lock_id)
    shard = shard_keys(core, lock_id)
    keys = [key, *shard.acquire]
    owner = _values.owner_token(core.instance_id)
    known = (schema.NAMES_LOCK, shard.shard, counted)
    started = time.monotonic()
    deadline = started + max(0.0, wait)
    attempt = 1
    span = None
    try:
        while True:
            now = time.monotonic()
            final = now >= deadline
            if attempt == 1:
                le, waited = _ZERO_LE, "0"
            else:
                le = schema.bucket_le(now - started, schema.LOCK_WAIT_BUCKETS)
                waited = f"{now - started:.6f}"
            label = core.labels.get(known)
            name, cap = (counted, core.settings.name_cap) if label is None else (label, 0)
            args = [owner, ttl_ms, name, int(attempt == 1), int(final), le, waited, cap, lock_id]

            def give_back(value: Any) -> Op[None]:  # the lock was taken: nobody holds it now
                taken = new_lease(counted, resource, lock_id, _values.text(value[1]),
                                  int(value[0]), owner, ttl, key, shard)  # fmt: skip
                yield from release(core, taken)

            script = Script("lock_acquire", keys, args, "lock.acquire")
            fence, label = yield from durable(
                core, script, schema.DURABLE_LOCK_ACQUIRE, lock_id, _took_lock, give_back
            )
            fence, label = int(fence), _values.text(label)
            if name != label or cap:
                remember_label(core, known, label)
            if fence:
                if span is not None:
                    span.set_attribute(attr.LOCK_OUTCOME, "acquired")
                    span.set_attribute(attr.LOCK_ATTEMPTS, attempt)
                    span.set_attribute(attr.LOCK_FENCING_TOKEN, fence)
                lease = new_lease(counted, resource, lock_id, label, fence, owner, ttl, key, shard)
                if renew:
                    yield from start_renewal(core, lease)
                return lease
            if span is None:
                span = core.telemetry.tracer.start_span(
                    attr.SPAN_LOCK_WAIT,
                    start_time=now_ns_minus(started),
                    attributes={attr.LOCK_NAME: label},
                )
            if final:
                span.set_attribute(attr.LOCK_OUTCOME, "timeout")
                span.set_attribute(attr.LOCK_ATTEMPTS, attempt)
                error = LockTimeout(f"lock {lock_id!r} still held by another owner after {wait}s")
                fail_span(span, error)
                raise error
            yield Sleep(min(max(0.0, deadline - time.monotonic()), _values.backoff(attempt)))
            attempt += 1
    finally:
        if span is not None:
            span.end()


def extend(core: Core, lease: LeaseBase, ttl: float | None = None) -> Op[None]:
    """Start a new lease of ``ttl`` (default: the lock's); :class:`LockLost` if not ours."""
    ok = yield Script(
        "lock_extend",
        [lease._key, *lease._shard.extend],
        [lease._value, _values.ms(ttl or lease.ttl), lease._member],
        "lock.extend",
    )
    if not int(ok):
        lease.lost.set()
        raise LockLost(f"lock {lease.name!r} expired or was taken before it was extended")


def _renewal(core: Core, lease: LeaseBase, period: float) -> Op[None]:
    while not (yield Pause(period)):
        try:
            yield from extend(core, lease)
        except LockLost:
            return  # release() raises and counts it; the flag tells the holder now
        except AgentStateError:
            continue  # a Redis hiccup: the next tick tries again


def start_renewal(core: Core, lease: LeaseBase, interval: float | None = None) -> Op[None]:
    """Extend the lock every ``ttl / 3`` in the background until release."""
    if lease._renewal is None:
        lease.lost  # noqa: B018 -- made before the loop runs, so no race makes two
        loop = _renewal(core, lease, interval or lease.ttl / 3)
        lease._renewal = yield Spawn(loop, f"mw-renew-{lease.label}")


def release(core: Core, lease: LeaseBase, in_flight: BaseException | None = None) -> Op[None]:
    """Release the lock; :class:`LockLost` (counted) if it was no longer ours.

    With ``in_flight`` (the exception leaving the ``with`` body) a failed release is attached
    to it as a note instead of replacing it."""
    if lease._released:
        return
    try:
        lease._released = True
        if lease._renewal is not None:
            yield Join(lease._renewal)
        ok = yield Script(
            "lock_release",
            [lease._key, *lease._shard.release],
            [lease._value, lease._member, lease.label],
            "lock.release",
        )
        if not int(ok):
            lease.lost.set()
            raise LockLost(
                f"lock {lease.name!r} (fencing token {lease.fencing_token}) expired or was "
                "taken by another holder before release: work done under it may have overlapped"
            )
    except Exception as err:
        if in_flight is None:
            raise
        add_failure_note(in_flight, "the lock release failed while this propagated", err)
