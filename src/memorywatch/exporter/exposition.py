"""Families built per scrape, rendered in the Prometheus text format 0.0.4.

Samples are formatted into text as they are added: a scrape of one Redis yields ~300 samples,
and building prometheus_client `Metric`/`Sample` objects for each, then formatting them, cost
more than the Redis round trip. The encoder also prints names exactly as given:
prometheus_client's appends `_total` to the TYPE line of every counter, which would break
redis_exporter's counters that lack the suffix (`redis_total_error_replies`, ...).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Protocol

from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from memorywatch.exporter.caches import remember

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def format_value(value: float) -> str:
    """Go-style number text: integers without a fraction, `+Inf`, `-Inf`, `NaN`."""
    if type(value) is int:
        return str(value)
    if math.isfinite(value):
        if value.is_integer() and -1e15 < value < 1e15:
            return str(int(value))
        return repr(value)
    if math.isnan(value):
        return "NaN"
    return "+Inf" if value > 0 else "-Inf"


def _escape_label(value: str) -> str:
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
    return value


def _escape_help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


LABEL_TEXTS_LIMIT = 4096
"""Label sets whose text is kept between scrapes (every label value set is bounded, so a
scrape meets the same few hundred); past it the cache starts again empty."""
_LABEL_TEXTS: dict[tuple[tuple[str, str], ...], str] = {}


def _label_text(labels: Mapping[str, str]) -> str:
    key = tuple(labels.items())
    text = _LABEL_TEXTS.get(key)
    if text is None:
        text = ",".join(f'{name}="{_escape_label(value)}"' for name, value in key)
        remember(_LABEL_TEXTS, LABEL_TEXTS_LIMIT, key, text)
    return text


def label_text(labels: Mapping[str, str]) -> str:
    """A label set as it appears between the braces of a sample line, escaped."""
    return _label_text(labels)


class Labels:
    """A label set rendered once, for samples of several families that share it (a
    command's calls, seconds, rejected and failed counters)."""

    __slots__ = ("text",)

    def __init__(self, labels: Mapping[str, str]) -> None:
        self.text = _label_text(labels)


class _Family:
    __slots__ = ("help", "kind", "lines")

    def __init__(self, help_text: str, kind: str) -> None:
        self.help = help_text
        self.kind = kind
        self.lines: list[str] = []


class Families:
    """Samples grouped into one family per name, in first-seen order.

    A topology scrape adds the samples of several nodes to the same families (each node's
    through a `with_labels` view), so a family is created once and appended to.
    """

    __slots__ = ("_extra", "_families")

    def __init__(self) -> None:
        self._families: dict[str, _Family] = {}
        self._extra = ""

    def with_labels(self, extra_labels: Mapping[str, str]) -> Families:
        """A view that adds `extra_labels` to every sample and shares the families."""
        view = Families()
        view._families = self._families
        extra = _label_text(extra_labels)
        view._extra = f"{self._extra},{extra}" if self._extra else extra
        return view

    def blank(self) -> Families:
        """An empty set of families with this view's extra labels (to format lines once
        and add them to several scrapes: ``contents`` then ``series(...).extend``)."""
        view = Families()
        view._extra = self._extra
        return view

    def contents(self) -> tuple[tuple[str, str, str, tuple[str, ...]], ...]:
        """(name, help, kind, sample lines) of every family, in order."""
        return tuple((n, f.help, f.kind, tuple(f.lines)) for n, f in self._families.items())

    @property
    def extra_label_text(self) -> str:
        """The rendered labels this view adds to every sample ("" for none)."""
        return self._extra

    def series(self, name: str, help_text: str, kind: str) -> list[str]:
        """The sample lines of a family, for a caller that formats many samples of it (a
        Redis with 200 commands has 800 command samples): append ``labelled(...)`` lines."""
        family = self._families.get(name)
        if family is None:
            family = self._families[name] = _Family(help_text, kind)
        return family.lines

    def label_text(self, labels: Mapping[str, str]) -> str:
        """The rendered label set, with this view's extra labels."""
        text = _label_text(labels)
        return f"{text},{self._extra}" if self._extra else text

    def declare(self, name: str, help_text: str, kind: str) -> None:
        """Create a family ahead of its samples, so it keeps its place and help text."""
        if name not in self._families:
            self._families[name] = _Family(help_text, kind)

    def add(
        self,
        name: str,
        help_text: str,
        kind: str,
        value: float,
        labels: Mapping[str, str] | Labels | None = None,
        sample_name: str | None = None,
    ) -> None:
        family = self._families.get(name)
        if family is None:
            family = self._families[name] = _Family(help_text, kind)
        if labels is None:
            label_text = ""
        elif type(labels) is Labels:
            label_text = labels.text
        else:
            label_text = _label_text(labels) if labels else ""  # type: ignore[arg-type]
        extra = self._extra
        if extra:
            label_text = f"{label_text},{extra}" if label_text else extra
        text = str(value) if type(value) is int else format_value(value)
        if label_text:
            family.lines.append(f"{sample_name or name}{{{label_text}}} {text}")
        else:
            family.lines.append(f"{sample_name or name} {text}")

    def add_text(self, name: str, help_text: str, kind: str, text: str) -> None:
        """A sample without labels whose value is already number text (INFO's integers)."""
        family = self._families.get(name)
        if family is None:
            family = self._families[name] = _Family(help_text, kind)
        extra = self._extra
        family.lines.append(f"{name}{{{extra}}} {text}" if extra else f"{name} {text}")

    def gauge(
        self,
        name: str,
        help_text: str,
        value: float,
        labels: Mapping[str, str] | Labels | None = None,
    ) -> None:
        self.add(name, help_text, "gauge", value, labels)

    def counter(
        self,
        name: str,
        help_text: str,
        value: float,
        labels: Mapping[str, str] | Labels | None = None,
    ) -> None:
        self.add(name, help_text, "counter", value, labels)

    def histogram(
        self,
        name: str,
        help_text: str,
        labels: Mapping[str, str],
        buckets: list[tuple[str, float]],
        total: float,
        count: float,
    ) -> None:
        """`name_bucket{le=...}` per (le, cumulative count), then `_sum` and `_count`.

        The label text is built once for all the series of one histogram: a fleet with a
        hundred locks publishes some 1,700 bucket samples per scrape.
        """
        family = self._families.get(name)
        if family is None:
            family = self._families[name] = _Family(help_text, "histogram")
        base = _label_text(labels) if labels else ""
        if self._extra:
            base = f"{base},{self._extra}" if base else self._extra
        sep = "," if base else ""
        lines = family.lines
        for le, value in buckets:
            lines.append(f'{name}_bucket{{{base}{sep}le="{le}"}} {format_value(value)}')
        suffix = f"{{{base}}}" if base else ""
        lines.append(f"{name}_sum{suffix} {format_value(total)}")
        lines.append(f"{name}_count{suffix} {format_value(count)}")

    def render_into(self, out: list[str]) -> None:
        for name, family in self._families.items():
            key = (name, family.help, family.kind)
            header = _HEADERS.get(key)
            if header is None:
                header = f"# HELP {name} {_escape_help(family.help)}\n# TYPE {name} {family.kind}"
                if len(_HEADERS) < 4096:  # the families are a fixed set; a bound all the same
                    _HEADERS[key] = header
            out.append(header)
            out.extend(family.lines)


_HEADERS: dict[tuple[str, str, str], str] = {}
"""HELP and TYPE lines by (name, help, kind), formatted once per process."""


class FamilySource(Protocol):
    """A collector of ours: builds `Families` at scrape time."""

    def families(self) -> Families: ...


_TYPES = {"counter", "gauge", "summary", "histogram", "untyped"}


def _render_metric(family: Metric, out: list[str]) -> None:
    name = family.name
    # prometheus_client names a counter family without `_total` and its samples with it.
    if family.type == "counter" and all(s.name != name for s in family.samples):
        name += "_total"
    out.append(f"# HELP {name} {_escape_help(family.documentation)}")
    out.append(f"# TYPE {name} {family.type if family.type in _TYPES else 'gauge'}")
    for sample in family.samples:
        labels = _label_text(sample.labels)
        value = format_value(sample.value)
        out.append(f"{sample.name}{{{labels}}} {value}" if labels else f"{sample.name} {value}")


def render(sources: Iterable[FamilySource | Collector]) -> bytes:
    """Text exposition of every family of every source, in order."""
    out: list[str] = []
    for source in sources:
        if hasattr(source, "families"):
            source.families().render_into(out)
        else:
            for family in source.collect():
                _render_metric(family, out)
    out.append("")
    return "\n".join(out).encode()
