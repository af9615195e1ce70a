"""A budgeted background pass over the namespace: keys without a TTL and schema errors.

A scrape never runs SCAN. This thread walks the namespace with `SCAN MATCH ns:* COUNT n`, at
most `budget` keys walked per cycle (SCAN steps, matching or not), with one pipelined TYPE +
PTTL per batch of matches; when a full pass ends, its totals replace the served ones. Scrapes
read the last full pass and its age (`memorywatch_keyspace_sample_age_seconds`), so a stale
result is visible as stale.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import redis

from memorywatch import names, schema
from memorywatch.exporter.background import BackgroundWorker
from memorywatch.exporter.fleet_options import DEFAULT_SAMPLE_BUDGET, DEFAULT_SAMPLE_INTERVAL
from memorywatch.exporter.keyclass import KEY_CLASSES, needs_ttl, parse_key

TOOL_STATES = {
    schema.TOOL_STATE_IN_PROGRESS,
    schema.TOOL_STATE_COMPLETED,
    schema.TOOL_STATE_FAILED,
    schema.TOOL_STATE_RELEASED,
}


@dataclass(frozen=True)
class SampleResult:
    finished_at: float
    without_ttl: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)


class KeyspaceSampler(BackgroundWorker):
    name = "memorywatch-sampler"

    def __init__(
        self,
        client_factory: Callable[[], redis.Redis],
        namespace: str,
        interval: float = DEFAULT_SAMPLE_INTERVAL,
        budget: int = DEFAULT_SAMPLE_BUDGET,
        batch: int = 500,
    ) -> None:
        super().__init__(client_factory, interval)
        self._namespace = namespace
        self._budget = budget
        self._batch = batch
        self._result: SampleResult | None = None
        self._lock = threading.Lock()
        self._done = threading.Condition(self._lock)
        self._cursor = 0
        self._partial: tuple[Counter[str], Counter[str]] = (Counter(), Counter())

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
        without_ttl, errors = self._partial
        scanned = 0
        while scanned < self._budget:
            cursor, keys = client.scan(
                self._cursor, match=f"{self._namespace}:*", count=self._batch
            )
            self._cursor = int(cursor)
            # The budget counts SCAN work, not matches: on a Redis shared with other data,
            # few keys match the namespace and a count of matches would walk it all at once.
            scanned += self._batch
            if keys:
                self._inspect(client, [str(k) for k in keys], without_ttl, errors)
            if self._cursor == 0:
                result = SampleResult(
                    finished_at=time.monotonic(),
                    without_ttl={c: without_ttl[c] for c in KEY_CLASSES},
                    errors={k: errors[k] for k in names.ERROR_KINDS},
                )
                with self._done:
                    self._result = result
                    self._done.notify_all()
                self._partial = (Counter(), Counter())
                return
        self._partial = (without_ttl, errors)

    def _inspect(
        self, client: redis.Redis, keys: list[str], without_ttl: Counter[str], errors: Counter[str]
    ) -> None:
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.type(key)
            pipe.pttl(key)
        replies = pipe.execute(raise_on_error=False)
        records: list[tuple[str, str]] = []
        for index, key in enumerate(keys):
            redis_type, pttl = replies[2 * index], replies[2 * index + 1]
            if isinstance(redis_type, Exception) or redis_type == "none":
                continue  # expired or deleted between SCAN and TYPE
            parsed = parse_key(key, self._namespace)
            if parsed is None:
                errors[names.ERROR_FOREIGN] += 1
                continue
            key_class, kind, expected = parsed
            if redis_type != expected:
                errors[names.ERROR_WRONG_TYPE] += 1
                continue
            if pttl == -1 and needs_ttl(kind):
                without_ttl[key_class] += 1
                errors[names.ERROR_MISSING_TTL] += 1
            if kind in (schema.KIND_LOCK, schema.KIND_TOOL):
                records.append((key, kind))
        if not records:
            return
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
                errors[names.ERROR_UNPARSABLE] += 1


def _record_ok(kind: str, value: object) -> bool:
    """A lock is `{fence}|{owner}`; a tool record has a known state and a numeric fence."""
    if kind == schema.KIND_LOCK:
        token, sep, owner = str(value).partition("|")
        return bool(sep and owner) and token.isdigit()
    state, fence = value if isinstance(value, list) else [None, None]
    if state is None and fence is None:
        return True  # vanished between the two reads
    return state in TOOL_STATES and str(fence).isdigit()
