"""The exporter's background workers: a daemon thread, a client of its own, never dying."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import redis

log = logging.getLogger("memorywatch.exporter")


class BackgroundWorker:
    """Runs `step(client)` every `interval` seconds on a client of its own.

    The client is kept between steps (so the worker's connections to Redis stay fixed) and
    replaced after any failure; a failure is reported through `on_error`, never by the
    thread dying. `stop()` ends the thread within one interval.
    """

    name = "memorywatch-worker"

    def __init__(self, client_factory: Callable[[], redis.Redis], interval: float) -> None:
        self._factory = client_factory
        self._interval = interval
        self._stop = threading.Event()
        self._client: redis.Redis | None = None
        self._step_lock = threading.Lock()
        """Held around a step and the client's replacement: a step may also run in another
        thread (`KeyspaceSampler.after_request`), never two at once."""
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)

    def start(self) -> BackgroundWorker:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def step(self, client: redis.Redis) -> None:
        raise NotImplementedError

    def pause(self) -> float:
        """Seconds to wait after a step that succeeded (a paced worker computes them from its
        last step); after a failure the worker waits `interval`."""
        return self._interval

    def on_error(self, exc: Exception) -> None:
        log.warning("%s: %s: %s", self.name, type(exc).__name__, exc)

    def _run(self) -> None:
        while not self._stop.is_set():
            wait = self._interval
            with self._step_lock:
                try:
                    if self._client is None:
                        self._client = self._factory()
                    self.step(self._client)
                    wait = self.pause()
                except Exception as exc:  # a background worker must outlive any failure
                    self.on_error(exc)
                    self._drop_client()
            self._stop.wait(wait)
        with self._step_lock:
            self._drop_client()

    def _drop_client(self) -> None:
        """Close the client (the caller holds `_step_lock`); the next step makes another."""
        if self._client is not None:
            self._client.close()
        self._client = None
