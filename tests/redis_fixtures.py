"""Fixtures on a real Redis, shared by the test folders whose conftest imports them (the
agent SDK's and the framework integrations'): one redis-server per module, a client to it, a
fresh namespace per test, and an ``AgentState`` recording its spans and metrics in memory."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from harness import RedisServer, redis_server
from memorywatch.agent import AgentState


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    """A plain redis-server (no modules) on a free loopback port."""
    with redis_server() as srv:
        yield srv


@pytest.fixture
def raw(server: RedisServer) -> Iterator[redis.Redis]:
    client = server.client()
    yield client
    client.close()


@pytest.fixture
def namespace() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def metric_reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


@pytest.fixture
def state(
    server: RedisServer,
    namespace: str,
    spans: InMemorySpanExporter,
    metric_reader: InMemoryMetricReader,
) -> Iterator[AgentState]:
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    st = AgentState.from_url(
        server.url,
        namespace=namespace,
        instance_id="agent-1",
        tracer_provider=tracer_provider,
        meter_provider=MeterProvider(metric_readers=[metric_reader]),
    )
    yield st
    st.close()
