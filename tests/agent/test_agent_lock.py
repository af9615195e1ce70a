"""Locks: fencing, contention and timeouts counted, expiry mid-run raises LockLost, renewal."""

from __future__ import annotations

import threading
import time

import pytest
import redis
from agent_helpers import counters, histograms, member
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from harness import wait_until
from memorywatch import schema
from memorywatch.agent import AgentState, LockLost, LockTimeout
from memorywatch.agent import attributes as attr


def test_lock_sets_ttl_and_fencing_token_rises(state: AgentState, raw: redis.Redis) -> None:
    tokens = []
    for _ in range(3):
        with state.lock("order-42", ttl=5, wait=1) as lease:
            pttl = raw.pttl(state.schema.lock("order-42"))
            assert 0 < pttl <= 5000
            tokens.append(lease.fencing_token)
    assert tokens == sorted(tokens) and len(set(tokens)) == 3
    assert not raw.exists(state.schema.lock("order-42"))


def test_default_ttl_is_30s_never_none(state: AgentState, raw: redis.Redis) -> None:
    with state.lock("x"):
        assert 29_000 < raw.pttl(state.schema.lock("x")) <= 30_000


def test_contention_and_timeout_are_counted(
    state: AgentState, raw: redis.Redis, namespace: str, spans: InMemorySpanExporter
) -> None:
    holder = state.lock("busy", ttl=10)
    started = time.monotonic()
    with pytest.raises(LockTimeout):
        state.lock("busy", ttl=10, wait=0.2)
    assert time.monotonic() - started >= 0.2
    holder.release()
    assert counters(raw, namespace, schema.FAMILY_LOCK_CONTENDED) == {"busy": 1}
    assert counters(raw, namespace, schema.FAMILY_LOCK_TIMEOUTS) == {"busy": 1}
    assert counters(raw, namespace, schema.FAMILY_LOCK_CONTENDED) == {"busy": 1}
    assert (
        histograms(raw, namespace, schema.FAMILY_LOCK_WAIT, schema.LOCK_WAIT_BUCKETS)["busy"].count
        == 1
    )
    waits = [s for s in spans.get_finished_spans() if s.name == attr.SPAN_LOCK_WAIT]
    assert len(waits) == 1
    assert waits[0].attributes is not None
    assert waits[0].attributes[attr.LOCK_OUTCOME] == "timeout"
    assert waits[0].attributes[attr.LOCK_NAME] == "busy"


def test_waiter_gets_lock_after_release_and_wait_is_in_histogram(
    state: AgentState, raw: redis.Redis, namespace: str
) -> None:
    holder = state.lock("handoff", ttl=10)
    got: list[int] = []

    def waiter() -> None:
        with state.lock("handoff", ttl=10, wait=5) as lease:
            got.append(lease.fencing_token)

    thread = threading.Thread(target=waiter)
    thread.start()
    wait_until(
        lambda: counters(raw, namespace, schema.FAMILY_LOCK_CONTENDED).get("handoff") == 1,
        what="waiter contended",
    )
    time.sleep(0.3)  # the waiter keeps waiting while the holder works
    holder.release()
    thread.join(10)
    assert len(got) == 1 and got[0] > holder.fencing_token
    hist = histograms(raw, namespace, schema.FAMILY_LOCK_WAIT, schema.LOCK_WAIT_BUCKETS)["handoff"]
    assert hist.count == 2
    assert dict(hist.buckets)["0.25"] == 1  # the waiter waited > 0.25 s
    assert hist.sum >= 0.3


def test_lock_expiry_mid_run_raises_lock_lost_and_counts(
    state: AgentState, raw: redis.Redis, namespace: str
) -> None:
    with pytest.raises(LockLost), state.lock("short", ttl=0.2) as lease:
        wait_until(lambda: not raw.exists(state.schema.lock("short")), what="lock expired")
        other = state.lock("short", ttl=5, wait=0)  # someone else takes it
        assert other.fencing_token > lease.fencing_token
    assert counters(raw, namespace, schema.FAMILY_LOCKS_LOST) == {"short": 1}
    # the lost holder's release leaves the index entries alone: they are the new holder's
    assert raw.zscore(state.schema.locks_expiry("short"), member("short")) is not None
    assert raw.zscore(state.schema.locks_since("short"), member("short")) is not None
    other.release()  # the new holder is unaffected
    assert counters(raw, namespace, schema.FAMILY_LOCKS_LOST) == {"short": 1}


def server_ms(raw: redis.Redis) -> int:
    sec, usec = raw.time()
    return int(sec) * 1000 + int(usec) // 1000


def lease_scores(state: AgentState, raw: redis.Redis, name: str) -> tuple[float, float]:
    """(since, exp) of lock ``name`` in the held-lock indexes, server ms, read in one
    transaction (a renewal between two reads would pair an old since with a new exp)."""
    pipe = raw.pipeline(transaction=True)
    pipe.zscore(state.schema.locks_since(name), member(name))
    pipe.zscore(state.schema.locks_expiry(name), member(name))
    since, exp = pipe.execute()
    assert since is not None and exp is not None, f"{name} is not in the held-lock indexes"
    return since, exp


def test_renewal_watchdog_keeps_lock_past_ttl_and_restarts_the_lease(
    state: AgentState, raw: redis.Redis
) -> None:
    """The exporter pages when (now - since) / (exp - since) > 0.8: a lock that is renewed in
    time must stay far from that, however long it is held (since = the last renewal)."""
    with state.lock("renewed", ttl=1.0, renew=True) as lease:
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:  # three TTLs
            assert raw.exists(state.schema.lock("renewed"))
            since, exp = lease_scores(state, raw, "renewed")
            assert abs((exp - since) - 1000) <= 5  # the lease is always one ttl long
            time.sleep(0.05)
        since, exp = lease_scores(state, raw, "renewed")
        held_ms = server_ms(raw) - since
        assert held_ms < 0.8 * (exp - since), f"held {held_ms} ms of a {exp - since} ms lease"
        assert not lease.lost.is_set()


def test_extend_starts_a_new_lease(state: AgentState, raw: redis.Redis) -> None:
    with state.lock("manual", ttl=5) as lease:
        since0, _ = lease_scores(state, raw, "manual")
        wait_until(lambda: server_ms(raw) >= since0 + 200, what="200 ms held")
        lease.extend(ttl=2)
        since1, exp1 = lease_scores(state, raw, "manual")
        assert since1 >= since0 + 200
        assert exp1 - since1 == 2000


def test_release_after_the_lease_expired_clears_the_index_entries(
    state: AgentState, raw: redis.Redis, namespace: str
) -> None:
    lease = state.lock("expired", ttl=0.2)
    wait_until(lambda: not raw.exists(state.schema.lock("expired")), what="lock expired")
    with pytest.raises(LockLost):
        lease.release()
    assert counters(raw, namespace, schema.FAMILY_LOCKS_LOST) == {"expired": 1}
    assert raw.zscore(state.schema.locks_expiry("expired"), member("expired")) is None
    assert raw.zscore(state.schema.locks_since("expired"), member("expired")) is None


def test_dead_holders_of_one_off_lock_names_are_pruned_by_other_acquisitions(
    state: AgentState, raw: redis.Redis
) -> None:
    """Per-entity names (order-17) are taken once; their fence never reaches 8. Holders that
    die leave index entries: acquisitions of any other name of the shard must prune them."""
    live = state.lock("live", ttl=30)
    dead = [member("order", str(i)) for i in range(40)]
    for i in range(40):
        state.lock("order", str(i), ttl=0.2)  # the holder "dies": never released or renewed
    exp_key, since_key = state.schema.locks_expiry("x"), state.schema.locks_since("x")
    assert state.schema.shards == 1  # standalone: every name shares these two indexes
    latest = max(
        score for member, score in raw.zrange(exp_key, 0, -1, withscores=True) if member in dead
    )
    wait_until(lambda: server_ms(raw) > latest, what="dead leases expired")

    def stale() -> int:
        return sum(
            1 for key in (exp_key, since_key) for member in raw.zrange(key, 0, -1) if member in dead
        )

    for i in range(400):  # a prune (16 entries) every 8th acquisition on average: ~24 needed
        if stale() == 0:
            break
        with state.lock("ticket", str(i), ttl=5):
            pass
    assert stale() == 0, f"{stale()} stale entries left after {i} acquisitions"
    assert raw.zscore(exp_key, member("live")) is not None
    assert raw.zscore(since_key, member("live")) is not None
    live.release()


def test_watchdog_flags_a_stolen_lock_at_once(
    state: AgentState, raw: redis.Redis, namespace: str
) -> None:
    lease = state.lock("stolen", ttl=0.3, renew=True)
    raw.set(state.schema.lock("stolen"), "999|intruder|x", px=5000)
    assert lease.lost.wait(2), "the watchdog did not notice"
    with pytest.raises(LockLost):
        lease.release()
    assert counters(raw, namespace, schema.FAMILY_LOCKS_LOST) == {"stolen": 1}


def test_one_fencing_counter_per_shard_rises_across_resources(
    state: AgentState, raw: redis.Redis
) -> None:
    """Version 2: no per-resource fence key. One counter per shard (no TTL, O(shards) keys)
    issues every token, so tokens rise for every resource and across resources."""
    tokens = []
    for i in range(50):
        with state.lock("charge", f"order-{i}") as lease:
            tokens.append(lease.fencing_token)
    with state.lock("charge", "order-0") as lease:
        tokens.append(lease.fencing_token)
    assert tokens == sorted(tokens) and len(set(tokens)) == len(tokens)
    assert raw.pttl(state.schema.fence("anything")) == -1
    assert raw.keys(f"{state.schema.namespace}:*fence*") == [state.schema.fence("x")]


def test_two_argument_form_counts_the_kind_and_keys_the_resource(
    state: AgentState, raw: redis.Redis, namespace: str
) -> None:
    with state.lock("charge", "order-42") as lease:
        assert raw.exists(state.schema.lock("charge:order-42"))
        assert (lease.kind, lease.resource, lease.label) == ("charge", "order-42", "charge")
    with state.lock("order-43"), state.lock("order:7f3a9c01d2"), state.lock("nightly-report"):
        pass
    waits = histograms(raw, namespace, schema.FAMILY_LOCK_WAIT, schema.LOCK_WAIT_BUCKETS)
    assert {kind: h.count for kind, h in waits.items()} == {
        "charge": 1,
        "order": 2,  # one-argument names are counted without their trailing ids
        "nightly-report": 1,
    }


@pytest.mark.parametrize(
    "kind, resource", [("", None), ("charge", ""), ("a|b", "r"), ("k" * 101, "r")]
)
def test_bad_lock_names_are_refused_before_any_command(
    state: AgentState, kind: str, resource: str | None
) -> None:
    with pytest.raises(ValueError):
        state.lock(kind, resource)


def test_kinds_beyond_the_cap_are_counted_as_other_inside_the_script(
    server: object, raw: redis.Redis, namespace: str
) -> None:
    from memorywatch.agent import Settings

    capped = AgentState.from_url(
        server.url,  # type: ignore[attr-defined]
        namespace=namespace,
        settings=Settings(name_cap=3),
    )
    for i in range(10):
        with capped.lock(f"kind{chr(97 + i)}", "r"):
            pass
    capped.close()
    waits = histograms(raw, namespace, schema.FAMILY_LOCK_WAIT, schema.LOCK_WAIT_BUCKETS)
    assert {kind: h.count for kind, h in waits.items()} == {
        "kinda": 1,
        "kindb": 1,
        "kindc": 1,
        "other": 7,
    }
    assert raw.scard(schema.Schema(namespace, 1).names("lock", "x")) == 3
