"""Every Python block of the README and of docs/*.md runs, as a user would paste it, against a
real Redis.

Each block runs in a fresh interpreter; the only change is the Redis URL, the documents'
``redis://127.0.0.1:6379`` pointed at this test's server. A block that stops matching the API
fails here, not in a new user's terminal. The pages are found by glob, so a new page is covered
the day it lands. A block that imports a framework this environment lacks (an integration's
extra) is skipped, naming the module and the page; memorywatch's own modules are never a reason
to skip.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from harness import RedisServer

ROOT = Path(__file__).resolve().parents[2]
DOC_URL = "redis://127.0.0.1:6379"
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def _blocks() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        text = page.read_text()
        for match in FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found.append((f"{page.relative_to(ROOT)}:{line}", match.group(1)))
    return found


BLOCKS = _blocks()


def _missing_modules(code: str) -> list[str]:
    """Top-level imports of ``code``, other than memorywatch's, that this interpreter lacks."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    missing = []
    for name in sorted(names):
        if name.split(".")[0] == "memorywatch":
            continue
        try:
            spec = importlib.util.find_spec(name)
        except ModuleNotFoundError:
            spec = None
        if spec is None:
            missing.append(name)
    return missing


def test_the_readme_and_the_sdk_page_have_python_blocks() -> None:
    pages = {where.split(":")[0] for where, _ in BLOCKS}
    assert {"README.md", "docs/sdk.md"} <= pages, "the SDK examples are gone"


@pytest.mark.slow  # a fresh interpreter per block: 2-3 s each
@pytest.mark.parametrize("block", [b for _, b in BLOCKS], ids=[w for w, _ in BLOCKS])
def test_doc_block_runs(block: str, server: RedisServer, raw: redis.Redis) -> None:
    missing = _missing_modules(block)
    if missing:
        pytest.skip(f"needs {', '.join(missing)}, not installed here")
    raw.flushall()
    code = block.replace(DOC_URL, server.url)
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, f"the block failed:\n{code}\n--- stderr ---\n{proc.stderr}"
    if DOC_URL in block:  # it did reach Redis, and the SDK's writes carry today's schema
        assert raw.dbsize() > 0
        if "memorywatch.agent" in block:
            schemas = list(raw.scan_iter(match="*:schema", count=1000))
            assert schemas and all(raw.hget(key, "version") == "2" for key in schemas)
