"""OpenTelemetry plumbing through the API only: providers are injected or global, never made."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable
from typing import Protocol

from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Meter, MeterProvider, Observation
from opentelemetry.trace import Tracer, TracerProvider

from memorywatch import __version__
from memorywatch.agent import attributes as attr


class PoolStats(Protocol):
    """What a pool wrapper exposes to the metrics callbacks and the heartbeat."""

    pool_name: str

    @property
    def max_connections(self) -> int: ...

    @property
    def pending_requests(self) -> int: ...

    @property
    def in_use(self) -> int: ...

    @property
    def timeouts(self) -> int: ...


class PoolInstruments:
    """Pool instruments of one meter. Observable callbacks read every registered pool."""

    def __init__(self, meter: Meter) -> None:
        self._pools: weakref.WeakSet[PoolStats] = weakref.WeakSet()
        self._lock = threading.Lock()
        meter.create_observable_up_down_counter(
            attr.DB_CLIENT_CONNECTION_MAX,
            callbacks=[self._observe_max],
            unit="{connection}",
            description="The maximum number of open connections allowed.",
        )
        meter.create_observable_up_down_counter(
            attr.DB_CLIENT_CONNECTION_PENDING_REQUESTS,
            callbacks=[self._observe_pending],
            unit="{request}",
            description="The number of current pending requests for an open connection.",
        )
        self.timeouts = meter.create_counter(
            attr.DB_CLIENT_CONNECTION_TIMEOUTS,
            unit="{timeout}",
            description="Connection requests that timed out because the pool was exhausted.",
        )
        self.failed_wait = meter.create_histogram(
            attr.DB_CLIENT_CONNECTION_WAIT_TIME,
            unit="s",
            description="Time spent waiting for a connection (failed waits only, see docs).",
        )

    def register(self, pool: PoolStats) -> None:
        with self._lock:
            self._pools.add(pool)

    def _snapshot(self) -> list[PoolStats]:
        with self._lock:
            return list(self._pools)

    def _observe_max(self, options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(p.max_connections, {attr.DB_CLIENT_CONNECTION_POOL_NAME: p.pool_name})
            for p in self._snapshot()
        ]

    def _observe_pending(self, options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(p.pending_requests, {attr.DB_CLIENT_CONNECTION_POOL_NAME: p.pool_name})
            for p in self._snapshot()
        ]


_POOL_INSTRUMENTS: weakref.WeakKeyDictionary[Meter, PoolInstruments] = weakref.WeakKeyDictionary()
_POOL_INSTRUMENTS_LOCK = threading.Lock()


def pool_instruments(meter: Meter) -> PoolInstruments:
    """One set of pool instruments per meter (creating them twice makes the SDK warn)."""
    with _POOL_INSTRUMENTS_LOCK:
        found = _POOL_INSTRUMENTS.get(meter)
        if found is None:
            found = _POOL_INSTRUMENTS[meter] = PoolInstruments(meter)
        return found


def get_meter(meter_provider: MeterProvider | None) -> Meter:
    provider = meter_provider or metrics.get_meter_provider()
    return provider.get_meter(attr.INSTRUMENTATION_NAME, __version__)


class Telemetry:
    """The tracer and instruments used by one AgentState."""

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        provider = tracer_provider or trace.get_tracer_provider()
        self.tracer: Tracer = provider.get_tracer(attr.INSTRUMENTATION_NAME, __version__)
        self.meter: Meter = get_meter(meter_provider)
        self.tool_duration = self.meter.create_histogram(
            attr.GEN_AI_EXECUTE_TOOL_DURATION,
            unit="s",
            description="Duration of tool executions.",
        )
        self.not_durable = self.meter.create_counter(
            attr.STATE_NOT_DURABLE,
            unit="{write}",
            description="Durable-mode writes refused: too few replicas acknowledged them in time.",
        )
