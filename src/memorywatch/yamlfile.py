"""Reading a user's YAML file into one-line errors (thresholds, key profiles)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def load_yaml(path: Path | str, source: str, error: type[Exception]) -> Any:
    """The document at `path`; an unreadable file or bad YAML raises `error` with one line
    that starts with `source` (never a traceback, never the file's contents)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise error(f"{source}: cannot read: {detail}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise error(f"{source}: invalid YAML{where}: {problem}") from None
