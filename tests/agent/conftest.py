"""Fixtures for the agent SDK tests: one real redis-server per module, a fresh namespace per test."""

from __future__ import annotations

# Fixtures are registered by being names of the conftest module.
from redis_fixtures import metric_reader, namespace, raw, server, spans, state  # noqa: F401
