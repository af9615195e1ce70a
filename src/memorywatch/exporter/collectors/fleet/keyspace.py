"""The keyspace families: what each key profile and class holds, loses and leaks.

From the background workers (the eviction tracker and the keyspace sampler), per
(profile, key class). A profile is published once chosen (--key-profile) or once the sampler
or the tracker met one of its keys, and stays for the exporter's life, zero-filled over its
classes, so `increase()` sees a first eviction as a step from 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from memorywatch import names
from memorywatch.exporter.caches import remember
from memorywatch.exporter.exposition import Families
from memorywatch.exporter.profiles import (
    UNCLAIMED,
    Profile,
    Slot,
)
from memorywatch.exporter.sampler import SampleResult


@dataclass(frozen=True)
class KeyspaceView:
    """What the workers hold at one scrape (None: that worker does not run)."""

    evictions: Mapping[Slot, int] | None
    evictions_live: bool
    sample: SampleResult | None
    sample_age: float | None


def _labels(slot: Slot) -> dict[str, str]:
    return {names.LABEL_PROFILE: slot[0], names.LABEL_KEY_CLASS: slot[1]}


def add_keyspace_families(view: KeyspaceView, active: Iterable[Profile], out: Families) -> None:
    """`active`: the profiles published, zero-filled over their classes."""
    active = list(active)
    every = {(p.name, c) for p in active for c in p.classes} | {UNCLAIMED}
    out.gauge(
        names.EVICTION_TRACKING,
        "1 while evicted keys are classified from keyspace notifications.",
        1 if view.evictions_live else 0,
    )
    if view.evictions is not None:
        counts = tuple(sorted(view.evictions.items()))
        published = (out.extra_label_text, tuple(p.name for p in active))
        found = _EVICTION_LINES.get(published)
        if found is None or found[0] != counts:  # evictions are rare: mostly the same lines
            scratch = out.blank()
            scratch.declare(
                names.EVICTED_KEYS,
                "Keys Redis evicted, by key profile and class of the memory they held "
                "(counted since the exporter started).",
                "counter",
            )
            for slot in sorted(every | set(view.evictions)):
                count = view.evictions.get(slot, 0)
                scratch.counter(names.EVICTED_KEYS, "", count, _labels(slot))
            found = remember(
                _EVICTION_LINES, PASS_LINES_LIMIT, published, (counts, scratch.contents())
            )
        for name, help_text, kind, lines in found[1]:
            out.series(name, help_text, kind).extend(lines)
    sample = view.sample
    if sample is None or view.sample_age is None:
        return
    key = (out.extra_label_text, tuple(p.name for p in active))
    kept = _PASS_LINES.get(key)
    if kept is None or kept[0] is not sample:
        scratch = out.blank()
        _add_sample_families(sample, active, every, scratch)
        kept = remember(_PASS_LINES, PASS_LINES_LIMIT, key, (sample, scratch.contents()))
    for name, help_text, kind, lines in kept[1]:
        out.series(name, help_text, kind).extend(lines)
    out.gauge(
        names.SAMPLER_AGE,
        "Seconds since the keyspace sampler finished the pass these figures come from.",
        view.sample_age,
    )


PASS_LINES_LIMIT = 256
"""Label views (nodes) x published profile sets whose pass lines are kept."""
_PASS_LINES: dict[
    tuple[str, tuple[str, ...]],
    tuple[SampleResult, tuple[tuple[str, str, str, tuple[str, ...]], ...]],
] = {}
"""The sample lines of the last full pass, by (label view, published profiles): a pass ends
every few minutes, a scrape comes every few seconds, and these are ~3 lines per (profile, key
class) published, so they are formatted once per pass and profile set, not per scrape."""
_EVICTION_LINES: dict[
    tuple[str, tuple[str, ...]],
    tuple[tuple[tuple[Slot, int], ...], tuple[tuple[str, str, str, tuple[str, ...]], ...]],
] = {}
"""The eviction counters' lines, by the same key, while the counts stay the same."""


def _add_sample_families(
    sample: SampleResult, active: list[Profile], every: set[Slot], out: Families
) -> None:
    out.declare(
        names.KEYS_WITHOUT_TTL,
        "Keys whose profile expects a TTL and that have none, by profile and class (last full "
        "sampler pass).",
        "gauge",
    )
    leaky = {(p.name, c) for p in active for c in p.ttl_classes}
    for slot in sorted(leaky | set(sample.without_ttl)):
        out.gauge(names.KEYS_WITHOUT_TTL, "", sample.without_ttl.get(slot, 0), _labels(slot))
    out.declare(
        names.KEYSPACE_KEYS,
        "Keys by profile and class in the last full sampler pass (profile none: no profile "
        "claims them).",
        "gauge",
    )
    out.declare(
        names.KEYSPACE_BYTES,
        "Bytes those keys take (MEMORY USAGE, summed over the last full sampler pass).",
        "gauge",
    )
    for slot in sorted(every | set(sample.keys)):
        out.gauge(names.KEYSPACE_KEYS, "", sample.keys.get(slot, 0), _labels(slot))
        out.gauge(names.KEYSPACE_BYTES, "", sample.bytes.get(slot, 0), _labels(slot))
    out.gauge(
        names.KEYSPACE_SAMPLE_KEYS,
        "Keys the last full sampler pass inspected (every key of the keyspace, once).",
        sample.sampled,
    )
