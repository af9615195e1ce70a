"""Commands straight on a pooled connection, skipping redis-py's ``execute_command`` wrappers
(command retries and observability, both off where this is used) that cost about as much
Python as a lock transition or a checkpoint call itself. The SDK's sync client and the
LangGraph saver use it for their scripts."""

from __future__ import annotations

from typing import Any

import redis
from redis.exceptions import ResponseError


def direct_pool(client: Any) -> redis.ConnectionPool | None:
    """The pool scripts may take connections from directly: a plain client's own pool with
    no retries configured (a retried transition could run twice, see ``from_url``); else
    None: use the client."""
    if type(client) is not redis.Redis or client.connection is not None:
        return None
    pool: redis.ConnectionPool = client.connection_pool
    retry = pool.connection_kwargs.get("retry")
    if retry is not None and retry.get_retries():
        return None
    return pool


def on_connection(pool: redis.ConnectionPool, *command: Any, **read: Any) -> Any:
    """One command on a pooled connection; ``read``: options of ``read_response`` (e.g.
    ``disable_decoding=True`` for binary replies)."""
    conn = pool.get_connection()
    try:
        conn.send_command(*command)
        return conn.read_response(**read)
    except ResponseError:
        raise  # a whole reply was read: the connection is clean
    except BaseException:
        conn.disconnect()  # a reply may be half read: never reuse this connection
        raise
    finally:
        pool.release(conn)
