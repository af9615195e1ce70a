"""LangGraph runs with the SDK's guarantees: one run of a thread at a time across the fleet,
at most one run per request id, and tool calls that run at most once per tool-call id.

Why both halves are needed: a double submit (a page refresh routed to another instance) runs
the turn again, and the model emits *fresh* tool-call ids on the second run, so nothing keyed
by tool-call id can tell the two runs' calls apart. :func:`run_once` stops the second run
before the model is called (keyed by the caller's ``request_id``); :func:`idempotent_tool`
stops a tool from running twice when the *same* run retries a step (a resumed checkpoint, a
reclaimed crashed run), where the tool-call ids are the recorded ones.

Both ride the SDK's idempotent tool path (``AgentState.run_tool``): the record, its claim
deadline, fencing tokens, spans and fleet counters are the SDK's (see docs/schema.md,
"LangGraph runs"). The :class:`~memorywatch.agent.AgentState` is passed explicitly
(``state=``) because a compiled graph knows its checkpointer, not a Redis connection; a graph
whose checkpointer is an ``AgentStateSaver`` lends its state when ``state`` is omitted.
"""

from __future__ import annotations

import base64
import contextvars
import dataclasses
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final

from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import run_in_executor
from langchain_core.tools import BaseTool
from langchain_core.tools import tool as as_tool
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from pydantic import BaseModel, ConfigDict

from memorywatch.agent import (
    AgentState,
    AgentStateError,
    LockLost,
    LockTimeout,
    ToolContext,
    ToolInProgress,
    ToolOptions,
    aio,
)
from memorywatch.integrations._shared import AnyState, bound

RUN_TOOL_NAME: Final = "langgraph_run"
"""The tool name a run's record is counted under (``tool`` label of the fleet counters)."""
THREAD_LOCK_KIND: Final = "langgraph_thread"
"""The lock kind of a thread's run lock (``lock`` label); the thread id is its resource."""
RUN_KEY_PREFIX: Final = "lgreq"
"""Idempotency key of a run: ``lgreq:{thread_id}:{request_id}``."""
TOOL_KEY_PREFIX: Final = "lgcall"
"""Idempotency key of a tool call: ``lgcall:{thread_id}:{tool_call_id}``."""
REQUEST_METADATA_KEY: Final = "memorywatch.request_id"
"""Written into every checkpoint's metadata by a run, so a retried run knows its own
interrupted checkpoint (and resumes it) from another request's."""

DEFAULT_LOCK_WAIT: Final = 10.0
DEFAULT_REPLAY_WAIT: Final = 30.0


class ThreadBusy(LockTimeout):
    """Another run of the same thread held its run lock for the whole wait."""


class OutputNotRecorded(AgentStateError):
    """A replay of a request whose run finished with an output its serializer refused: the
    run happened (once) and is not run again, but there is no output to hand back."""


class RunInProgress(ToolInProgress):
    """The same request is still running elsewhere after the whole wait (its live claim)."""


@dataclass(frozen=True)
class RunContext:
    """What code inside a :func:`run_once` run can read with :func:`current_run`."""

    thread_id: str
    request_id: str
    fencing_token: int
    """The thread run lock's token: rises on every run of any thread of the shard."""
    claim_token: int
    """The run record's claim token: a reclaimed (crashed) run gets a higher one."""
    reclaimed: bool
    """True when this run took over a run whose holder missed its deadline (it died)."""
    resumed: bool
    """True when the run resumed this request's own interrupted checkpoint instead of
    applying the input again."""


_RUN: contextvars.ContextVar[RunContext | None] = contextvars.ContextVar("mw_lg_run", default=None)
_TOOL: contextvars.ContextVar[ToolContext | None] = contextvars.ContextVar(
    "mw_lg_tool", default=None
)


def current_run() -> RunContext:
    """The run :func:`run_once` is running now; LookupError outside one."""
    run = _RUN.get()
    if run is None:
        raise LookupError("not inside memorywatch run_once()")
    return run


def tool_context() -> ToolContext:
    """The SDK's :class:`ToolContext` of the :func:`idempotent_tool` call running now
    (``fencing_token``, derived ``idempotency_key``, ``reclaimed``); LookupError outside one."""
    ctx = _TOOL.get()
    if ctx is None:
        raise LookupError("not inside a memorywatch idempotent_tool call")
    return ctx


# -- encoding -------------------------------------------------------------------------------------
def _serde(graph: Any) -> SerializerProtocol:
    """The checkpointer's own serializer (its allow-list), else LangGraph's default."""
    serde = getattr(getattr(graph, "checkpointer", None), "serde", None)
    return serde if isinstance(serde, SerializerProtocol) else JsonPlusSerializer()


def _encode(serde: SerializerProtocol, value: Any) -> dict[str, str]:
    kind, data = serde.dumps_typed(value)
    return {"type": kind, "data": base64.b64encode(data).decode("ascii")}


def _decode(serde: SerializerProtocol, record: Mapping[str, str]) -> Any:
    if "unrecorded" in record:
        raise OutputNotRecorded(f"the run of this request is done; {record['unrecorded']}")
    return serde.loads_typed((record["type"], base64.b64decode(record["data"])))


def _record(serde: SerializerProtocol, output: Any) -> dict[str, str]:
    """The run's output for its record. The graph has run: an output the serializer refuses
    is recorded as such (a replay raises :class:`OutputNotRecorded`), never as a failure that
    would free the request to run again."""
    try:
        return _encode(serde, output)
    except Exception as exc:
        return {"unrecorded": f"its output could not be serialised ({type(exc).__name__}: {exc})"}


# -- identities -----------------------------------------------------------------------------------
def thread_of(config: RunnableConfig | Mapping[str, Any] | None) -> str:
    """``config["configurable"]["thread_id"]`` as a non-empty str; ValueError otherwise."""
    configurable = (config or {}).get("configurable") or {}
    thread_id = configurable.get("thread_id")
    if thread_id is None or str(thread_id) == "":
        raise ValueError('config["configurable"]["thread_id"] is required')
    return str(thread_id)


def _state_of(graph: Any, state: AnyState | None) -> AnyState:
    if state is not None:
        return state
    lent = getattr(getattr(graph, "checkpointer", None), "state", None)
    if isinstance(lent, AgentState | aio.AgentState):
        return lent
    raise TypeError(
        "run_once needs state=AgentState(...) (the graph's checkpointer is not an "
        "AgentStateSaver that could lend its own)"
    )


def _with_request(config: RunnableConfig, request_id: str) -> RunnableConfig:
    metadata = {**(config.get("metadata") or {}), REQUEST_METADATA_KEY: request_id}
    return {**config, "metadata": metadata}


def _check_request(request_id: str) -> None:
    if not isinstance(request_id, str) or not request_id:
        raise ValueError("request_id must be a non-empty str")


def _options(wait: float, deadline: float | None, retention: float | None) -> ToolOptions:
    # Every failure frees the record (retryable): a client retrying a failed request must run
    # it again, resuming the checkpoint it left, not replay the error for a day.
    return ToolOptions(
        wait=wait, deadline=deadline, retention=retention, renew=True, retryable=(Exception,)
    )


def _has_checkpointer(graph: Any) -> bool:
    return isinstance(getattr(graph, "checkpointer", None), BaseCheckpointSaver)


def _pending_own(snapshot: Any, request_id: str) -> bool:
    """Does the thread's latest checkpoint belong to this request and still have tasks to run
    (the run died or failed mid-turn)? An interrupt of this request also has tasks, but its
    run completed, so it is never re-entered here."""
    metadata = getattr(snapshot, "metadata", None) or {}
    return bool(getattr(snapshot, "next", ())) and metadata.get(REQUEST_METADATA_KEY) == request_id


@dataclass(frozen=True)
class _Request:
    """What :func:`run_once` and :func:`arun_once` derive from their arguments, and the
    pieces of a run both write the same way (only their awaiting differs)."""

    thread_id: str
    request_id: str
    key: str
    """The run record's idempotency key."""
    serde: SerializerProtocol
    config: RunnableConfig
    """The caller's config, the request id added to its metadata."""
    options: ToolOptions

    @classmethod
    def of(
        cls,
        graph: Any,
        config: RunnableConfig,
        request_id: str,
        wait: float,
        deadline: float | None,
        retention: float | None,
    ) -> _Request:
        _check_request(request_id)
        thread_id = thread_of(config)
        return cls(
            thread_id,
            request_id,
            f"{RUN_KEY_PREFIX}:{thread_id}:{request_id}",
            _serde(graph),
            _with_request(config, request_id),
            _options(wait, deadline, retention),
        )

    def context(self, lease: Any, ctx: ToolContext, resumed: bool) -> RunContext:
        return RunContext(
            self.thread_id, self.request_id, lease.fencing_token, ctx.fencing_token,
            ctx.reclaimed, resumed,
        )  # fmt: skip

    @contextmanager
    def busy_after(self, wait: float) -> Iterator[None]:
        """Around taking the thread's run lock: its timeout as :class:`ThreadBusy`."""
        try:
            yield
        except LockTimeout as exc:
            raise ThreadBusy(
                f"thread {self.thread_id!r} is running another request; still busy after {wait}s"
            ) from exc

    @contextmanager
    def in_progress_after(self, wait: float) -> Iterator[None]:
        """Around the run record: the same request running elsewhere as
        :class:`RunInProgress`."""
        try:
            yield
        except ToolInProgress as exc:
            run = RunInProgress(RUN_TOOL_NAME, exc.retry_after)
            run.args = (
                f"request {self.request_id!r} is still running on another instance after "
                f"{wait}s; retry in {exc.retry_after:.3f}s",
            )
            raise run from exc


@contextmanager
def _finished_despite_lost_lock(fresh: list[Any]) -> Iterator[None]:
    """Around the run under its lease: a lock lost at release, after the graph finished
    (renewals failed for a whole TTL), does not fail the run: the turn is done and
    checkpointed, so it is recorded (a retry would run it again); the loss is counted
    (locks_lost) and overlapping work shows in the tokens."""
    try:
        yield
    except LockLost:
        if not fresh:
            raise


# -- runs -----------------------------------------------------------------------------------------
def run_once(
    graph: Any,
    input: Any,
    config: RunnableConfig,
    *,
    request_id: str,
    state: AgentState | None = None,
    lock_wait: float = DEFAULT_LOCK_WAIT,
    lock_ttl: float | None = None,
    wait: float = DEFAULT_REPLAY_WAIT,
    deadline: float | None = None,
    retention: float | None = None,
    **invoke_kwargs: Any,
) -> Any:
    """``graph.invoke(input, config)`` at most once per ``request_id`` of the thread, under
    the thread's run lock.

    - A replay of a completed request returns the recorded output (decoded with the
      checkpointer's serializer) and does not run the graph.
    - The same request running elsewhere: waits up to ``wait`` s for its output, then
      :class:`RunInProgress`.
    - Another request of the thread running: waits up to ``lock_wait`` s for the thread's
      run lock (TTL ``lock_ttl``, renewed while the run lives), then :class:`ThreadBusy`.
    - A request whose run died (SIGKILL) is run again once its claim ``deadline`` (default
      the state's tool deadline, 30 s) has passed; a request whose run raised is run again at
      once. Either retry resumes the request's own interrupted checkpoint (input ``None``)
      rather than applying the input a second time.
    """
    req = _Request.of(graph, config, request_id, wait, deadline, retention)
    st = _state_of(graph, state)
    if not isinstance(st, AgentState):
        raise TypeError("run_once needs a sync AgentState; use arun_once with aio.AgentState")
    fresh: list[Any] = []

    def body(ctx: ToolContext) -> dict[str, str]:
        with req.busy_after(lock_wait):
            lease = st.lock(
                THREAD_LOCK_KIND, req.thread_id, wait=lock_wait, ttl=lock_ttl, renew=True
            )
        with _finished_despite_lost_lock(fresh), lease:
            resume = _has_checkpointer(graph) and _pending_own(
                graph.get_state(req.config), request_id
            )
            with bound(_RUN, req.context(lease, ctx, resume)):
                fresh.append(graph.invoke(None if resume else input, req.config, **invoke_kwargs))
        return _record(req.serde, fresh[0])

    with req.in_progress_after(wait):
        record = st.run_tool(RUN_TOOL_NAME, req.key, body, tool_options=req.options)
    return fresh[0] if fresh else _decode(req.serde, record)


async def arun_once(
    graph: Any,
    input: Any,
    config: RunnableConfig,
    *,
    request_id: str,
    state: aio.AgentState | None = None,
    lock_wait: float = DEFAULT_LOCK_WAIT,
    lock_ttl: float | None = None,
    wait: float = DEFAULT_REPLAY_WAIT,
    deadline: float | None = None,
    retention: float | None = None,
    **invoke_kwargs: Any,
) -> Any:
    """:func:`run_once` on the asyncio client: ``await graph.ainvoke(...)``."""
    req = _Request.of(graph, config, request_id, wait, deadline, retention)
    st = _state_of(graph, state)
    if not isinstance(st, aio.AgentState):
        raise TypeError("arun_once needs memorywatch.agent.aio.AgentState; use run_once")
    fresh: list[Any] = []

    async def body(ctx: ToolContext) -> dict[str, str]:
        with req.busy_after(lock_wait):
            lease = await st.lock(
                THREAD_LOCK_KIND, req.thread_id, wait=lock_wait, ttl=lock_ttl, renew=True
            )
        with _finished_despite_lost_lock(fresh):
            async with lease:
                resume = _has_checkpointer(graph) and _pending_own(
                    await graph.aget_state(req.config), request_id
                )
                with bound(_RUN, req.context(lease, ctx, resume)):
                    fresh.append(
                        await graph.ainvoke(None if resume else input, req.config, **invoke_kwargs)
                    )
        return _record(req.serde, fresh[0])

    with req.in_progress_after(wait):
        record = await st.run_tool(RUN_TOOL_NAME, req.key, body, tool_options=req.options)
    return fresh[0] if fresh else _decode(req.serde, record)


# -- tools ----------------------------------------------------------------------------------------
def _visible_args(tool: BaseTool, args: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments the model wrote (what the call's fingerprint covers): injected state,
    store, runtime or tool-call id are neither the model's nor JSON."""
    schema: Any = tool.tool_call_schema
    if isinstance(schema, dict):
        names = set(schema.get("properties", {}))
    else:  # a pydantic model class (v2 or v1)
        names = set(getattr(schema, "model_fields", None) or getattr(schema, "__fields__", {}))
    return {name: value for name, value in args.items() if name in names}


def _call_parts(tool_name: str, input: Any, config: RunnableConfig | None) -> tuple[str, str]:
    if not (isinstance(input, Mapping) and input.get("type") == "tool_call" and input.get("id")):
        raise ValueError(
            f"idempotent tool {tool_name!r} must be called with a tool call (name, args, id); "
            "ToolNode does that"
        )
    return thread_of(config), str(input["id"])


class IdempotentTool(BaseTool):
    """A LangChain tool whose calls run through the SDK's idempotent tool path, keyed by the
    thread and the tool-call id; see :func:`idempotent_tool`."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    inner: BaseTool
    agent_state: Any
    options: ToolOptions
    func: Callable[..., Any] | None = None
    """The wrapped function, so ToolNode finds its injected parameters (state, runtime)."""

    def get_input_schema(self, config: RunnableConfig | None = None) -> type[BaseModel]:
        schema: type[BaseModel] = self.inner.get_input_schema(config)  # type: ignore[assignment]
        return schema

    @property
    def tool_call_schema(self) -> Any:
        return self.inner.tool_call_schema

    def _run(self, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover - invoke is overridden
        raise NotImplementedError("called through invoke()")

    def _call(
        self, input: Any, config: RunnableConfig | None
    ) -> tuple[str, dict[str, Any], ToolOptions]:
        thread_id, call_id = _call_parts(self.name, input, config)
        options = dataclasses.replace(self.options, call_id=call_id)
        key = f"{TOOL_KEY_PREFIX}:{thread_id}:{call_id}"
        return key, _visible_args(self.inner, input["args"]), options

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        state = self.agent_state
        if not isinstance(state, AgentState):
            raise TypeError(f"tool {self.name!r} holds an asyncio AgentState: call ainvoke")
        key, visible, options = self._call(input, config)
        serde = JsonPlusSerializer()

        def call(ctx: ToolContext, _args: dict[str, Any]) -> dict[str, str]:
            with bound(_TOOL, ctx):
                return _encode(serde, self.inner.invoke(input, config, **kwargs))

        return _decode(serde, state.run_tool(self.name, key, call, visible, tool_options=options))

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        state = self.agent_state
        if isinstance(state, AgentState):  # the sync client: invoke() in a worker thread
            return await run_in_executor(config, self.invoke, input, config, **kwargs)
        key, visible, options = self._call(input, config)
        serde = JsonPlusSerializer()

        async def call(ctx: ToolContext, _args: dict[str, Any]) -> dict[str, str]:
            with bound(_TOOL, ctx):
                return _encode(serde, await self.inner.ainvoke(input, config, **kwargs))

        recorded = await state.run_tool(self.name, key, call, visible, tool_options=options)
        return _decode(serde, recorded)


def idempotent_tool(
    state: AnyState,
    *,
    wait: float = DEFAULT_REPLAY_WAIT,
    deadline: float | None = None,
    retention: float | None = None,
    renew: bool = True,
) -> Callable[[BaseTool | Callable[..., Any]], IdempotentTool]:
    """Wrap a LangChain tool (``@tool``, any ``BaseTool``) or a plain function (its docstring
    is the description) for ``ToolNode``: each call runs at most once per
    ``(thread_id, tool_call_id)``; a repeat returns the recorded ``ToolMessage``.

    Inside the tool, :func:`tool_context` gives the SDK's :class:`ToolContext`: pass its
    ``fencing_token`` (or the derived ``idempotency_key``) to the system you write to. A
    concurrent repeat waits ``wait`` s for the first call's answer; a call whose holder died
    is run again after its claim ``deadline`` with a higher token (``reclaimed`` is True).
    Failures are recorded and replayed (``ToolFailed``) except ``RetryableToolError``.
    """
    options = ToolOptions(wait=wait, deadline=deadline, retention=retention, renew=renew)

    def wrap(target: BaseTool | Callable[..., Any]) -> IdempotentTool:
        inner = target if isinstance(target, BaseTool) else as_tool(target)
        if not isinstance(inner, BaseTool):  # pragma: no cover - as_tool(fn) is a BaseTool
            raise TypeError(f"cannot make a tool of {target!r}")
        return IdempotentTool(
            name=inner.name,
            description=inner.description,
            args_schema=inner.args_schema,
            return_direct=inner.return_direct,
            response_format=inner.response_format,
            inner=inner,
            agent_state=state,
            options=options,
            func=getattr(inner, "func", None) or getattr(inner, "coroutine", None),
        )

    return wrap


__all__ = [
    "DEFAULT_LOCK_WAIT",
    "DEFAULT_REPLAY_WAIT",
    "REQUEST_METADATA_KEY",
    "RUN_TOOL_NAME",
    "THREAD_LOCK_KIND",
    "IdempotentTool",
    "OutputNotRecorded",
    "RunContext",
    "RunInProgress",
    "ThreadBusy",
    "arun_once",
    "current_run",
    "idempotent_tool",
    "run_once",
    "thread_of",
    "tool_context",
]
