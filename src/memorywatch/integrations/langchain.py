"""LangChain on memorywatch: :class:`AgentStateChatHistory`, a ``BaseChatMessageHistory`` on the
memorywatch history of a session (TTL refreshed on every append, the ``max_messages`` bound, the
fleet's session counters; an evicted history raises :class:`~memorywatch.agent.StateMiss`
instead of reading as a new conversation). Messages are stored with langchain_core's own
dict form (``message_to_dict``), their string content once, as the history's ``text``.

Needs ``memorywatch[langchain]``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any, Final

from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.messages import BaseMessage, ChatMessage, message_to_dict, messages_from_dict

from memorywatch.agent import AgentState, aio
from memorywatch.integrations._shared import check_state

_TEXT: Final = "content_in_text"
_ROLES: Final = {"user": "human", "assistant": "ai", "system": "system", "tool": "tool"}
"""History roles of plain ``History.append`` messages -> LangChain message types."""


def _encode(message: BaseMessage) -> tuple[str, str, dict[str, Any]]:
    as_dict = message_to_dict(message)
    data: dict[str, Any] = dict(as_dict["data"])
    content = data.get("content")
    if isinstance(content, str):
        del data["content"]
        return as_dict["type"], content, {"lc": data, _TEXT: True}
    return as_dict["type"], "", {"lc": data}


def _decode(stored: Mapping[str, Any]) -> BaseMessage:
    data = stored.get("lc")
    role = str(stored.get("role", "human"))
    if not isinstance(data, dict):  # written by History.append
        text = str(stored.get("text", ""))
        if role not in _ROLES:
            return ChatMessage(content=text, role=role)
        data, role = {"content": text}, _ROLES[role]
    else:
        data = dict(data)
        if stored.get(_TEXT):
            data["content"] = stored.get("text", "")
    return messages_from_dict([{"type": role, "data": data}])[0]


class AgentStateChatHistory(BaseChatMessageHistory):
    """The chat history of ``session_id``. A sync ``AgentState`` serves the sync methods and
    (in a worker thread) the async ones; an asyncio ``aio.AgentState`` serves only the async
    ones (``aget_messages``, ``aadd_messages``, ``aclear``)."""

    def __init__(
        self, session_id: str, state: AgentState | aio.AgentState, *, user_id: str | None = None
    ) -> None:
        self.session_id = session_id
        self.state = check_state(state)
        self._history: Any = state.history(session_id, user_id)

    def _sync(self, method: str) -> Any:
        if isinstance(self.state, aio.AgentState):
            raise TypeError(
                f"AgentStateChatHistory.{method} is sync; on an asyncio AgentState use "
                "aget_messages, aadd_messages and aclear"
            )
        return self._history

    @property
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]
        """All messages, oldest first; ``StateMiss`` when the history was lost."""
        return [_decode(m) for m in self._sync("get_messages").load()]

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Append in one round trip (refreshes the TTL)."""
        if messages:
            self._sync("add_messages").extend([_encode(m) for m in messages])

    def clear(self) -> None:
        self._sync("clear").forget()

    async def aget_messages(self) -> list[BaseMessage]:
        if isinstance(self.state, aio.AgentState):
            return [_decode(m) for m in await self._history.load()]
        return await asyncio.to_thread(lambda: self.messages)

    async def aadd_messages(self, messages: Sequence[BaseMessage]) -> None:
        if not messages:
            return
        if isinstance(self.state, aio.AgentState):
            await self._history.extend([_encode(m) for m in messages])
        else:
            await asyncio.to_thread(self.add_messages, messages)

    async def aclear(self) -> None:
        if isinstance(self.state, aio.AgentState):
            await self._history.forget()
        else:
            await asyncio.to_thread(self.clear)
