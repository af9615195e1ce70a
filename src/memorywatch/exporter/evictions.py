"""Which classes of agent state Redis evicts, from `evicted` keyspace notifications.

INFO only counts evictions; it cannot say whether Redis dropped a lock, a tool record or a
customer's conversation. Redis publishes the name of every evicted key on
`__keyevent@<db>__:evicted` when `notify-keyspace-events` holds `E` and `e` (or `A`).
The tracker subscribes on its own connection and counts keys by profile and class
(exporter/profiles.py). Notifications are
fire-and-forget: evictions while the exporter is disconnected are not seen, and the
`memorywatch_eviction_tracking_enabled` gauge says whether the subscription is live.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Sequence

import redis

from memorywatch.exporter.background import BackgroundWorker
from memorywatch.exporter.profiles import BUILTIN, UNCLAIMED, Classifier, Profile, Slot

log = logging.getLogger("memorywatch.exporter")


def _has_evicted_events(flags: str) -> bool:
    return "E" in flags and ("e" in flags or "A" in flags)


class EvictionTracker(BackgroundWorker):
    """A daemon thread that counts evicted keys per profile and key class."""

    name = "memorywatch-evictions"

    def __init__(
        self,
        client_factory: Callable[[], redis.Redis],
        namespace: str,
        db: int = 0,
        enable_events: bool = False,
        retry_interval: float = 10.0,
        profiles: Sequence[Profile] = tuple(BUILTIN.values()),
    ) -> None:
        super().__init__(client_factory, retry_interval)
        self._classifier = Classifier(namespace, profiles)
        self._channel = f"__keyevent@{db}__:evicted"
        self._enable = enable_events
        self._counts: Counter[Slot] = Counter()
        self._lock = threading.Lock()
        self._live = threading.Event()
        self._warned = ""

    @property
    def live(self) -> bool:
        return self._live.is_set()

    def wait_live(self, timeout: float) -> bool:
        return self._live.wait(timeout)

    def counts(self) -> dict[Slot, int]:
        """(profile, key class) -> keys evicted since the tracker started (by name: an evicted
        key's type is gone with it)."""
        with self._lock:
            return dict(self._counts)

    def _warn_once(self, message: str) -> None:
        if message != self._warned:
            log.warning("%s", message)
            self._warned = message

    def _events_enabled(self, client: redis.Redis) -> bool:
        flags = str(client.config_get("notify-keyspace-events").get("notify-keyspace-events", ""))
        if _has_evicted_events(flags):
            return True
        if not self._enable:
            self._warn_once(
                "eviction classes are not tracked: notify-keyspace-events is "
                f"{flags!r} and needs 'Ee'; set it in redis.conf or run the exporter "
                "with --enable-keyspace-events"
            )
            return False
        wanted = "".join(sorted(set(flags + "Ee")))
        client.config_set("notify-keyspace-events", wanted)
        log.info("set notify-keyspace-events to %r to track evicted key classes", wanted)
        return True

    def step(self, client: redis.Redis) -> None:
        try:
            if self._events_enabled(client):
                self._listen(client)
        finally:
            self._live.clear()

    def on_error(self, exc: Exception) -> None:
        self._warn_once(f"eviction tracking interrupted: {type(exc).__name__}: {exc}")

    def _listen(self, client: redis.Redis) -> None:
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(self._channel)
            pubsub.get_message(timeout=1.0)  # the subscribe confirmation
            # Re-check over a second connection now, so both connections the tracker keeps
            # exist from the start and the exporter's client count never moves afterwards.
            if not self._events_enabled(client):
                return
            self._live.set()
            self._warned = ""
            checks = 0
            while not self.stopping:
                message = pubsub.get_message(timeout=1.0)
                if message is not None and message.get("type") == "message":
                    data = message["data"]
                    key = data.decode(errors="replace") if isinstance(data, bytes) else str(data)
                    match = self._classifier.classify(key)
                    slot = (match.profile, match.key_class) if match is not None else UNCLAIMED
                    with self._lock:
                        self._counts[slot] += 1
                    continue
                checks += 1
                if checks % 30 == 0 and not self._events_enabled(client):
                    return  # someone turned the events off: report it instead of counting zero
        finally:
            pubsub.close()
