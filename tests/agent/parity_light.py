"""Run by test_agent_light_install.py with the interpreter of a virtual environment holding
``pip install memorywatch`` alone: ``python parity_light.py REDIS_URL CASE...`` imports the
SDK, runs those parity scenarios (parity_scenarios.CASES) on both clients (no tracer provider: the API's no-op one, which is what
an agent without an OpenTelemetry SDK gets) and prints, as JSON, what each run noted and left
in Redis, and which modules outside the standard library the SDK's import loaded."""

from __future__ import annotations

import json
import sys

before = set(sys.modules)
import memorywatch.agent  # noqa: E402
import memorywatch.agent.aio  # noqa: E402

loaded = sorted(m for m in sys.modules if m not in before)

import redis  # noqa: E402
from parity import FLAVOURS, run_one  # noqa: E402
from parity_scenarios import CASES  # noqa: E402


def main(url: str, names: list[str]) -> None:
    raw = redis.Redis.from_url(url, decode_responses=True)
    cases = {}
    for name in names:
        scenario, settings = CASES[name]
        options = memorywatch.agent.Settings(**settings) if settings else None
        cases[name] = [
            {"namespace": o.namespace, "log": o.log, "state": o.state}
            for o in (run_one(flavour, url, raw, scenario, options) for flavour in FLAVOURS)
        ]
    raw.close()
    json.dump({"loaded": loaded, "cases": cases}, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
