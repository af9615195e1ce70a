"""The examples of docs/integrations.md's OpenAI Agents SDK and LangChain sections (the README's
examples for these frameworks) run, as a user would paste them, against a real Redis.

Each ``python`` block runs in a fresh interpreter; the only change is the Redis URL, the page's
``redis://127.0.0.1:6379`` pointed at this test's server.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from harness import RedisServer

PAGE = Path(__file__).resolve().parents[2] / "docs" / "integrations.md"
URL = "redis://127.0.0.1:6379"
SECTIONS = ("## OpenAI Agents SDK", "## LangChain")


def blocks(section: str) -> list[str]:
    text = PAGE.read_text()
    start = text.index(f"\n{section}\n")
    end = text.find("\n## ", start + 1)
    body = text[start : end if end > 0 else len(text)]
    return re.findall(r"^```python\n(.*?)^```$", body, re.MULTILINE | re.DOTALL)


BLOCKS = [(section, i, block) for section in SECTIONS for i, block in enumerate(blocks(section))]


def test_each_framework_has_an_example() -> None:
    assert {section for section, _, _ in BLOCKS} == set(SECTIONS)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("section", "n", "block"), BLOCKS, ids=[f"{s[3:]}-{n}" for s, n, _ in BLOCKS]
)
def test_example_runs(section: str, n: int, block: str, server: RedisServer) -> None:
    assert URL in block, "an example must use the page's Redis URL"
    raw: redis.Redis = server.client()
    raw.flushall()
    code = block.replace(URL, server.url)
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, f"the example failed:\n{code}\n--- stderr ---\n{proc.stderr}"
    assert raw.hget("mw:schema", "version") == "2"  # it did reach Redis
    (key,) = raw.keys("mw:*:hist:*")  # the conversation is in Redis, with a TTL
    assert raw.llen(key) >= 2 and raw.ttl(key) > 0
    assert proc.stdout.strip(), "the example prints what it read back"
    raw.close()
