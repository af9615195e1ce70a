"""memorywatch.integrations.langchain on a real Redis: LangChain's message types survive the
round trip, sync and asyncio, across two processes; a lost history raises StateMiss."""

from __future__ import annotations

import asyncio
import multiprocessing
from typing import Any

import pytest
import redis
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    message_to_dict,
)

from harness import RedisServer
from memorywatch.agent import AgentState, StateMiss, aio
from memorywatch.integrations.langchain import AgentStateChatHistory


def conversation(who: str) -> list[BaseMessage]:
    return [
        SystemMessage("Be brief."),
        HumanMessage(f"{who}: book a table près de la gare 🚉", id=f"h-{who}"),
        AIMessage(
            "",
            tool_calls=[{"name": "book", "args": {"what": "table"}, "id": f"call-{who}"}],
            additional_kwargs={"refusal": None},
        ),
        ToolMessage("table #7", tool_call_id=f"call-{who}"),
        AIMessage([{"type": "text", "text": "Booked: table #7"}]),
        HumanMessage(""),
    ]


def dicts(messages: list[BaseMessage]) -> list[dict[str, Any]]:
    return [message_to_dict(m) for m in messages]


def test_messages_round_trip_sync_and_async(server: RedisServer, namespace: str) -> None:
    state = AgentState.from_url(server.url, namespace=namespace)
    history = AgentStateChatHistory("conv-1", state)
    assert history.messages == []
    history.add_messages(conversation("a"))
    history.add_user_message("and a taxi")
    expected = [*conversation("a"), HumanMessage("and a taxi")]
    assert dicts(history.messages) == dicts(expected)
    # messages written by the SDK's own History read as LangChain messages
    state.history("conv-1").append("assistant", "A taxi is on its way.")
    state.history("conv-1").append("critic", "fine")
    tail = history.messages[-2:]
    assert dicts(tail) == dicts(
        [AIMessage("A taxi is on its way."), ChatMessage(content="fine", role="critic")]
    )
    history.clear()
    assert history.messages == []

    async def on_asyncio() -> list[BaseMessage]:
        astate = aio.AgentState.from_url(server.url, namespace=namespace)
        ahistory = AgentStateChatHistory("conv-2", astate)
        await ahistory.aadd_messages(conversation("b"))
        with pytest.raises(TypeError, match="aget_messages"):
            _ = ahistory.messages
        got = await ahistory.aget_messages()
        await ahistory.aclear()
        assert await ahistory.aget_messages() == []
        # the sync state's async forms
        await history.aadd_messages(conversation("c"))
        got += await history.aget_messages()
        await astate.aclose()
        return got

    assert dicts(asyncio.run(on_asyncio())) == dicts(conversation("b") + conversation("c"))
    state.close()


def _other_process(url: str, namespace: str, wrote: Any, go_on: Any, out: Any) -> None:
    with AgentState.from_url(url, namespace=namespace, instance_id="p2") as state:
        history = AgentStateChatHistory("conv-1", state)
        history.add_messages(conversation("p2"))
        wrote.set()
        if go_on.wait(30):
            out.put([message_to_dict(m) for m in history.messages])


@pytest.mark.slow
def test_two_processes_write_and_read_one_history(server: RedisServer, namespace: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    wrote, go_on, out = ctx.Event(), ctx.Event(), ctx.Queue()
    proc = ctx.Process(target=_other_process, args=(server.url, namespace, wrote, go_on, out))
    proc.start()
    try:
        assert wrote.wait(60)

        async def here() -> list[BaseMessage]:
            state = aio.AgentState.from_url(server.url, namespace=namespace, instance_id="p1")
            history = AgentStateChatHistory("conv-1", state)
            assert dicts(await history.aget_messages()) == dicts(conversation("p2"))
            await history.aadd_messages(conversation("p1"))
            messages = await history.aget_messages()
            await state.aclose()
            return messages

        mine = dicts(asyncio.run(here()))
        go_on.set()
        theirs = out.get(timeout=30)
    finally:
        proc.join(30)
        if proc.is_alive():
            proc.kill()
    assert mine == theirs == dicts(conversation("p2") + conversation("p1"))


def test_a_lost_history_raises_state_miss(
    server: RedisServer, raw: redis.Redis, namespace: str
) -> None:
    with AgentState.from_url(server.url, namespace=namespace) as state:
        history = AgentStateChatHistory("conv-1", state)
        history.add_messages(conversation("a"))
        raw.delete(state.schema.history("conv-1"))  # what an eviction does
        with pytest.raises(StateMiss):
            _ = history.messages
        with pytest.raises(StateMiss):
            asyncio.run(history.aget_messages())
        history.clear()  # the user starts over
        assert history.messages == []
