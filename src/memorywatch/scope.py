"""Where the generated PromQL looks: a cluster label and the exporter's selector.

One Prometheus per cluster needs neither. Behind Thanos, Mimir or any Prometheus that holds
several clusters, every rule must keep the cluster label through its aggregations and joins
(or alerts of two clusters merge), and every dashboard query must be restricted to the cluster
picked in its ``$cluster`` variable. The rule and query builders write plain PromQL; `Scope`
rewrites it afterwards, so a builder cannot forget a clause:

- every vector selector gets the selector's matchers (and, in dashboards, the cluster's);
- every ``by (...)`` and ``on (...)`` gets the kept labels (the cluster label and the
  selector's labels), and an aggregation without a grouping clause gets ``by (kept)``;
- ``without`` and ``ignoring`` keep them already, unless they name one (an error);
- ``absent()`` would drop the cluster label, so it is refused while one is set.

With neither a cluster label nor a selector, `Scope.apply` returns its input unchanged, which
keeps the default generated files byte for byte what they were.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

LABEL_NAME: Final = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
CLUSTER_VAR: Final = "cluster"
"""The dashboards' template variable holding the picked cluster."""

_MATCHER: Final = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\\n]|\\.)*)"\s*')

_TOKEN: Final = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<braces>\{(?:[^{}"']|"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')*\})
  | (?P<range>\[[^\]]*\])
  | (?P<duration>(?:\d+(?:ms|[smhdwy]))+(?![a-zA-Z0-9_:]))
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)
  | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)

AGGREGATIONS: Final = frozenset(
    {
        "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
        "bottomk", "topk", "quantile",
    }
)  # fmt: skip
_KEEPING_CLAUSES: Final = frozenset({"by", "on"})
_DROPPING_CLAUSES: Final = frozenset({"without", "ignoring"})
_LABEL_LIST_CLAUSES: Final = _KEEPING_CLAUSES | _DROPPING_CLAUSES | {"group_left", "group_right"}
_KEYWORDS: Final = frozenset({"and", "or", "unless", "bool", "offset", "inf", "nan", "atan2"})
_ABSENT: Final = frozenset({"absent", "absent_over_time"})


class ScopeError(ValueError):
    """A cluster label, a selector or an expression the scope cannot handle."""


def parse_selector(text: str) -> tuple[tuple[str, str], ...]:
    """``job="memorywatch",namespace="agents"`` -> ((job, memorywatch), (namespace, agents)).

    Only equality matchers: the generated promtool tests give their input series these labels,
    which a regular expression would not name."""
    text = text.strip().removeprefix("{").removesuffix("}")
    if not text.strip():
        return ()
    pairs: list[tuple[str, str]] = []
    for part in _split_matchers(text):
        match = _MATCHER.fullmatch(part)
        if match is None:
            raise ScopeError(f'selector: {part.strip()!r} is not label="value" (only = is allowed)')
        pairs.append((match.group(1), match.group(2)))
    labels = [label for label, _ in pairs]
    if len(set(labels)) != len(labels):
        raise ScopeError(f"selector: a label is matched twice in {text!r}")
    return tuple(pairs)


def _split_matchers(text: str) -> list[str]:
    parts, current, quoted, escaped = [], "", False, False
    for char in text:
        if char == "," and not quoted:
            parts.append(current)
            current = ""
            continue
        current += char
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
    parts.append(current)
    return parts


@dataclass(frozen=True)
class Scope:
    """How generated PromQL is scoped. The default scopes nothing."""

    cluster_label: str | None = None
    selector: tuple[tuple[str, str], ...] = ()
    """Equality matchers every metric selector gets (e.g. the exporter's job)."""

    def __post_init__(self) -> None:
        label = self.cluster_label
        if label is not None and (not LABEL_NAME.fullmatch(label) or label.startswith("__")):
            raise ScopeError(f"cluster label: {label!r} is not a Prometheus label name")
        if label is not None and label in dict(self.selector):
            raise ScopeError(f"cluster label: {label!r} is also matched by the selector")

    @property
    def kept_labels(self) -> tuple[str, ...]:
        """Labels every aggregation and join of a rule keeps."""
        cluster = (self.cluster_label,) if self.cluster_label else ()
        return cluster + tuple(label for label, _ in self.selector)

    @property
    def matchers(self) -> tuple[str, ...]:
        return tuple(f'{label}="{value}"' for label, value in self.selector)

    def rule(self, expr: str) -> str:
        """A rule's expression: selected by the selector, keeping the cluster label (rules
        evaluate over every cluster at once)."""
        if not self.cluster_label and not self.selector:
            return expr
        return rewrite(
            expr, self.matchers, self.kept_labels, refuse_absent=bool(self.cluster_label)
        )

    def panel(self, expr: str) -> str:
        """A dashboard query: selected by the selector and the ``$cluster`` variable (one
        cluster at a time, so its aggregations need not keep the label)."""
        if not self.cluster_label and not self.selector:
            return expr
        return rewrite(expr, self.panel_matchers, ())

    @property
    def panel_matchers(self) -> tuple[str, ...]:
        cluster = (f'{self.cluster_label}=~"${CLUSTER_VAR}"',) if self.cluster_label else ()
        return cluster + self.matchers


def rewrite(
    expr: str, matchers: Sequence[str], keep: Sequence[str], refuse_absent: bool = False
) -> str:
    """``expr`` with ``matchers`` in every vector selector and ``keep`` in every grouping
    and every ``on`` join (see the module doc)."""
    tokens = [(m.lastgroup or "other", m.group()) for m in _TOKEN.finditer(expr)]
    out: list[str] = []
    i = 0
    while i < len(tokens):
        kind, text = tokens[i]
        if kind == "braces":
            out.append(_add_matchers(text, matchers))
        elif kind == "name":
            lowered = text.lower()
            nxt = _next(tokens, i + 1)
            if lowered in _LABEL_LIST_CLAUSES and nxt is not None and tokens[nxt][1] == "(":
                end = _closing(tokens, nxt)
                labels = _labels_in(tokens[nxt + 1 : end], expr)
                out.append(text + "".join(t for _, t in tokens[i + 1 : nxt]))
                out.append(_label_list(lowered, labels, keep, expr))
                i = end + 1
                continue
            if lowered in _KEYWORDS or (
                lowered in AGGREGATIONS
                and nxt is not None
                and tokens[nxt][1].lower() in ("by", "without")
            ):
                out.append(text)
            elif nxt is not None and tokens[nxt][1] == "(":
                if refuse_absent and lowered in _ABSENT:
                    raise ScopeError(
                        f"{text}() drops the cluster label; write the rule without it: {expr}"
                    )
                out.append(text)
                if keep and lowered in AGGREGATIONS and not _grouped(tokens, nxt):
                    out.append(f" by ({', '.join(keep)})")
            else:
                out.append(text)
                if nxt is not None and tokens[nxt][0] == "braces":
                    out.extend(t for _, t in tokens[i + 1 : nxt])
                    out.append(_add_matchers(tokens[nxt][1], matchers))
                    i = nxt + 1
                    continue
                if matchers:
                    out.append("{" + ",".join(matchers) + "}")
        else:
            out.append(text)
        i += 1
    return "".join(out)


def _next(tokens: Sequence[tuple[str, str]], start: int) -> int | None:
    for j in range(start, len(tokens)):
        if tokens[j][0] != "space":
            return j
    return None


def _closing(tokens: Sequence[tuple[str, str]], opening: int) -> int:
    depth = 0
    for j in range(opening, len(tokens)):
        if tokens[j][1] == "(":
            depth += 1
        elif tokens[j][1] == ")":
            depth -= 1
            if depth == 0:
                return j
    raise ScopeError("unbalanced parentheses in PromQL")


def _grouped(tokens: Sequence[tuple[str, str]], opening: int) -> bool:
    """Whether the aggregation whose argument list opens at ``opening`` has a grouping clause
    after it (``sum (x) by (l)``); a clause before it is seen by its own token."""
    after = _next(tokens, _closing(tokens, opening) + 1)
    return after is not None and tokens[after][1].lower() in ("by", "without")


def _labels_in(tokens: Sequence[tuple[str, str]], expr: str) -> list[str]:
    labels = [text for kind, text in tokens if kind == "name"]
    if any(kind not in ("name", "space") and text != "," for kind, text in tokens):
        raise ScopeError(f"unexpected label list in {expr}")
    return labels


def _label_list(clause: str, labels: list[str], keep: Sequence[str], expr: str) -> str:
    if clause in _DROPPING_CLAUSES and set(labels) & set(keep):
        raise ScopeError(f"{clause} ({', '.join(labels)}) drops a kept label in {expr}")
    if clause in _KEEPING_CLAUSES:
        labels = labels + [label for label in keep if label not in labels]
    return "(" + ", ".join(labels) + ")"


def _add_matchers(braces: str, matchers: Sequence[str]) -> str:
    inner = braces[1:-1].strip()
    present = {part.strip() for part in _split_matchers(inner)} if inner else set()
    added = [m for m in matchers if m not in present]
    if not added:
        return braces
    return "{" + ",".join(([inner] if inner else []) + added) + "}"
