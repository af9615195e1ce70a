"""What the sync and asyncio ``AgentState`` share beyond the operations: construction from a
URL, the layout and settings, and the methods that never touch Redis."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, ClassVar, Self

from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider

from memorywatch import redisurl, schema
from memorywatch.agent import _connect, _tools, _values
from memorywatch.agent._context import Core
from memorywatch.agent.pool import pool_numbers
from memorywatch.agent.telemetry import Telemetry


class StateBase:
    """Base of both clients. Subclasses name their redis-py client, pool and retry types."""

    client_type: ClassVar[type[Any]]
    cluster_type: ClassVar[type[Any]]
    flavor: ClassVar[_connect.Flavor]

    def _init_core(
        self,
        client: Any,
        namespace: str,
        instance_id: str | None,
        shards: int | None,
        settings: _values.Settings | None,
        telemetry: Telemetry,
        min_replicas: int | None = None,
        replica_timeout: float | None = None,
    ) -> None:
        self.client = client
        cluster = isinstance(client, self.cluster_type)
        self._core = Core(
            schema=schema.Schema(namespace, shards or schema.default_shards(cluster)),
            instance_id=instance_id or _values.default_instance_id(),
            settings=(settings or _values.Settings()).durable(min_replicas, replica_timeout),
            telemetry=telemetry,
            pool_stats=lambda: pool_numbers(client),
        )
        self.schema = self._core.schema
        self.instance_id = self._core.instance_id
        self.settings = self._core.settings
        self.telemetry = self._core.telemetry
        self._closers: list[Callable[[], Any]] = []
        """What from_url built beside the client (pools, Sentinel's clients): close ends it."""

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
        sentinel_username: str | None = None,
        sentinel_password: str | None = None,
        min_replicas: int | None = None,
        replica_timeout: float | None = None,
        ssl_ca_certs: str | None = None,
        ssl_certfile: str | None = None,
        ssl_keyfile: str | None = None,
        **kwargs: Any,
    ) -> Self:
        """A client on an instrumented blocking pool (stable name ``memorywatch.{ns}``) and
        without automatic command retries: a retried state transition could run twice, the
        SDK reports the failure instead.

        ``url``: ``redis://`` / ``rediss://`` (one node), ``redis+sentinel://h1:26379,h2/name``
        (the master Sentinel names now, followed across failovers; ``sentinel_username`` /
        ``sentinel_password`` authenticate to the sentinels, the URL's to the data nodes)
        or ``redis+cluster://seed:7000``; ``rediss+...`` for TLS (``ssl_*`` files apply to
        every node and sentinel). ``username`` / ``password`` given apart from the URL (a
        password file, the environment) win over the URL's. ``min_replicas`` and
        ``replica_timeout`` switch on durable mode (see :class:`Settings`)."""
        schema.Schema(namespace, 1)  # a bad namespace fails before any connection is made
        given: _values.Settings = kwargs.get("settings") or _values.Settings()
        durable = given.durable(min_replicas, replica_timeout)  # validated before connecting
        if durable.min_replicas and durable.replica_timeout >= socket_timeout:
            raise ValueError(
                f"replica_timeout ({durable.replica_timeout:g}s) must be shorter than "
                f"socket_timeout ({socket_timeout:g}s): WAIT would look like a dead socket"
            )
        telemetry = Telemetry(tracer_provider, meter_provider)
        options = _values.pool_options(
            namespace=namespace,
            pool_name=pool_name,
            meter=telemetry.meter,
            max_connections=max_connections,
            pool_timeout=pool_timeout,
            socket_timeout=socket_timeout,
            username=username,
            password=password,
        )
        tls = {
            "ssl_ca_certs": ssl_ca_certs,
            "ssl_certfile": ssl_certfile,
            "ssl_keyfile": ssl_keyfile,
        }
        sentinel_auth = {"username": sentinel_username, "password": sentinel_password}
        try:
            connected = _connect.connect(cls.flavor, url, options, tls, sentinel_auth)
        except redisurl.BadRedisURL as exc:
            raise ValueError(str(exc)) from None
        try:
            state = cls(  # type: ignore[call-arg]
                connected.client,
                namespace=namespace,
                instance_id=instance_id,
                telemetry=telemetry,
                min_replicas=min_replicas,
                replica_timeout=replica_timeout,
                **kwargs,
            )
        except BaseException:
            for close in connected.closers:
                if not inspect.iscoroutinefunction(close):
                    close()
            raise
        state._closers = connected.closers
        return state

    def pool_stats(self) -> dict[str, int]:
        """In-use, max, pending and timeouts of the client pool (-1 when unknown)."""
        return pool_numbers(self.client)

    def idempotent_tool(
        self,
        name: str | None = None,
        *,
        key: Callable[..., str],
        options: _values.ToolOptions | None = None,
    ) -> Any:
        """Method form of :func:`memorywatch.agent.idempotent_tool`."""
        return _tools.idempotent_tool(self, name, key=key, options=options)
