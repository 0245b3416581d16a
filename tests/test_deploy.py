"""Static checks of ``deploy/``: the Dockerfile and the Kubernetes manifests (D1, D4).

No Docker engine and no cluster: every YAML document is parsed and checked against
what the code needs (commands, packages, production configuration, the gateway's
HTTP address and probes) and against the deployment rules (one relay replica,
non-root, read-only, limits, the gateway as the only door). If ``kubectl`` is
installed, ``kubectl kustomize`` must render the kustomization too (offline).
"""

from __future__ import annotations

import copy
import functools
import importlib
import importlib.util
import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from upgestao_kernel.config import env_prefix, load_settings
from upgestao_kernel.jwks import pinned_jwks
from upgestao_kernel.service_registry import service_definitions, service_package
from upgestao_kernel.testing_tokens import token_jwks_json
from upgestao_kernel.vault import generate_key, load_keys

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S_ROOT = DEPLOY / "k8s"
K8S = K8S_ROOT / "base"
DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = DEPLOY / "Dockerfile.dockerignore"
JOB_TEMPLATE = K8S_ROOT / "jobs" / "service-command.job.yaml"
SECRET_TEMPLATE = K8S_ROOT / "secret.example.yaml"
OBSERVABILITY = DEPLOY / "observability"

NAMESPACE = "upgestao"
SECRET = "upgestao-secrets"
CONFIGMAP = "upgestao-config"
UID = 10001
GATEWAY_PORT = 8000
PROBE_PORT = 9000  # the kernel's probe listener (UPGESTAO_PROBE_ADDRESS): /livez, /readyz
METRICS_PORT = 9100  # the kernel's metrics listener (<SERVICE>_METRICS_ADDRESS, _RELAY_METRICS_ADDRESS): /metrics
AUTOSCALED = {"gateway", "messaging"}


def service_folders() -> dict[str, tuple[str, str]]:
    """nameko name -> (folder under services/, package), for every installed service (its entry point)."""
    folders = {}
    for name, definition in service_definitions().items():
        package = service_package(definition)
        origin = Path(importlib.util.find_spec(package).origin)  # services/<folder>/src/<package>/__init__.py
        folders[name] = (origin.parents[2].name, package)
    return folders


SERVICES = service_folders()
SHARED_SECRETS = ("UPGESTAO_MASTER_KEY", "UPGESTAO_BLIND_INDEX_KEY")
# each service connects to the broker as its own user: its AMQP_URI from its own key
BROKER_VHOST = "upgestao"
BROKER_API = "rabbitmq.com/v1beta1"
# services' own keys: identity signs access tokens, privacy signs audit checkpoints
SERVICE_SECRETS = {"IDENTITY_JWT_SIGNING_KEYS", "PRIVACY_AUDIT_SIGNING_KEY", "PRIVACY_MIGRATION_DATABASE_URL",
                   "UPGESTAO_IDENTITY_JWKS", "NOTIFIER_SMTP_URL", "NOTIFIER_SUPPRESSION_KEY",
                   "MESSAGING_SEARCH_KEY", "INTEGRATIONS_SECRETS_KEY", "UPGESTAO_WEB_SESSION_KEY"}
# issue 11, finding 9: the vault's keys reach only the containers that open personal data
VAULT_KEY_HOLDERS = {"identity/identity", "messaging/messaging", "privacy/privacy"}
# the jobs template runs any service's command (identity's rotate-master-key among them): it may carry them
VAULT_KEY_JOBS = True
API_VERSIONS = {
    "Namespace": "v1",
    "ServiceAccount": "v1",
    "ConfigMap": "v1",
    "Secret": "v1",
    "Service": "v1",
    "Deployment": "apps/v1",
    "Job": "batch/v1",
    "Ingress": "networking.k8s.io/v1",
    "NetworkPolicy": "networking.k8s.io/v1",
    "PodMonitor": "monitoring.coreos.com/v1",
    "PrometheusRule": "monitoring.coreos.com/v1",
    "PodDisruptionBudget": "policy/v1",
    "HorizontalPodAutoscaler": "autoscaling/v2",
    "RabbitmqCluster": BROKER_API,
    "Vhost": BROKER_API,
    "Cluster": "postgresql.cnpg.io/v1",
    "Database": "postgresql.cnpg.io/v1",
    "ScheduledBackup": "postgresql.cnpg.io/v1",
    "ObjectStore": "barmancloud.cnpg.io/v1",
    "User": BROKER_API,
    "Permission": BROKER_API,
    "TopicPermission": BROKER_API,
    "Policy": BROKER_API,
    "Exchange": BROKER_API,
    "Queue": BROKER_API,
    "Binding": BROKER_API,
}
DNS_1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


# -- loading ------------------------------------------------------------------


@functools.cache
def _parse(text: str) -> tuple:
    return tuple(doc for doc in yaml.safe_load_all(text) if doc is not None)


def load_docs(path: Path) -> list[dict]:
    """The documents of ``path``, fresh copies (the parse is cached by content)."""
    return copy.deepcopy(list(_parse(path.read_text())))


def kustomization() -> dict:
    (doc,) = load_docs(K8S / "kustomization.yaml")
    return doc


def resources() -> list[dict]:
    docs = []
    for entry in kustomization()["resources"]:
        docs.extend(load_docs(K8S / entry))
    return docs


def of_kind(kind: str) -> list[dict]:
    return [doc for doc in resources() if doc["kind"] == kind]


def deployments() -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for doc in of_kind("Deployment")}


def configmap_data() -> dict[str, str]:
    (configmap,) = [doc for doc in of_kind("ConfigMap") if doc["metadata"]["name"] == CONFIGMAP]
    return configmap["data"]


def secret_template_keys() -> set[str]:
    (secret,) = load_docs(SECRET_TEMPLATE)
    assert secret["kind"] == "Secret" and secret["metadata"]["name"] == SECRET
    return set(secret.get("stringData", {})) | set(secret.get("data", {}))


def job(service: str, command: str) -> dict:
    """The one-off Job template instantiated as deploy/README.md does with sed."""
    _, package = SERVICES[service]
    text = (
        JOB_TEMPLATE.read_text()
        .replace("__SERVICE__", service)
        .replace("__PACKAGE__", package)
        .replace("__PREFIX__", env_prefix(service))
        .replace("__COMMAND__", command)
    )
    (doc,) = yaml.safe_load_all(text)
    return doc


WORKLOADS = [*SERVICES, *(f"{service}-relay" for service in SERVICES), *(f"job/{service}" for service in SERVICES)]


def workload_named(name: str) -> dict:
    """A Deployment by name, or ``job/<service>``: the Job template for that service."""
    if name.startswith("job/"):
        return job(name.removeprefix("job/"), "rotate-master-key")
    return deployments()[name]


def all_workloads() -> list[dict]:
    """Every Deployment, and the Job template for every service."""
    return [workload_named(name) for name in WORKLOADS]


def pod_spec(workload: dict) -> dict:
    return workload["spec"]["template"]["spec"]


def containers(workload: dict) -> list[dict]:
    spec = pod_spec(workload)
    return spec.get("initContainers", []) + spec["containers"]


def service_of(workload: dict) -> str:
    return workload["metadata"]["labels"]["app.kubernetes.io/name"]


def resolved_env(container: dict) -> dict[str, tuple[str, str]]:
    """``{VAR: (source, value)}``: source is value, configmap or secret (value = its key)."""
    env: dict[str, tuple[str, str]] = {}
    for source in container.get("envFrom", []):
        ref = source["configMapRef"]
        assert ref["name"] == CONFIGMAP, f"{container['name']}: unknown ConfigMap {ref['name']}"
        for name, value in configmap_data().items():
            env[name] = ("configmap", value)
    names = [item["name"] for item in container.get("env", [])]
    assert len(names) == len(set(names)), f"{container['name']}: duplicate env vars {names}"
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = ("value", str(item["value"]))
        elif "secretKeyRef" in item.get("valueFrom", {}):
            ref = item["valueFrom"]["secretKeyRef"]
            assert ref["name"] == SECRET, f"{item['name']}: secret {ref['name']}, expected {SECRET}"
            env[item["name"]] = ("secret", ref["key"])
        elif "configMapKeyRef" in item.get("valueFrom", {}):
            ref = item["valueFrom"]["configMapKeyRef"]
            assert ref["name"] == CONFIGMAP
            env[item["name"]] = ("configmap", configmap_data()[ref["key"]])
        else:
            pytest.fail(f"{container['name']}: env {item['name']} has no value this test understands")
    return env


def container_port(container: dict, port: int | str) -> int:
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in container.get("ports", []) if p.get("name") == port]
    return number


def gateway_run_container() -> dict:
    (container,) = deployments()["gateway"]["spec"]["template"]["spec"]["containers"]
    return container


# -- the manifests as documents ---------------------------------------------


def test_every_yaml_document_parses_and_has_kind_and_name():
    files = sorted(DEPLOY.rglob("*.yaml")) + sorted(DEPLOY.rglob("*.yml"))
    # deploy/observability holds Prometheus's own files (rules, their unit tests): promtool checks them
    # (tests/test_observability.py)
    files = [path for path in files if OBSERVABILITY not in path.parents]
    assert files, "no YAML under deploy/"
    for path in files:
        docs = load_docs(path)
        assert docs, f"{path} is empty"
        for doc in docs:
            assert isinstance(doc, dict), f"{path}: a document is not a mapping"
            assert doc.get("apiVersion") and doc.get("kind"), f"{path}: apiVersion/kind missing"
            if doc["kind"] != "Kustomization":
                assert doc.get("metadata", {}).get("name"), f"{path}: metadata.name missing"


def test_kustomization_lists_every_manifest_and_nothing_else():
    kust = kustomization()
    assert kust["kind"] == "Kustomization"
    assert kust["namespace"] == NAMESPACE
    listed = kust["resources"]
    assert len(listed) == len(set(listed))
    for entry in listed:
        assert (K8S / entry).is_file(), f"kustomization.yaml lists {entry}, which does not exist"
    assert "secret.example.yaml" not in listed, "the Secret is a template: never apply placeholders"
    assert not any(entry.startswith("jobs") for entry in listed), "one-off Jobs are not part of the platform"
    top_level = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", "secret.example.yaml"}
    assert top_level == set(listed), "a manifest is missing from kustomization.yaml"
    images = {image["name"] for image in kust.get("images", [])}
    assert images == {f"upgestao/{service}" for service in SERVICES}


def test_basic_schema_of_every_resource():
    seen: set[tuple[str, str]] = set()
    docs = resources() + [job(service, "rebuild") for service in SERVICES]
    for doc in docs:
        kind, name = doc["kind"], doc["metadata"]["name"]
        assert kind in API_VERSIONS, f"unexpected kind {kind}"
        assert doc["apiVersion"] == API_VERSIONS[kind], f"{kind} {name}: apiVersion {doc['apiVersion']}"
        assert DNS_1123.match(name) and len(name) <= 63, f"{kind} {name}: not a DNS-1123 label"
        assert (kind, name) not in seen, f"duplicate {kind} {name}"
        seen.add((kind, name))
        assert doc["metadata"].get("namespace", NAMESPACE) == NAMESPACE
        assert doc["metadata"].get("labels", {}).get("app.kubernetes.io/part-of") == "upgestao"
        if kind in ("Deployment", "Job"):
            labels = doc["spec"]["template"]["metadata"]["labels"]
            assert labels["app.kubernetes.io/name"] in SERVICES
            assert labels["app.kubernetes.io/component"] in ("service", "relay", "job")
            assert doc["metadata"]["labels"] == labels
            spec = doc["spec"]["template"]["spec"]
            names = [c["name"] for c in containers(doc)]
            assert len(names) == len(set(names)), f"{name}: duplicate container names"
            volumes = {v["name"] for v in spec.get("volumes", [])}
            for container in containers(doc):
                assert container["image"] and container["name"]
                for mount in container.get("volumeMounts", []):
                    assert mount["name"] in volumes, f"{name}/{container['name']}: no volume {mount['name']}"
        if kind == "Deployment":
            selector = doc["spec"]["selector"]["matchLabels"]
            labels = doc["spec"]["template"]["metadata"]["labels"]
            assert selector and selector.items() <= labels.items(), f"{name}: selector does not match its pods"
        if kind == "Job":
            assert doc["spec"]["template"]["spec"]["restartPolicy"] in ("Never", "OnFailure")
    selectors = [tuple(sorted(d["spec"]["selector"]["matchLabels"].items())) for d in deployments().values()]
    assert len(selectors) == len(set(selectors)), "two Deployments select the same pods"


# -- the five services --------------------------------------------------------


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_has_a_run_and_a_single_relay_deployment(service):
    found = deployments()
    mine = {name for name, d in found.items() if service_of(d) == service}
    assert mine == {service, f"{service}-relay"}

    run = found[service]
    assert run["metadata"]["labels"]["app.kubernetes.io/component"] == "service"
    autoscalers = [h for h in of_kind("HorizontalPodAutoscaler") if h["spec"]["scaleTargetRef"]["name"] == service]
    if service in AUTOSCALED:
        (hpa,) = autoscalers
        assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": service}
        assert hpa["spec"]["minReplicas"] >= 2 and hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]
        assert "replicas" not in run["spec"], "the autoscaler owns the replica count: apply must not reset it"
    else:
        assert not autoscalers and run["spec"]["replicas"] >= 1
    (pdb,) = [p for p in of_kind("PodDisruptionBudget")
              if p["spec"]["selector"]["matchLabels"].items() <= run["spec"]["template"]["metadata"]["labels"].items()]
    assert pdb["spec"].get("maxUnavailable") == 1 or pdb["spec"].get("minAvailable") == 1

    relay = found[f"{service}-relay"]
    assert relay["metadata"]["labels"]["app.kubernetes.io/component"] == "relay"
    assert relay["spec"]["replicas"] == 1, "exactly one relay replica per service"
    assert relay["spec"]["strategy"]["type"] == "Recreate", "a rollout must not run two relays"


def test_there_are_exactly_the_ten_deployments():
    expected = set(SERVICES) | {f"{service}-relay" for service in SERVICES}
    assert set(deployments()) == expected


@pytest.mark.parametrize("service", SERVICES)
def test_containers_run_the_right_package_and_command(service):
    folder, package = SERVICES[service]
    assert (ROOT / "services" / folder / "src" / package / "__main__.py").is_file()
    definition = importlib.import_module(f"{package}.definition").DEFINITION
    assert definition.name == service

    def check(container: dict, command: str) -> None:
        repository, _, tag = container["image"].partition(":")
        assert repository == f"upgestao/{service}", container["image"]
        assert tag and tag != "latest", f"{container['image']}: pin a tag"
        assert container["command"] == ["python", "-m", package]
        assert container["args"] == [command]

    run = pod_spec(deployments()[service])
    (main,) = run["containers"]
    check(main, "run")
    (migrate,) = run["initContainers"]
    assert migrate["name"] == "migrate"
    check(migrate, "migrate")

    relay = pod_spec(deployments()[f"{service}-relay"])
    (relay_container,) = relay["containers"]
    check(relay_container, "relay")
    assert not relay.get("initContainers")

    for command in ("rotate-master-key", "rebuild"):
        (job_container,) = pod_spec(job(service, command))["containers"]
        check(job_container, command)


def _fake_secret(key: str) -> str:
    if key == "UPGESTAO_IDENTITY_JWKS":
        return token_jwks_json()
    if key in ("UPGESTAO_MASTER_KEY", "UPGESTAO_BLIND_INDEX_KEY", "IDENTITY_JWT_SIGNING_KEYS",
               "PRIVACY_AUDIT_SIGNING_KEY", "NOTIFIER_SUPPRESSION_KEY", "MESSAGING_SEARCH_KEY",
               "UPGESTAO_WEB_SESSION_KEY"):
        return generate_key()
    if key == "NOTIFIER_SMTP_URL":
        return "smtp+starttls://user:password@smtp.example.com:587"
    if key.endswith("_AMQP_URI"):
        return "amqp://user:password@rabbitmq:5672/upgestao"
    return "postgresql://user:password@postgres:5432/db"


@pytest.mark.parametrize("name", WORKLOADS)
def test_every_container_gets_the_production_configuration(name):
    workload = workload_named(name)
    service = service_of(workload)
    own_db = f"{env_prefix(service)}_DATABASE_URL"
    others_db = {f"{env_prefix(other)}_DATABASE_URL" for other in SERVICES} - {own_db}
    own_amqp = f"{env_prefix(service)}_AMQP_URI"
    secret_keys = secret_template_keys()
    for container in containers(workload):
        env = resolved_env(container)
        where = f"{workload['metadata']['name']}/{container['name']}"
        assert env.get("UPGESTAO_ENV") == ("configmap", "production"), where
        assert env.get(own_db, ("missing",))[0] == "secret", f"{where}: {own_db} must come from {SECRET}"
        holds_vault_keys = where in VAULT_KEY_HOLDERS or (workload["kind"] == "Job" and VAULT_KEY_JOBS)
        for var in SHARED_SECRETS:
            if holds_vault_keys:
                assert env.get(var, ("missing",))[0] == "secret", f"{where}: {var} must come from {SECRET}"
            else:
                assert var not in env, f"{where}: {var} must not reach a container that opens no personal data"
        if container["name"] == service:  # the service itself verifies access tokens: keys pinned
            assert env.get("UPGESTAO_IDENTITY_JWKS") == ("secret", "UPGESTAO_IDENTITY_JWKS"), where
        assert env.get("AMQP_URI") == ("secret", own_amqp), f"{where}: AMQP_URI must be its own key {own_amqp}"
        assert not others_db & env.keys(), f"{where}: another service's database URL"
        for var, (source, value) in env.items():
            if source == "secret":
                assert value in secret_keys, f"{where}: {var} reads key {value}, not in secret.example.yaml"

        # The service itself accepts it: production settings and keys load.
        environ = {var: _fake_secret(value) if source == "secret" else value for var, (source, value) in env.items()}
        settings = load_settings(service, environ)
        assert settings.production
        assert settings.database_url.startswith("postgresql+psycopg2://")
        if holds_vault_keys:
            load_keys(settings, environ)
        if container["name"] == service:
            assert pinned_jwks(environ, production=True)
        if service == "gateway" and container["name"] == "gateway":  # the privacy centre's CSRF key
            from upgestao_gateway.settings import load_web_session_settings

            assert len(load_web_session_settings(environ).key) >= 32
        if service == "identity" and container["name"] == "identity":  # the service itself signs tokens
            from upgestao_identity.adapters.tokens import load_signing_keys
            from upgestao_identity.settings import load_identity_settings

            assert load_signing_keys(settings, environ)
            assert load_identity_settings(settings, environ).bcrypt_cost >= 12
        if service == "privacy" and container["name"] == "privacy":  # the service itself signs checkpoints
            from upgestao_privacy.settings import load_audit_settings

            assert len(load_audit_settings(settings, environ).signing_key) == 32
        if service == "notifier" and container["name"] == "notifier":  # the service itself sends the mail
            from upgestao_notifier.settings import load_notifier_settings

            mail = load_notifier_settings(settings, environ)
            assert mail.public_url.startswith("https://") and len(mail.suppression_key) == 32
        if service == "messaging" and container["name"] == "messaging":  # seals bodies, hashes search words
            from upgestao_messaging.settings import load_messaging_settings

            assert len(load_messaging_settings(settings, environ).search_key) == 32


def test_only_privacys_migrations_get_the_audit_logs_owner():
    """Issue 11, finding 7: the owner of the audit log's tables may switch its triggers off; its URL reaches
    the ``migrate`` initContainer only, never the service or the relay (they run as the runtime role)."""
    holders = {f"{workload['metadata']['name']}/{container['name']}" for workload in all_workloads()
               for container in containers(workload) if "PRIVACY_MIGRATION_DATABASE_URL" in resolved_env(container)}
    assert holders == {"privacy/migrate"}
    relay = [c for c in containers(deployments()["privacy-relay"]) if c["name"] == "relay"][0]
    assert resolved_env(relay)["PRIVACY_CHECKPOINT_FILE"][1].startswith("/var/lib/upgestao/audit-checkpoints/")


def test_every_secret_key_is_used_and_every_used_key_is_templated():
    used = set()
    for workload in all_workloads():
        for container in containers(workload):
            used |= {value for source, value in resolved_env(container).values() if source == "secret"}
    expected = set(SHARED_SECRETS) | {f"{env_prefix(service)}_DATABASE_URL" for service in SERVICES}
    expected |= {f"{env_prefix(service)}_AMQP_URI" for service in SERVICES}
    expected |= SERVICE_SECRETS
    assert used == expected
    assert secret_template_keys() == expected


@pytest.mark.parametrize("name", WORKLOADS)
def test_every_container_is_locked_down(name):
    workload = workload_named(name)
    spec = pod_spec(workload)
    pod_sc = spec.get("securityContext", {})
    assert spec.get("automountServiceAccountToken") is False
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        assert not spec.get(flag)
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    assert not any("hostPath" in v for v in volumes.values())
    for container in containers(workload):
        where = f"{workload['metadata']['name']}/{container['name']}"
        sc = container.get("securityContext", {})
        assert sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True, where
        assert sc.get("runAsUser", pod_sc.get("runAsUser")) == UID, where
        assert sc.get("allowPrivilegeEscalation") is False, where
        assert not sc.get("privileged"), where
        assert sc.get("readOnlyRootFilesystem") is True, where
        assert sc.get("capabilities", {}).get("drop") == ["ALL"], where
        assert not sc.get("capabilities", {}).get("add"), where
        (tmp,) = [m for m in container.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
        assert "emptyDir" in volumes[tmp["name"]], f"{where}: /tmp must be an emptyDir"
        resources_ = container.get("resources", {})
        for bound in ("requests", "limits"):
            assert {"cpu", "memory"} <= resources_.get(bound, {}).keys(), f"{where}: no {bound}"


# -- the gateway is the only door ----------------------------------------------


def test_gateway_listens_where_its_probes_and_service_look():
    container = gateway_run_container()
    env = resolved_env(container)
    host, _, port = env["GATEWAY_HTTP_ADDRESS"][1].rpartition(":")
    assert host == "0.0.0.0" and int(port) == GATEWAY_PORT
    definition = importlib.import_module("upgestao_gateway.definition")
    assert definition.http_address({"GATEWAY_HTTP_ADDRESS": env["GATEWAY_HTTP_ADDRESS"][1]})
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
        "http": GATEWAY_PORT, "probe": PROBE_PORT, "metrics": METRICS_PORT}

    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"), ("startupProbe", "/healthz")):
        get = container[probe]["httpGet"]
        assert get["path"] == path, probe
        assert container_port(container, get["port"]) == GATEWAY_PORT, probe

    (service,) = of_kind("Service")
    assert service["metadata"]["name"] == "gateway"
    assert service["spec"].get("type", "ClusterIP") == "ClusterIP"
    assert (
        service["spec"]["selector"].items()
        <= deployments()["gateway"]["spec"]["template"]["metadata"]["labels"].items()
    )
    (port,) = service["spec"]["ports"]
    assert port["port"] == 80
    assert container_port(container, port["targetPort"]) == GATEWAY_PORT


def test_only_the_gateway_is_reachable():
    pods = {name: d["spec"]["template"]["metadata"]["labels"] for name, d in deployments().items()}

    def selected(selector: dict) -> set[str]:
        return {name for name, labels in pods.items()
                if selector.get("matchLabels", {}).items() <= labels.items()
                and all(labels.get(e["key"]) in e["values"] for e in selector.get("matchExpressions", [])
                        if e["operator"] == "In")}

    for service in of_kind("Service"):
        assert selected({"matchLabels": service["spec"]["selector"]}) == {"gateway"}
    (ingress,) = of_kind("Ingress")
    service_ports = {(s["metadata"]["name"], p.get("name")) for s in of_kind("Service") for p in s["spec"]["ports"]}
    service_ports |= {(s["metadata"]["name"], p["port"]) for s in of_kind("Service") for p in s["spec"]["ports"]}
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            assert backend["name"] == "gateway"
            assert (backend["name"], backend["port"].get("name", backend["port"].get("number"))) in service_ports
    for name, deployment in deployments().items():
        for container in containers(deployment):
            ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
            # /metrics (issue 18): reachable from the monitoring namespace only (metrics-from-monitoring below)
            allowed = {"http": GATEWAY_PORT, "probe": PROBE_PORT} if container["name"] == "gateway" else {
                "probe": PROBE_PORT}
            allowed["metrics"] = METRICS_PORT
            if container["name"] == "migrate":
                allowed = {}
            assert ports.items() <= allowed.items(), f"{name}/{container['name']}: listens on {ports}"

    policies = of_kind("NetworkPolicy")
    every_pod = set(pods)
    (deny,) = [p for p in policies if not p["spec"].get("ingress") and not p["spec"].get("egress")]
    assert set(deny["spec"]["policyTypes"]) == {"Ingress", "Egress"}, "deny both ways by default"
    assert selected(deny["spec"]["podSelector"]) == every_pod
    for policy in policies:
        if policy["metadata"]["name"] == "metrics-from-monitoring":  # issue 18: Prometheus, metrics port only
            assert selected(policy["spec"]["podSelector"]) == every_pod
            (rule,) = policy["spec"]["ingress"]
            assert [peer for peer in rule["from"]] == [
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
            assert rule["ports"] == [{"protocol": "TCP", "port": "metrics"}], "the metrics port only"
        elif policy["spec"].get("ingress"):
            assert selected(policy["spec"]["podSelector"]) == {"gateway"}
            for rule in policy["spec"]["ingress"]:
                assert [peer["namespaceSelector"]["matchLabels"] for peer in rule["from"]] == [
                    {"kubernetes.io/metadata.name": "ingress-nginx"}], "the ingress controller only"
                for port in rule.get("ports", []):
                    assert container_port(gateway_run_container(), port["port"]) == GATEWAY_PORT


def _egress_policies(pod: str) -> list[dict]:
    labels = deployments()[pod]["spec"]["template"]["metadata"]["labels"]
    found = []
    for policy in of_kind("NetworkPolicy"):
        selector = policy["spec"]["podSelector"]
        if selector.get("matchLabels", {}).items() <= labels.items() and all(
                labels.get(e["key"]) in e["values"] for e in selector.get("matchExpressions", [])):
            found.extend(policy["spec"].get("egress", []))
    return found


PRIVATE_RANGES = {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10"}


@pytest.mark.parametrize("name", sorted({*SERVICES, *(f"{s}-relay" for s in SERVICES)}))
def test_each_pod_reaches_only_dns_the_broker_its_database_and_what_it_must(name):
    rules = _egress_policies(name)
    # issue 18: the OTLP/HTTP trace collector in the namespace monitoring, its port only
    traces = [rule for rule in rules if any("podSelector" not in p and "ipBlock" not in p for p in rule["to"])]
    assert traces == [{"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
                       "ports": [{"protocol": "TCP", "port": 4318}]}], f"{name}: traces to the collector only"
    rules = [rule for rule in rules if rule not in traces]
    peers = [peer for rule in rules for peer in rule["to"]]
    in_cluster = [p for p in peers if "ipBlock" not in p]
    assert {tuple(sorted(p["podSelector"]["matchLabels"].items())) for p in in_cluster} == {
        (("k8s-app", "kube-dns"),),
        (("app.kubernetes.io/component", "rabbitmq"), ("app.kubernetes.io/name", "rabbitmq")),
        (("cnpg.io/cluster", "upgestao-pg"),)}
    blocks = [p["ipBlock"] for p in peers if "ipBlock" in p]
    internet = name in ("notifier", "integrations")
    assert bool(blocks) == internet, f"{name}: only the notifier and integrations reach the Internet"
    for block in blocks:
        if block["cidr"] == "0.0.0.0/0":
            assert PRIVATE_RANGES <= set(block["except"]), f"{name}: the cluster's private ranges are excluded"
        else:
            assert block["cidr"] == "::/0" and "fc00::/7" in block["except"]
    if name == "notifier":
        (smtp,) = [rule for rule in rules if any("ipBlock" in p for p in rule["to"])]
        assert {p["port"] for p in smtp["ports"]} == {25, 465, 587}


@pytest.mark.parametrize("name", sorted({*SERVICES, *(f"{s}-relay" for s in SERVICES)}))
def test_every_long_running_container_is_probed_where_it_answers(name):
    (container,) = pod_spec(deployments()[name])["containers"]
    env = resolved_env(container)
    assert env["UPGESTAO_PROBE_ADDRESS"] == ("value", f"0.0.0.0:{PROBE_PORT}")
    expected = {"livenessProbe": "/livez", "readinessProbe": "/readyz", "startupProbe": "/livez"}
    if name == "gateway":  # its own HTTP server answers /healthz and /readyz (broker, database, every service)
        expected = {"livenessProbe": "/healthz", "readinessProbe": "/readyz", "startupProbe": "/healthz"}
    for probe, path in expected.items():
        get = container[probe]["httpGet"]
        assert get["path"] == path, f"{name}: {probe}"
        assert container_port(container, get["port"]) == (GATEWAY_PORT if name == "gateway" else PROBE_PORT)


# -- the image --------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """``[(INSTRUCTION, arguments)]`` with continuation lines joined, comments dropped."""
    lines = [line for line in DOCKERFILE.read_text().splitlines() if not line.lstrip().startswith("#")]
    joined, current = [], ""
    for line in lines:
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        current += line
        if current.strip():
            joined.append(current.strip())
        current = ""
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1] if " " in text else "") for text in joined]


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for instruction, args in dockerfile_instructions():
        if instruction == "FROM":
            result.append([])
        if result:
            result[-1].append((instruction, args))
    return result


def test_dockerfile_builds_any_service_on_a_pinned_slim_python():
    instructions = dockerfile_instructions()
    global_args = {}
    for instruction, args in instructions:
        if instruction == "FROM":
            break
        if instruction == "ARG" and "=" in args:
            name, _, value = args.partition("=")
            global_args[name] = value

    def resolved(text: str) -> str:
        for _ in range(5):  # BUILD_IMAGE defaults to ${BASE_IMAGE}
            text = re.sub(r"\$\{?(\w+)\}?", lambda m: global_args.get(m.group(1), m.group(0)), text)
        return text

    build = stages()
    named = {stage[0][1].split()[-1]: stage for stage in build if " AS " in stage[0][1].upper()}
    assert {"wheels", "builder", "runtime"} <= set(named), "multi-stage: shared wheels, a builder, a runtime"
    for stage in build:
        image = resolved(stage[0][1].split()[0])
        assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", image), f"unpinned or wrong default base {image}"
    wheels, builder, runtime = named["wheels"], named["builder"], build[-1]
    assert runtime is named["runtime"], "the runtime stage is the last (the image built by default)"
    wheel_args = {args.split("=")[0] for instruction, args in wheels if instruction == "ARG"}
    assert not {"SERVICE", "PACKAGE"} & wheel_args, "the wheels stage is the same layer cache for every service"
    for stage in (builder, runtime):
        declared = {args.split("=")[0] for instruction, args in stage if instruction == "ARG"}
        assert {"SERVICE", "PACKAGE"} <= declared
    copies = [args.split()[0] for instruction, args in wheels if instruction == "COPY"]
    assert {"kernel/", "services/", "requirements.lock"} <= set(copies), copies
    wheel_runs = " ".join(args for instruction, args in wheels if instruction == "RUN")
    assert "--require-hashes" in wheel_runs and "-r requirements.lock" in wheel_runs, "every dependency hash-checked"
    assert "pip wheel" in wheel_runs and "./kernel" in wheel_runs
    builder_runs = " ".join(args for instruction, args in builder if instruction == "RUN")
    assert "--no-index" in builder_runs and '"upgestao-${SERVICE}"' in builder_runs, "only the built wheels"
    assert "COPY --from=wheels" in " ".join(f"{i} {a}" for i, a in builder)

    runtime_text = " ".join(args for _, args in runtime)
    assert "from=builder" in runtime_text, "the runtime stage installs the builder's wheels"
    for tool in ("gcc", "build-essential", "apt-get install", "make "):
        assert tool not in runtime_text, f"build tool in the runtime stage: {tool}"
    (user,) = [args for instruction, args in runtime if instruction == "USER"]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) == UID != 0, "non-root numeric USER matching the manifests"
    env = " ".join(args for instruction, args in runtime if instruction == "ENV")
    assert "PACKAGE=${PACKAGE}" in env
    (entrypoint,) = [json.loads(args) for instruction, args in runtime if instruction == "ENTRYPOINT"]
    assert "python -m" in " ".join(entrypoint) and "$PACKAGE" in " ".join(entrypoint)
    assert entrypoint[-1] == "--" or entrypoint[:2] == ["python", "-m"]
    (cmd,) = [json.loads(args) for instruction, args in runtime if instruction == "CMD"]
    assert cmd == ["run"]
    assert [i for i, _ in runtime].index("USER") > max(n for n, (i, _) in enumerate(runtime) if i == "RUN"), (
        "USER comes after the last RUN"
    )


def _dockerignore_excludes(path: str) -> bool:
    """Docker's rules: last matching pattern wins; a pattern matches a path or any parent."""

    def regex(pattern: str) -> re.Pattern:
        out = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                out += "(?:.*/)?"
                i += 3
            elif pattern.startswith("**", i):
                out += ".*"
                i += 2
            elif pattern[i] == "*":
                out += "[^/]*"
                i += 1
            elif pattern[i] == "?":
                out += "[^/]"
                i += 1
            elif pattern[i] == "[":
                end = pattern.index("]", i)
                out += pattern[i : end + 1]
                i = end + 1
            else:
                out += re.escape(pattern[i])
                i += 1
        return re.compile(out + r"$")

    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for raw in DOCKERIGNORE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = regex(line.lstrip("!").strip("/"))
        if any(pattern.match(prefix) for prefix in prefixes):
            excluded = not negate
    return excluded


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        "var/identity.sqlite3",
        ".git/HEAD",
        "bench/results/run.json",
        "kernel/src/upgestao_kernel/__pycache__/config.cpython-311.pyc",
        "services/identity/src/upgestao_identity/__pycache__/service.cpython-311.pyc",
        "services/identity/src/upgestao_identity.egg-info/PKG-INFO",
    ],
)
def test_dockerignore_keeps_local_state_out_of_the_context(path):
    assert _dockerignore_excludes(path)


@pytest.mark.parametrize(
    "path",
    [
        "kernel/pyproject.toml",
        "kernel/src/upgestao_kernel/config.py",
        "services/identity/pyproject.toml",
        "services/integration-gateway/src/upgestao_gateway/migrations/script.py.mako",
        "requirements.lock",
        "deploy/images/lock_entries.py",
    ],
)
def test_dockerignore_keeps_what_the_build_copies(path):
    assert (ROOT / path).exists()
    assert not _dockerignore_excludes(path)


def test_readme_builds_all_five_images_consistently():
    text = (DEPLOY / "README.md").read_text() + DOCKERFILE.read_text()
    builds = re.findall(
        r"docker build -f deploy/Dockerfile\s+(?:\\\s*#?\s*)?--build-arg SERVICE=(\S+)\s+(?:\\\s*#?\s*)?"
        r"--build-arg PACKAGE=(\S+)\s+-t\s+(\S+)\s+\.",
        text,
    )
    by_folder = {folder: (service, package) for service, (folder, package) in SERVICES.items()}
    seen = set()
    for folder, package, tag in builds:
        service, expected_package = by_folder[folder]
        assert package == expected_package
        assert tag.split(":")[0] == f"upgestao/{service}"
        seen.add(service)
    assert seen == set(SERVICES)


# -- the broker identities (issue 11) -----------------------------------------------------------


def _broker(kind: str) -> list[dict]:
    return [doc for doc in of_kind(kind) if doc["apiVersion"] == BROKER_API]


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_has_its_broker_user_with_the_kernel_s_permissions(service):
    from upgestao_kernel.broker_permissions import permissions_for

    grants = permissions_for(service, BROKER_VHOST)
    users = [u for u in _broker("User") if u["metadata"]["labels"].get("app.kubernetes.io/name") == service]
    (user,) = users
    assert user["spec"]["importCredentialsSecret"]["name"] == f"upgestao-broker-{service}"
    assert user["spec"].get("tags", []) == [], "a service's user needs no management tag"
    (permission,) = [p for p in _broker("Permission") if p["spec"]["userReference"]["name"] == user["metadata"]["name"]]
    assert permission["spec"]["vhost"] == BROKER_VHOST
    assert permission["spec"]["permissions"] == {"configure": grants.configure, "write": grants.write,
                                                 "read": grants.read}
    topics = {t["spec"]["permissions"]["exchange"]: t["spec"]["permissions"] for t in _broker("TopicPermission")
              if t["spec"]["userReference"]["name"] == user["metadata"]["name"]}
    assert topics == {t.exchange: {"exchange": t.exchange, "write": t.write, "read": t.read} for t in grants.topics}
    assert all(t["spec"]["vhost"] == BROKER_VHOST for t in _broker("TopicPermission"))
    # the credentials Secret's username is the kernel's name for the user (secret.example.yaml says so)
    assert f"username={grants.user}" in SECRET_TEMPLATE.read_text().replace("$svc", service)


def test_the_broker_topology_is_the_one_generated_from_the_kernel_s_table():
    from e2e_platform import load_script

    topology = load_script("scripts/rabbitmq_topology.py", "rabbitmq_topology")
    assert topology.main(["--check"]) == 0, "run python scripts/rabbitmq_topology.py"


def test_the_broker_resources_are_exactly_the_services_users_and_the_unrouted_policy():
    assert len(_broker("User")) == len(SERVICES) == len(_broker("Permission"))
    from upgestao_kernel.broker_permissions import UNROUTED_POLICY, UNROUTED_POLICY_NAME

    (policy,) = [p for p in _broker("Policy") if p["spec"]["name"] == UNROUTED_POLICY_NAME]

    assert policy["spec"]["name"] == UNROUTED_POLICY_NAME and policy["spec"]["vhost"] == BROKER_VHOST
    assert policy["spec"]["pattern"] == UNROUTED_POLICY["pattern"]
    assert policy["spec"]["applyTo"] == UNROUTED_POLICY["apply-to"]
    assert policy["spec"]["priority"] == UNROUTED_POLICY["priority"]
    assert policy["spec"]["definition"] == UNROUTED_POLICY["definition"]
    for doc in _broker("User") + _broker("Permission") + _broker("TopicPermission") + [policy]:
        assert doc["spec"]["rabbitmqClusterReference"]["name"]
    # what no service user may declare: the unrouted catch-all, bound, and the audit exchange
    exchanges = {doc["spec"]["name"]: doc["spec"] for doc in _broker("Exchange")}
    assert exchanges["upgestao.unrouted"]["type"] == "fanout"
    assert exchanges["audit"]["arguments"] == {"alternate-exchange": "upgestao.unrouted"}
    ((queue,),) = [[d["spec"] for d in _broker("Queue")]]
    assert queue["name"] == "upgestao.unrouted" and queue["durable"]
    ((binding,),) = [[d["spec"] for d in _broker("Binding")]]
    assert (binding["source"], binding["destination"], binding["destinationType"]) == (
        "upgestao.unrouted", "upgestao.unrouted", "queue")


# -- the broker and the database on their operators ---------------------------------------------


def test_the_vhost_defaults_to_quorum_queues_and_every_stream_is_bounded():
    (vhost,) = _broker("Vhost")
    assert vhost["spec"]["name"] == BROKER_VHOST and vhost["spec"]["defaultQueueType"] == "quorum"
    streams = {p["spec"]["pattern"]: p["spec"]["definition"] for p in _broker("Policy")
               if "max-age" in p["spec"]["definition"]}
    assert set(streams) == {r"^audit\.log$", r"^gateway\.access\-events$", r"^gateway\.push\-events$"}
    assert all(d["max-length-bytes"] > 0 for d in streams.values())
    (cluster,) = of_kind("RabbitmqCluster")
    assert cluster["metadata"]["name"] == "rabbitmq" and cluster["spec"]["replicas"] == 3
    assert "cluster_partition_handling = pause_minority" in cluster["spec"]["rabbitmq"]["additionalConfig"]
    assert cluster["spec"]["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]


def test_every_service_has_its_database_and_roles_on_the_cloudnativepg_cluster():
    (cluster,) = of_kind("Cluster")
    assert cluster["spec"]["instances"] == 3
    roles = {r["name"]: r for r in cluster["spec"]["managed"]["roles"]}
    databases = {d["spec"]["name"]: d["spec"] for d in of_kind("Database")}
    for service in SERVICES:
        owner = "privacy_owner" if service == "privacy" else service
        assert databases[f"upgestao_{service}"]["owner"] == owner
        assert databases[f"upgestao_{service}"]["cluster"]["name"] == cluster["metadata"]["name"]
        assert roles[owner]["login"] and not roles[owner].get("superuser")
    # the audit log's runtime role owns nothing (issue 11, finding 7)
    assert "privacy_runtime" in roles and "privacy_runtime" not in {d["owner"] for d in databases.values()}
    assert set(roles) == {*(s for s in SERVICES if s != "privacy"), "privacy_owner", "privacy_runtime"}
    # backups through the Barman Cloud plugin, never the deprecated in-tree barmanObjectStore
    assert "backup" not in cluster["spec"]
    (plugin,) = cluster["spec"]["plugins"]
    (store,) = of_kind("ObjectStore")
    assert plugin["isWALArchiver"] and plugin["parameters"]["barmanObjectName"] == store["metadata"]["name"]
    (scheduled,) = of_kind("ScheduledBackup")
    assert scheduled["spec"]["method"] == "plugin"
    assert scheduled["spec"]["pluginConfiguration"]["name"] == plugin["name"]


def _rendered(overlay: str) -> list[dict]:
    out = subprocess.run(["kubectl", "kustomize", str(K8S_ROOT / "overlays" / overlay)], capture_output=True,
                         text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def test_the_base_renders_as_listed():
    out = subprocess.run(["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    rendered = [doc for doc in yaml.safe_load_all(out.stdout) if doc]
    assert sorted((d["kind"], d["metadata"]["name"]) for d in rendered) == sorted(
        (d["kind"], d["metadata"]["name"]) for d in resources()
    )
    for doc in rendered:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == NAMESPACE


def test_the_recovery_overlay_restores_from_the_object_store_and_archives_elsewhere():
    (cluster,) = [d for d in _rendered("prod-recovery") if d["kind"] == "Cluster"]
    bootstrap = cluster["spec"]["bootstrap"]
    assert set(bootstrap) == {"recovery"}, "recovery replaces initdb"
    (source,) = [c for c in cluster["spec"]["externalClusters"] if c["name"] == bootstrap["recovery"]["source"]]
    (archiver,) = [p for p in cluster["spec"]["plugins"] if p.get("isWALArchiver")]
    assert source["plugin"]["name"] == archiver["name"] == "barman-cloud.cloudnative-pg.io"
    assert source["plugin"]["parameters"]["barmanObjectName"] == archiver["parameters"]["barmanObjectName"]
    assert source["plugin"]["parameters"]["serverName"] == cluster["metadata"]["name"]
    assert archiver["parameters"]["serverName"] != source["plugin"]["parameters"]["serverName"], (
        "the restored cluster must not archive over the history it restores from")


def test_the_job_template_and_the_secret_template_pass_the_offline_validation():
    """What is applied by hand (not rendered by an overlay) meets the same schemas and policy."""
    from e2e_platform import load_script

    check = load_script("scripts/k8s_check.py", "k8s_check")
    docs = [job(service, command) for service in SERVICES for command in ("rotate-master-key", "rebuild")]
    docs += load_docs(SECRET_TEMPLATE)
    assert [str(p) for p in check.check_documents(docs, "templates")] == []


@pytest.mark.parametrize("name", sorted({*SERVICES, *(f"{s}-relay" for s in SERVICES)}))
def test_every_long_running_container_serves_metrics_where_the_podmonitor_scrapes(name):
    """Issue 18: the run container gets <SERVICE>_METRICS_ADDRESS, the relay <SERVICE>_RELAY_METRICS_ADDRESS, on
    the container port `metrics` that monitoring.yaml's PodMonitor scrapes (and the monitoring namespace alone
    reaches)."""
    (container,) = pod_spec(deployments()[name])["containers"]
    service = name.removesuffix("-relay")
    variable = f"{env_prefix(service)}_{'RELAY_' if name.endswith('-relay') else ''}METRICS_ADDRESS"
    assert resolved_env(container).get(variable) == ("value", f"0.0.0.0:{METRICS_PORT}"), f"{name}: {variable}"
    assert container_port(container, "metrics") == METRICS_PORT
    (monitor,) = of_kind("PodMonitor")
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
    labels = deployments()[name]["spec"]["template"]["metadata"]["labels"]
    selector = monitor["spec"]["selector"]
    assert selector["matchLabels"].items() <= labels.items()
    assert all(labels.get(e["key"]) in e["values"] for e in selector["matchExpressions"])
