"""ReadPlan: each command's reply reaches its own decoder, whatever the order or failures."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis

from harness import RedisServer, redis_server
from memorywatch.exporter.readplan import ReadPlan


@pytest.fixture
def server() -> Iterator[RedisServer]:
    with redis_server() as srv:
        yield srv


def test_replies_reach_their_decoders_and_a_failed_command_is_none(server: RedisServer) -> None:
    client = server.client()
    client.hset("h", mapping={"a": "1"})
    client.zadd("z", {"m": 5})
    client.set("s", "text")
    got: dict[str, Any] = {}
    plan = ReadPlan()
    plan.add(lambda r: got.__setitem__("hash", r), "HGETALL", "h")
    plan.add(lambda r: got.__setitem__("wrong", r), "HGETALL", "s")  # WRONGTYPE
    plan.add(
        lambda r: got.__setitem__("zset", r), "ZRANGE", "z", 0, -1, "WITHSCORES", withscores=True
    )
    plan.add(lambda r: got.__setitem__("groups", r), "XINFO GROUPS", "absent")  # no such key
    plan.run(client)
    assert got == {"hash": {"a": "1"}, "wrong": None, "zset": [("m", 5.0)], "groups": None}


def test_a_required_command_raises_its_error(server: RedisServer) -> None:
    client = server.client()
    client.set("s", "text")
    plan = ReadPlan()
    plan.add(lambda r: None, "HGETALL", "s", required=True)
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        plan.run(client)


def test_queued_on_a_shared_pipeline_and_decoded_from_its_slice(server: RedisServer) -> None:
    client = server.client()
    got: list[Any] = []
    plan = ReadPlan()
    plan.add(got.append, "TIME")
    plan.add(got.append, "TYPE", "absent")
    pipe = client.pipeline(transaction=False)
    pipe.ping()
    assert plan.queue(pipe) == 2
    replies = pipe.execute(raise_on_error=False)
    plan.decode(replies[1:])
    assert isinstance(got[0], tuple) and got[1] == "none"
    with pytest.raises(ValueError, match="1 replies for 2 commands"):
        plan.decode(replies[2:])
    assert ReadPlan().run(client) is None  # nothing queued: no round trip
