"""Families built per scrape, and their rendering in the Prometheus text format 0.0.4.

prometheus_client's own encoder appends `_total` to the TYPE line of every counter, which
would break the redis_exporter names that are counters without that suffix
(`redis_total_error_replies`, ...). This encoder prints names exactly as given.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client.core import Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Families:
    """Accumulates samples into one family per name, in first-seen order.

    A topology scrape adds the samples of several nodes to the same families, so each
    family must be created once and appended to.
    """

    def __init__(self, extra_labels: Mapping[str, str] | None = None) -> None:
        self._families: dict[str, Metric] = {}
        self._extra = dict(extra_labels or {})

    def with_labels(self, extra_labels: Mapping[str, str]) -> Families:
        """A view that adds `extra_labels` to every sample and shares the families."""
        view = Families({**self._extra, **extra_labels})
        view._families = self._families
        return view

    def declare(self, name: str, help_text: str, kind: str) -> None:
        """Create a family ahead of its samples, so it keeps its place and help text."""
        self._family(name, help_text, kind)

    def _family(self, name: str, help_text: str, kind: str) -> Metric:
        family = self._families.get(name)
        if family is None:
            family = Metric(name, help_text, kind)
            self._families[name] = family
        return family

    def add(
        self,
        name: str,
        help_text: str,
        kind: str,
        value: float,
        labels: Mapping[str, str] | None = None,
        sample_name: str | None = None,
    ) -> None:
        family = self._family(name, help_text, kind)
        family.add_sample(sample_name or name, {**self._extra, **(labels or {})}, float(value))

    def gauge(
        self, name: str, help_text: str, value: float, labels: Mapping[str, str] | None = None
    ) -> None:
        self.add(name, help_text, "gauge", value, labels)

    def counter(
        self, name: str, help_text: str, value: float, labels: Mapping[str, str] | None = None
    ) -> None:
        self.add(name, help_text, "counter", value, labels)

    def collect(self) -> list[Metric]:
        return list(self._families.values())


def _escape_label(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _escape_help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


def _type_name(family: Metric) -> str:
    # prometheus_client's own collectors name a counter family without `_total` and its
    # samples with it; ours name both alike.
    if family.type == "counter" and all(s.name != family.name for s in family.samples):
        return family.name + "_total"
    return family.name


_TYPES = {"counter", "gauge", "summary", "histogram", "untyped"}


def render(collectors: Iterable[Collector]) -> bytes:
    """Text exposition of every family of every collector, in order."""
    out: list[str] = []
    for collector in collectors:
        for family in collector.collect():
            name = _type_name(family)
            kind = family.type if family.type in _TYPES else "gauge"
            out.append(f"# HELP {name} {_escape_help(family.documentation)}\n")
            out.append(f"# TYPE {name} {kind}\n")
            for sample in family.samples:
                if sample.labels:
                    labels = ",".join(
                        f'{key}="{_escape_label(val)}"' for key, val in sample.labels.items()
                    )
                    out.append(f"{sample.name}{{{labels}}} {floatToGoString(sample.value)}\n")
                else:
                    out.append(f"{sample.name} {floatToGoString(sample.value)}\n")
    return "".join(out).encode()
