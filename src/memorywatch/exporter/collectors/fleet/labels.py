"""The bound on lock and tool label values, kept for the exporter's life."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence

from memorywatch import names


class LabelBudget:
    """Which tool and lock names are published as themselves, for the exporter's life.

    The first `limit` names seen (most active first) keep their own label value; later ones
    are summed into `other`. The choice never changes while the exporter runs: re-ranking on
    every scrape would move a name in and out of `other`, which makes `other` go down,
    Prometheus read a counter reset and `increase()` page for losses that never happened.
    Bounded by `limit` names per label.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._kept: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def kept(self, label: str, activity: Mapping[str, float]) -> set[str]:
        with self._lock:
            kept = self._kept.setdefault(label, set())
            for name in sorted(activity, key=lambda n: (-activity[n], n)):
                if len(kept) >= self.limit:
                    break
                kept.add(name)
            return set(kept)

    def values(self, activity: Mapping[str, Mapping[str, float]]) -> dict[str, list[str]]:
        """label -> the values every family of that label publishes this scrape: the kept
        names (sorted), and `other` when some name active now is not kept."""
        result = {}
        for label, seen in activity.items():
            kept = self.kept(label, seen)
            result[label] = sorted(kept) + ([names.OTHER] if set(seen) - kept else [])
        return result


def keep(name: str, kept: Sequence[str]) -> str:
    """`name` if it is published as itself, else `other`."""
    return name if name in kept else names.OTHER
