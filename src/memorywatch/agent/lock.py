"""Locks with a TTL that is never none, INCR fencing tokens, jittered waits and loud losses."""

from __future__ import annotations

import threading
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import SpanKind, Status, StatusCode

from memorywatch import schema
from memorywatch.agent import _core
from memorywatch.agent import attributes as attr
from memorywatch.agent.errors import LockLost, LockTimeout, add_failure_note

if TYPE_CHECKING:
    from memorywatch.agent.state import AgentState


class LockKeys:
    """The keys of one lock name, built once (lock names are few and bounded)."""

    __slots__ = ("acquire", "extend", "release")

    def __init__(self, sch: schema.Schema, name: str) -> None:
        prefix = sch.prefix(sch.shard(name))
        lock = f"{prefix}lock:{name}"
        self.acquire = [
            lock,
            f"{prefix}fence:{name}",
            f"{prefix}stats:{schema.LOCK_WAIT}",
            f"{prefix}stats:{schema.LOCK_CONTENDED}",
            f"{prefix}stats:{schema.LOCK_TIMEOUTS}",
            f"{prefix}locks:exp",
            f"{prefix}locks:since",
        ]
        self.release = [
            lock,
            f"{prefix}stats:{schema.LOCKS_LOST}",
            f"{prefix}locks:exp",
            f"{prefix}locks:since",
        ]
        self.extend = [lock, f"{prefix}locks:exp", f"{prefix}locks:since"]


_KEYS_CACHE_MAX = 4096


def lock_keys(cache: dict[str, LockKeys], sch: schema.Schema, name: str) -> LockKeys:
    found = cache.get(name)
    if found is None:
        if len(cache) >= _KEYS_CACHE_MAX:
            cache.clear()
        found = cache[name] = LockKeys(sch, name)
    return found


_FIRST_BUCKET: dict[str, str] = {}  # lock name -> "{name}|{le}" of a zero wait, the common case


def acquire_args(
    name: str, owner: str, ttl_ms: int, first: bool, final: bool, waited: float
) -> list[Any]:
    """ARGV of ``lock_acquire.lua`` (shared with the asyncio client)."""
    if first:
        bucket = _FIRST_BUCKET.get(name)
        if bucket is None:
            bucket = schema.counter_field(name, schema.bucket_le(0.0, schema.LOCK_WAIT_BUCKETS))
            if len(_FIRST_BUCKET) < _KEYS_CACHE_MAX:
                _FIRST_BUCKET[name] = bucket
        return [owner, ttl_ms, name, 1, int(final), bucket, "0"]
    bucket = schema.counter_field(name, schema.bucket_le(waited, schema.LOCK_WAIT_BUCKETS))
    return [owner, ttl_ms, name, 0, int(final), bucket, f"{waited:.6f}"]


class Lease:
    """A held lock. Use as a context manager, or call :meth:`release` yourself.

    ``fencing_token`` rises on every acquisition of this lock name: pass it to the systems you
    write to, so that they reject a late write from a holder whose lease expired.
    """

    __slots__ = (
        "_keys",
        "_lost",
        "_released",
        "_state",
        "_stop",
        "_value",
        "_watchdog",
        "fencing_token",
        "name",
        "ttl",
    )

    def __init__(
        self,
        state: AgentState,
        name: str,
        fencing_token: int,
        owner: str,
        ttl: float,
        keys: LockKeys,
    ) -> None:
        self.name = name
        self.fencing_token = fencing_token
        self.ttl = ttl
        self._state = state
        self._keys = keys
        self._value = f"{fencing_token}|{owner}"
        self._released = False
        self._stop: threading.Event | None = None
        self._watchdog: threading.Thread | None = None
        self._lost: threading.Event | None = None

    @property
    def lost(self) -> threading.Event:
        """Set when an extension (e.g. by the watchdog) or the release found the lock gone."""
        if self._lost is None:
            self._lost = threading.Event()
        return self._lost

    # -- renewal --------------------------------------------------------------------------------
    def extend(self, ttl: float | None = None) -> None:
        """Reset the TTL; raises :class:`LockLost` if the lock is no longer ours."""
        ok = self._state._run(
            "lock_extend", self._keys.extend, [self._value, _core.ms(ttl or self.ttl), self.name]
        )
        if not int(ok):
            self.lost.set()
            raise LockLost(f"lock {self.name!r} expired or was taken before it was extended")

    def start_renewal(self, interval: float | None = None) -> None:
        """Extend the lock every ``ttl / 3`` seconds in a daemon thread until release."""
        if self._watchdog is not None:
            return
        period = interval or self.ttl / 3
        stop = self._stop = threading.Event()
        self.lost  # noqa: B018 -- created before the thread starts, so no race creates two

        def renew() -> None:
            while not stop.wait(period):
                try:
                    self.extend()
                except LockLost:
                    return  # release() raises and counts it; the flag tells the holder now
                except Exception:  # noqa: S112 -- Redis hiccup: the next tick tries again
                    continue

        self._watchdog = threading.Thread(target=renew, name=f"mw-renew-{self.name}", daemon=True)
        self._watchdog.start()

    def _stop_renewal(self) -> None:
        if self._stop is not None:
            self._stop.set()
        if self._watchdog is not None and self._watchdog is not threading.current_thread():
            self._watchdog.join()

    # -- release --------------------------------------------------------------------------------
    def release(self) -> None:
        """Release the lock; raises :class:`LockLost` (counted) if it was no longer ours."""
        if self._released:
            return
        self._stop_renewal()
        self._released = True
        ok = self._state._run("lock_release", self._keys.release, [self._value, self.name])
        if not int(ok):
            self.lost.set()
            raise LockLost(
                f"lock {self.name!r} (fencing token {self.fencing_token}) expired or was taken "
                "by another holder before release: work done under it may have overlapped"
            )

    def __enter__(self) -> Lease:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.release()
            return
        try:
            self.release()
        except Exception as err:  # never replace the exception already in flight
            add_failure_note(exc, "the lock release failed while this propagated", err)


def acquire(state: AgentState, name: str, ttl: float, wait: float, renew: bool = False) -> Lease:
    """Take lock ``name``: one round trip when free, jittered retries up to ``wait`` seconds."""
    owner = _core.owner_token(state.instance_id)
    keys = lock_keys(state._lock_keys, state.schema, name)
    ttl_ms = _core.ms(ttl)
    started = time.monotonic()
    deadline = started + max(0.0, wait)
    attempt = 1
    span = None
    try:
        while True:
            now = time.monotonic()
            final = now >= deadline
            args = acquire_args(name, owner, ttl_ms, attempt == 1, final, now - started)
            fence = int(state._run("lock_acquire", keys.acquire, args))
            if fence:
                if span is not None:
                    span.set_attribute(attr.LOCK_OUTCOME, "acquired")
                    span.set_attribute(attr.LOCK_ATTEMPTS, attempt)
                    span.set_attribute(attr.LOCK_FENCING_TOKEN, fence)
                lease = Lease(state, name, fence, owner, ttl, keys)
                if renew:
                    lease.start_renewal()
                return lease
            if span is None:
                span = state.telemetry.tracer.start_span(
                    attr.SPAN_LOCK_WAIT,
                    kind=SpanKind.INTERNAL,
                    start_time=time.time_ns() - int((time.monotonic() - started) * 1e9),
                    attributes={attr.LOCK_NAME: name},
                )
            if final:
                span.set_attribute(attr.LOCK_OUTCOME, "timeout")
                span.set_attribute(attr.LOCK_ATTEMPTS, attempt)
                span.set_status(Status(StatusCode.ERROR, "lock wait timed out"))
                raise LockTimeout(f"lock {name!r} still held by another owner after {wait}s")
            time.sleep(min(max(0.0, deadline - time.monotonic()), _core.backoff(attempt)))
            attempt += 1
    finally:
        if span is not None:
            span.end()
