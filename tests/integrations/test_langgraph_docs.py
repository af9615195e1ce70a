"""Every Python block of docs/integrations.md's LangGraph section runs, as a user would paste
it, in a fresh interpreter against a real Redis (only the Redis URL is changed)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness import RedisServer

DOC = Path(__file__).resolve().parents[2] / "docs" / "integrations.md"
DOC_URL = "redis://127.0.0.1:6379"
SECTION = re.search(r"^## LangGraph\n(.*?)(?=^## |\Z)", DOC.read_text(), re.M | re.S)
BLOCKS = re.findall(r"^```python\n(.*?)^```$", SECTION.group(1) if SECTION else "", re.M | re.S)


def test_the_section_has_its_examples() -> None:
    assert len(BLOCKS) >= 2, "docs/integrations.md lost its LangGraph examples"


@pytest.mark.slow
@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_doc_block_runs(block: str, server: RedisServer) -> None:
    assert DOC_URL in block, "a docs block must use the docs' Redis URL"
    code = block.replace(DOC_URL, server.url)
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, f"the docs block failed:\n{code}\n--- stderr ---\n{proc.stderr}"
