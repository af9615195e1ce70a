"""Run one agent scenario on the sync and on the asyncio client and compare what they leave.

A scenario is written once, as a coroutine over the asyncio client's API. For the sync
client, :class:`SyncView` presents a sync ``AgentState`` through that same API (calls run at
once; their results are awaitable, context managers are async ones), so both clients run the
same steps. :func:`compare` then checks, between the two runs, on two fresh namespaces of one
real Redis:

- the Redis state: every key, its type, whether it has a TTL, its contents (times, owner
  tokens and sums of durations normalized);
- the errors each step raised (type and message) and the values it noted;
- the spans (name, kind, status, attributes but the timing-dependent ones);
- the exporter's view: every ``memorywatch_*`` sample of a scrape, but ages and sums of time.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import redis
from opentelemetry.trace import TracerProvider

from memorywatch import names
from memorywatch.agent import AgentState, Settings, aio
from memorywatch.agent import attributes as attr
from memorywatch.agent._health import Heartbeat, TurnBase
from memorywatch.agent._locks import LeaseBase
from memorywatch.agent._memory import HistoryBase, PreferencesBase

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

# The OpenTelemetry SDK (spans) and the exporter (its view) are imported where they are used:
# run_one, and the scenarios, also run where only `pip install memorywatch` is (parity_light.py).

SDK_OBJECTS = (HistoryBase, PreferencesBase, LeaseBase, TurnBase, Heartbeat)


def wrap(result: Any) -> Any:
    return SyncView(result) if isinstance(result, SDK_OBJECTS) else result


class Value:
    """A sync call presented as the asyncio client would make it: it runs when awaited (or
    entered, or looked into), as a coroutine would, so an error surfaces at the same place."""

    def __init__(self, thunk: Callable[[], Any]) -> None:
        self._thunk = thunk
        self._done = False
        self._result: Any = None

    def _get(self) -> Any:
        if not self._done:
            self._result, self._done = self._thunk(), True
        return self._result

    def __await__(self) -> Any:
        yield from ()
        return wrap(self._get())

    async def __aenter__(self) -> Any:
        return wrap(self._get().__enter__())

    async def __aexit__(self, *exc: Any) -> None:
        self._get().__exit__(*exc)

    def __getattr__(self, name: str) -> Any:
        return getattr(SyncView(self._get()), name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        made = self._get()(*args, **kwargs)
        if callable(made):
            return lambda *a, **k: Value(lambda: made(*a, **k))
        return made


class SyncView:
    """A sync SDK object seen through the asyncio API."""

    def __init__(self, target: Any) -> None:
        self._target = target

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._target, name)
        if not callable(found) or isinstance(found, type) or not hasattr(found, "__self__"):
            return found
        return lambda *args, **kwargs: Value(lambda: found(*args, **kwargs))


@dataclass
class Outcome:
    """What one client's run of a scenario left behind."""

    namespace: str
    log: list[Any] = field(default_factory=list)
    spans: list[Any] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)
    exporter: dict[str, float] = field(default_factory=dict)


_MS = re.compile(r"\b1[6-9]\d{11}(\.\d+)?\b")  # server ms since the epoch
_TS = re.compile(r'"ts\\*":\s*[0-9.]+')
_SECONDS = re.compile(r"\b\d+\.\d+s\b")
_TOKEN = re.compile(r"fencing token \d+")  # failed attempts draw tokens: timing-dependent
_OWNER = re.compile(r"\|[0-9a-f]{12,}\b")


def normal(text: str, namespace: str) -> str:
    text = text.replace(namespace, "<ns>")
    text = _MS.sub("<ms>", text)
    text = _TS.sub('"ts":<t>', text)
    text = _SECONDS.sub("<seconds>", text)
    text = _TOKEN.sub("fencing token <n>", text)
    return _OWNER.sub("|<nonce>", text)


class Steps:
    """Handed to a scenario with the client: records errors and values in the outcome."""

    def __init__(self, outcome: Outcome, raw: redis.Redis) -> None:
        self.outcome = outcome
        self.raw = raw
        self.namespace = outcome.namespace

    async def expect(self, error: type[BaseException], step: Awaitable[Any]) -> BaseException:
        try:
            value = await step
        except error as exc:
            notes = getattr(exc, "__notes__", [])
            self.outcome.log.append(
                (type(exc).__name__, normal(str(exc), self.namespace), len(notes))
            )
            return exc
        raise AssertionError(f"expected {error.__name__}, got {value!r}")

    def note(self, value: Any) -> None:
        self.outcome.log.append(normal(json.dumps(value, default=str), self.namespace))


Scenario = Callable[[Any, Steps], Awaitable[None]]


def dump(raw: redis.Redis, namespace: str) -> dict[str, Any]:
    """Every key of the namespace, normalized so two runs can be compared."""
    out: dict[str, Any] = {}
    for key in sorted(raw.scan_iter(f"{namespace}:*", count=1000)):
        kind = raw.type(key)
        value: Any
        if kind == "string":
            value = "<n>" if key.endswith(":fence") else raw.get(key)
        elif kind == "list":
            value = raw.lrange(key, 0, -1)
        elif kind == "hash" and key.endswith(":pool"):
            # values are packed (schema.POOL_ENTRY_FORMAT), not text: compare the members
            value = sorted(raw.hkeys(key))
        elif kind == "hash":
            value = {
                k: "<v>" if k.endswith(("_ms", "|sum")) or k in ("pool_in_use", "fence") else v
                for k, v in sorted(raw.hgetall(key).items())
            }
        elif kind == "set":
            value = sorted(raw.smembers(key))
        elif kind == "zset":
            value = raw.zrange(key, 0, -1)
        else:
            value = kind
        has_ttl = raw.pttl(key) > 0
        out[normal(key, namespace)] = (kind, has_ttl, normal(json.dumps(value), namespace))
    return out


_TIMING = {attr.LOCK_ATTEMPTS}
_AGES = {
    names.LOCK_OLDEST_HELD,
    names.TOOL_OLDEST_IN_PROGRESS,
    names.SAMPLER_AGE,
    names.LOCK_WAIT + "_sum",
    names.TURN_DURATION + "_sum",
}


def span_view(exporter: InMemorySpanExporter, namespace: str) -> list[Any]:
    view = []
    for span in exporter.get_finished_spans():
        attributes = {
            k: normal(str(v), namespace)
            for k, v in sorted((span.attributes or {}).items())
            if k not in _TIMING
        }
        view.append((span.name, span.kind.name, span.status.status_code.name, attributes))
    return view


def exporter_view(url: str, namespace: str) -> dict[str, float]:
    from metrics import InProcessExporter

    with InProcessExporter(redis_url=url, namespace=namespace, sample_interval=0.05) as exporter:
        fleet = exporter.app.fleet
        assert fleet is not None and fleet.sampler is not None
        assert fleet.sampler.wait_for_pass(0.0, 10) is not None  # the sampler's view too
        scrape = exporter.scrape()
    return {
        f"{s.name}{sorted(s.labels.items())}": float(s.value)
        for s in scrape.all_samples
        if s.name.startswith("memorywatch_")
        and s.name not in _AGES
        and not s.name.startswith(("memorywatch_scrape", "memorywatch_exporter"))
        # the whole Redis, not the run's namespace (both runs share one server), bytes,
        # which follow the length of the namespace names, and the sampler's progress
        and s.labels.get(names.LABEL_PROFILE) != names.PROFILE_NONE
        and s.name not in (names.KEYSPACE_SAMPLE_KEYS, names.KEYSPACE_BYTES, names.SAMPLER_WALKED)
    }


def run_on(
    flavour: str, url: str, scenario: Callable[[Any], Awaitable[Any]], **options: Any
) -> Any:
    """``scenario(client)`` on one client (``sync`` through :class:`SyncView`, or
    ``asyncio``) built by ``from_url(url, **options)``, closed afterwards."""

    async def main() -> Any:
        if flavour == "sync":
            state = AgentState.from_url(url, **options)
            try:
                return await scenario(SyncView(state))
            finally:
                state.close()
        astate = aio.AgentState.from_url(url, **options)
        try:
            return await scenario(astate)
        finally:
            await astate.aclose()

    return asyncio.run(main())


CLIENTS = ("sync", "asyncio")
FLAVOURS = ("sync", "async")
"""The two clients as run_one names them (in namespaces: psync..., pasync...)."""


def run_one(
    flavour: str,
    url: str,
    raw: redis.Redis,
    scenario: Scenario,
    settings: Settings | None = None,
    tracer_provider: TracerProvider | None = None,
) -> Outcome:
    """The scenario on a ``sync`` or an ``async`` client, on a fresh namespace: what it noted
    and the Redis state it left (no tracer provider: the API's no-op one)."""
    namespace = f"p{flavour}{uuid.uuid4().hex[:8]}"
    outcome = Outcome(namespace)
    common: dict[str, Any] = {
        "namespace": namespace,
        "instance_id": "agent-1",
        "tracer_provider": tracer_provider,
        "settings": settings,
    }
    if flavour == "sync":
        # check_schema=False: like the asyncio client, nothing is written before the
        # scenario's first step, so both show the same "visible from the first write"
        sync_state = AgentState.from_url(url, check_schema=False, **common)
        try:
            asyncio.run(scenario(SyncView(sync_state), Steps(outcome, raw)))
        finally:
            sync_state.close()
    else:

        async def main() -> None:
            async with aio.AgentState.from_url(url, **common) as state:
                await scenario(state, Steps(outcome, raw))

        asyncio.run(main())
    outcome.state = dump(raw, namespace)
    return outcome


def run_both(
    url: str, raw: redis.Redis, scenario: Scenario, settings: Settings | None = None
) -> tuple[Outcome, Outcome]:
    """The scenario on a sync and on an asyncio client, each on its own fresh namespace, with
    the spans it recorded and the exporter's view of its namespace."""
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    outcomes = []
    for flavour in FLAVOURS:
        spans = InMemorySpanExporter()
        provider = SdkTracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(spans))
        outcome = run_one(flavour, url, raw, scenario, settings, provider)
        outcome.spans = span_view(spans, outcome.namespace)
        outcome.exporter = exporter_view(url, outcome.namespace)
        outcomes.append(outcome)
    return outcomes[0], outcomes[1]


def _differences(a: Any, b: Any) -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        keys = sorted(set(a) | set(b), key=str)
        return "; ".join(f"{k}: {a.get(k)!r} != {b.get(k)!r}" for k in keys if a.get(k) != b.get(k))
    rows = [f"#{i}: {x!r} != {y!r}" for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y]
    if len(a) != len(b):
        rows.append(f"lengths {len(a)} != {len(b)}")
    return "; ".join(rows)


def compare(sync: Outcome, asyncio_: Outcome) -> None:
    for what in ("log", "state", "spans", "exporter"):
        mine, theirs = getattr(sync, what), getattr(asyncio_, what)
        assert mine == theirs, f"sync != asyncio in {what}: {_differences(mine, theirs)}"
