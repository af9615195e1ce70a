"""Key profiles: fleets built on other agent-memory libraries, seen with no change to their code.

openai-agents (`RedisSession`) and langchain-community (`RedisChatMessageHistory`) run on
Debian's Redis 7, so the tests drive the real libraries. langchain-redis, langgraph-checkpoint-
redis, agent-memory-server, mem0 and ADK's session service need RedisJSON / RediSearch (or are
not installed here), so their keys are written by the test with the layout their source defines
(docs/profiles.md cites file and version) and the types a module-less Redis can hold.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from agents.extensions.memory.redis_session import RedisSession
from langchain_community.chat_message_histories import RedisChatMessageHistory
from redis.cluster import RedisCluster

from harness import LOOPBACK, RedisServer, redis_cluster, redis_server, wait_until
from memorywatch import names
from memorywatch.exporter.profiles import BUILTIN, Classifier, load_file
from metrics import InProcessExporter, Scrape

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _ulid(i: int) -> str:
    return f"01J{i:023d}"[:26]


def layout_keys(i: int) -> list[tuple[str, str, str]]:
    """(key, type, expected (profile, class)) of one conversation per library that the tests
    cannot drive, as each library's source names its keys."""
    sid = f"s{i}"
    return [
        (f"chat:{sid}:{_ulid(i)}", "string", "langchain_redis/history"),
        (f"llmcache:{uuid.UUID(int=i).hex}", "hash", "langchain_redis/cache"),
        (f"checkpoint:{sid}:__empty__:{uuid.UUID(int=i)}", "string", "langgraph/checkpoint"),
        (
            f"checkpoint_write:{sid}:__empty__:{uuid.UUID(int=i)}:t:0",
            "string",
            "langgraph/checkpoint",
        ),
        (f"write_keys_zset:{sid}:__empty__:{uuid.UUID(int=i)}", "zset", "langgraph/index"),
        (f"store:{_ulid(i)}", "string", "langgraph/long_term_memory"),
        (f"working_memory:{sid}", "string", "agent_memory_server/history"),
        (f"memory_idx:{_ulid(i)}", "hash", "agent_memory_server/long_term_memory"),
        (f"mem0:mem0:{uuid.UUID(int=i)}", "hash", "mem0/long_term_memory"),
        (f"session:{uuid.UUID(int=i)}", "string", "adk/history"),
        (f"user:app:u{i}", "hash", "adk/preferences"),
    ]


def write(pipe: Any, key: str, kind: str, ttl: int | None = None) -> None:
    value = "x" * 64
    if kind == "string":
        pipe.set(key, value)
    elif kind == "hash":
        pipe.hset(key, mapping={"memory": value, "created_at": "1"})
    elif kind == "zset":
        pipe.zadd(key, {value: 1.0})
    else:
        pipe.rpush(key, value)
    if ttl:
        pipe.expire(key, ttl)


def drive_libraries(url: str, without_ttl: int, with_ttl: int) -> None:
    """Real openai-agents sessions and langchain-community histories, some with a TTL."""

    async def agents() -> None:
        client = redis.asyncio.Redis.from_url(url)
        try:
            for i in range(without_ttl + with_ttl):
                ttl = 600 if i >= without_ttl else None
                session = RedisSession(f"oa-{i}", redis_client=client, ttl=ttl)
                await session.add_items([{"role": "user", "content": f"hello {i}"}])
        finally:
            await client.aclose()

    asyncio.run(agents())
    for i in range(without_ttl + with_ttl):
        ttl = 600 if i >= without_ttl else None
        history = RedisChatMessageHistory(f"lc-{i}", url=url, ttl=ttl)
        history.add_user_message(f"hello {i}")
        history.add_ai_message("hi")
        history.redis_client.close()


def sample(exporter: InProcessExporter, at_least: int, timeout: float = 60) -> Scrape:
    """A scrape whose keyspace figures come from a full pass over at least that many keys."""
    found: list[Scrape] = []

    def done() -> bool:
        scrape = exporter.scrape()
        samples = scrape.samples(names.KEYSPACE_SAMPLE_KEYS)
        if samples and samples[0].value >= at_least:
            found.append(scrape)
            return True
        return False

    wait_until(done, timeout, interval=0.2, what=f"a sampler pass over {at_least} keys")
    return found[-1]


def by_slot(scrape: Scrape, metric: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for s in scrape.samples(metric):
        slot = f"{s.labels[names.LABEL_PROFILE]}/{s.labels[names.LABEL_KEY_CLASS]}"
        out[slot] = out.get(slot, 0.0) + s.value
    return out


@pytest.fixture
def server() -> Iterator[RedisServer]:
    with redis_server() as srv:
        yield srv


def test_real_libraries_and_layouts_counted_under_their_profile(server: RedisServer) -> None:
    drive_libraries(server.url, without_ttl=5, with_ttl=3)
    client = server.client()
    pipe = client.pipeline(transaction=False)
    for i in range(4):
        for key, kind, _ in layout_keys(i):
            write(pipe, key, kind, ttl=600 if i == 3 else None)
    client.set("cart:42", "not agent memory")
    pipe.execute()
    with InProcessExporter(redis_url=server.url, sample_interval=0.1) as exporter:
        scrape = sample(exporter, len(client.keys("*")))
    keys, no_ttl = by_slot(scrape, names.KEYSPACE_KEYS), by_slot(scrape, names.KEYS_WITHOUT_TTL)
    # RedisSession: a metadata hash and a messages list per session (no :counter is written)
    assert keys["openai_agents/history"] == 16 and no_ttl["openai_agents/history"] == 10
    assert keys["langchain/history"] == 8 and no_ttl["langchain/history"] == 5
    expected: dict[str, int] = {}
    for _, _, slot in layout_keys(0):
        expected[slot] = expected.get(slot, 0) + 4
    for slot, count in expected.items():
        assert keys[slot] == count, slot
        profile, key_class = slot.split("/")
        must_expire = any(
            p.key_class == key_class and p.ttl == "required" for p in BUILTIN[profile].patterns
        )
        assert no_ttl.get(slot, 0) == (3 * count // 4 if must_expire else 0), slot
    assert keys["none/other"] == 1  # the cart: no profile claims it
    assert by_slot(scrape, names.KEYSPACE_BYTES)["langchain/history"] > 0


def caught_up(exporter: InProcessExporter, evicted: Any) -> tuple[dict[str, float], int]:
    """The exporter's eviction counts once they reach what INFO said a moment before (our own
    reads keep evicting a little while Redis sits at maxmemory, so INFO is read first)."""
    total = evicted()
    seen: list[dict[str, float]] = []

    def done() -> bool:
        seen.append(by_slot(exporter.scrape(), names.EVICTED_KEYS))
        return sum(seen[-1].values()) >= total

    wait_until(done, 10, interval=0.1, what="the eviction events counted")
    return seen[-1], total


def _fill_until_evicting(client: Any, evicted: Any, target: int) -> int:
    """Write profile keys (a mix of libraries) until Redis evicted `target` keys."""
    written = 0
    for batch in range(2000):
        pipe = client.pipeline(transaction=False)
        for i in range(200):
            n = batch * 200 + i
            key, kind, _ = layout_keys(n)[n % 11]
            write(pipe, key, kind)
            pipe.rpush(f"agents:session:oa{n}:messages", "m" * 200)
            pipe.lpush(f"message_store:lc{n}", "m" * 200)
        pipe.execute()
        written += 600
        if evicted() >= target:
            return written
    raise AssertionError("Redis never evicted enough keys")


def test_evictions_past_maxmemory_are_attributed_to_profiles() -> None:
    with redis_server("--maxmemory", "8mb", "--maxmemory-policy", "allkeys-lru") as server:
        client = server.client()
        with InProcessExporter(redis_url=server.url, enable_keyspace_events=True) as exporter:
            fleet = exporter.app.fleet
            assert fleet is not None and fleet.tracker is not None
            wait_until(lambda: fleet.tracker is not None and fleet.tracker.live, 10, what="live")

            def evicted() -> int:
                return int(client.info("stats")["evicted_keys"])

            _fill_until_evicting(client, evicted, 5000)
            counted, total = caught_up(exporter, evicted)
    claimed = sum(v for slot, v in counted.items() if not slot.startswith(names.PROFILE_NONE))
    print(f"standalone: {claimed:.0f} of {total} evicted keys attributed to a profile")
    assert claimed >= 0.9 * total, (claimed, total, counted)
    assert counted.get("openai_agents/history", 0) > 0 and counted.get("langchain/history", 0) > 0


def _memory_usage_of_all(client: Any) -> int:
    total = 0
    keys = list(client.scan_iter(count=1000))
    for start in range(0, len(keys), 1000):
        pipe = client.pipeline(transaction=False)
        for key in keys[start : start + 1000]:
            pipe.memory_usage(key, samples=0)
        total += sum(v or 0 for v in pipe.execute())
    return total


@pytest.mark.timeout(300)
def test_byte_estimates_within_20_percent_on_100k_keys(server: RedisServer) -> None:
    client = server.client()
    for batch in range(100):
        pipe = client.pipeline(transaction=False)
        for i in range(1000):
            n = batch * 1000 + i
            if n % 3 == 0:
                pipe.rpush(f"agents:session:oa{n}:messages", *(["m" * (n % 50)] * (1 + n % 7)))
            elif n % 3 == 1:
                pipe.lpush(f"message_store:lc{n}", "m" * (n % 300))
            else:
                key, kind, _ = layout_keys(n)[n % 11]
                write(pipe, key, kind)
        pipe.execute()
    keys = int(client.dbsize())
    assert keys == 100_000
    with InProcessExporter(
        redis_url=server.url, sample_interval=0.05, sample_budget=200_000
    ) as exporter:
        scrape = sample(exporter, keys, timeout=180)
    exact = _memory_usage_of_all(client)
    estimated = sum(by_slot(scrape, names.KEYSPACE_BYTES).values())
    print(f"100k keys: estimated {estimated:.0f} bytes, MEMORY USAGE SAMPLES 0 says {exact}")
    assert abs(estimated - exact) <= 0.2 * exact, (estimated, exact)
    assert by_slot(scrape, names.KEYSPACE_KEYS).get("none/other", 0) == 0


@pytest.mark.timeout(300)
def test_a_cluster_is_sampled_and_tracked_on_every_primary() -> None:
    with redis_cluster(3) as nodes:
        cluster = RedisCluster(host=LOOPBACK, port=nodes[0].port, decode_responses=True)
        try:
            drive = [(k, t, slot) for i in range(30) for k, t, slot in layout_keys(i)]
            for key, kind, _ in drive:
                write(cluster, key, kind)
            for i in range(30):
                cluster.rpush(f"agents:session:oa{i}:messages", "m")
            per_node = [int(n.client().dbsize()) for n in nodes]
            assert all(per_node), per_node  # the keys really are spread over the primaries
            for node in nodes:
                node.client().config_set("maxmemory-policy", "allkeys-lru")
            url = f"redis+cluster://{LOOPBACK}:{nodes[1].port}"
            with InProcessExporter(
                redis_url=url, enable_keyspace_events=True, sample_interval=0.1
            ) as exporter:
                fleet = exporter.app.fleet
                assert fleet is not None and fleet.tracker is not None
                wait_until(
                    lambda: fleet.tracker is not None and fleet.tracker.live, 20, what="live"
                )
                scrape = sample(exporter, sum(per_node))
                keys = by_slot(scrape, names.KEYSPACE_KEYS)
                assert keys["openai_agents/history"] == 30
                for slot in {s for _, _, s in drive}:
                    assert keys[slot] == sum(1 for _, _, s in drive if s == slot), slot
                assert by_slot(scrape, names.KEYS_WITHOUT_TTL)["langgraph/checkpoint"] == 60
                exact = sum(_memory_usage_of_all(n.client()) for n in nodes)
                estimated = sum(by_slot(scrape, names.KEYSPACE_BYTES).values())
                assert abs(estimated - exact) <= 0.2 * exact, (estimated, exact)
                # past maxmemory on every primary: evictions from all of them, attributed
                for node in nodes:
                    used = int(node.client().info("memory")["used_memory"])
                    node.client().config_set("maxmemory", used + 2_000_000)

                def evicted() -> int:
                    return sum(int(n.client().info("stats")["evicted_keys"]) for n in nodes)

                for round_ in range(200):
                    for i in range(300):
                        n = 1000 + round_ * 300 + i
                        cluster.rpush(f"agents:session:oa{n}:messages", "m" * 500)
                    if evicted() >= 600 and all(
                        int(n.client().info("stats")["evicted_keys"]) for n in nodes
                    ):
                        break
                counted, total = caught_up(exporter, evicted)
        finally:
            cluster.close()
    claimed = sum(v for slot, v in counted.items() if not slot.startswith(names.PROFILE_NONE))
    print(f"cluster: {claimed:.0f} of {total} evicted keys attributed to a profile")
    assert claimed >= 0.9 * total, (claimed, total)


def test_profile_files_and_names_are_checked_in_one_line(tmp_path: Any) -> None:
    from click.testing import CliRunner

    from memorywatch.cli import main

    good = tmp_path / "ours.yaml"
    good.write_text(
        "profiles:\n- name: shop\n  patterns:\n  - {match: 'conv:*', class: history, ttl: required}\n"
    )
    classifier = Classifier("mw", load_file(good))
    match = classifier.classify("conv:1")
    assert match is not None and (match.profile, match.key_class, match.ttl_required) == (
        "shop",
        "history",
        True,
    )
    cases = {
        "profiles: []\n": "profiles must be a non-empty list",
        "profiles:\n- {name: shop, patterns: [{match: 'c:*', class: memories}]}\n": "class 'memories'",
        "profiles:\n- {name: langchain, patterns: [{match: 'c:*', class: history}]}\n": "is taken",
        "profiles:\n- {name: shop, patterns: [{match: '*', class: history}]}\n": "every key",
        "profiles: [\n": "invalid YAML",
    }
    for text, message in cases.items():
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        result = CliRunner().invoke(main, ["exporter", "--check", "--key-profile-file", str(bad)])
        assert result.exit_code != 0 and message in result.output, (text, result.output)
        assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    result = CliRunner().invoke(main, ["exporter", "--check", "--key-profile", "nope"])
    assert result.exit_code != 0 and "not a profile" in result.output


def test_the_documented_profile_files_load() -> None:
    import re
    from pathlib import Path

    import yaml

    from memorywatch.exporter.profiles import parse_profiles

    root = Path(__file__).resolve().parents[2]
    for doc in ("docs/exporter.md", "docs/profiles.md"):
        blocks = re.findall(r"```yaml\n(profiles:.*?)```", (root / doc).read_text(), re.S)
        assert blocks, doc
        for block in blocks:
            assert parse_profiles(yaml.safe_load(block), doc)


def test_primary_workers_follow_a_changed_set_of_primaries_and_keep_counts() -> None:
    """What a failover looks like to the per-primary workers: the node set changes; the old
    node's eviction counts stay in the sum (counters never go down), the new one is tracked."""
    from memorywatch.exporter.evictions import EvictionTracker
    from memorywatch.exporter.primaries import PrimaryWorkers
    from memorywatch.exporter.sampler import KeyspaceSampler

    args = ("--maxmemory", "2mb", "--maxmemory-policy", "allkeys-lru")
    with redis_server(*args) as first, redis_server(*args) as second:
        servers = {(LOOPBACK, s.port): s for s in (first, second)}
        current = [(LOOPBACK, first.port)]
        workers = PrimaryWorkers(
            first.client,
            lambda: list(current),
            lambda n: EvictionTracker(servers[n].client, "mw", enable_events=True),
            lambda n: KeyspaceSampler(servers[n].client, "mw", interval=0.1),
            refresh=0.1,
        )
        workers.start()
        try:
            wait_until(lambda: workers.live, 10, what="first node tracked")

            def evict(server: RedisServer) -> int:
                client = server.client()
                for batch in range(200):
                    pipe = client.pipeline(transaction=False)
                    for i in range(200):
                        pipe.lpush(f"message_store:n{batch}-{i}", "m" * 200)
                    pipe.execute()
                    if int(client.info("stats")["evicted_keys"]) >= 500:
                        break
                return int(client.info("stats")["evicted_keys"])

            on_first = evict(first)
            wait_until(lambda: sum(workers.counts().values()) >= on_first, 10, what="counted")
            before = workers.counts()[("langchain", "history")]
            current[:] = [(LOOPBACK, second.port)]
            wait_until(lambda: workers.nodes == current and workers.live, 10, what="moved")
            # kept, not reset (Redis may still evict a few on the old node after `before`:
            # eviction goes on in its cron until memory is under the limit)
            assert workers.counts()[("langchain", "history")] >= before
            on_second = evict(second)
            wait_until(
                lambda: workers.counts()[("langchain", "history")] >= before + on_second * 0.9,
                10,
                what="the new primary's evictions counted",
            )
            wait_until(lambda: workers.result() is not None, 10, what="a pass of the new node")
        finally:
            workers.stop()
