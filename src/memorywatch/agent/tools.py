"""Idempotent tool calls: claim, execute, complete; each transition is one Lua script."""

from __future__ import annotations

import functools
import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from opentelemetry.trace import SpanKind, Status, StatusCode

from memorywatch import schema
from memorywatch.agent import _core
from memorywatch.agent import attributes as attr
from memorywatch.agent.errors import (
    DuplicateExecution,
    FingerprintMismatch,
    ToolClaimLost,
    ToolFailed,
    ToolInProgress,
    redis_errors,
)

if TYPE_CHECKING:
    from memorywatch.agent.state import AgentState

P = ParamSpec("P")
R = TypeVar("R")


def claim_keys(sch: schema.Schema, key: str) -> list[str]:
    return [
        sch.tool(key),
        sch.stats(schema.TOOL_DUPLICATES_SUPPRESSED, key),
        sch.stats(schema.TOOL_RECLAIMS, key),
        sch.stats(schema.TOOL_FINGERPRINT_MISMATCHES, key),
        sch.stats(schema.TOOL_IN_PROGRESS_CONFLICTS, key),
        sch.tools_in_progress(key),
    ]


def complete_keys(sch: schema.Schema, key: str) -> list[str]:
    return [
        sch.tool(key),
        sch.stats(schema.TOOL_EXECUTIONS, key),
        sch.stats(schema.TOOL_DUPLICATE_EXECUTIONS, key),
        sch.stats(schema.TOOL_CLAIMS_LOST, key),
        sch.stats(schema.STATE_MISSES, key),
        sch.tools_in_progress(key),
    ]


class ToolCall:
    """The immutable facts of one run_tool call, shared by the sync and asyncio clients."""

    def __init__(
        self,
        state_namespace: str,
        settings: _core.Settings,
        instance_id: str,
        tool: str,
        key: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        options: _core.ToolOptions,
    ) -> None:
        if not key:
            raise ValueError("an idempotency key is required")
        self.tool = tool
        self.key = key
        self.options = options
        self.instance_id = instance_id
        self.owner = _core.owner_token(instance_id)
        self.fp = _core.fingerprint(tool, args, kwargs)
        self.deadline = options.deadline or settings.tool_deadline
        self.deadline_ms = _core.ms(self.deadline)
        self.retention_ms = _core.ms(options.retention or settings.tool_retention)
        self.derived = _core.derived_key(state_namespace, tool, key)

    def claim_args(self, first: bool) -> list[Any]:
        return [
            self.tool,
            self.fp,
            self.owner,
            self.instance_id,
            self.deadline_ms,
            self.retention_ms,
            int(first),
        ]

    def complete_args(self, outcome: str, payload: str, fence: int) -> list[Any]:
        return [
            self.owner,
            outcome,
            payload,
            self.tool,
            self.retention_ms,
            fence,
            self.fp,
            self.instance_id,
        ]

    def span_attributes(self) -> dict[str, Any]:
        attributes: dict[str, Any] = {
            attr.GEN_AI_OPERATION_NAME: attr.GEN_AI_OPERATION_EXECUTE_TOOL,
            attr.GEN_AI_TOOL_NAME: self.tool,
        }
        if self.options.call_id:
            attributes[attr.GEN_AI_TOOL_CALL_ID] = self.options.call_id
        return attributes

    def replay(self, reply: _core.ClaimReply) -> Any:
        """Turn a claim reply that is not a claim into a result or an exception."""
        if reply.status == schema.TOOL_STATE_COMPLETED:
            return json.loads(reply.payload)
        if reply.status == schema.TOOL_STATE_FAILED:
            raise ToolFailed(self.tool, *_core.parse_error_payload(reply.payload))
        if reply.status == "mismatch":
            raise FingerprintMismatch(
                f"tool {self.tool!r}: idempotency key reused with different arguments"
            )
        raise AssertionError(f"unexpected claim status {reply.status!r}")

    def check_completion(
        self, reply: Sequence[Any], result: Any, error: BaseException | None
    ) -> None:
        status, info = _core.text(reply[0]), _core.text(reply[1])
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


def encode_outcome(
    call: ToolCall, result: Any, error: BaseException | None
) -> tuple[str, str, BaseException | None]:
    """(outcome, payload, error to re-raise) for tool_complete.lua."""
    if error is not None:
        if isinstance(error, call.options.retryable):
            return schema.TOOL_STATE_RELEASED, "", error
        return schema.TOOL_STATE_FAILED, _core.error_payload(error), error
    try:
        return schema.TOOL_STATE_COMPLETED, json.dumps(result, ensure_ascii=False), None
    except (TypeError, ValueError) as exc:
        bad = TypeError(f"tool {call.tool!r} returned a value that is not JSON: {exc}")
        return schema.TOOL_STATE_FAILED, _core.error_payload(bad), bad


def run_tool(
    state: AgentState,
    tool: str,
    key: str,
    fn: Callable[..., Any],
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    options: _core.ToolOptions,
) -> Any:
    call = ToolCall(
        state.schema.namespace, state.settings, state.instance_id, tool, key, args, kwargs, options
    )
    sch = state.schema
    tracer = state.telemetry.tracer
    with tracer.start_as_current_span(
        f"{attr.SPAN_EXECUTE_TOOL_PREFIX} {tool}",
        kind=SpanKind.INTERNAL,
        attributes=call.span_attributes(),
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        started = time.monotonic()
        attempt = 1
        while True:
            raw = state._run(
                "tool_claim", claim_keys(sch, key), call.claim_args(attempt == 1), "run_tool.claim"
            )
            reply = _core.ClaimReply.parse(raw)
            if reply.status in ("claimed", "reclaimed"):
                break
            if reply.status == schema.TOOL_STATE_IN_PROGRESS:
                remaining = started + options.wait - time.monotonic()
                if remaining <= 0:
                    span.set_attribute(attr.TOOL_OUTCOME, "in_progress")
                    raise ToolInProgress(tool, int(reply.payload) / 1000)
                time.sleep(min(remaining, _core.backoff(attempt, 0.005, 0.2)))
                attempt += 1
                continue
            span.set_attribute(attr.TOOL_OUTCOME, "replayed" if reply.fence else "mismatch")
            try:
                return call.replay(reply)
            except Exception as exc:
                span.set_attribute(attr.ERROR_TYPE, type(exc).__qualname__)
                span.set_status(Status(StatusCode.ERROR, str(exc)))
                raise

        span.set_attribute(attr.TOOL_OUTCOME, "executed")
        span.set_attribute(attr.TOOL_FENCING_TOKEN, reply.fence)
        span.set_attribute(attr.TOOL_RECLAIMED, reply.status == "reclaimed")
        ctx = _core.ToolContext(
            tool, reply.fence, call.derived, state.instance_id, reply.status == "reclaimed"
        )
        stop = threading.Event()
        watchdog = _start_watchdog(state, call, stop) if options.renew else None
        result: Any = None
        error: BaseException | None = None
        exec_started = time.monotonic()
        try:
            result = fn(ctx, *args, **kwargs)
        except Exception as exc:
            error = exc
        finally:
            duration = time.monotonic() - exec_started
            stop.set()
            if watchdog is not None:
                watchdog.join()
        # BaseException (KeyboardInterrupt, SystemExit) skips completion on purpose: the record
        # stays in progress and is reclaimed after its deadline.
        metric_attrs: dict[str, Any] = {
            attr.GEN_AI_OPERATION_NAME: attr.GEN_AI_OPERATION_EXECUTE_TOOL,
            attr.GEN_AI_TOOL_NAME: tool,
        }
        if error is not None:
            metric_attrs[attr.ERROR_TYPE] = type(error).__qualname__
            span.set_attribute(attr.ERROR_TYPE, type(error).__qualname__)
            span.set_status(Status(StatusCode.ERROR, str(error)))
        state.telemetry.tool_duration.record(duration, metric_attrs)

        outcome, payload, raise_after = encode_outcome(call, result, error)
        done = state._run(
            "tool_complete",
            complete_keys(sch, key),
            call.complete_args(outcome, payload, reply.fence),
            "run_tool.complete",
        )
        try:
            call.check_completion(done, result, error)
        except Exception as exc:
            span.set_attribute(attr.ERROR_TYPE, type(exc).__qualname__)
            span.set_status(Status(StatusCode.ERROR, str(exc)))
            raise
        if raise_after is not None:
            raise raise_after
        return result


def _start_watchdog(state: AgentState, call: ToolCall, stop: threading.Event) -> threading.Thread:
    def renew() -> None:
        while not stop.wait(call.deadline / 3):
            try:
                with redis_errors("run_tool.extend"):
                    ok = state._run(
                        "tool_extend", [state.schema.tool(call.key)], [call.owner, call.deadline_ms]
                    )
            except Exception:  # noqa: S112 -- a hiccup: try again on the next tick
                continue
            if not int(ok):
                return  # completion reports the lost claim

    thread = threading.Thread(target=renew, name=f"mw-tool-renew-{call.tool}", daemon=True)
    thread.start()
    return thread


def idempotent_tool(
    state: AgentState,
    name: str | None = None,
    *,
    key: Callable[..., str],
    options: _core.ToolOptions | None = None,
) -> Callable[[Callable[Concatenate[_core.ToolContext, P], R]], Callable[P, R]]:
    """Decorate ``fn(ctx, *args, **kwargs)`` so that calls run through ``state.run_tool``.

    ``key(*args, **kwargs)`` builds the idempotency key from the call's arguments::

        @idempotent_tool(state, key=lambda order_id: f"ticket:{order_id}")
        def create_ticket(ctx: ToolContext, order_id: str) -> dict: ...
    """

    def decorate(fn: Callable[Concatenate[_core.ToolContext, P], R]) -> Callable[P, R]:
        tool = name or fn.__name__

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            result: R = state.run_tool(
                tool,
                key(*args, **kwargs),
                fn,
                *args,
                tool_options=options or _core.ToolOptions(),
                **kwargs,
            )
            return result

        return wrapper

    return decorate
