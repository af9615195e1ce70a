"""`alerts/alertmanager.yaml`: routing and inhibitions for the shipped alerts, generated from the
cause -> symptom table (`memorywatch.causality`), so one incident pages once.

The file is a complete Alertmanager configuration (``amtool check-config`` passes on it), but
the part meant to be merged into an existing one is the route subtree (``route.routes[0]``:
every memorywatch alert, grouped per alert name and Redis deployment, critical to the pager,
warning to a ticket), the ``inhibit_rules`` and the receivers, whose URLs are placeholders.

Inhibitions, all restricted to memorywatch's alert names and to one Redis deployment
(``equal`` = the identity labels):

- while a cause fires, the symptoms the table gives it are inhibited, but only symptoms of the
  cause's severity or lower: a warning cause never hides a critical page;
- a critical alert inhibits the warning of the same name (RedisMemoryHigh at 90 % and at 80 %).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import yaml

from memorywatch import causality
from memorywatch.thresholds import SEVERITIES

ALERTMANAGER_FILE: Final = "alertmanager.yaml"

DEFAULT_IDENTITY_LABELS: Final = ("instance",)
"""Labels that name one Redis deployment on every memorywatch alert. ``instance`` is the
exporter's address: the master's Redis-health alerts and the fleet's alerts come from its
``/metrics``, and a replica scraped through ``/scrape?target=`` under another job keeps it,
while ``job`` differs (so ``job`` would keep RedisDown from inhibiting the replica's
RedisReplicationLinkDown). Where one exporter serves several deployments through
``/scrape``, relabel a label naming the deployment and pass it with ``--identity-label``."""

PAGER: Final = "memorywatch-pager"
TICKET: Final = "memorywatch-ticket"
NULL: Final = "memorywatch-null"
PLACEHOLDER_URLS: Final = {
    PAGER: "https://pager.example.invalid/REPLACE-ME",
    TICKET: "https://tickets.example.invalid/REPLACE-ME",
}


@dataclass(frozen=True)
class Timings:
    group_wait: str = "30s"
    """How long a new group waits before its first notification: the cause, which often
    arrives a scrape or an evaluation after its first symptom, gets there to inhibit it."""
    group_interval: str = "5m"
    pager_repeat: str = "4h"
    ticket_repeat: str = "24h"


DEMO_TIMINGS: Final = Timings(
    group_wait="2s", group_interval="1s", pager_repeat="1h", ticket_repeat="1h"
)
"""`memorywatch demo` and the end-to-end tests (the test profile: `for` in seconds, scrapes
and evaluations every second). group_wait is two evaluations, as 30 s is one or two of a
production Prometheus: a cause evaluated in another rule group than its symptom, or scraped
by another job (RedisDown and the replica's RedisReplicationLinkDown), arrives a second
later and still inhibits it."""


_LABEL_NAME: Final = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


@dataclass(frozen=True)
class RoutingConfig:
    identity_labels: tuple[str, ...] = DEFAULT_IDENTITY_LABELS
    timings: Timings = field(default_factory=Timings)

    def __post_init__(self) -> None:
        bad = [n for n in self.identity_labels if not _LABEL_NAME.fullmatch(n)]
        if not self.identity_labels or bad or "alertname" in self.identity_labels:
            raise ValueError(
                f"identity labels must be Prometheus label names other than alertname, "
                f"at least one: got {list(self.identity_labels)}"
            )


def _matcher(label: str, values: Sequence[str]) -> str:
    if len(values) == 1:
        return f'{label}="{values[0]}"'
    return f'{label}=~"{"|".join(values)}"'


def _levels_at_or_below(severity: str) -> tuple[str, ...]:
    return SEVERITIES[SEVERITIES.index(severity) :]


def inhibit_rules(
    severities: Mapping[str, tuple[str, ...]], identity: Sequence[str]
) -> list[tuple[str, dict[str, Any]]]:
    """(comment, rule) for every inhibition. ``severities``: alert name -> the severities it
    ships with; a name the rules do not (yet) ship is taken to have every severity."""

    def of(name: str) -> tuple[str, ...]:
        return tuple(s for s in SEVERITIES if s in severities.get(name, SEVERITIES))

    equal = list(identity)
    out: list[tuple[str, dict[str, Any]]] = []
    for edge in causality.EDGES:
        for level in of(edge.cause):
            allowed = _levels_at_or_below(level)
            targets = [s for s in edge.symptoms if set(of(s)) & set(allowed)]
            if not targets:
                continue
            rule = {
                "source_matchers": [_matcher("alertname", [edge.cause]), f'severity="{level}"'],
                "target_matchers": [_matcher("alertname", targets), _matcher("severity", allowed)],
                "equal": equal,
            }
            out.append((f"{edge.cause} ({level}): {edge.why}", rule))
    for level in SEVERITIES[:-1]:
        lower = list(_levels_at_or_below(level)[1:])
        names = [n for n in sorted(severities) if level in of(n) and set(of(n)) & set(lower)]
        if not names:
            continue
        rule = {
            "source_matchers": [_matcher("alertname", names), f'severity="{level}"'],
            "target_matchers": [_matcher("alertname", names), _matcher("severity", lower)],
            "equal": ["alertname", *equal],
        }
        out.append((f"the {level} alert of a name inhibits its {' and '.join(lower)} one", rule))
    return out


def route(alert_names: Sequence[str], routing: RoutingConfig) -> dict[str, Any]:
    """The subtree to merge: every memorywatch alert, by severity to pager, ticket or nothing."""
    timings = routing.timings
    return {
        "receiver": NULL,
        "matchers": [_matcher("alertname", sorted(alert_names))],
        "group_by": ["alertname", *routing.identity_labels],
        "group_wait": timings.group_wait,
        "group_interval": timings.group_interval,
        "repeat_interval": timings.pager_repeat,
        "routes": [
            {
                "receiver": PAGER,
                "matchers": ['severity="critical"'],
                "repeat_interval": timings.pager_repeat,
            },
            {
                "receiver": TICKET,
                "matchers": ['severity="warning"'],
                "repeat_interval": timings.ticket_repeat,
            },
        ],
    }


def receivers() -> list[dict[str, Any]]:
    return [
        {"name": name, "webhook_configs": [{"url": url}]} for name, url in PLACEHOLDER_URLS.items()
    ] + [{"name": NULL}]


def document(
    severities: Mapping[str, tuple[str, ...]], routing: RoutingConfig = RoutingConfig()
) -> dict[str, Any]:
    """The configuration as data (what the file holds, without its comments)."""
    names = sorted(set(severities) | causality.alerts_named())
    return {
        "route": {"receiver": NULL, "routes": [route(names, routing)]},
        "inhibit_rules": [
            rule for _why, rule in inhibit_rules(severities, routing.identity_labels)
        ],
        "receivers": receivers(),
    }


def with_webhooks(doc: Mapping[str, Any], urls: Sequence[str], timings: Timings) -> dict[str, Any]:
    """``doc`` with its pager and ticket receivers (and the root's, for anything else) posting
    to ``urls`` and the subtree's ``timings``: the demo's Alertmanager."""
    hooks = [{"url": url, "send_resolved": False} for url in urls]
    out = copy.deepcopy(dict(doc))
    subtree = out["route"]["routes"][0]
    subtree.update(
        group_wait=timings.group_wait,
        group_interval=timings.group_interval,
        repeat_interval=timings.pager_repeat,
    )
    for child in subtree["routes"]:
        child["repeat_interval"] = (
            timings.pager_repeat if child["receiver"] == PAGER else timings.ticket_repeat
        )
    out["route"].update(  # anything else (a test alert) goes to the same webhooks
        receiver="demo",
        group_wait=timings.group_wait,
        group_interval=timings.group_interval,
        repeat_interval=timings.pager_repeat,
    )
    out["receivers"] = [
        {"name": name, "webhook_configs": hooks} for name in (PAGER, TICKET, "demo")
    ] + [{"name": NULL}]
    return dict(out)


def _dump(data: Any, indent: str = "") -> str:
    text = yaml.safe_dump(data, sort_keys=False, width=1_000_000, default_flow_style=False)
    return "".join(indent + line if line.strip() else line for line in text.splitlines(True))


def _comment(text: str, indent: str = "") -> str:
    return f"{indent}# {text}\n"


def render(
    severities: Mapping[str, tuple[str, ...]],
    routing: RoutingConfig = RoutingConfig(),
    command: str = "memorywatch alerts generate",
) -> str:
    """The file: `document()` with comments saying what to merge and why each rule is there."""
    doc = document(severities, routing)
    identity = ", ".join(routing.identity_labels)
    parts = [
        f"# Generated by `{command}` from src/memorywatch/causality.py; do not edit.\n",
        "#\n",
        "# Alertmanager routing and inhibitions for the memorywatch alerts. A complete config\n",
        "# (`amtool check-config alerts/alertmanager.yaml`), but the part to merge into yours is:\n",
        "#   - route.routes[0], the memorywatch subtree: put it first under your root route's\n",
        "#     `routes:` (it matches only memorywatch's alert names);\n",
        "#   - every entry of inhibit_rules (Alertmanager applies them to all alerts; each one\n",
        "#     matches only memorywatch's alert names);\n",
        "#   - the receivers, or point the subtree's receivers at yours.\n",
        f"# equal: [{identity}] is one Redis deployment (`--identity-label`): a cause silences\n",
        "# only the symptoms of its own deployment.\n",
        "\n",
        _comment("Only the memorywatch subtree matters; the root exists for amtool check-config."),
        _dump({"route": doc["route"]}),
        "\n",
        _comment("While a cause fires, its symptoms (of its severity or lower) are inhibited."),
        "inhibit_rules:\n",
    ]
    for why, rule in inhibit_rules(severities, routing.identity_labels):
        parts.append(_comment(why, "  "))
        parts.append(_dump([rule], "  "))
    parts += [
        "\n",
        _comment("Placeholders: replace each URL with your pager's and ticket system's webhook"),
        _comment("(or swap webhook_configs for pagerduty_configs, opsgenie_configs, ...)."),
        _comment(f"{NULL} receives info alerts and sends nothing."),
        _dump({"receivers": doc["receivers"]}),
    ]
    return "".join(parts)


def severities_of(rules: Iterable[tuple[str, str]]) -> dict[str, tuple[str, ...]]:
    """(alert, severity) pairs -> alert -> its severities, in SEVERITIES order."""
    found: dict[str, set[str]] = {}
    for alert, severity in rules:
        found.setdefault(alert, set()).add(severity)
    return {a: tuple(s for s in SEVERITIES if s in levels) for a, levels in found.items()}
