"""The SDK stays light: redis and opentelemetry-api only."""

from __future__ import annotations

import subprocess
import sys


def test_agent_does_not_import_exporter_stack() -> None:
    # redis-py 8 itself imports parts of opentelemetry.sdk (redis.observability), so the SDK
    # check compares with what `import redis` alone loads.
    code = (
        "import sys, redis, redis.asyncio, redis.cluster; "
        "base = {m for m in sys.modules if m.startswith('opentelemetry.sdk')}; "
        "import memorywatch.agent, memorywatch.agent.aio; "
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('prometheus_client', 'grafanalib', 'click')] "
        "+ [m for m in sys.modules if m.startswith('opentelemetry.sdk') and m not in base]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_script_declares_its_contract() -> None:
    from memorywatch.agent import _values

    for name, text in _values.SCRIPT_TEXTS.items():
        assert text.startswith("#!lua"), name
        assert "KEYS[1]" in text and "Returns" in text, name
