"""The keyspace sampler's Lua script against its reference, the Python classifier.

The script classifies and counts inside Redis; the exporter-side path (SCAN, then TYPE, PTTL
and MEMORY USAGE pipelined and `Classifier` in Python) is kept as the fallback for a Redis
that refuses scripts, and here as the reference: on one keyspace holding every built-in
profile's layouts, our schema's kinds and its errors, both must give the same figures.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from test_key_profiles import drive_libraries, layout_keys, write

from harness import RedisServer, redis_server
from memorywatch import names
from memorywatch.agent import AgentState, Settings
from memorywatch.exporter.profiles import BUILTIN, Classifier, load_file
from memorywatch.exporter.sampler import (
    KeyspaceSampler,
    SampleResult,
    Tally,
    Walker,
    sample_once,
)
from metrics import InProcessExporter

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def mixed() -> Iterator[RedisServer]:
    """One Redis holding every profile's layouts (some with a TTL), the real libraries' keys,
    every kind of our schema through the SDK, and each kind of schema error."""
    with redis_server() as server:
        drive_libraries(server.url, without_ttl=3, with_ttl=2)
        client = server.client()
        pipe = client.pipeline(transaction=False)
        for i in range(6):
            for key, kind, _ in layout_keys(i):
                write(pipe, key, kind, ttl=600 if i % 2 else None)
        for profile in BUILTIN.values():  # one key of each pattern, of its type and another
            for n, pattern in enumerate(profile.patterns):
                key = pattern.glob.replace("*", f"x{n}").replace("?", "q")
                if pattern.redis_type == "set":
                    pipe.sadd(key, "member")
                else:
                    write(pipe, key, pattern.redis_type or "string")
                write(pipe, key.replace(":", "::", 1) + ":w", "zset")
        pipe.set("cart:42", "not agent memory")
        pipe.hset("agents:session:abc", mapping={"a": "1"})
        pipe.set("agents:session:abc:counter", "3")
        pipe.rpush("app::idx", "1")  # the type its library does not write
        pipe.rpush("ünïcödé:q:list", "x")  # non-ASCII names, against the ? of a file profile
        pipe.rpush("ü:list", "x")
        pipe.execute()
        state = AgentState.from_url(server.url, instance_id="agent-1", settings=Settings())
        for i in range(3):
            state.history(f"s{i}", user_id=f"u{i}").append("user", "hi" * i)
            state.preferences(f"u{i}").set("tone", "short")
            state.run_tool("fetch", f"idem-{i}", lambda ctx: {"ok": 1})
        with state.lock("charge", "order-1", ttl=30):
            pass
        state.heartbeat(ready=True)
        state.close()
        client.set("mw:{0}:lock:held", "7|agent-1|n")  # a well-formed lock record
        client.set("mw:{0}:lock:broken", "not-a-record")  # unparsable
        client.hset("mw:{0}:tool:bad", mapping={"state": "weird", "fence": "x"})  # unparsable
        client.hset("mw:{0}:tool:half", mapping={"state": "completed"})  # no fence
        client.set("mw:{0}:hist:wrongtype", "a string, not a list")  # wrong type
        client.set("mw:{0}:inst:wrongtype", "a string, not a hash")  # wrong type, other class
        client.rpush("mw:{0}:hist:noexpiry", "m")  # missing TTL
        client.set("mw:unknown", "foreign")
        client.set("mw:{0}:hist:", "foreign: no id")
        client.set("mw:{0}:nokind", "foreign")
        client.set("mw:{x}:hist:1", "foreign")
        client.hset("mw:{0}:stats:anything", "f", 1)
        yield server


def _pass(client: redis.Redis, classifier: Classifier, scripted: bool) -> SampleResult:
    walker, tally, cursor = Walker(classifier, scripted), Tally(), 0
    while True:
        cursor, _ = walker.step(client, cursor, 37, tally)
        if cursor == 0:
            break
    assert walker.scripted is scripted
    return tally.result()


def _same(script: SampleResult, python: SampleResult) -> None:
    for part in ("keys", "bytes", "without_ttl", "bytes_without_ttl", "errors", "seen"):
        assert getattr(script, part) == getattr(python, part), part


def test_the_script_counts_what_the_python_classifier_counts(mixed: RedisServer) -> None:
    client = mixed.client()
    classifier = Classifier("mw", tuple(BUILTIN.values()))
    python, script = _pass(client, classifier, False), _pass(client, classifier, True)
    _same(script, python)
    assert script.sampled == client.dbsize()
    # every profile is met, and every error kind occurs: the comparison covers them all
    assert script.seen == set(BUILTIN)
    assert all(script.errors[kind] > 0 for kind in names.ERROR_KINDS), script.errors
    assert script.errors[names.ERROR_UNPARSABLE] == 3
    assert script.keys[names.PROFILE_NONE, names.KEY_CLASS_OTHER] > len(BUILTIN)
    assert script.without_ttl[("langgraph", names.KEY_CLASS_CHECKPOINT)] > 0


def test_file_profiles_and_another_namespace_too(mixed: RedisServer, tmp_path: Path) -> None:
    profile = tmp_path / "p.yaml"
    profile.write_text(
        "profiles:\n- name: shop\n  patterns:\n"
        "  - {match: '*:q:list', class: history, ttl: required, type: list}\n"
        "  - {match: '?:list', class: cache, ttl: required}\n"
        "  - {match: 'cart:??', class: cache}\n"
        "  - {match: 'a.b(c)%[d]+-^$', class: other}\n"
    )
    mixed.client().set("a.b(c)%[d]+-^$", "magic")
    classifier = Classifier("agents", (*load_file(profile), *BUILTIN.values()))
    client = mixed.client()
    python, script = _pass(client, classifier, False), _pass(client, classifier, True)
    _same(script, python)
    for key_class in ("history", "cache", "other"):
        assert script.keys[("shop", key_class)] >= 1, key_class


def test_a_redis_refusing_scripts_is_sampled_from_the_exporter(
    mixed: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    admin = mixed.client()
    admin.acl_setuser(
        "noscript", enabled=True, passwords=["+pw"], keys=["*"], commands=["+@all", "-@scripting"]
    )
    client = mixed.client(username="noscript", password="pw")
    classifier = Classifier("mw", tuple(BUILTIN.values()))
    caplog.set_level(logging.WARNING, logger="memorywatch.exporter")
    walker, tally, cursor = Walker(classifier), Tally(), 0
    while True:
        cursor, _ = walker.step(client, cursor, 37, tally)
        if cursor == 0:
            break
    assert not walker.scripted
    said = [r.getMessage() for r in caplog.records if "refused its Lua script" in r.getMessage()]
    assert len(said) == 1 and "evalsha" in said[0]
    _same(tally.result(), _pass(admin, classifier, True))
    shot = sample_once(client, classifier, max_keys=10_000, seconds=5)
    assert shot.complete and shot.result.sampled == admin.dbsize()


def test_a_pass_is_paced_by_the_budget() -> None:
    """budget / interval keys per second: a pass over N keys takes at least N / rate."""
    with redis_server() as server:
        client = server.client()
        client.execute_command("DEBUG", "POPULATE", "600")
        rate = 1000.0  # keys per second: 600 per 0.6 s
        sampler = KeyspaceSampler(server.client, "mw", interval=0.3, budget=300, batch=100)
        finished: list[float] = []

        def watch() -> None:
            after = 0.0
            while len(finished) < 3:
                result = sampler.wait_for_pass(after, timeout=10)
                assert result is not None
                finished.append(result.finished_at)
                after = result.finished_at

        watcher = threading.Thread(target=watch)
        watcher.start()
        sampler.start()
        try:
            watcher.join(10)
        finally:
            sampler.stop()
        assert len(finished) == 3
        for first, second in itertools.pairwise(finished):
            assert second - first >= 0.95 * 600 / rate, finished
            assert second - first < 600 / rate + 0.4, finished  # paced, not stalled
        assert sampler.scripted
        stats = client.info("commandstats")
        assert stats["cmdstat_evalsha"]["calls"] >= 3 * 600 / 150  # small steps, not one call


@pytest.mark.slow
def test_requests_carry_the_walk_at_its_pace_and_the_thread_takes_over_when_they_stop() -> None:
    """While requests come (here every 0.25 s) the steps run in the requesting thread after
    each answer, at the budget's pace, and the sampler's own thread does not walk; once they
    stop, the thread walks again within its fallback delay."""
    with redis_server() as server:
        server.client().execute_command("DEBUG", "POPULATE", "20000")
        rate = 200.0  # keys per second: 2,000 per 10 s, steps of 200 keys
        sampler = KeyspaceSampler(
            server.client, "mw", interval=10, budget=2000, batch=100, fallback=0.6
        )
        walkers: set[str] = set()
        step = sampler._walk  # wrapped, to see which thread walks

        def walk(client: redis.Redis) -> int:
            walkers.add(threading.current_thread().name)
            return step(client)

        sampler._walk = walk  # type: ignore[method-assign]
        sampler.start()
        try:
            assert wait_until_walked(sampler, 1, 5)  # the thread's first step, its client
            walkers.clear()
            start, started = sampler.walked(), time.monotonic()
            for _ in range(12):
                sampler.after_request()
                time.sleep(0.25)
            elapsed = time.monotonic() - started
            carried = sampler.walked() - start
            assert walkers == {threading.current_thread().name}, walkers
            assert rate * elapsed - 400 <= carried <= rate * elapsed + 400, (carried, elapsed)
            walkers.clear()
            before = sampler.walked()
            assert wait_until_walked(sampler, before + 200, 3)  # no requests: the thread walks
            assert walkers == {sampler.name}, walkers
        finally:
            sampler.stop()


def wait_until_walked(sampler: KeyspaceSampler, keys: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sampler.walked() >= keys:
            return True
        time.sleep(0.02)
    return False


def test_the_script_is_read_only_and_short_per_call(mixed: RedisServer) -> None:
    client = mixed.client()
    before = int(client.info("persistence")["rdb_changes_since_last_save"])
    client.config_resetstat()
    started = time.monotonic()
    _pass(client, Classifier("mw", tuple(BUILTIN.values())), True)
    assert time.monotonic() - started < 5
    assert int(client.info("persistence")["rdb_changes_since_last_save"]) == before
    per_call = client.info("commandstats")["cmdstat_evalsha"]["usec_per_call"]
    assert per_call < 2000, per_call


def _fallback(exporter: InProcessExporter) -> dict[str, float]:
    scrape = exporter.scrape()
    return {s.labels[names.LABEL_REASON]: s.value for s in scrape.samples(names.SAMPLER_FALLBACK)}


def test_the_fallback_to_the_exporter_is_a_metric_with_its_reason(
    mixed: RedisServer,
) -> None:
    """An ACL user without EVALSHA: Redis refuses the script, the sampler walks the keyspace
    from the exporter, and the scrape says so (reason permission), as it says nothing is
    wrong for a user allowed to run it."""
    admin = mixed.client()
    admin.acl_setuser(
        "noeval", enabled=True, passwords=["+pw"], keys=["*"], commands=["+@all", "-evalsha"]
    )
    quick = {"sample_interval": 0.05, "sample_budget": 100_000}
    with (
        InProcessExporter(
            redis_url=mixed.url, username="noeval", password_env="pw", **quick
        ) as refused,
        InProcessExporter(redis_url=mixed.url, **quick) as allowed,
    ):
        for exporter in (refused, allowed):
            fleet = exporter.app.fleet
            assert fleet is not None and isinstance(fleet.sampler, KeyspaceSampler)
            assert fleet.sampler.wait_for_pass(0.0, timeout=20) is not None
        assert _fallback(refused) == {
            names.FALLBACK_PERMISSION: 1,
            names.FALLBACK_UNKNOWN_COMMAND: 0,
            names.FALLBACK_SCRIPT_ERROR: 0,
        }
        assert _fallback(allowed) == dict.fromkeys(names.FALLBACK_REASONS, 0)
        walked = [e.scrape().value(names.SAMPLER_WALKED) for e in (refused, allowed)]
        assert all(w >= admin.dbsize() for w in walked), walked  # a whole pass each


def test_a_new_pass_shows_its_figures_on_the_next_scrape() -> None:
    """The pass's lines are formatted once per pass (kept between scrapes): the next pass,
    which found more keys, must show them."""
    with (
        redis_server() as server,
        InProcessExporter(redis_url=server.url, sample_interval=0.05) as exporter,
    ):
        client = server.client()
        client.rpush("message_store:a", "m")
        fleet = exporter.app.fleet
        assert fleet is not None and isinstance(fleet.sampler, KeyspaceSampler)
        # a pass that began after the write: the one after the first to finish after it
        seen = fleet.sampler.wait_for_pass(time.monotonic(), timeout=20)
        assert seen is not None
        first = fleet.sampler.wait_for_pass(seen.finished_at, timeout=20)
        assert first is not None
        history = {names.LABEL_PROFILE: "langchain", names.LABEL_KEY_CLASS: "history"}
        before = exporter.scrape()
        assert before.value(names.KEYSPACE_KEYS, **history) == 1
        assert exporter.scrape().value(names.KEYSPACE_KEYS, **history) == 1  # kept lines
        for i in range(5):
            client.rpush(f"message_store:b{i}", "m" * 100)
        deadline = time.monotonic() + 20
        after = before
        while time.monotonic() < deadline:
            done = fleet.sampler.wait_for_pass(first.finished_at, timeout=5)
            assert done is not None
            after = exporter.scrape()
            if after.value(names.KEYSPACE_KEYS, **history) == 6:
                break
            first = done
        assert after.value(names.KEYSPACE_KEYS, **history) == 6
        assert after.value(names.KEYSPACE_BYTES, **history) > before.value(
            names.KEYSPACE_BYTES, **history
        )
