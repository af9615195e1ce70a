"""Fixtures of the documentation tests: a redis-server per module and a client to it, for
the blocks that talk to Redis (tests/redis_fixtures.py)."""

from __future__ import annotations

# Fixtures are registered by being names of the conftest module.
from redis_fixtures import raw, server  # noqa: F401
