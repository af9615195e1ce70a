"""Sessions' history, users' preferences and the right to be forgotten, as sans-I/O operations.

Spans follow the OpenTelemetry GenAI memory conventions (``update_memory``, ``search_memory``,
``delete_memory`` on the ``history`` or ``preferences`` store), and carry counts, never
session ids, user ids or message text.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from memorywatch import schema
from memorywatch.agent import _values
from memorywatch.agent import attributes as attr
from memorywatch.agent._context import Core, client_span, durable
from memorywatch.agent._effects import Command, Op, Script
from memorywatch.agent.errors import StateMiss

Message = tuple[str, str] | tuple[str, str, Mapping[str, Any]]


def _span_attributes(operation: str, store: str, **extra: str) -> dict[str, str]:
    scope, kind = (
        ("session", "short_term") if store == attr.STORE_HISTORY else ("user", "long_term")
    )
    return {
        attr.GEN_AI_OPERATION_NAME: operation,
        attr.GEN_AI_PROVIDER_NAME: attr.DB_SYSTEM_REDIS,
        attr.GEN_AI_MEMORY_STORE_NAME: store,
        attr.GEN_AI_MEMORY_TYPE: kind,
        attr.GEN_AI_MEMORY_SCOPE: scope,
        **extra,
    }


_UPDATE_HISTORY = _span_attributes(
    attr.GEN_AI_OPERATION_UPDATE_MEMORY,
    attr.STORE_HISTORY,
    **{attr.GEN_AI_MEMORY_UPDATE_STRATEGY: "append"},
)
_SEARCH_HISTORY = _span_attributes(attr.GEN_AI_OPERATION_SEARCH_MEMORY, attr.STORE_HISTORY)
_DELETE_HISTORY = _span_attributes(attr.GEN_AI_OPERATION_DELETE_MEMORY, attr.STORE_HISTORY)
_UPDATE_PREFS = _span_attributes(
    attr.GEN_AI_OPERATION_UPDATE_MEMORY,
    attr.STORE_PREFERENCES,
    **{attr.GEN_AI_MEMORY_UPDATE_STRATEGY: "merge"},
)
_SEARCH_PREFS = _span_attributes(attr.GEN_AI_OPERATION_SEARCH_MEMORY, attr.STORE_PREFERENCES)
_DELETE_PREFS = _span_attributes(attr.GEN_AI_OPERATION_DELETE_MEMORY, attr.STORE_PREFERENCES)


def _name(attributes: Mapping[str, str]) -> str:
    return f"{attributes[attr.GEN_AI_OPERATION_NAME]} {attributes[attr.GEN_AI_MEMORY_STORE_NAME]}"


class HistoryBase:
    """What the sync and asyncio ``History`` share: the session, its user, and whether the
    user -> session link was written by this object already."""

    def __init__(self, state: Any, session_id: str, user_id: str | None = None) -> None:
        if not session_id:
            raise ValueError("a session id is required")
        if user_id is not None and not user_id:
            raise ValueError("a user id, when given, must not be empty")
        self._state = state
        self._core: Core = state._core
        self.session_id = session_id
        self.user_id = user_id
        self._linked = False


class PreferencesBase:
    def __init__(self, state: Any, user_id: str) -> None:
        if not user_id:
            raise ValueError("a user id is required")
        self._state = state
        self._core: Core = state._core
        self.user_id = user_id


def link_session(core: Core, user_id: str, session_id: str) -> Op[None]:
    yield Script(
        "session_link",
        [core.schema.user_sessions(user_id)],
        [session_id, _values.ms(core.settings.session_ttl)],
        "session.link",
    )


def _encode(message: Message, now: float) -> str:
    role, content, *rest = message
    return _values.encode_message(role, content, now, rest[0] if rest else None)


def extend(core: Core, history: HistoryBase, messages: Iterable[Message]) -> Op[int]:
    """Append messages in one round trip (plus the user link on the first append)."""
    now = time.time()
    encoded = [_encode(message, now) for message in messages]
    if not encoded:
        raise ValueError("history.extend: no messages given")
    with client_span(core, _name(_UPDATE_HISTORY), _UPDATE_HISTORY) as span:
        span.set_attribute(attr.MEMORY_ITEMS, len(encoded))
        if history.user_id is not None and not history._linked:
            yield from link_session(core, history.user_id, history.session_id)
            history._linked = True
        sch = core.schema
        append = Script(
            "history_append",
            [sch.history(history.session_id), sch.sessions_index(history.session_id)],
            [
                history.session_id,
                _values.ms(core.settings.session_ttl),
                core.settings.max_messages,
                *encoded,
            ],
            "history.append",
        )
        length = yield from durable(core, append, schema.DURABLE_HISTORY_APPEND, history.session_id)
    return int(length)


def load(core: Core, history: HistoryBase) -> Op[list[dict[str, Any]]]:
    """All messages, oldest first; ``[]`` for a new session; :class:`StateMiss` (counted)
    when the index lists the session as active but its history is gone.

    A plain ``LRANGE`` first: a history that is there needs no script (the script costs the
    server 8x an ``LRANGE`` of 20 messages, copying them through Lua); only an empty answer
    runs ``history_load``, which reads the list and the index atomically."""
    sch = core.schema
    key = sch.history(history.session_id)
    with client_span(core, _name(_SEARCH_HISTORY), _SEARCH_HISTORY) as span:
        raw = yield Command(("LRANGE", key, 0, -1), "history.load")
        if not raw:
            code, raw = yield Script(
                "history_load",
                [key, sch.sessions_index(history.session_id)],
                [history.session_id, _values.ms(core.settings.session_ttl)],
                "history.load",
            )
            if int(code) < 0:
                yield from _miss(core, history, "history.load")
        messages = _values.decode_messages(raw)
        span.set_attribute(attr.GEN_AI_MEMORY_SEARCH_RESULT_COUNT, len(messages))
    return messages


def _miss(core: Core, history: HistoryBase, op: str) -> Op[None]:
    sch = core.schema
    yield Command(
        (
            "HINCRBY",
            sch.stats(schema.FAMILY_STATE_MISSES, history.session_id),
            schema.MISS_HISTORY,
            1,
        ),
        "count.state_miss",
    )
    raise StateMiss(
        schema.MISS_HISTORY,
        f"{op}: the session is in the index but its history is gone "
        "(evicted or deleted before its TTL)",
    )


def pop(core: Core, history: HistoryBase) -> Op[dict[str, Any] | None]:
    """Remove and return the newest message; ``None`` for a new (empty) session;
    :class:`StateMiss` (counted) when the history is lost, as :func:`load`. Popping the last
    message leaves a new session, not a lost one."""
    sch = core.schema
    with client_span(core, _name(_DELETE_HISTORY), _DELETE_HISTORY) as span:
        reply = yield Script(
            "history_pop",
            [sch.history(history.session_id), sch.sessions_index(history.session_id)],
            [history.session_id, _values.ms(core.settings.session_ttl)],
            "history.pop",
        )
        code = int(reply[0])
        span.set_attribute(attr.MEMORY_ITEMS, 1 if code > 0 else 0)
        if code < 0:
            yield from _miss(core, history, "history.pop")
    if code == 0:
        return None
    message: dict[str, Any] = _values.decode_messages(reply[1:])[0]
    return message


def forget_session(core: Core, session_id: str) -> Op[int]:
    sch = core.schema
    removed = yield Script(
        "forget_session",
        [sch.history(session_id), sch.sessions_index(session_id)],
        [session_id],
        "session.forget",
    )
    return int(removed)


def forget_history(core: Core, history: HistoryBase) -> Op[int]:
    """Delete the history and its index entry: a later load() sees a new session."""
    with client_span(core, _name(_DELETE_HISTORY), _DELETE_HISTORY) as span:
        removed = yield from forget_session(core, history.session_id)
        span.set_attribute(attr.MEMORY_ITEMS, removed)
    return removed


def update_preferences(core: Core, prefs: PreferencesBase, values: Mapping[str, Any]) -> Op[None]:
    pairs: list[Any] = []
    for name, value in values.items():
        pairs += [name, _values.encode_value(value)]
    if not pairs:
        raise ValueError("preferences.update: no values given")
    with client_span(core, _name(_UPDATE_PREFS), _UPDATE_PREFS) as span:
        span.set_attribute(attr.MEMORY_ITEMS, len(values))
        yield Script(
            "prefs_set",
            [core.schema.preferences(prefs.user_id)],
            [_values.ms(core.settings.preferences_ttl), *pairs],
            "preferences.set",
        )


def get_preference(core: Core, prefs: PreferencesBase, name: str, default: Any) -> Op[Any]:
    with client_span(core, _name(_SEARCH_PREFS), _SEARCH_PREFS) as span:
        raw = yield Command(
            ("HGET", core.schema.preferences(prefs.user_id), name), "preferences.get"
        )
        span.set_attribute(attr.GEN_AI_MEMORY_SEARCH_RESULT_COUNT, 0 if raw is None else 1)
    return default if raw is None else _values.decode_value(raw)


def all_preferences(core: Core, prefs: PreferencesBase) -> Op[dict[str, Any]]:
    with client_span(core, _name(_SEARCH_PREFS), _SEARCH_PREFS) as span:
        raw = yield Command(("HGETALL", core.schema.preferences(prefs.user_id)), "preferences.all")
        values = _values.pairs(raw)
        span.set_attribute(attr.GEN_AI_MEMORY_SEARCH_RESULT_COUNT, len(values))
    return {name: _values.decode_value(value) for name, value in values.items()}


def delete_preferences(core: Core, prefs: PreferencesBase, names: tuple[str, ...]) -> Op[int]:
    """Delete the named preferences, or all of them when no name is given."""
    key = core.schema.preferences(prefs.user_id)
    with client_span(core, _name(_DELETE_PREFS), _DELETE_PREFS) as span:
        args = ("HDEL", key, *names) if names else ("DEL", key)
        removed = int((yield Command(args, "preferences.delete")))
        span.set_attribute(attr.MEMORY_ITEMS, removed)
    return removed


def forget_user(core: Core, user_id: str) -> Op[int]:
    """Every key of the user: the linked sessions' histories and index entries, then the
    preferences and the link set (last, so an interrupted call can simply be repeated).
    Returns the number of keys and index entries removed."""
    sch = core.schema
    with client_span(core, _name(_DELETE_PREFS), _DELETE_PREFS) as span:
        sessions = yield Command(("SMEMBERS", sch.user_sessions(user_id)), "forget_user")
        removed = 0
        for session_id in sorted(_values.text(s) for s in sessions):
            removed += yield from forget_session(core, session_id)
        removed += int(
            (
                yield Script(
                    "forget_user",
                    [sch.preferences(user_id), sch.user_sessions(user_id)],
                    [],
                    "forget_user",
                )
            )
        )
        span.set_attribute(attr.MEMORY_ITEMS, removed)
    return removed
