"""What the sync and asyncio ``AgentState`` share beyond the operations: construction from a
URL, the layout and settings, and the methods that never touch Redis."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, ClassVar, Self

from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider
from redis.backoff import NoBackoff

from memorywatch import schema
from memorywatch.agent import _core, _tools
from memorywatch.agent._context import Core
from memorywatch.agent.pool import pool_numbers
from memorywatch.agent.telemetry import Telemetry


class StateBase:
    """Base of both clients. Subclasses name their redis-py client, pool and retry types."""

    client_type: ClassVar[type[Any]]
    cluster_type: ClassVar[type[Any]]
    pool_type: ClassVar[type[Any]]
    retry_type: ClassVar[type[Any]]

    def _init_core(
        self,
        client: Any,
        namespace: str,
        instance_id: str | None,
        shards: int | None,
        settings: _core.Settings | None,
        telemetry: Telemetry,
    ) -> None:
        self.client = client
        cluster = isinstance(client, self.cluster_type)
        self._core = Core(
            schema=schema.Schema(namespace, shards or schema.default_shards(cluster)),
            instance_id=instance_id or _core.default_instance_id(),
            settings=settings or _core.Settings(),
            telemetry=telemetry,
            pool_stats=lambda: pool_numbers(client),
        )
        self.schema = self._core.schema
        self.instance_id = self._core.instance_id
        self.settings = self._core.settings
        self.telemetry = self._core.telemetry
        self._owned_pool: Any = None  # built by from_url: closing the state ends it

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        namespace: str = schema.DEFAULT_NAMESPACE,
        instance_id: str | None = None,
        max_connections: int = 50,
        pool_timeout: float = 1.0,
        socket_timeout: float = 5.0,
        pool_name: str | None = None,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> Self:
        """A client on an instrumented blocking pool (stable name ``memorywatch.{ns}``) and
        without automatic command retries: a retried state transition could run twice, the
        SDK reports the failure instead. ``username`` / ``password`` given apart from the URL
        (a password file, the environment) win over the URL's."""
        schema.Schema(namespace, 1)  # a bad namespace fails before any connection is made
        telemetry = Telemetry(tracer_provider, meter_provider)
        pool = cls.pool_type.from_url(
            url,
            retry=cls.retry_type(NoBackoff(), 0),
            **_core.pool_options(
                namespace=namespace,
                pool_name=pool_name,
                meter=telemetry.meter,
                max_connections=max_connections,
                pool_timeout=pool_timeout,
                socket_timeout=socket_timeout,
                username=username,
                password=password,
            ),
        )
        client = cls.client_type(connection_pool=pool)
        try:
            state = cls(  # type: ignore[call-arg]
                client, namespace=namespace, instance_id=instance_id, telemetry=telemetry, **kwargs
            )
        except BaseException:
            if not inspect.iscoroutinefunction(pool.disconnect):
                pool.disconnect()
            raise
        state._owned_pool = pool
        return state

    def pool_stats(self) -> dict[str, int]:
        """In-use, max, pending and timeouts of the client pool (-1 when unknown)."""
        return pool_numbers(self.client)

    def idempotent_tool(
        self,
        name: str | None = None,
        *,
        key: Callable[..., str],
        options: _core.ToolOptions | None = None,
    ) -> Any:
        """Method form of :func:`memorywatch.agent.idempotent_tool`."""
        return _tools.idempotent_tool(self, name, key=key, options=options)
