"""A budgeted background pass over the keyspace: what each kind of agent memory holds.

A scrape never runs SCAN. This thread walks the whole keyspace, classifies each key by name
(our schema under its namespace, then the key profiles: exporter/profiles.py) and counts
keys, bytes (MEMORY USAGE) and keys without a required TTL per (profile, key class), and
schema errors. When a full pass ends its totals replace the served ones. Scrapes read the
last full pass and its age (`memorywatch_keyspace_sample_age_seconds`), so a stale result is
visible as stale.

Where the work happens. The classification and the counting run next to the data, in one Lua
script per SCAN step (_scripts/sampler.lua): `SCAN cursor COUNT 800`, then per key PTTL,
MEMORY USAGE and (when its rule expects a type) TYPE, and only aggregates per slot come back,
a few dozen integers. Keys no rule claims (profile none) are measured one in `MEASURE_EVERY`
(4): the others are only counted, and the measured bytes are scaled up to them, so the bytes
of unclaimed keys (already an estimate from 64 members each) are an estimate over a quarter of
them; agent memory is measured key by key. The classifier's rules are written into the script
once as constant tables (`ScriptPlan`); the Python classifier stays the reference (a test
compares both on every built-in profile's layouts) and the fallback: a Redis that refuses
scripts (an ACL without EVALSHA, `-@scripting`) is walked with SCAN and pipelined
TYPE/PTTL/MEMORY USAGE classified in the exporter, said in one log line and by
`memorywatch_keyspace_sampler_fallback{reason}`.

Pacing. At most `budget` keys per `interval` seconds (default 54,000 per 30 s: 1,800 keys/s,
a pass over 1M keys in 9.3 min), spread evenly: every `WAKE` (1 s) the calls due run back to
back, each call one short step; a new pass starts at most once per `interval`, so a small
keyspace is not walked in a loop. While HTTP requests come at least every `FOLLOW_GAP`
seconds (Prometheus scraping a standalone Redis every second), the step runs in the handler
thread right after it answered (`after_request`) and the sampler's own thread only checks
every `FALLBACK` seconds that requests still come; otherwise that thread keeps the pace. The keys walked are counted in
`memorywatch_keyspace_sampler_keys_walked_total`.

Cost per key walked, measured by bench/bench_sampler.py (Redis 7.0.15, a shared 2-core
machine, docs/benchmarks-fleet-scale.md): ~1.5 us of Redis CPU for a key counted but not
measured (SCAN's reply inside Lua and the classification), ~6.5 us for a measured one (~1 us
per redis.call, MEMORY USAGE's own walk); on a keyspace mostly not agent memory that is
2.7-3.4 us a key, about 0.5 % of a core at 1,800 keys/s, ~2.1 ms per call of 800 keys (a
keyspace that is all agent memory: ~6.5 us a key, ~5 ms a call). The exporter's cost is per
call, not per key (~100 us for a call right after another, ~380 us for the first after a
sleep), so a call walks 800 keys, not 400: ~0.4 us of exporter CPU per key with the steps
following scrapes once a second, against 27 us when every key came back to be classified in
Python.

MEMORY USAGE counts every element (SAMPLES 0) of agent state; indexes, registries and keys no
profile claims may hold millions of members and are estimated from 64.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Final

import redis
from redis.connection import Connection

from memorywatch import names, schema
from memorywatch.exporter.background import BackgroundWorker
from memorywatch.exporter.fleet_options import (
    DEFAULT_SAMPLE_BATCH,
    DEFAULT_SAMPLE_BUDGET,
    DEFAULT_SAMPLE_INTERVAL,
)
from memorywatch.exporter.keyclass import needs_ttl
from memorywatch.exporter.profiles import (
    BUILTIN,
    MEMORYWATCH,
    TTL_REQUIRED,
    UNCLAIMED,
    Classifier,
    Match,
    Profile,
    Slot,
    glob_lua,
)

log = logging.getLogger("memorywatch.exporter")

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
MEASURE_EVERY: Final = 4
"""Of the keys no rule claims (profile none: usually most of a shared Redis), the first of
every 4 in a SCAN step gets PTTL and MEMORY USAGE; the others are only counted, and the bytes
of the measured ones are scaled up to all of them at the end of the pass (`Tally.result`).
Agent memory (every key a profile or our schema claims) is always measured, every key."""


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
    measured: Counter[Slot] = field(default_factory=Counter)
    """Keys whose bytes were read (`bytes` and `bytes_without_ttl` are theirs): all of a
    slot's keys but for unclaimed ones (`MEASURE_EVERY`)."""
    errors: Counter[str] = field(default_factory=Counter)
    seen: set[str] = field(default_factory=set)
    rows: dict[int, list[int]] = field(default_factory=dict)
    """The script's per-slot figures as it sent them (`ScriptPlan.add`), summed by slot index
    into [keys, measured, bytes, without TTL, bytes without TTL] and folded into the
    counters above by `result`: a call's reply costs a few list additions, not a Counter
    update per figure."""
    row_slots: Sequence[Slot] = ()
    """The slot of each index in `rows` (the plan's `slots`)."""

    def _fold_rows(self) -> None:
        for index, (keys, measured, size, leaks, naked) in self.rows.items():
            slot = self.row_slots[index]
            self.keys[slot] += keys
            self.measured[slot] += measured
            self.bytes[slot] += size
            if leaks:
                self.without_ttl[slot] += leaks
            if naked:
                self.bytes_without_ttl[slot] += naked
            if slot[0] not in (MEMORYWATCH, names.PROFILE_NONE):
                self.seen.add(slot[0])
        self.rows.clear()

    def _scaled(self, sizes: Counter[Slot]) -> dict[Slot, int]:
        """Bytes of the measured keys of each slot, scaled up to all its keys."""
        out = {}
        for slot, size in sizes.items():
            keys, measured = self.keys[slot], self.measured[slot]
            out[slot] = round(size * keys / measured) if 0 < measured < keys else size
        return out

    def result(self) -> SampleResult:
        self._fold_rows()
        return SampleResult(
            finished_at=time.monotonic(),
            keys=dict(self.keys),
            bytes=self._scaled(self.bytes),
            without_ttl=dict(self.without_ttl),
            bytes_without_ttl=self._scaled(self.bytes_without_ttl),
            errors={k: self.errors[k] for k in names.ERROR_KINDS},
            seen=frozenset(self.seen),
        )


class ScriptRefused(Exception):
    """Redis will not run the sampler's script (ACL without EVAL, scripting disabled)."""

    def __init__(self, error: redis.exceptions.ResponseError) -> None:
        super().__init__(str(error))
        self.reason = refusal_reason(error)
        """Why, as a bounded label value (names.FALLBACK_REASONS)."""


def refusal_reason(error: redis.exceptions.ResponseError) -> str:
    """An ACL without the command (NOPERM), a Redis or proxy without it, or anything else."""
    if isinstance(error, redis.exceptions.NoPermissionError) or str(error).startswith("NOPERM"):
        return names.FALLBACK_PERMISSION
    if "unknown command" in str(error).lower():
        return names.FALLBACK_UNKNOWN_COMMAND
    return names.FALLBACK_SCRIPT_ERROR


SHEBANG: Final = "#!lua flags=no-writes,allow-cross-slot-keys"
"""Read-only (so it runs on replicas and at maxmemory), and free to read any local key."""
SCRIPT_BODY: Final = (
    resources.files("memorywatch.exporter").joinpath("_scripts/sampler.lua").read_text()
)
"""One SCAN step classified and counted inside Redis; its contract is in the file. The rules
of the classifier are prepended once per classifier as constant tables (`ScriptPlan`)."""
WAKE: Final = 1.0
"""Seconds between the sampler's wakes: each runs the script calls due since the last."""
FOLLOW_GAP: Final = 1.5 * WAKE
"""Requests at most this far apart carry the sampler's steps (`after_request`): its own
thread then sleeps instead of waking every `WAKE`."""
FALLBACK: Final = 5.0
"""Seconds without a request after which the sampler's own thread paces the walk again; at
most this many seconds of the walk are lost each time requests stop coming."""
EARLY: Final = WAKE
"""A request may run a step up to this many seconds before it is due, and a step may be this
far behind without losing the keys owed: requests a hair slower or quicker than `WAKE` (or
steps of a few more keys than a second's worth) then neither skip nor drop a step, and the
walk keeps its pace (`_due` still bounds it)."""
TRANSIENT: Final = ("BUSY", "LOADING", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN")
"""Errors that say Redis cannot run a script right now, not that it never will."""


def lua_string(value: str | bytes) -> str:
    """A Lua string literal of any bytes (decimal escapes for all but plain printable ASCII)."""
    raw = value.encode() if isinstance(value, str) else value
    out = []
    for byte in raw:
        char = chr(byte)
        out.append(char if 32 <= byte < 127 and char not in "\\'\"" else f"\\{byte:03d}")
    return "'" + "".join(out) + "'"


def _table(values: Sequence[str]) -> str:
    return "{" + ", ".join(values) + "}"


class ScriptPlan:
    """The sampler script for one classifier, written once: every rule of the profiles (as
    anchored Lua patterns, in the classifier's order) and of our schema as constant tables in
    front of `SCRIPT_BODY`, each rule pointing at its slot, an index into `slots`. The script
    answers with aggregates per slot index; `add` turns them back into (profile, key class)."""

    def __init__(self, classifier: Classifier) -> None:
        self.slots: list[Slot] = [UNCLAIMED, (MEMORYWATCH, names.KEY_CLASS_OTHER)]
        index: dict[Slot, int] = {slot: i for i, slot in enumerate(self.slots)}

        def slot_of(slot: Slot) -> str:
            if slot not in index:
                index[slot] = len(self.slots)
                self.slots.append(slot)
            return str(index[slot])

        def samples(key_class: str) -> str:
            return str(ESTIMATE_SAMPLES if key_class in ESTIMATED else 0)

        def flag(value: bool) -> str:
            return "true" if value else "false"

        rules = classifier.rules
        lead = [None if p.glob[0] in "*?" else p.glob.encode()[0] for _, p in rules]
        firsts = sorted({b for b in lead if b is not None})
        by_first = {
            first: [str(i + 1) for i, b in enumerate(lead) if b in (first, None)]
            for first in firsts
        }
        wild = [str(i + 1) for i, b in enumerate(lead) if b is None]
        ours: list[tuple[str, str, schema.KeyKind]] = [
            ("schema", "schema", schema.SCHEMA_KIND),
            ("stats", schema.KIND_STATS, schema.STATS_KIND),
            *((f"id:{k}", k, kind) for k, kind in schema.ID_KINDS.items()),
            *((f"shard:{k}", k, kind) for k, kind in schema.SHARD_KEYS.items()),
            *((f"index:{k}:{p}", k, kind) for (k, p), kind in schema.SHARD_INDEXES.items()),
        ]
        checks = (schema.KIND_LOCK, schema.KIND_TOOL)
        states = "|".join(["", *sorted(TOOL_STATES), ""])
        constants = {
            "PREFIX": lua_string(classifier.namespace + ":"),
            "STATE": lua_string(schema.TOOL_FIELD_STATE),
            "FENCE": lua_string(schema.TOOL_FIELD_FENCE),
            "STATES": lua_string(states),
            "UNCLAIMED": slot_of(UNCLAIMED),
            "MW_OTHER": slot_of((MEMORYWATCH, names.KEY_CLASS_OTHER)),
            "ESTIMATE": str(ESTIMATE_SAMPLES),
            "MEASURE_EVERY": str(MEASURE_EVERY),
            "P_PATTERN": _table([lua_string(glob_lua(p.glob)) for _, p in rules]),
            "P_SLOT": _table([slot_of((name, p.key_class)) for name, p in rules]),
            "P_TTL": _table([flag(p.ttl == TTL_REQUIRED) for _, p in rules]),
            "P_TYPE": _table([lua_string(p.redis_type or "") for _, p in rules]),
            "P_SAMPLES": _table([samples(p.key_class) for _, p in rules]),
            "BY_FIRST": _table([f"[{f}] = {_table(by_first[f])}" for f in firsts]),
            "WILD": _table(wild),
            "S_RULE": _table([f"[{lua_string(o[0])}] = {i + 1}" for i, o in enumerate(ours)]),
            "S_SLOT": _table([slot_of((MEMORYWATCH, kind.key_class)) for _, _, kind in ours]),
            "S_TYPE": _table([lua_string(kind.redis_type) for _, _, kind in ours]),
            "S_TTL": _table([flag(needs_ttl(name)) for _, name, _ in ours]),
            "S_CHECK": _table(
                [
                    lua_string(name if name in checks and lookup.startswith("id:") else "")
                    for lookup, name, _ in ours
                ]
            ),
            "S_SAMPLES": _table([samples(kind.key_class) for _, _, kind in ours]),
        }
        prologue = "".join(f"local {name} = {value}\n" for name, value in constants.items())
        self.script = f"{SHEBANG}\n{prologue}{SCRIPT_BODY}"
        self.sha = hashlib.sha1(self.script.encode(), usedforsecurity=False).hexdigest()

    def run(self, conn: Connection, cursor: int, count: int, tally: Tally) -> tuple[int, int]:
        """One SCAN step inside Redis, counted into ``tally``: (next cursor, keys walked).

        Straight on a connection of its own: the client's command path (pool checkout,
        hooks) cost three times the round trip itself, per call, in the exporter."""
        try:
            try:
                conn.send_packed_command(conn.pack_command("EVALSHA", self.sha, 0, cursor, count))
                reply = conn.read_response()
            except redis.exceptions.NoScriptError:
                conn.send_packed_command(conn.pack_command("EVAL", self.script, 0, cursor, count))
                reply = conn.read_response()
        except redis.exceptions.ResponseError as exc:
            if str(exc).startswith(TRANSIENT):
                raise
            raise ScriptRefused(exc) from exc
        return self.add(reply, tally)

    def add(self, reply: Any, tally: Tally) -> tuple[int, int]:
        cursor, walked, foreign, wrong, missing, unparsable, seen = (int(v) for v in reply[:7])
        tally.errors[names.ERROR_FOREIGN] += foreign
        tally.errors[names.ERROR_WRONG_TYPE] += wrong
        tally.errors[names.ERROR_MISSING_TTL] += missing
        tally.errors[names.ERROR_UNPARSABLE] += unparsable
        if seen:
            tally.seen.add(MEMORYWATCH)
        tally.row_slots = self.slots
        sums = tally.rows
        for at in range(7, len(reply), 6):
            index = int(reply[at])
            figures = reply[at + 1 : at + 6]  # integer replies: ints already
            summed = sums.get(index)
            if summed is None:
                sums[index] = [int(v) for v in figures]
            else:
                for i, value in enumerate(figures):
                    summed[i] += value
        return cursor, walked


class Walker:
    """Walks one keyspace: through the script while Redis runs it, through pipelined reads
    in the exporter (`inspect_keys`) once it refused it (said in one log line)."""

    def __init__(self, classifier: Classifier, scripted: bool = True) -> None:
        self.classifier = classifier
        self.plan = ScriptPlan(classifier)
        self.scripted = scripted
        self.fallback: str | None = None
        """Why Redis refused the script (names.FALLBACK_REASONS), once it did."""
        self._client: redis.Redis | None = None
        self._conn: Connection | None = None

    def step(self, client: redis.Redis, cursor: int, count: int, tally: Tally) -> tuple[int, int]:
        if self.scripted:
            try:
                return self.plan.run(self._connection(client), cursor, count, tally)
            except ScriptRefused as exc:
                self.scripted = False
                self.fallback = exc.reason
                self.release()
                log.warning(
                    "keyspace sampler: Redis refused its Lua script (%s); sampling through "
                    "pipelined TYPE/PTTL/MEMORY USAGE instead (more exporter CPU per key)",
                    exc,
                )
        cursor_reply, keys = client.scan(cursor, count=count)
        if keys:
            inspect_keys(client, self.classifier, [str(k) for k in keys], tally)
        return int(cursor_reply), len(keys)

    def _connection(self, client: redis.Redis) -> Connection:
        """A connection of `client`'s pool, kept while the walker uses that client."""
        if client is not self._client or self._conn is None:
            self.release()
            self._conn = client.connection_pool.get_connection()
            self._client = client
        return self._conn

    def release(self) -> None:
        """Give the connection back to its client's pool."""
        if self._client is not None and self._conn is not None:
            self._client.connection_pool.release(self._conn)
        self._client, self._conn = None, None


class KeyspaceSampler(BackgroundWorker):
    """Walks the keyspace at most `budget` keys per `interval` seconds, evenly (one SCAN COUNT
    `batch` step at a time), and starts a new pass at most every `interval` seconds."""

    name = "memorywatch-sampler"

    def __init__(
        self,
        client_factory: Callable[[], redis.Redis],
        namespace: str,
        interval: float = DEFAULT_SAMPLE_INTERVAL,
        budget: int = DEFAULT_SAMPLE_BUDGET,
        batch: int = DEFAULT_SAMPLE_BATCH,
        profiles: Sequence[Profile] = tuple(BUILTIN.values()),
        scripted: bool = True,
        fallback: float = FALLBACK,
    ) -> None:
        super().__init__(client_factory, interval)
        self._fallback = fallback
        self._walker = Walker(Classifier(namespace, profiles), scripted)
        self._rate = budget / interval
        self._period = interval
        self._budget = budget
        self._batch = batch
        self._result: SampleResult | None = None
        self._lock = threading.Lock()
        self._done = threading.Condition(self._lock)
        self._cursor = 0
        self._walked = 0
        self._partial = Tally()
        self._pass_started: float | None = None
        self._due = 0.0
        self._last_request = -fallback
        self._request_gap = fallback

    @property
    def scripted(self) -> bool:
        """Whether the keyspace is classified inside Redis (False once Redis refused)."""
        return self._walker.scripted

    def fallback(self) -> str | None:
        """Why the keyspace is read into the exporter instead of the script (None: it is not)."""
        return self._walker.fallback

    def walked(self) -> int:
        """Keys walked since the sampler started (SCAN's replies, every pass)."""
        return self._walked

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

    def _followed(self, now: float) -> bool:
        """Whether requests come often enough to carry the walk (then the thread sleeps)."""
        return self._request_gap <= FOLLOW_GAP and now - self._last_request < self._fallback

    def pause(self) -> float:
        now = time.monotonic()
        if self._followed(now):
            return self._fallback
        return max(0.0, self._due - now)

    def after_request(self) -> None:
        """Run the step due, if any, in the calling thread (the HTTP handler's, right after
        it answered): a thread woken by its own timer costs the exporter ~4x per call what a
        thread already running does, so while requests come at least every `FOLLOW_GAP`
        seconds they carry the walk and the sampler's thread only checks every `FALLBACK`
        seconds that they still come. Never blocks: a step already running is left alone."""
        now = time.monotonic()
        self._request_gap, self._last_request = now - self._last_request, now
        if now < self._due - EARLY or self.stopping:
            return
        if not self._step_lock.acquire(blocking=False):
            return
        try:
            if self._client is None:
                return  # the thread makes the client (after a failure, at its next wake)
            try:
                self._walk_due(self._client, now, owed=EARLY)
            except Exception as exc:
                self.on_error(exc)
                self._drop_client()
                self._last_request = -self._fallback  # the thread takes over at its next wake
        finally:
            self._step_lock.release()

    def step(self, client: redis.Redis) -> None:
        now = time.monotonic()
        if self._followed(now):
            return  # requests carry the walk
        self._walk_due(client, now, owed=0.0)

    def _walk_due(self, client: redis.Redis, now: float, owed: float) -> None:
        """The script calls due since the last wake (`WAKE` seconds of the budget, each call
        one short SCAN COUNT `batch` step), then the pause that keeps the walk at `budget /
        interval` keys per second. Waking once a second, not per call, is what keeps the
        exporter's cost per key low: a call on a thread that just woke costs it ~3x a call
        right after another. Up to `owed` seconds of the walk left behind are kept owed (the
        thread wakes when due, so it owes none; a request may come a hair late)."""
        if self._pass_started is None:
            self._pass_started = now
        due = max(self._batch, int(self._rate * WAKE))
        walked = 0
        while walked < due and not self.stopping:
            walked += max(self._walk(client), 1)
            if self._cursor == 0:
                break
        self._due = max(self._due, now - owed) + walked / self._rate
        if self._cursor == 0:
            self._due = max(self._due, self._pass_started + self._period)
            self._pass_started = None

    def stop(self) -> None:
        super().stop()
        self._walker.release()

    def cycle(self, client: redis.Redis) -> None:
        """Walk up to `budget` keys from where the last step stopped, unpaced (tests)."""
        walked = 0
        while walked < self._budget:
            walked += max(self._walk(client), 1)
            if self._cursor == 0:
                return

    def _walk(self, client: redis.Redis) -> int:
        cursor, walked = self._walker.step(client, self._cursor, self._batch, self._partial)
        self._cursor = cursor
        self._walked += walked
        if cursor == 0:
            result = self._partial.result()
            with self._done:
                self._result = result
                self._done.notify_all()
            self._partial = Tally()
        return walked


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
    walker = Walker(classifier)
    cursor, walked, stopped, complete = 0, 0, None, False
    while True:
        if time.monotonic() - started >= seconds:
            stopped = f"the {seconds:g} s time budget ran out after {walked:,} keys"
            break
        cursor, got = walker.step(client, cursor, min(batch, max_keys - walked), tally)
        walked += got
        complete = cursor == 0
        if complete or walked >= max_keys:
            break
    walker.release()
    return OneShot(tally.result(), walked, keyspace, time.monotonic() - started, complete, stopped)


def inspect_keys(
    client: redis.Redis, classifier: Classifier, keys: list[str], tally: Tally
) -> None:
    """Classify a batch of keys and count them into ``tally``: TYPE, PTTL and MEMORY USAGE
    of the whole batch in one pipelined round trip (read-only), but for the keys no rule
    claims, of which only the first of every `MEASURE_EVERY` is read (as the script does)."""
    matches = [classifier.classify(key) for key in keys]
    kept: list[tuple[str, Match | None]] = []
    plain = 0
    for key, match in zip(keys, matches, strict=True):
        if match is None:
            plain += 1
            if (plain - 1) % MEASURE_EVERY:
                tally.keys[UNCLAIMED] += 1
                continue
        kept.append((key, match))
    keys, matches = [k for k, _ in kept], [m for _, m in kept]
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
        tally.measured[slot] += 1
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
