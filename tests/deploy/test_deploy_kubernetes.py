"""deploy/kubernetes: every kustomization renders and validates; ports, flags, files, labels are the code's."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import jsonschema
import pytest
from click.testing import CliRunner
from deploy_helpers import (
    ALERTS,
    DASHBOARDS,
    DEFAULT_PORT,
    DEPLOY,
    EXPORTER,
    K8S,
    PASSWORD_ENV,
    REPO,
    SYNC_COMMAND,
    Doc,
    cli_envvars,
    container,
    exporter_command,
    exporter_config,
    kustomizations,
    kustomize_references,
    listen_port,
    load_all,
    load_one,
    parse_exporter_args,
    sync_module,
    yaml_files,
)
from kustomize_render import find, kustomization_dirs, render, validate

from memorywatch.alerts.model import DEFAULT_EXPORTER_JOB
from memorywatch.cli import main
from memorywatch.exporter.config import DEFAULT_SCRAPE_TIMEOUT
from memorywatch.exporter.http import ExporterApp

EXPECTED_KINDS: dict[str, list[tuple[str, str]]] = {
    "kubernetes/base/exporter-deployment.yaml": [("apps/v1", "Deployment")],
    "kubernetes/base/exporter-service.yaml": [("v1", "Service")],
    "kubernetes/base/servicemonitor.yaml": [("monitoring.coreos.com/v1", "ServiceMonitor")],
    "kubernetes/base/prometheusrule.yaml": [("monitoring.coreos.com/v1", "PrometheusRule")],
    "kubernetes/agent-example/base/deployment.yaml": [("apps/v1", "Deployment")],
    "kubernetes/agent-example/keda/scaledobject.yaml": [("keda.sh/v1alpha1", "ScaledObject")],
    "kubernetes/agent-example/hpa/hpa.yaml": [("autoscaling/v2", "HorizontalPodAutoscaler")],
    "kubernetes/web-config/deployment-web.yaml": [("apps/v1", "Deployment")],
    "kubernetes/web-config/servicemonitor-web.yaml": [
        ("monitoring.coreos.com/v1", "ServiceMonitor")
    ],
}
WEB_SECRET = "memorywatch-web"
"""The Secret of the web-config overlay: web.yml, tls.crt, tls.key, ca.crt."""
SCRAPE_SECRET = "memorywatch-scrape"
"""Prometheus's basic-auth username and password."""
HELM_VALUES = {"kubernetes/agent-example/hpa/prometheus-adapter-values.yaml"}
KUSTOMIZE_API = ("kustomize.config.k8s.io/v1beta1", "Kustomization")
MEASURED_RSS_MIB = 40
"""The exporter's RSS in bench/bench_exporter.py (README: 38 MB)."""

LAST_APPLIED_LIMIT = 262_144
"""Bytes of annotations an object may carry: client-side apply stores the whole object in one."""

MEBI = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30}


def rel(path: Path) -> str:
    return str(path.relative_to(DEPLOY))


def exporter_deployment() -> Doc:
    return load_one(EXPORTER / "exporter-deployment.yaml")


def exporter_container() -> Doc:
    return container(exporter_deployment(), "exporter")


def exporter_args() -> dict[str, list[str]]:
    return parse_exporter_args(exporter_container()["args"])


def service() -> Doc:
    return load_one(EXPORTER / "exporter-service.yaml")


def service_monitor() -> Doc:
    return load_one(EXPORTER / "servicemonitor.yaml")


def seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)", duration)
    assert match, f"unexpected duration {duration!r}"
    return float(match[1]) * {"ms": 0.001, "s": 1.0, "m": 60.0}[match[2]]


def bytes_of(quantity: str) -> int:
    match = re.fullmatch(r"(\d+)(Ki|Mi|Gi)", quantity)
    assert match, f"unexpected memory quantity {quantity!r}"
    return int(match[1]) * MEBI[match[2]]


@pytest.mark.parametrize("path", yaml_files(), ids=rel)
def test_every_yaml_document_parses_to_a_mapping(path: Path) -> None:
    docs = load_all(path)
    assert docs, f"{rel(path)} holds no document"
    assert all(isinstance(doc, dict) for doc in docs)


def test_kinds_and_api_versions_are_the_expected_ones() -> None:
    seen = {}
    for path in yaml_files():
        name = rel(path)
        if not path.is_relative_to(K8S) or name in HELM_VALUES:
            continue
        docs = load_all(path)
        seen[name] = [(d["apiVersion"], d["kind"]) for d in docs]
        if path.name == "kustomization.yaml":
            assert seen[name] == [KUSTOMIZE_API], name
        else:
            assert seen[name] == EXPECTED_KINDS.get(name), f"{name}: {seen[name]}"
    assert set(EXPECTED_KINDS) <= set(seen), set(EXPECTED_KINDS) - set(seen)


@pytest.mark.parametrize("kustomization", kustomizations(), ids=rel)
def test_kustomization_loads_what_kustomize_allows(kustomization: Path) -> None:
    """A folder anywhere but above it (a base); a file only in or below the kustomization's folder."""
    root = kustomization.parent
    for field, target in kustomize_references(kustomization):
        if target.is_dir():
            assert field != "configMapGenerator", f"{rel(kustomization)}: {target} is a folder"
            assert (target / "kustomization.yaml").is_file(), f"{target} is no kustomization"
            assert not root.is_relative_to(target), (
                f"{rel(kustomization)} loads {target}, which holds it: kustomize sees a cycle "
                "(an overlay is a sibling of its base, never inside it)"
            )
        else:
            assert target.is_file(), f"{rel(kustomization)} loads {target}, which does not exist"
            assert target.is_relative_to(root), (
                f"{rel(kustomization)} loads {target}: kustomize refuses files outside {root}"
            )


def test_every_manifest_is_in_a_kustomization() -> None:
    loaded = {target for k in kustomizations() for _, target in kustomize_references(k)}
    for dirs in [k.parent for k in kustomizations()]:
        loaded.discard(dirs)
    manifests = {
        p.resolve()
        for p in yaml_files()
        if p.is_relative_to(K8S) and p.name != "kustomization.yaml" and rel(p) not in HELM_VALUES
    }
    assert manifests <= loaded, sorted(map(str, manifests - loaded))


def test_base_kustomization_is_the_exporter_stack() -> None:
    doc = load_one(EXPORTER / "kustomization.yaml")
    assert doc["resources"] == [
        "exporter-deployment.yaml",
        "exporter-service.yaml",
        "servicemonitor.yaml",
        "prometheusrule.yaml",
        "../dashboards",
    ]


def test_ports_and_probes_agree_with_the_cli_default() -> None:
    ports = {p["name"]: p for p in exporter_container()["ports"]}
    assert ports["metrics"]["containerPort"] == DEFAULT_PORT
    assert [listen_port(a) for a in exporter_args()["--listen"]] == [DEFAULT_PORT]
    for probe in ("readinessProbe", "livenessProbe"):
        get = exporter_container()[probe]["httpGet"]
        assert (get["path"], get["port"]) == ("/healthz", "metrics"), probe
    (svc_port,) = service()["spec"]["ports"]
    assert (svc_port["name"], svc_port["port"], svc_port["targetPort"]) == (
        "metrics",
        DEFAULT_PORT,
        "metrics",
    )
    (endpoint,) = service_monitor()["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("metrics", "/metrics")


def test_exporter_parses_the_manifest_and_answers_the_probe_path() -> None:
    """The manifest's command line builds a config, and that exporter answers /healthz with 200."""
    config = exporter_config(exporter_container()["args"])
    assert (config.listen_host, config.listen_port) == ("0.0.0.0", DEFAULT_PORT)
    app = ExporterApp(config)
    try:
        assert app.respond("GET", "/healthz", "").status == 200
    finally:
        app.close()


def test_selectors_chain_deployment_service_and_servicemonitor() -> None:
    deployment = exporter_deployment()
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert service()["spec"]["selector"].items() <= pod_labels.items()
    monitor_selector = service_monitor()["spec"]["selector"]["matchLabels"]
    assert monitor_selector.items() <= service()["metadata"]["labels"].items()


def test_prometheus_job_is_the_one_the_alerts_watch() -> None:
    """RedisExporterDown is `up{job="memorywatch"} == 0`: the ServiceMonitor must produce that job."""
    job_label = service_monitor()["spec"]["jobLabel"]
    assert service()["metadata"]["labels"][job_label] == DEFAULT_EXPORTER_JOB
    rules = (ALERTS / "memorywatch.rules.yaml").read_text()
    assert f'up{{job="{DEFAULT_EXPORTER_JOB}"}}' in rules


def test_scrape_timeout_leaves_room_for_the_exporter_timeout() -> None:
    (endpoint,) = service_monitor()["spec"]["endpoints"]
    exporter_timeout = float(exporter_args().get("--scrape-timeout", [DEFAULT_SCRAPE_TIMEOUT])[0])
    assert seconds(endpoint["interval"]) == 15
    assert exporter_timeout < seconds(endpoint["scrapeTimeout"]) <= seconds(endpoint["interval"])


def test_every_env_var_is_one_the_cli_declares() -> None:
    names = {e["name"] for e in exporter_container().get("env", [])}
    assert names <= cli_envvars() | {PASSWORD_ENV}, names - cli_envvars()


def test_password_env_var_is_read_by_the_cli(tmp_path: Path) -> None:
    """The variable without a flag is real: given beside --password-file, the CLI refuses both."""
    password_file = tmp_path / "password"
    password_file.write_text("secret\n")
    result = CliRunner().invoke(
        main,
        ["exporter", "--check", "--password-file", str(password_file)],
        env={PASSWORD_ENV: "secret"},
    )
    assert result.exit_code != 0
    assert PASSWORD_ENV in result.output


def test_password_file_is_the_mounted_secret() -> None:
    env = {e["name"]: e for e in exporter_container()["env"]}
    password_file = Path(env["MEMORYWATCH_PASSWORD_FILE"]["value"])
    mounts = {m["name"]: m for m in exporter_container()["volumeMounts"]}
    volumes = {v["name"]: v for v in exporter_deployment()["spec"]["template"]["spec"]["volumes"]}
    (mount,) = [m for m in mounts.values() if Path(m["mountPath"]) == password_file.parent]
    assert mount["readOnly"] is True
    secret = volumes[mount["name"]]["secret"]
    assert {"key": "password", "path": password_file.name} in secret["items"]
    assert "--password-file" not in exporter_args()
    assert PASSWORD_ENV not in env


def test_exporter_pod_is_non_root_and_read_only() -> None:
    pod = exporter_deployment()["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False, "Service links would add MEMORYWATCH_*-like vars"
    ctx = exporter_container()["securityContext"]
    assert ctx["readOnlyRootFilesystem"] is True
    assert ctx["allowPrivilegeEscalation"] is False
    assert ctx["capabilities"]["drop"] == ["ALL"]


def test_exporter_resources_fit_the_measured_rss() -> None:
    resources = exporter_container()["resources"]
    request = bytes_of(resources["requests"]["memory"])
    limit = bytes_of(resources["limits"]["memory"])
    assert MEASURED_RSS_MIB * MEBI["Mi"] * 1.5 <= request < limit
    assert "cpu" in resources["requests"] and "cpu" in resources["limits"]


def test_exporter_image_is_this_version() -> None:
    import memorywatch

    image = exporter_container()["image"]
    assert image.rpartition(":")[2] == memorywatch.__version__, (
        f"{image}: set the tag to {memorywatch.__version__}"
    )


def test_prometheusrule_is_the_generated_one() -> None:
    copy = EXPORTER / "prometheusrule.yaml"
    assert copy.read_bytes() == (ALERTS / "prometheusrule.yaml").read_bytes(), (
        f"{rel(copy)} differs from alerts/prometheusrule.yaml: run `{SYNC_COMMAND}`"
    )


def test_dashboard_configmaps_are_the_generated_dashboards() -> None:
    generated = sorted(p.name for p in DASHBOARDS.glob("*.json"))
    copies = sorted(p.name for p in (K8S / "dashboards").glob("*.json"))
    assert copies == generated, f"dashboards/*.json and their copies differ: run `{SYNC_COMMAND}`"
    for name in generated:
        assert (K8S / "dashboards" / name).read_bytes() == (DASHBOARDS / name).read_bytes(), (
            f"{name} is stale: run `{SYNC_COMMAND}`"
        )
    doc = load_one(K8S / "dashboards" / "kustomization.yaml")
    options = doc["generatorOptions"]
    assert options["labels"]["grafana_dashboard"] == "1"
    assert options["disableNameSuffixHash"] is True
    listed = sorted(f for g in doc["configMapGenerator"] for f in g["files"])
    assert listed == generated
    assert all(len(g["files"]) == 1 for g in doc["configMapGenerator"])


def test_dashboard_configmaps_hold_every_dashboard_the_alerts_link_to() -> None:
    """Each dashboard gets its own ConfigMap, small enough for a client-side `kubectl apply`."""
    uids = set()
    for path in (K8S / "dashboards").glob("*.json"):
        assert path.stat().st_size < LAST_APPLIED_LIMIT, f"{path.name}: use --server-side apply"
        uids.add(json.loads(path.read_text())["uid"])
    rules = load_one(EXPORTER / "prometheusrule.yaml")
    linked = {
        rule["annotations"]["dashboard_url"].partition("?")[0].rstrip("/").rpartition("/")[2]
        for group in rules["spec"]["groups"]
        for rule in group["rules"]
        if "dashboard_url" in rule.get("annotations", {})
    }
    assert linked, "the generated rules link no dashboard"
    assert linked <= uids, f"alerts link dashboards no ConfigMap ships: {sorted(linked - uids)}"


def test_dashboard_configmap_names_are_valid_and_distinct() -> None:
    sync = sync_module()
    names = [sync.configmap_name(n) for n in ("memorywatch-overview.json", "Locks_Tools.json")]
    assert names == ["memorywatch-dashboard-overview", "memorywatch-dashboard-locks-tools"]
    doc = load_one(K8S / "dashboards" / "kustomization.yaml")
    generated = [g["name"] for g in doc["configMapGenerator"]]
    assert len(set(generated)) == len(generated)
    assert all(re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", n) for n in generated)


def test_sync_script_finds_nothing_stale() -> None:
    sync = sync_module()
    assert sync.stale(sync.expected()) == [], f"run `{SYNC_COMMAND}`"


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Schema validation runs offline: any socket use in this process fails the test."""

    def refuse(*args: object, **kwargs: object) -> NoReturn:
        raise AssertionError(f"network use during validation: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def invalid(doc: Doc) -> str | None:
    """The validation error of `doc` as one line, or None when it validates."""
    try:
        validate(doc)
    except jsonschema.ValidationError as exc:
        where = ".".join(str(part) for part in exc.absolute_path)
        return f"{doc['kind']}/{doc['metadata']['name']}: {where}: {exc.message}"
    return None


def test_the_walk_finds_every_kustomization() -> None:
    """Rendering walks deploy/ for kustomizations: a new overlay is rendered without a list."""
    found = kustomization_dirs()
    assert {rel(d) for d in found} >= {
        "kubernetes/base",
        "kubernetes/dashboards",
        "kubernetes/web-config",
        "kubernetes/agent-example/base",
        "kubernetes/agent-example/hpa",
        "kubernetes/agent-example/keda",
    }
    assert [k.parent for k in kustomizations()] == found, "name every kustomization.yaml"


@pytest.mark.parametrize("directory", kustomization_dirs(), ids=rel)
def test_kustomization_renders_objects_that_validate(directory: Path, no_network: None) -> None:
    """`kubectl kustomize DIR` (what `kubectl apply -k DIR` builds), every object schema-valid."""
    docs = render(directory)
    assert docs, f"{rel(directory)} renders nothing"
    errors = [error for error in map(invalid, docs) if error is not None]
    assert not errors, f"{rel(directory)}: " + "; ".join(errors)


def _set(path: str, value: object) -> Callable[[Doc], None]:
    """A mutation setting the dotted `path` (list indexes as numbers) of a document."""

    def mutate(doc: Doc) -> None:
        *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        node: Any = doc
        for part in parents:
            node = node[part]
        if value is DELETE:
            del node[last]
        else:
            node[last] = value

    return mutate


DELETE = object()
BROKEN: dict[str, tuple[str, str, str, Callable[[Doc], None]]] = {
    "deployment-unknown-field": (
        "web-config",
        "Deployment",
        "memorywatch-exporter",
        _set("spec.template.spec.containers.0.readinessProbe.tcpSockt", {"port": "metrics"}),
    ),
    "deployment-replicas-string": (
        "web-config",
        "Deployment",
        "memorywatch-exporter",
        _set("spec.replicas", "1"),
    ),
    "service-port-name-as-number": (
        "base",
        "Service",
        "memorywatch-exporter",
        _set("spec.ports.0.port", "metrics"),
    ),
    "servicemonitor-scheme": (
        "web-config",
        "ServiceMonitor",
        "memorywatch-exporter",
        _set("spec.endpoints.0.scheme", "htps"),
    ),
    "servicemonitor-basic-auth-without-key": (
        "web-config",
        "ServiceMonitor",
        "memorywatch-exporter",
        _set("spec.endpoints.0.basicAuth.password.key", DELETE),
    ),
    "servicemonitor-interval": (
        "base",
        "ServiceMonitor",
        "memorywatch-exporter",
        _set("spec.endpoints.0.interval", "15 seconds"),
    ),
    "servicemonitor-unknown-field": (
        "base",
        "ServiceMonitor",
        "memorywatch-exporter",
        _set("spec.endpoints.0.bearerToken", "x"),
    ),
    "prometheusrule-rule-without-expr": (
        "base",
        "PrometheusRule",
        "memorywatch",
        _set("spec.groups.0.rules.0.expr", DELETE),
    ),
    "prometheusrule-record-and-alert": (
        "base",
        "PrometheusRule",
        "memorywatch",
        _set("spec.groups.0.rules.0.record", "memorywatch:x:sum"),
    ),
    "scaledobject-threshold-not-a-string": (
        "agent-example/keda",
        "ScaledObject",
        "agent",
        _set("spec.triggers.0.metadata.threshold", 25),
    ),
    "hpa-target-without-name": (
        "agent-example/hpa",
        "HorizontalPodAutoscaler",
        "agent",
        _set("spec.scaleTargetRef.name", DELETE),
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_validation_refuses_a_broken_object(case: str, no_network: None) -> None:
    """The schemas are not vacuous: each break a user could make is refused."""
    directory, kind, name, mutate = BROKEN[case]
    doc = find(render(K8S / directory), kind, name)
    assert invalid(doc) is None
    mutate(doc)
    assert invalid(doc) is not None, f"{case}: the broken {kind} validated"


def test_a_kind_without_a_schema_fails() -> None:
    doc: Doc = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    with pytest.raises(AssertionError, match="no schema"):
        validate(doc)


def test_base_renders_the_generated_rules_and_every_dashboard() -> None:
    docs = render(EXPORTER)
    assert {d["metadata"].get("namespace") for d in docs} == {"monitoring"}
    rule = find(docs, "PrometheusRule", "memorywatch")
    assert rule["spec"] == load_one(ALERTS / "prometheusrule.yaml")["spec"]
    shipped = {
        key: json.loads(value)
        for d in docs
        if d["kind"] == "ConfigMap"
        for key, value in d["data"].items()
    }
    assert shipped == {p.name: json.loads(p.read_text()) for p in DASHBOARDS.glob("*.json")}


def _objects(docs: list[Doc]) -> set[tuple[str, str, str]]:
    return {(d["kind"], d["metadata"]["name"], d["metadata"].get("namespace", "")) for d in docs}


def test_web_config_overlay_passes_the_mounted_web_config_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The pod's command line and environment give `--web-config-file` a file of the Secret."""
    docs = render(K8S / "web-config")
    base = render(EXPORTER)
    assert _objects(docs) == _objects(base), "the overlay patches the stack, adds nothing"
    deployment = find(docs, "Deployment", "memorywatch-exporter")
    exporter = container(deployment, "exporter")
    for var in exporter["env"]:
        monkeypatch.setenv(var["name"], var["value"])
    context = exporter_command().make_context("memorywatch exporter", exporter["args"][1:])
    web_file = context.params["web_config_file"]
    assert web_file is not None, "the overlay does not set --web-config-file"
    (mount,) = [m for m in exporter["volumeMounts"] if Path(m["mountPath"]) == web_file.parent]
    assert mount["readOnly"] is True
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes[mount["name"]]["secret"]["secretName"] == WEB_SECRET
    assert "items" not in volumes[mount["name"]]["secret"], "web.yml names tls.crt, tls.key, ca.crt"
    # a kubelet has no client certificate nor password: the probes are TCP checks
    for probe in ("readinessProbe", "livenessProbe"):
        assert "httpGet" not in exporter[probe] and "tcpSocket" in exporter[probe], probe
    base_exporter = container(find(base, "Deployment", "memorywatch-exporter"), "exporter")
    assert exporter["args"] == base_exporter["args"]
    assert all(m in exporter["volumeMounts"] for m in base_exporter["volumeMounts"])


def test_web_config_overlay_scrapes_over_tls_with_basic_auth() -> None:
    docs = render(K8S / "web-config")
    service = find(docs, "Service", "memorywatch-exporter")
    (endpoint,) = find(docs, "ServiceMonitor", "memorywatch-exporter")["spec"]["endpoints"]
    (base_endpoint,) = find(render(EXPORTER), "ServiceMonitor", "memorywatch-exporter")["spec"][
        "endpoints"
    ]
    assert {key: endpoint[key] for key in base_endpoint} == base_endpoint
    assert endpoint["scheme"] == "https"
    assert endpoint["basicAuth"] == {
        "username": {"name": SCRAPE_SECRET, "key": "username"},
        "password": {"name": SCRAPE_SECRET, "key": "password"},
    }
    tls = endpoint["tlsConfig"]
    assert tls["ca"] == {"secret": {"name": WEB_SECRET, "key": "ca.crt"}}
    meta = service["metadata"]
    assert tls["serverName"] == f"{meta['name']}.{meta['namespace']}.svc"
    assert tls["cert"]["secret"]["name"] == tls["keySecret"]["name"]


KUBERNETES_DOC = REPO / "docs" / "kubernetes.md"
SECRET_COMMAND = re.compile(
    r"kubectl -n (?P<namespace>\S+) create secret (?P<type>generic|tls) (?P<name>\S+)(?P<flags>.*)"
)
SecretKeys = dict[tuple[str, str], set[str]]
KEY_SELECTOR = {"name", "key"}
"""A Secret's (or ConfigMap's) key picked by name: secretKeyRef, and prometheus-operator's refs."""


def documented_secrets() -> SecretKeys:
    """(namespace, name) -> keys of every Secret the commands of docs/kubernetes.md create."""
    out: SecretKeys = {}
    for match in SECRET_COMMAND.finditer(KUBERNETES_DOC.read_text().replace("\\\n", " ")):
        keys = out.setdefault((match["namespace"], match["name"]), set())
        if match["type"] == "tls":
            keys |= {"tls.crt", "tls.key"}
        for value in re.findall(r"--from-(?:file|literal)=(\S+)", match["flags"]):
            key, eq, _ = value.partition("=")
            keys.add(key if eq else Path(value).name)
    return out


def is_secret_key_selector(node: Doc, parent: str) -> bool:
    if parent.lower().startswith("configmap"):
        return False
    return KEY_SELECTOR <= set(node) <= KEY_SELECTOR | {"optional"}


def referenced_secrets(docs: list[Doc]) -> SecretKeys:
    """(namespace, name) -> keys the objects mount, read from files, or select by name and key."""
    out: SecretKeys = {}

    def walk(namespace: str, node: object, parent: str) -> None:
        if isinstance(node, list):
            for item in node:
                walk(namespace, item, parent)
        if not isinstance(node, dict):
            return
        if "secretName" in node:
            keys = out.setdefault((namespace, node["secretName"]), set())
            keys |= {item["key"] for item in node.get("items", [])}
        elif is_secret_key_selector(node, parent):
            out.setdefault((namespace, node["name"]), set()).add(node["key"])
        for key, value in node.items():
            walk(namespace, value, key)

    for doc in docs:
        namespace = doc["metadata"].get("namespace", "")
        walk(namespace, doc, "")
        if doc["kind"] != "Deployment":
            continue
        pod = doc["spec"]["template"]["spec"]
        secrets = {
            v["name"]: v["secret"]["secretName"] for v in pod.get("volumes", []) if "secret" in v
        }
        for box in pod["containers"]:
            mounted = {
                Path(m["mountPath"]): secrets[m["name"]]
                for m in box.get("volumeMounts", [])
                if m["name"] in secrets
            }
            for var in box.get("env", []):
                path = Path(var.get("value", ""))
                if path.parent in mounted:
                    out[(namespace, mounted[path.parent])].add(path.name)
    return out


def test_referenced_secrets_are_found() -> None:
    assert referenced_secrets(render(K8S / "web-config")) == {
        ("monitoring", "memorywatch-redis"): {"password"},
        ("monitoring", WEB_SECRET): {"web.yml", "ca.crt"},
        ("monitoring", SCRAPE_SECRET): {"username", "password"},
        ("monitoring", "memorywatch-scrape-tls"): {"tls.crt", "tls.key"},
    }


@pytest.mark.parametrize("directory", kustomization_dirs(), ids=rel)
def test_the_documented_commands_create_every_secret_the_objects_use(directory: Path) -> None:
    """Following docs/kubernetes.md leaves no pod waiting on a missing Secret or key."""
    documented = documented_secrets()
    for secret, keys in referenced_secrets(render(directory)).items():
        assert secret in documented, f"{rel(directory)} uses Secret {secret}: document it"
        missing = keys - documented[secret]
        assert not missing, f"{rel(directory)}: Secret {secret} lacks {sorted(missing)} in the doc"
