"""Every Python block of the README runs, as a user would paste it, against a real Redis.

Each block runs in a fresh interpreter; the only change is the Redis URL, the README's
``redis://127.0.0.1:6379`` pointed at this test's server. A block that stops matching the
API fails here, not in a new user's terminal.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from harness import RedisServer

README = Path(__file__).resolve().parents[2] / "README.md"
README_URL = "redis://127.0.0.1:6379"
BLOCKS = re.findall(r"^```python\n(.*?)^```$", README.read_text(), re.MULTILINE | re.DOTALL)


def test_the_readme_has_python_blocks() -> None:
    assert len(BLOCKS) >= 2, "the README's SDK examples are gone"


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_block_runs(block: str, server: RedisServer, raw: redis.Redis) -> None:
    assert README_URL in block, "a README block must use the README's Redis URL"
    raw.flushall()
    code = block.replace(README_URL, server.url)
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, f"the README block failed:\n{code}\n--- stderr ---\n{proc.stderr}"
    assert raw.hget("mw:schema", "version") == "2"  # it did reach Redis
