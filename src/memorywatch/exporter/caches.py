"""The exporter's one policy for what it keeps between scrapes: bounded, emptied when full.

Each cache holds what was computed from a set that is bounded in practice (INFO lines, label
sets, a pass's families, checked passwords); the limit guards against one that is not (a
Redis whose commands keep changing). Past it the cache starts again empty: no eviction
bookkeeping on the hot path, and a full cache costs one scrape's work again.
"""

from __future__ import annotations

from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


def remember(cache: dict[K, V], limit: int, key: K, value: V) -> V:
    """``cache[key] = value`` (the cache emptied first if it holds ``limit`` entries); the
    value back, for ``return remember(...)``."""
    if len(cache) >= limit:
        cache.clear()
    cache[key] = value
    return value
