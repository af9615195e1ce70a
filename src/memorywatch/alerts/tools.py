"""Tools: every tool call runs once per idempotency key, finishes, and leaves a record with a TTL."""

from __future__ import annotations

from memorywatch import names, queries, schema
from memorywatch.alerts._build import (
    WINDOW,
    above_probe,
    alert,
    any_increase_probe,
    fire_level,
    num,
    ratio_probe,
)
from memorywatch.alerts.model import (
    DASHBOARD_LOCKS_TOOLS,
    AlertsConfig,
    RuleGroup,
    series_selector,
)

TOOL = "send_email"


def group(cfg: AlertsConfig) -> RuleGroup:
    tool = {names.LABEL_TOOL: TOOL}
    status = names.LABEL_STATUS
    dup = cfg.t("tool_duplicate_calls")
    dup_level = dup.number() * 2 if dup.number() else 1
    suppressed = series_selector(names.TOOL_DUPLICATES_SUPPRESSED, **tool)
    executed = series_selector(
        names.TOOL_EXECUTIONS, **tool, **{status: schema.TOOL_STATUS_COMPLETED}
    )
    stuck = cfg.t("tool_stuck_in_progress")
    orphaned = cfg.t("tool_orphaned")
    no_ttl = cfg.t("records_without_ttl")
    key_class = {
        names.LABEL_PROFILE: "langgraph",
        names.LABEL_KEY_CLASS: names.KEY_CLASS_CHECKPOINT,
    }
    return RuleGroup(
        "memorywatch-tools",
        alerts=(
            alert(
                cfg,
                "tool_duplicate_execution",
                expr=f"increase({names.TOOL_DUPLICATE_EXECUTIONS}[{WINDOW}])"
                f" > {num(cfg.t('tool_duplicate_execution').number())}",
                summary="A tool call ran twice for one idempotency key.",
                description="Tool $labels.tool executed $value duplicate times in the last "
                "5 minutes: a side effect (payment, message, ticket) may have happened twice.",
                value_format="count",
                dashboard=DASHBOARD_LOCKS_TOOLS,
                probe=any_increase_probe(
                    cfg, "tool_duplicate_execution", names.TOOL_DUPLICATE_EXECUTIONS, tool
                ),
            ),
            alert(
                cfg,
                "tool_duplicate_calls",
                expr=f"sum without ({status}) "
                f"(increase({names.TOOL_DUPLICATES_SUPPRESSED}[{WINDOW}])) / "
                f"sum without ({status}) (increase({names.TOOL_EXECUTIONS}[{WINDOW}]))"
                f" > {num(dup.number())}",
                summary="Agents retry tool calls far more than usual.",
                description="Tool $labels.tool got $value as many suppressed duplicate calls "
                f"as executions over the last 5 minutes (threshold {dup.human_value()}): a retry "
                "storm.",
                value_format="percentage",
                dashboard=DASHBOARD_LOCKS_TOOLS,
                probe=ratio_probe(suppressed, executed, dup, dup_level, tool),
            ),
            alert(
                cfg,
                "tool_stuck_in_progress",
                expr=f"{names.TOOL_OLDEST_IN_PROGRESS} > {num(stuck.number())}",
                summary="A tool call has been in progress for too long.",
                description="The oldest in-progress tool record has been running for $value "
                f"(threshold {stuck.human_value()}); retries of that call are being refused.",
                value_format="duration",
                dashboard=DASHBOARD_LOCKS_TOOLS,
                probe=above_probe(
                    names.TOOL_OLDEST_IN_PROGRESS,
                    stuck,
                    fire_level(cfg, "tool_stuck_in_progress"),
                    healthy=5,
                ),
            ),
            alert(
                cfg,
                "tool_orphaned",
                expr=f"{queries.orphaned_tool_calls()} > {num(orphaned.number())}",
                summary="A tool call's holder died mid-call: its outcome is unknown.",
                description="$value calls of tool $labels.tool are in progress under an "
                "instance that stopped heartbeating: their side effect may or may not have "
                "happened, and a retry after the deadline runs it again.",
                value_format="count",
                dashboard=DASHBOARD_LOCKS_TOOLS,
                probe=above_probe(
                    series_selector(names.TOOL_CALLS_ORPHANED, **tool),
                    orphaned,
                    fire_level(cfg, "tool_orphaned"),
                    tool,
                ),
            ),
            alert(
                cfg,
                "records_without_ttl",
                expr=f"{queries.records_without_ttl()} > {num(no_ttl.number())}",
                summary="Agent state that must expire is written without a TTL.",
                description="The keyspace sample found $value $labels.key_class keys of profile "
                "$labels.profile without a TTL: they never expire, volatile-* eviction never "
                "frees them, and Redis grows until maxmemory.",
                value_format="count",
                dashboard=DASHBOARD_LOCKS_TOOLS,
                probe=above_probe(
                    series_selector(names.KEYS_WITHOUT_TTL, **key_class),
                    no_ttl,
                    no_ttl.number() + 1,
                    key_class,
                ),
            ),
        ),
    )
