"""A budgeted background pass over the keyspace: what each kind of agent memory holds.

A scrape never runs SCAN. This thread walks the whole keyspace with `SCAN COUNT n`, at most
`budget` keys walked per cycle, classifies each key by name (our schema under its namespace,
then the key profiles: exporter/profiles.py), and asks TYPE, PTTL and MEMORY USAGE of each
batch in one pipelined round trip. When a full pass ends its totals replace the served ones:
keys, bytes and keys without a required TTL per (profile, key class), and schema errors.
Scrapes read the last full pass and its age (`memorywatch_keyspace_sample_age_seconds`), so a
stale result is visible as stale.

MEMORY USAGE counts every element (SAMPLES 0) of agent state; indexes, registries and keys no
profile claims may hold millions of members and are estimated from 64, so the slowest command
stays far below a millisecond.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import redis

from memorywatch import names, schema
from memorywatch.exporter.background import BackgroundWorker
from memorywatch.exporter.fleet_options import DEFAULT_SAMPLE_BUDGET, DEFAULT_SAMPLE_INTERVAL
from memorywatch.exporter.profiles import (
    BUILTIN,
    MEMORYWATCH,
    UNCLAIMED,
    Classifier,
    Match,
    Profile,
    Slot,
)

TOOL_STATES = {
    schema.TOOL_STATE_IN_PROGRESS,
    schema.TOOL_STATE_COMPLETED,
    schema.TOOL_STATE_FAILED,
    schema.TOOL_STATE_RELEASED,
}
ESTIMATE_SAMPLES = 64
ESTIMATED = frozenset({names.KEY_CLASS_INDEX, names.KEY_CLASS_OTHER})
"""Classes whose keys may hold millions of members (indexes, registries, anything unclaimed):
their MEMORY USAGE extrapolates from 64 members instead of walking them all."""


@dataclass(frozen=True)
class SampleResult:
    finished_at: float
    keys: dict[Slot, int] = field(default_factory=dict)
    bytes: dict[Slot, int] = field(default_factory=dict)
    without_ttl: dict[Slot, int] = field(default_factory=dict)
    bytes_without_ttl: dict[Slot, int] = field(default_factory=dict)
    """Bytes of keys with no TTL at all, in any class: what a volatile-* policy never evicts."""
    errors: dict[str, int] = field(default_factory=dict)
    seen: frozenset[str] = frozenset()
    """Profiles that own at least one key of the pass (of the type their library writes)."""

    @property
    def sampled(self) -> int:
        return sum(self.keys.values())


@dataclass
class Tally:
    keys: Counter[Slot] = field(default_factory=Counter)
    bytes: Counter[Slot] = field(default_factory=Counter)
    without_ttl: Counter[Slot] = field(default_factory=Counter)
    bytes_without_ttl: Counter[Slot] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    seen: set[str] = field(default_factory=set)

    def result(self) -> SampleResult:
        return SampleResult(
            finished_at=time.monotonic(),
            keys=dict(self.keys),
            bytes=dict(self.bytes),
            without_ttl=dict(self.without_ttl),
            bytes_without_ttl=dict(self.bytes_without_ttl),
            errors={k: self.errors[k] for k in names.ERROR_KINDS},
            seen=frozenset(self.seen),
        )


class KeyspaceSampler(BackgroundWorker):
    name = "memorywatch-sampler"

    def __init__(
        self,
        client_factory: Callable[[], redis.Redis],
        namespace: str,
        interval: float = DEFAULT_SAMPLE_INTERVAL,
        budget: int = DEFAULT_SAMPLE_BUDGET,
        batch: int = 500,
        profiles: Sequence[Profile] = tuple(BUILTIN.values()),
    ) -> None:
        super().__init__(client_factory, interval)
        self._classifier = Classifier(namespace, profiles)
        self._budget = budget
        self._batch = batch
        self._result: SampleResult | None = None
        self._lock = threading.Lock()
        self._done = threading.Condition(self._lock)
        self._cursor = 0
        self._partial = Tally()

    def result(self) -> SampleResult | None:
        with self._lock:
            return self._result

    def wait_for_pass(self, after: float, timeout: float) -> SampleResult | None:
        """Block until a pass that finished after `after` (monotonic) is served."""
        deadline = time.monotonic() + timeout
        with self._done:
            while self._result is None or self._result.finished_at <= after:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._done.wait(remaining)
            return self._result

    def step(self, client: redis.Redis) -> None:
        self.cycle(client)

    def cycle(self, client: redis.Redis) -> None:
        """Walk up to `budget` keys from where the last cycle stopped."""
        scanned = 0
        while scanned < self._budget:
            cursor, keys = client.scan(self._cursor, count=self._batch)
            self._cursor = int(cursor)
            # The budget counts SCAN work (keys walked), whatever the batch returned.
            scanned += self._batch
            if keys:
                inspect_keys(client, self._classifier, [str(k) for k in keys], self._partial)
            if self._cursor == 0:
                result = self._partial.result()
                with self._done:
                    self._result = result
                    self._done.notify_all()
                self._partial = Tally()
                return


@dataclass(frozen=True)
class OneShot:
    """A bounded sample taken once (`memorywatch diagnose`): what it saw and how far it got."""

    result: SampleResult
    walked: int
    """Keys SCAN returned (the sample's size)."""
    keyspace: int
    """DBSIZE when the sample began: what the sample stands for."""
    seconds: float
    complete: bool
    """SCAN came back to cursor 0: every key was seen, the figures are totals, not a sample."""
    stopped: str | None = None
    """Why it stopped before its key budget, when it did (the time budget ran out)."""


def sample_once(
    client: redis.Redis,
    classifier: Classifier,
    max_keys: int,
    seconds: float,
    batch: int = 200,
) -> OneShot:
    """SCAN from cursor 0 until ``max_keys`` keys were walked, the keyspace ends, or
    ``seconds`` pass, classifying each batch as the background sampler does. SCAN's order
    is the hash table's, so a prefix of it is a fair sample of the keyspace. Read-only."""
    started = time.monotonic()
    keyspace = int(client.dbsize())
    tally = Tally()
    cursor, walked, stopped, complete = 0, 0, None, False
    while True:
        if time.monotonic() - started >= seconds:
            stopped = f"the {seconds:g} s time budget ran out after {walked:,} keys"
            break
        cursor_reply, keys = client.scan(cursor, count=min(batch, max_keys - walked))
        cursor = int(cursor_reply)
        walked += len(keys)
        if keys:
            inspect_keys(client, classifier, [str(k) for k in keys], tally)
        complete = cursor == 0
        if complete or walked >= max_keys:
            break
    return OneShot(tally.result(), walked, keyspace, time.monotonic() - started, complete, stopped)


def inspect_keys(
    client: redis.Redis, classifier: Classifier, keys: list[str], tally: Tally
) -> None:
    """Classify a batch of keys and count them into ``tally``: TYPE, PTTL and MEMORY USAGE
    of the whole batch in one pipelined round trip (read-only)."""
    matches = [classifier.classify(key) for key in keys]
    pipe = client.pipeline(transaction=False)
    for key, match in zip(keys, matches, strict=True):
        pipe.type(key)
        pipe.pttl(key)
        exact = match is not None and match.key_class not in ESTIMATED
        pipe.memory_usage(key, samples=0 if exact else ESTIMATE_SAMPLES)
    replies = pipe.execute(raise_on_error=False)
    records: list[tuple[str, str]] = []
    for position, (key, match) in enumerate(zip(keys, matches, strict=True)):
        redis_type, pttl, usage = replies[3 * position : 3 * position + 3]
        if isinstance(redis_type, Exception) or redis_type == "none":
            continue  # expired or deleted between SCAN and TYPE
        slot = _slot(match, str(redis_type), tally)
        tally.keys[slot] += 1
        if isinstance(usage, int):
            tally.bytes[slot] += usage
            if pttl == -1:
                tally.bytes_without_ttl[slot] += usage
        if match is None or slot != (match.profile, match.key_class):
            continue  # unclaimed, or our key with a wrong type (an error already)
        if pttl == -1 and match.ttl_required and not match.foreign:
            tally.without_ttl[slot] += 1
            if match.profile == MEMORYWATCH:
                tally.errors[names.ERROR_MISSING_TTL] += 1
        if match.kind in (schema.KIND_LOCK, schema.KIND_TOOL):
            records.append((key, match.kind))
    if records:
        _check_records(client, records, tally)


def _slot(match: Match | None, redis_type: str, tally: Tally) -> Slot:
    """Where a key counts: its profile and class, or unclaimed when its type is not the
    one the profile's library writes (another application's key of a similar name)."""
    if match is None:
        return UNCLAIMED
    if match.profile == MEMORYWATCH:
        if match.foreign:
            tally.errors[names.ERROR_FOREIGN] += 1
        elif redis_type != match.redis_type:
            tally.errors[names.ERROR_WRONG_TYPE] += 1
            return (MEMORYWATCH, names.KEY_CLASS_OTHER)
        tally.seen.add(MEMORYWATCH)
        return (MEMORYWATCH, match.key_class)
    if match.redis_type is not None and redis_type != match.redis_type:
        return UNCLAIMED
    tally.seen.add(match.profile)
    return (match.profile, match.key_class)


def _check_records(client: redis.Redis, records: list[tuple[str, str]], tally: Tally) -> None:
    pipe = client.pipeline(transaction=False)
    for key, kind in records:
        if kind == schema.KIND_LOCK:
            pipe.get(key)
        else:
            pipe.hmget(key, schema.TOOL_FIELD_STATE, schema.TOOL_FIELD_FENCE)
    for (_key, kind), value in zip(records, pipe.execute(raise_on_error=False), strict=True):
        if isinstance(value, Exception) or value is None:
            continue
        if not _record_ok(kind, value):
            tally.errors[names.ERROR_UNPARSABLE] += 1


def _record_ok(kind: str, value: object) -> bool:
    """A lock is `{fence}|{owner}`; a tool record has a known state and a numeric fence."""
    if kind == schema.KIND_LOCK:
        token, sep, owner = str(value).partition("|")
        return bool(sep and owner) and token.isdigit()
    state, fence = value if isinstance(value, list) else [None, None]
    if state is None and fence is None:
        return True  # vanished between the two reads
    return state in TOOL_STATES and str(fence).isdigit()
