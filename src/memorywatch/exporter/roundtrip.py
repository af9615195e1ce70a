"""One pipelined round trip on a plain client's own connection, without redis-py's Pipeline.

redis-py's `Pipeline.execute` (8.x) builds command objects, folds HIMPORT fieldset
bookkeeping into the write and runs its event hooks on every call; for the few read-only
commands of a scrape that cost more exporter CPU than packing, sending and parsing them
(bench/bench_sampler.py, one scrape a second). Here the commands are packed into one write
and each reply is parsed by the client's own `parse_response`, with its response callbacks,
so a reply reads exactly as it does through the client's command methods.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import redis

Command = tuple[tuple[Any, ...], Mapping[str, Any]]
"""A command's arguments (the name first, "CONFIG GET" style names allowed) and the options
its response callback takes (as the client's command method would pass them)."""


def round_trip(client: redis.Redis, commands: Sequence[Command]) -> list[Any]:
    """Every reply, in order; an error reply is returned as its `ResponseError`.

    A connection error or a timeout raises (redis-py's own errors, `BusyLoadingError`
    included) after the connection is dropped, so no half-read reply is left for the next
    user of the pool, as redis-py's pipeline does."""
    if not commands:
        return []
    pool = client.connection_pool
    conn = pool.get_connection()
    try:
        conn.send_packed_command(conn.pack_commands([args for args, _ in commands]))
        replies: list[Any] = []
        for args, options in commands:
            try:
                replies.append(client.parse_response(conn, args[0], **options))
            except redis.ResponseError as exc:
                replies.append(exc)
        return replies
    except BaseException:
        conn.disconnect()
        raise
    finally:
        pool.release(conn)
