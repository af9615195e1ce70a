"""names.py holds every published metric name: a name typed anywhere else in src/ fails here.

A metric name retyped in a producer, an alert or a panel drifts silently when one of them
is renamed (the alert then selects nothing and never fires); importing the constant makes
the rename an import error instead.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import memorywatch
from memorywatch import names, thresholds

SRC = Path(memorywatch.__file__).parent
METRIC_SHAPE = re.compile(r"(?:redis|memorywatch|db_client|gen_ai)_[a-z0-9_]+")
PUBLISHED = names.METRICS
NOT_METRICS = {t.name for t in thresholds.DEFAULTS} | {
    *names.INSTANCE_INFO_LABELS,
    names.LABEL_REDIS_PY_VERSION,
}
"""Strings shaped like metric names that are not: threshold keys, INFO fields, a label."""


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list):
            for stmt in body:
                if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
                    found.add(id(stmt.value))
    return found


def offences(source: str) -> list[tuple[int, str]]:
    """(line, name) of each metric name written as a literal: a whole string shaped like one
    (a new name not in names.py), or a published name inside any string (PromQL, help)."""
    tree = ast.parse(source)
    skip = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Constant) or not isinstance(node.value, str):
            continue
        if id(node) in skip:
            continue
        text = node.value
        words = [w for w in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", text) if w in PUBLISHED]
        if METRIC_SHAPE.fullmatch(text) and text not in NOT_METRICS and text not in words:
            words.append(text)
        found += [(node.lineno, word) for word in words]
    return sorted(found)


def test_no_metric_name_is_typed_outside_names_py() -> None:
    found = [
        f"{path.relative_to(SRC.parent)}:{line}: {word}"
        for path in sorted(SRC.rglob("*.py"))
        if path.name != "names.py"
        for line, word in offences(path.read_text(encoding="utf-8"))
    ]
    assert not found, "import the memorywatch.names constant instead:\n" + "\n".join(found)


def test_the_check_finds_retyped_and_new_names() -> None:
    source = (
        '"""A docstring may name redis_up."""\n'
        'EXPR = "rate(redis_evicted_keys_total[5m]) > 0"\n'
        'NEW = "memorywatch_widgets_total"\n'
        'OK = "redis_down"\n'
    )
    assert offences(source) == [(2, "redis_evicted_keys_total"), (3, "memorywatch_widgets_total")]
