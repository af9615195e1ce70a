"""The Python blocks of docs/integrations-langgraph-runs.md (the README's LangGraph runs
example) run as a user would paste them, in a fresh interpreter, against a real Redis; the
only change is the Redis URL."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness import RedisServer

DOC = Path(__file__).resolve().parents[2] / "docs" / "integrations-langgraph-runs.md"
DOC_URL = "redis://127.0.0.1:6379"
BLOCKS = re.findall(r"^```python\n(.*?)^```$", DOC.read_text(), re.MULTILINE | re.DOTALL)


def test_the_doc_has_its_example() -> None:
    assert len(BLOCKS) == 1, "the LangGraph runs example is gone (or another block was added)"


@pytest.mark.slow
@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_doc_block_runs(block: str, server: RedisServer) -> None:
    assert DOC_URL in block, "the example must use the README's Redis URL"
    code = block.replace(DOC_URL, server.url)
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, f"the example failed:\n{code}\n--- stderr ---\n{proc.stderr}"
    with server.client() as client:  # it reached Redis: the run's record is there
        assert client.hget("mw:schema", "version") == "2"
        assert any(client.scan_iter("mw:*:tool:lgreq:conv-42:req-1", count=1000))
