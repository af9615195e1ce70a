"""An offline model for the openai-agents Runner and the worker process of the fleet tests.

The model is deterministic in what it says and, like a real one, emits a fresh tool-call id on
every run: on a user message it calls ``book`` with the message as argument; on the tool's
output it answers ``booked: <output>``.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import redis
from agents import Agent, Model, ModelResponse, RunConfig, Usage, function_tool
from agents.items import TResponseInputItem, TResponseStreamEvent
from openai.types.responses import (
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
)

from memorywatch.agent import AgentState, ToolOptions, aio
from memorywatch.integrations.openai_agents import (
    AgentStateSession,
    idempotent_tool,
    run_fencing_token,
    run_once,
    tool_context,
)

EFFECTS = "effects"
"""Outside the namespace: the "external system" the tool writes to, one entry per side effect."""
RUN_CONFIG = RunConfig(tracing_disabled=True)
TOOL_OPTIONS = ToolOptions(deadline=1.0)
"""The fleet's tools: a claim whose holder died is reclaimed after 1 s (30 s by default)."""


class BookingModel(Model):
    """Calls ``book`` once per user message, then answers with the tool's output."""

    def __init__(self) -> None:
        self.hang_after_tool: tuple[str, str] | None = None
        """(Redis URL, key): after the tool ran, push to that key and hang (to be killed)."""
        self.fail_after_tool = False
        """After the tool ran, raise (a model API error mid-turn)."""

    async def get_response(self, *args: Any, **kwargs: Any) -> ModelResponse:
        items: str | list[TResponseInputItem] = kwargs.get(
            "input", args[1] if len(args) > 1 else ""
        )
        if isinstance(items, str):
            items = [{"role": "user", "content": items}]
        last: Any = items[-1]
        if last.get("type") == "function_call_output":
            if self.fail_after_tool:
                raise RuntimeError("the model API is down")
            if self.hang_after_tool:
                url, key = self.hang_after_tool
                redis.Redis.from_url(url).rpush(key, 1)
                await asyncio.sleep(120)
            text = ResponseOutputText(
                type="output_text", text=f"booked: {last['output']}", annotations=[]
            )
            message = ResponseOutputMessage(
                id=f"msg_{uuid.uuid4().hex}",
                type="message",
                role="assistant",
                status="completed",
                content=[text],
            )
            return ModelResponse(output=[message], usage=Usage(), response_id=None)
        call = ResponseFunctionToolCall(
            type="function_call",
            id=f"fc_{uuid.uuid4().hex}",
            call_id=f"call_{uuid.uuid4().hex}",  # fresh on every run, as a real model's
            name="book",
            arguments=json.dumps({"what": str(last.get("content"))}),
            status="completed",
        )
        return ModelResponse(output=[call], usage=Usage(), response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[TResponseStreamEvent]:
        raise NotImplementedError("the tests do not stream")


HANG_IN_TOOL: list[tuple[str, str]] = []
"""(Redis URL, key) while set: the tool pushes to that key after its side effect and hangs."""


def booking_agent(
    state: AgentState | aio.AgentState,
    url: str,
    namespace: str,
    options: ToolOptions | None = None,
) -> Agent[Any]:
    side = redis.Redis.from_url(url, decode_responses=True)

    @function_tool
    def book(what: str) -> str:
        """Book something (writes one entry to the external system)."""
        ctx = tool_context()
        try:
            run = run_fencing_token()
        except LookupError:  # called by a plain Runner.run, outside run_once
            run = 0
        side.rpush(f"{namespace}-{EFFECTS}", f"{what}|{ctx.fencing_token}|{run}")
        for hang_url, key in HANG_IN_TOOL:
            redis.Redis.from_url(hang_url).rpush(key, 1)
            time.sleep(120)
        return f"{what} #{ctx.fencing_token}"

    return Agent(
        name="booker",
        instructions="Book what the user asks for.",
        model=BookingModel(),
        tools=[idempotent_tool(state, book, options=options)],
    )


def worker(url: str, namespace: str, name: str, jobs: Any, results: Any, go: Any) -> None:
    """A fleet instance: runs (request_id, input, wait for ``go``, hang: None, "model" (after
    the tool) or "tool" (in it, after its side effect)) jobs until ``None``; answers (name,
    request_id, output or error, the session's items afterwards)."""

    async def serve() -> None:
        state = aio.AgentState.from_url(url, namespace=namespace, instance_id=name)
        agent = booking_agent(state, url, namespace, TOOL_OPTIONS)
        model = agent.model
        assert isinstance(model, BookingModel)
        session = AgentStateSession("conv-1", state)
        while True:
            job = await asyncio.to_thread(jobs.get, True, 60)
            if job is None:
                break
            request_id, text, together, hang = job
            model.hang_after_tool = (url, f"{namespace}-hung") if hang == "model" else None
            HANG_IN_TOOL[:] = [(url, f"{namespace}-hung")] if hang == "tool" else []
            if together:
                await asyncio.to_thread(go.wait, 30)
            try:
                output: Any = await run_once(
                    agent,
                    text,
                    session=session,
                    request_id=request_id,
                    ttl=1.5,
                    run_config=RUN_CONFIG,
                )
            except Exception as exc:  # reported to the test, which fails on it
                output = f"error: {type(exc).__name__}: {exc}"
            results.put((name, request_id, output, await session.get_items()))
        await state.aclose()

    asyncio.run(serve())
