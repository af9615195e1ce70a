"""Idempotent tool calls: claim, execute, complete; each transition is one Lua script.

Sans-I/O: the user's function is a :class:`Call` effect, so the same logic runs a plain
function on the sync client and awaits a coroutine function on the asyncio client.
"""

from __future__ import annotations

import functools
import inspect
import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from memorywatch import schema
from memorywatch.agent import _context, _values
from memorywatch.agent import attributes as attr
from memorywatch.agent._context import Core, client_span, durable, fail_span, remember_label
from memorywatch.agent._effects import Call, Join, Op, Pause, Script, Sleep, Spawn
from memorywatch.agent.errors import (
    AgentStateError,
    DuplicateExecution,
    FingerprintMismatch,
    StateNotDurable,
    ToolClaimLost,
    ToolFailed,
    ToolInProgress,
)


class ShardKeys:
    """The keys of one shard that every tool call of the shard shares."""

    __slots__ = ("claim", "complete", "shard")

    def __init__(self, sch: schema.Schema, subject: str) -> None:
        self.shard = sch.shard(subject)
        prefix = sch.prefix(self.shard)
        inprog = f"{prefix}tools:inprog"
        self.claim = [
            f"{prefix}stats:{schema.FAMILY_TOOL_DUPLICATES_SUPPRESSED}",
            f"{prefix}stats:{schema.FAMILY_TOOL_RECLAIMS}",
            f"{prefix}stats:{schema.FAMILY_TOOL_FINGERPRINT_MISMATCHES}",
            f"{prefix}stats:{schema.FAMILY_TOOL_IN_PROGRESS_CONFLICTS}",
            inprog,
            sch.fence(subject),
            sch.names(schema.NAMES_TOOL, subject),
        ]
        self.complete = [
            f"{prefix}stats:{schema.FAMILY_TOOL_EXECUTIONS}",
            f"{prefix}stats:{schema.FAMILY_TOOL_DUPLICATE_EXECUTIONS}",
            f"{prefix}stats:{schema.FAMILY_TOOL_CLAIMS_LOST}",
            f"{prefix}stats:{schema.FAMILY_STATE_MISSES}",
            inprog,
        ]


def shard_keys(core: Core, key: str) -> ShardKeys:
    return _context.shard_keys(core, schema.NAMES_TOOL, key, ShardKeys)


class ToolCall:
    """The immutable facts of one run_tool call."""

    def __init__(
        self,
        core: Core,
        tool: str,
        key: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        options: _values.ToolOptions,
    ) -> None:
        if not tool:
            raise ValueError("a tool name is required")
        if not key:
            raise ValueError("an idempotency key is required")
        settings = core.settings
        self.tool = tool
        self.key = key
        self.record = core.schema.tool(key)
        self.keys = shard_keys(core, key)
        self.options = options
        self.instance_id = core.instance_id
        self.owner = _values.owner_token(core.instance_id)
        self.fp = _values.fingerprint(tool, args, kwargs)
        self.deadline = options.deadline or settings.tool_deadline
        self.deadline_ms = _values.ms(self.deadline)
        self.retention_ms = _values.ms(options.retention or settings.tool_retention)
        self.derived = _values.derived_key(core.schema.namespace, tool, key)
        self.cap = settings.name_cap
        self.known = (schema.NAMES_TOOL, self.keys.shard, tool)
        self.core = core

    def claim(self, first: bool) -> Script:
        label = self.core.labels.get(self.known, "")
        args = [
            self.tool,
            self.fp,
            self.owner,
            self.instance_id,
            self.deadline_ms,
            self.retention_ms,
            int(first),
            self.cap,
            label,
        ]
        return Script("tool_claim", [self.record, *self.keys.claim], args, "run_tool.claim")

    def complete(self, outcome: str, payload: str, reply: _values.ClaimReply) -> Script:
        args = [
            self.owner,
            outcome,
            payload,
            self.tool,
            self.retention_ms,
            reply.fence,
            self.fp,
            self.instance_id,
            reply.label,
        ]
        return Script(
            "tool_complete", [self.record, *self.keys.complete], args, "run_tool.complete"
        )

    def span_attributes(self) -> dict[str, Any]:
        attributes: dict[str, Any] = {
            attr.GEN_AI_OPERATION_NAME: attr.GEN_AI_OPERATION_EXECUTE_TOOL,
            attr.GEN_AI_TOOL_NAME: self.tool,
        }
        if self.options.call_id:
            attributes[attr.GEN_AI_TOOL_CALL_ID] = self.options.call_id
        return attributes

    def replay(self, reply: _values.ClaimReply) -> Any:
        """Turn a claim reply that is not a claim into a result or an exception."""
        if reply.status == schema.TOOL_STATE_COMPLETED:
            return json.loads(reply.payload)
        if reply.status == schema.TOOL_STATE_FAILED:
            raise ToolFailed(self.tool, *_values.parse_error_payload(reply.payload))
        if reply.status == "mismatch":
            raise FingerprintMismatch(
                f"tool {self.tool!r}: idempotency key reused with different arguments"
            )
        raise AssertionError(f"unexpected claim status {reply.status!r}")

    def encode_outcome(
        self, result: Any, error: BaseException | None
    ) -> tuple[str, str, BaseException | None]:
        """(outcome, payload, error to re-raise) for tool_complete.lua."""
        if error is not None:
            if isinstance(error, self.options.retryable):
                return schema.TOOL_STATE_RELEASED, "", error
            return schema.TOOL_STATE_FAILED, _values.error_payload(error), error
        try:
            return schema.TOOL_STATE_COMPLETED, json.dumps(result, ensure_ascii=False), None
        except (TypeError, ValueError) as exc:
            bad = TypeError(f"tool {self.tool!r} returned a value that is not JSON: {exc}")
            return schema.TOOL_STATE_FAILED, _values.error_payload(bad), bad

    def check_completion(
        self, reply: Sequence[Any], result: Any, error: BaseException | None
    ) -> None:
        status, info = _values.text(reply[0]), _values.text(reply[1])
        if status == "ok":
            return
        if status == "stolen":
            if error is not None and isinstance(error, self.options.retryable):
                raise ToolClaimLost(
                    f"tool {self.tool!r}: claim taken over by {info!r} during a retryable failure"
                ) from error
            raise DuplicateExecution(
                f"tool {self.tool!r}: our claim passed its deadline ({self.deadline}s) and "
                f"instance {info!r} reclaimed it: the side effect may have run twice",
                result,
            ) from error
        raise ToolClaimLost(
            f"tool {self.tool!r}: the record vanished while the tool ran (evicted or expired); "
            "our outcome was written back",
            result,
        ) from error


def _renewal(call: ToolCall) -> Op[None]:
    """Push the in-progress deadline every deadline/3 until stopped or the claim is lost."""
    script = Script("tool_extend", [call.record], [call.owner, call.deadline_ms], "run_tool.extend")
    while not (yield Pause(call.deadline / 3)):
        try:
            ok = yield script
        except AgentStateError:
            continue  # a hiccup: try again on the next tick
        if not int(ok):
            return  # completion reports the lost claim


_TAKES_EFFECT = frozenset(
    ("claimed", "reclaimed", schema.TOOL_STATE_COMPLETED, schema.TOOL_STATE_FAILED)
)
"""Claim replies durable mode must see replicated: a claim the function runs under, or an
outcome handed back as if it had run. (A conflict or a mismatch hands back nothing.)"""


def _claim(call: ToolCall, first: bool) -> Op[Any]:
    """The claim script, durable in durable mode: a claim no replica has is given back
    (deleted if still ours) before :class:`StateNotDurable` is raised, so the function never
    runs on it and a retry after the failover can claim again."""

    def give_back(value: Any) -> Op[None]:
        reply = _values.ClaimReply.parse(value)
        if reply.status in ("claimed", "reclaimed"):
            yield call.complete(schema.TOOL_OUTCOME_ABANDONED, "", reply)

    return (
        yield from durable(
            call.core,
            call.claim(first),
            schema.DURABLE_TOOL_CLAIM,
            call.key,
            lambda value: _values.text(value[0]) in _TAKES_EFFECT,
            give_back,
        )
    )


def run_tool(
    core: Core,
    tool: str,
    key: str,
    fn: Callable[..., Any],
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    options: _values.ToolOptions,
) -> Op[Any]:
    """``fn(ctx, *args, **kwargs)`` at most once per idempotency key; happy path: two round
    trips (claim, complete). See ``AgentState.run_tool``."""
    call = ToolCall(core, tool, key, args, kwargs, options)
    name = f"{attr.SPAN_EXECUTE_TOOL_PREFIX} {tool}"
    with client_span(core, name, call.span_attributes(), current=True) as span:
        started = time.monotonic()
        attempt = 1
        while True:
            reply = _values.ClaimReply.parse((yield from _claim(call, attempt == 1)))
            if call.known not in core.labels:
                remember_label(core, call.known, reply.label)
            if reply.status in ("claimed", "reclaimed"):
                break
            if reply.status == schema.TOOL_STATE_IN_PROGRESS:
                remaining = started + options.wait - time.monotonic()
                if remaining <= 0:
                    span.set_attribute(attr.TOOL_OUTCOME, "in_progress")
                    raise ToolInProgress(tool, int(reply.payload) / 1000)
                yield Sleep(min(remaining, _values.backoff(attempt, 0.005, 0.2)))
                attempt += 1
                continue
            span.set_attribute(attr.TOOL_OUTCOME, "replayed" if reply.fence else "mismatch")
            return call.replay(reply)

        reclaimed = reply.status == "reclaimed"
        span.set_attribute(attr.TOOL_OUTCOME, "executed")
        span.set_attribute(attr.TOOL_FENCING_TOKEN, reply.fence)
        span.set_attribute(attr.TOOL_RECLAIMED, reclaimed)
        ctx = _values.ToolContext(tool, reply.fence, call.derived, core.instance_id, reclaimed)
        renewal = (
            (yield Spawn(_renewal(call), f"mw-tool-renew-{reply.label}")) if options.renew else None
        )
        result: Any = None
        error: BaseException | None = None
        exec_started = time.monotonic()
        try:
            result = yield Call(fn, (ctx, *args), kwargs)
        except Exception as exc:
            error = exc
        except BaseException as exc:
            # KeyboardInterrupt, SystemExit, cancellation skip completion on purpose: the
            # record stays in progress and is reclaimed after its deadline.
            if renewal is not None and not isinstance(exc, GeneratorExit):
                yield Join(renewal)
            raise
        duration = time.monotonic() - exec_started
        if renewal is not None:
            yield Join(renewal)
        metric_attrs: dict[str, Any] = {
            attr.GEN_AI_OPERATION_NAME: attr.GEN_AI_OPERATION_EXECUTE_TOOL,
            attr.GEN_AI_TOOL_NAME: reply.label,
        }
        if error is not None:
            metric_attrs[attr.ERROR_TYPE] = type(error).__qualname__
            fail_span(span, error)
        core.telemetry.tool_duration.record(duration, metric_attrs)

        outcome, payload, raise_after = call.encode_outcome(result, error)
        try:
            done = yield from durable(
                core, call.complete(outcome, payload, reply), schema.DURABLE_TOOL_COMPLETE, key
            )
        except StateNotDurable as refused:
            refused.result = result
            raise refused from error
        call.check_completion(done, result, error)
        if raise_after is not None:
            raise raise_after
        return result


def idempotent_tool(
    state: Any,
    name: str | None = None,
    *,
    key: Callable[..., str],
    options: _values.ToolOptions | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate ``fn(ctx, *args, **kwargs)`` so that calls run through ``state.run_tool``
    (a coroutine function on the asyncio client, a plain one on the sync client).

    ``key(*args, **kwargs)`` builds the idempotency key from the call's arguments::

        @idempotent_tool(state, key=lambda order_id: f"ticket:{order_id}")
        def create_ticket(ctx: ToolContext, order_id: str) -> dict: ...
    """

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        tool = name or fn.__name__

        def run(*args: Any, **kwargs: Any) -> Any:
            return state.run_tool(
                tool, key(*args, **kwargs), fn, *args, tool_options=options, **kwargs
            )

        if inspect.iscoroutinefunction(state.run_tool):

            async def run_async(*args: Any, **kwargs: Any) -> Any:
                return await run(*args, **kwargs)

            return functools.wraps(fn)(run_async)
        return functools.wraps(fn)(run)

    return decorate
