"""deploy/kubernetes/agent-example: probes on the SDK's routes, scaling on the generated records."""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterable
from typing import Any

from deploy_helpers import AGENT, ALERTS, EXPORTER, Doc, container, load_one, parse_exporter_args

from memorywatch import schema
from memorywatch.agent import AgentState, ReadyReport
from memorywatch.agent.health import LIVEZ, READYZ, wsgi_app
from memorywatch.alerts.fleet import RECORD_QUEUE_PER_READY, RECORD_REDIS_CLIENTS, RECORD_TURN_P95
from memorywatch.thresholds import Thresholds

REDIS_DEFAULT_MAXCLIENTS = 10_000
RECORD_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*:[a-zA-Z0-9_:]+")
"""Recording rule names have colons (level:metric:operations); raw metric names never do."""


def generated_records() -> set[str]:
    rules = load_one(ALERTS / "memorywatch.rules.yaml")
    return {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}


def agent_deployment() -> Doc:
    return load_one(AGENT / "base" / "deployment.yaml")


def agent_container() -> Doc:
    return container(agent_deployment(), "agent")


def scaled_object() -> Doc:
    return load_one(AGENT / "keda" / "scaledobject.yaml")


def hpa() -> Doc:
    return load_one(AGENT / "hpa" / "hpa.yaml")


def adapter_rules() -> dict[str, Doc]:
    """prometheus-adapter external rules by the External metric name they serve."""
    values = load_one(AGENT / "hpa" / "prometheus-adapter-values.yaml")
    return {rule["name"]["as"]: rule for rule in values["rules"]["external"]}


def hpa_metrics() -> dict[str, Doc]:
    return {m["external"]["metric"]["name"]: m["external"] for m in hpa()["spec"]["metrics"]}


def records_in(queries: Iterable[str]) -> set[str]:
    return {name for q in queries for name in RECORD_NAME.findall(q)}


def exporter_queues() -> list[str]:
    exporter = container(load_one(EXPORTER / "exporter-deployment.yaml"), "exporter")
    return parse_exporter_args(exporter["args"]).get("--queue", [])


def default_pool_size() -> int:
    default = inspect.signature(AgentState.from_url).parameters["max_connections"].default
    assert isinstance(default, int)
    return default


def number(value: Any) -> float:
    return float(value)


def test_generator_records_are_in_the_committed_rule_file() -> None:
    wanted = {RECORD_QUEUE_PER_READY, RECORD_REDIS_CLIENTS, RECORD_TURN_P95}
    assert wanted <= generated_records()


def test_keda_queries_only_generated_records() -> None:
    (trigger,) = scaled_object()["spec"]["triggers"]
    assert trigger["type"] == "prometheus"
    assert records_in([trigger["metadata"]["query"]]) == {RECORD_QUEUE_PER_READY}


def test_keda_trigger_treats_the_signal_as_per_instance_and_holds_when_blind() -> None:
    spec = scaled_object()["spec"]
    (trigger,) = spec["triggers"]
    assert trigger["metricType"] == "Value", "the record is per ready instance already"
    assert trigger["metadata"]["ignoreNullValues"] == "false", "no series must not read as 0"
    assert "fallback" not in spec, "KEDA applies fallback to AverageValue triggers only"


def test_keda_threshold_is_below_the_backlog_alert() -> None:
    (trigger,) = scaled_object()["spec"]["triggers"]
    alert_at = Thresholds()["queue_per_ready_instance"].number()
    assert 0 < number(trigger["metadata"]["threshold"]) < alert_at


def test_scaled_queue_is_one_the_exporter_reports() -> None:
    (trigger,) = scaled_object()["spec"]["triggers"]
    (queue,) = re.findall(r'queue="([^"]+)"', trigger["metadata"]["query"])
    assert queue in exporter_queues()
    selector = hpa_metrics()["memorywatch_queue_length_per_ready_instance"]["metric"]["selector"]
    assert selector["matchLabels"]["queue"] in exporter_queues()


def test_hpa_metrics_are_adapter_rules_on_generated_records() -> None:
    rules = adapter_rules()
    assert set(hpa_metrics()) == set(rules)
    for name, rule in rules.items():
        assert rule["resources"]["namespaced"] is False, name
        assert "<<.Series>>" in rule["metricsQuery"], name
    served = records_in(rule["seriesQuery"] for rule in rules.values())
    assert served == {RECORD_QUEUE_PER_READY, RECORD_REDIS_CLIENTS, RECORD_TURN_P95}
    assert served <= generated_records()


def test_hpa_targets_follow_the_thresholds_and_the_sdk() -> None:
    metrics = hpa_metrics()
    by_record = {
        records_in([adapter_rules()[name]["seriesQuery"]]).pop(): target["target"]
        for name, target in metrics.items()
    }
    (keda,) = scaled_object()["spec"]["triggers"]
    queue = by_record[RECORD_QUEUE_PER_READY]
    assert queue["type"] == "Value"
    assert number(queue["value"]) == number(keda["metadata"]["threshold"])

    clients = by_record[RECORD_REDIS_CLIENTS]
    assert clients["type"] == "AverageValue", "a fleet-wide count, divided by the replicas"
    pool_used = Thresholds()["client_pool_used"].number()
    assert number(clients["averageValue"]) == pool_used * default_pool_size()

    turn = by_record[RECORD_TURN_P95]
    assert turn["type"] == "Value"
    assert number(turn["value"]) in schema.TURN_BUCKETS[:-1], (
        "histogram_quantile interpolates inside buckets and cannot exceed the last one"
    )


def test_replica_ceiling_stays_below_redis_maxclients() -> None:
    for spec_max in (hpa()["spec"]["maxReplicas"], scaled_object()["spec"]["maxReplicaCount"]):
        assert spec_max * default_pool_size() < REDIS_DEFAULT_MAXCLIENTS


def test_autoscalers_target_the_example_deployment() -> None:
    deployment = agent_deployment()
    want = {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment["metadata"]["name"]}
    assert scaled_object()["spec"]["scaleTargetRef"] == want
    assert hpa()["spec"]["scaleTargetRef"] == want


def test_keda_and_hpa_are_separate_overlays_of_one_base() -> None:
    keda = load_one(AGENT / "keda" / "kustomization.yaml")
    plain = load_one(AGENT / "hpa" / "kustomization.yaml")
    assert keda["resources"] == ["../base", "scaledobject.yaml"]
    assert plain["resources"] == ["../base", "hpa.yaml"]
    assert keda["namespace"] == plain["namespace"]


def test_agent_probes_are_the_sdk_health_routes() -> None:
    agent = agent_container()
    ports = {p["name"]: p["containerPort"] for p in agent["ports"]}
    readiness = agent["readinessProbe"]
    liveness = agent["livenessProbe"]
    assert readiness["httpGet"]["path"] == READYZ
    assert liveness["httpGet"]["path"] == LIVEZ
    assert readiness["httpGet"]["port"] == liveness["httpGet"]["port"] == "health"
    assert "health" in ports and ports["health"] != ports.get("http")
    deadline = inspect.signature(wsgi_app).parameters["deadline"].default
    assert readiness["timeoutSeconds"] > deadline


class _State:
    """What the health app needs of an AgentState: a `ready()` that counts its calls."""

    def __init__(self, ready: bool) -> None:
        self.calls = 0
        self.is_ready = ready

    def ready(self, deadline: float = 1.0) -> ReadyReport:
        self.calls += 1
        return ReadyReport(self.is_ready, self.is_ready, self.is_ready, False, 0.001, deadline)


def _get(state: _State, path: str) -> str:
    statuses: list[str] = []
    app = wsgi_app(state)
    b"".join(app({"PATH_INFO": path}, lambda status, headers: statuses.append(status)))
    return statuses[0]


def test_liveness_route_never_asks_redis_and_readiness_does() -> None:
    """Why the probes are split: a Redis outage makes the fleet unready, never restarts it."""
    down = _State(ready=False)
    assert _get(down, LIVEZ).startswith("200")
    assert down.calls == 0
    assert _get(down, READYZ).startswith("503")
    assert _get(_State(ready=True), READYZ).startswith("200")


def test_scale_down_grace_covers_a_tool_call() -> None:
    grace = agent_deployment()["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > max(schema.DEFAULT_LOCK_TTL, schema.DEFAULT_TOOL_DEADLINE)
