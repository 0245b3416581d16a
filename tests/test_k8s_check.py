"""scripts/k8s_check.py: every overlay of deploy/k8s passes the offline validation (the Kubernetes schemas of
``kubernetes-validate``, the operators' vendored CRD schemas, the policy), and each kind of break fails it with
a message naming the object and the field (issue 16, "Validation in CI")."""

from __future__ import annotations

import copy
import functools
import os
import subprocess
from pathlib import Path

import pytest
from e2e_platform import load_script

ROOT = Path(__file__).resolve().parent.parent
check = load_script("scripts/k8s_check.py", "k8s_check")


@functools.cache
def _prod() -> tuple:
    return tuple(doc for doc in check.render(ROOT / "deploy" / "k8s" / "overlays" / "prod") if doc)


@pytest.fixture
def prod() -> list[dict]:
    """The prod overlay rendered (once), a fresh copy for each test to break."""
    return copy.deepcopy(list(_prod()))


def find(docs: list[dict], kind: str, name: str) -> dict:
    (doc,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def container(docs: list[dict], deployment: str, name: str, init: bool = False) -> dict:
    spec = find(docs, "Deployment", deployment)["spec"]["template"]["spec"]
    (found,) = [c for c in spec["initContainers" if init else "containers"] if c["name"] == name]
    return found


def problems(docs: list[dict]) -> list[str]:
    return [str(p) for p in check.check_documents(docs, "broken")]


def test_every_overlay_renders_and_passes(capsys):
    overlays = check.overlays()
    assert {path.name for path in overlays} == {"dev", "prod", "prod-recovery"}
    assert check.main([]) == 0, capsys.readouterr().out
    out = capsys.readouterr().out
    for overlay in overlays:
        assert f"ok   deploy/k8s/overlays/{overlay.name}: " in out


def test_the_unbroken_prod_overlay_has_no_problem_and_every_kind_a_schema(prod):
    assert problems(prod) == []
    for doc in prod:
        validator = check.crd_validator(doc["apiVersion"], doc["kind"]) or check.core_validator(
            doc["apiVersion"], doc["kind"])
        assert validator is not None, doc["kind"]
    kinds = {doc["kind"] for doc in prod}
    assert {"RabbitmqCluster", "Vhost", "User", "Policy", "Cluster", "Database", "ObjectStore", "ScheduledBackup",
            "Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy"} <= kinds


def test_a_misspelled_field_of_a_cloudnativepg_cluster_fails(prod):
    find(prod, "Cluster", "upgestao-pg")["spec"]["instancs"] = 3
    assert problems(prod) == [
        "broken: Cluster/upgestao-pg: spec: Additional properties are not allowed ('instancs' was unexpected)"]


def test_a_misspelled_field_deep_in_an_operator_object_fails(prod):
    find(prod, "ObjectStore", "upgestao-backups")["spec"]["configuration"]["s3Credentials"]["acessKeyId"] = {}
    (problem,) = problems(prod)
    assert problem.startswith("broken: ObjectStore/upgestao-backups: spec.configuration.s3Credentials: ")
    assert "'acessKeyId' was unexpected" in problem


def test_a_misspelled_metadata_field_of_an_operator_object_fails(prod):
    find(prod, "RabbitmqCluster", "rabbitmq")["metadata"]["lables"] = {"a": "b"}
    (problem,) = problems(prod)
    assert problem.startswith("broken: RabbitmqCluster/rabbitmq: metadata: ") and "'lables'" in problem


def test_a_wrong_type_in_an_operator_object_fails(prod):
    find(prod, "RabbitmqCluster", "rabbitmq")["spec"]["replicas"] = "three"
    assert problems(prod) == ["broken: RabbitmqCluster/rabbitmq: spec.replicas: 'three' is not of type 'integer'"]


def test_a_misspelled_field_of_a_core_kind_fails(prod):
    container(prod, "identity", "identity")["livenesProbe"] = {}
    (problem,) = problems(prod)
    assert problem.startswith("broken: Deployment/identity: spec.template.spec.containers[0]: ")
    assert "'livenesProbe' was unexpected" in problem


def test_a_container_without_limits_fails(prod):
    del container(prod, "messaging", "migrate", init=True)["resources"]["limits"]
    assert problems(prod) == [
        "broken: Deployment/messaging: spec.template.spec.initContainers[0].resources.limits.cpu: "
        "container 'migrate': no cpu limits: every container is bounded",
        "broken: Deployment/messaging: spec.template.spec.initContainers[0].resources.limits.memory: "
        "container 'migrate': no memory limits: every container is bounded"]


@pytest.mark.parametrize("image", ["registry.example.com/upgestao/gateway:latest",
                                   "registry.example.com/upgestao/gateway", "localhost:5000/upgestao/gateway"])
def test_a_latest_or_untagged_image_fails(prod, image):
    container(prod, "gateway", "gateway")["image"] = image
    (problem,) = problems(prod)
    assert problem.startswith("broken: Deployment/gateway: spec.template.spec.containers[0].image: image ")


def test_an_operator_image_without_a_tag_fails(prod):
    find(prod, "Cluster", "upgestao-pg")["spec"]["imageName"] = "ghcr.io/cloudnative-pg/postgresql:latest"
    (problem,) = problems(prod)
    assert problem.startswith("broken: Cluster/upgestao-pg: spec.imageName: image ")


def test_a_kind_with_no_schema_fails(prod):
    prod.append({"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "messaging"},
                 "spec": {"scaleTargetRef": {"name": "messaging"}}})
    (problem,) = problems(prod)
    assert problem.startswith("broken: ScaledObject/messaging: apiVersion/kind: no schema for ScaledObject keda.sh")


def test_a_long_running_container_without_probes_fails(prod):
    relay = container(prod, "privacy-relay", "relay")
    del relay["livenessProbe"], relay["readinessProbe"]
    assert problems(prod) == [
        "broken: Deployment/privacy-relay: spec.template.spec.containers[0].livenessProbe: container 'relay': "
        "a long-running container needs one",
        "broken: Deployment/privacy-relay: spec.template.spec.containers[0].readinessProbe: container 'relay': "
        "a long-running container needs one"]


@pytest.mark.parametrize(("field", "value", "expected"), [
    ("privileged", True, "securityContext.privileged: container 'notifier': privileged"),
    ("allowPrivilegeEscalation", True, "securityContext.allowPrivilegeEscalation: container 'notifier': must be"),
    ("capabilities", {"add": ["NET_ADMIN"], "drop": ["ALL"]}, "securityContext.capabilities.add: container"),
    ("runAsNonRoot", False, "securityContext.runAsNonRoot: container 'notifier': runAsNonRoot must be true"),
])
def test_a_privileged_setting_fails(prod, field, value, expected):
    container(prod, "notifier", "notifier")["securityContext"][field] = value
    (problem,) = problems(prod)
    assert problem.startswith(f"broken: Deployment/notifier: spec.template.spec.containers[0].{expected}")


def test_host_namespaces_and_host_paths_fail(prod):
    spec = find(prod, "Deployment", "integrations")["spec"]["template"]["spec"]
    spec["hostNetwork"] = True
    spec["volumes"].append({"name": "node", "hostPath": {"path": "/"}})
    assert problems(prod) == [
        "broken: Deployment/integrations: spec.template.spec.hostNetwork: must not share the node's namespaces",
        f"broken: Deployment/integrations: spec.template.spec.volumes[{len(spec['volumes']) - 1}].hostPath: "
        "volume 'node' mounts the node's files"]


def test_the_command_line_fails_on_a_broken_overlay(tmp_path):
    """End to end: an overlay over dev that misspells a field of the CNPG Cluster exits 1 and names it."""
    dev = os.path.relpath(ROOT / "deploy" / "k8s" / "overlays" / "dev", tmp_path)  # kustomize: relative only
    (tmp_path / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"resources:\n- {dev}\npatches:\n- path: typo.yaml\n")
    (tmp_path / "typo.yaml").write_text(
        "apiVersion: postgresql.cnpg.io/v1\nkind: Cluster\nmetadata:\n  name: upgestao-pg\n"
        "spec:\n  primaryUpdateStrategi: unsupervised\n")
    out = subprocess.run([str(ROOT / ".venv" / "bin" / "python"), str(ROOT / "scripts" / "k8s_check.py"),
                          str(tmp_path)], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 1, out.stdout + out.stderr
    assert (f"FAIL {tmp_path}: Cluster/upgestao-pg: spec: Additional properties are not allowed "
            "('primaryUpdateStrategi' was unexpected)") in out.stdout
