"""History, preferences, session index, turns, forget_user, eviction."""

from __future__ import annotations

import pytest
import redis
from agent_helpers import counters, histograms

from harness import redis_server, wait_until
from memorywatch import schema
from memorywatch.agent import AgentState, Settings, StateMiss


def test_append_and_load_round_trip(state: AgentState) -> None:
    h = state.history("session-42")
    assert h.load() == []
    assert h.append("user", "Book a table for two") == 1
    assert h.append("assistant", "For when?", tool="none") == 2
    msgs = h.load()
    assert [(m["role"], m["text"]) for m in msgs] == [
        ("user", "Book a table for two"),
        ("assistant", "For when?"),
    ]
    assert msgs[1]["tool"] == "none"


def test_history_and_index_have_ttls(state: AgentState, raw: redis.Redis) -> None:
    state.history("s").append("user", "hi")
    sch = state.schema
    assert 0 < raw.pttl(sch.history("s")) <= schema.DEFAULT_SESSION_TTL * 1000
    assert raw.pttl(sch.sessions_index("s")) == -1  # no TTL: volatile-* never evicts it
    assert raw.zscore(sch.sessions_index("s"), "s") is not None


def test_deleted_history_is_a_counted_miss_not_a_new_session(
    state: AgentState, raw: redis.Redis, namespace: str
) -> None:
    h = state.history("s1")
    h.append("user", "remember me")
    raw.delete(state.schema.history("s1"))
    with pytest.raises(StateMiss) as info:
        h.load()
    assert info.value.kind == schema.MISS_HISTORY
    with pytest.raises(StateMiss):
        h.load()
    assert counters(raw, namespace, schema.FAMILY_STATE_MISSES) == {"history": 2}
    h.forget()  # acknowledging the loss makes it a new session
    assert h.load() == []


def test_max_messages_trims_oldest(server, namespace: str) -> None:  # type: ignore[no-untyped-def]
    st = AgentState.from_url(server.url, namespace=namespace, settings=Settings(max_messages=3))
    h = st.history("s")
    for i in range(5):
        n = h.append("user", str(i))
    assert n == 3
    assert [m["text"] for m in h.load()] == ["2", "3", "4"]
    st.close()


def test_thousand_message_session(state: AgentState) -> None:
    h = state.history("long")
    for i in range(1000):
        h.append("user" if i % 2 else "assistant", f"message {i}")
    msgs = h.load()
    assert len(msgs) == 1000
    assert msgs[-1]["text"] == "message 999"


def test_preferences(state: AgentState, raw: redis.Redis) -> None:
    prefs = state.preferences("user-7")
    assert prefs.get("language") is None
    assert prefs.get("language", "fr") == "fr"
    prefs.set("language", "en")
    prefs.update({"diet": ["vegan"], "party": 2})
    assert prefs.get("language") == "en"
    assert prefs.all() == {"language": "en", "diet": ["vegan"], "party": 2}
    assert raw.pttl(state.schema.preferences("user-7")) > 0


def test_forget_user_removes_every_key_of_the_user(
    state: AgentState, raw: redis.Redis, namespace: str
) -> None:
    state.history("a", user_id="u1").append("user", "one")
    state.history("b", user_id="u1").append("user", "two")
    state.preferences("u1").set("language", "en")
    state.history("c", user_id="u2").append("user", "other user")
    state.preferences("u2").set("language", "de")
    before = set(raw.scan_iter(f"{namespace}:*"))
    removed = state.forget_user("u1")
    after = set(raw.scan_iter(f"{namespace}:*"))
    sch = state.schema
    gone = {sch.history("a"), sch.history("b"), sch.preferences("u1"), sch.user_sessions("u1")}
    assert gone <= before
    assert not gone & after
    assert removed == 2 * 2 + 2  # two histories + two index entries + prefs + link set
    for sid in ("a", "b"):
        assert raw.zscore(sch.sessions_index(sid), sid) is None
        assert state.history(sid).load() == []  # not a miss: the user was forgotten
    assert [m["text"] for m in state.history("c").load()] == ["other user"]
    assert state.preferences("u2").get("language") == "de"
    assert not any(b"u1" in k.encode() or "u1" in k for k in after)


def test_turn_records_fleet_histogram(state: AgentState, raw: redis.Redis, namespace: str) -> None:
    state.history("s").append("user", "hi")
    before = raw.zscore(state.schema.sessions_index("s"), "s")
    with state.turn("s"):
        pass
    with pytest.raises(RuntimeError), state.turn("s"):
        raise RuntimeError("turn failed")
    hist = histograms(raw, namespace, schema.FAMILY_TURN_DURATION, schema.TURN_BUCKETS)
    assert hist["all"].count == 2
    assert dict(hist["all"].buckets)["0.1"] == 2
    after = raw.zscore(state.schema.sessions_index("s"), "s")
    assert after is not None and before is not None and after >= before
    # a turn on a session with no history must not create an index entry (that would be a miss)
    with state.turn("never-appended"):
        pass
    assert raw.zscore(state.schema.sessions_index("never-appended"), "never-appended") is None


def test_eviction_under_volatile_lru_is_reported_and_counted() -> None:
    with redis_server("--maxmemory", "4mb", "--maxmemory-policy", "volatile-lru") as srv:
        st = AgentState.from_url(srv.url, namespace="ev")
        raw = srv.client()
        sessions = [st.history(f"s{i}") for i in range(200)]
        sessions[0].append("user", "the first session, soon the least recently used")
        payload = "x" * 2000

        def evicted() -> bool:
            for i in range(1, 200):
                sessions[i].append("user", payload)
            return raw.info("stats")["evicted_keys"] > 0 and not raw.exists(st.schema.history("s0"))

        wait_until(evicted, timeout=30, interval=0, what="s0's history evicted")
        with pytest.raises(StateMiss):
            sessions[0].load()
        assert counters(raw, "ev", schema.FAMILY_STATE_MISSES)["history"] >= 1
        st.close()
        raw.close()
