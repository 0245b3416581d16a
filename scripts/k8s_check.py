#!/usr/bin/env python3
"""Validate the Kubernetes manifests offline: every overlay rendered, every object checked against the
real schemas, plus a policy check (issue 16, "Validation in CI").

    python scripts/k8s_check.py                          # every overlay of deploy/k8s/overlays
    python scripts/k8s_check.py deploy/k8s/overlays/dev  # the overlays (kustomize directories) named
    python scripts/k8s_check.py --file rendered.yaml     # an already rendered stream (``-``: stdin)

Exit 0 when every object passes; 1 with one line per problem, naming the overlay, the object
(``Kind/name``) and the field, otherwise; 2 when an overlay does not render.

* Rendering: ``kubectl kustomize <overlay>`` (kubectl 1.32 embeds kustomize 5.5; no cluster needed).
* Core kinds: the JSON schemas of Kubernetes :data:`KUBERNETES_VERSION` shipped by the
  ``kubernetes-validate`` package, its *strict* variant (``additionalProperties: false``): a misspelled
  field fails.
* Operator kinds (RabbitMQ, CloudNativePG, Barman Cloud): the CRDs' ``openAPIV3Schema`` vendored in
  ``deploy/schemas/<group>/<kind>_<version>.json`` (``SOURCES.txt`` names the upstream commits), made
  strict here the way ``openapi2jsonschema --strict`` does (``additionalProperties: false`` wherever
  ``properties`` are listed and nothing else is allowed), and ``metadata`` checked as an ObjectMeta.
* A kind with no schema FAILS: nothing is skipped.
* Policy: images tagged (never ``latest``, never untagged); every container and init container with CPU
  and memory requests and limits; every long-running container with liveness and readiness probes; no
  privileged container, ``allowPrivilegeEscalation: false``, no added capabilities, ``runAsNonRoot``
  (container or pod); no hostNetwork/hostPID/hostIPC, no hostPath volume. The operators' workloads: the
  RabbitmqCluster's and the CloudNativePG Cluster's images tagged and their resources bounded.
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import resources as importlib_resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from referencing import Registry, Resource

ROOT = Path(__file__).resolve().parent.parent
OVERLAYS = ROOT / "deploy" / "k8s" / "overlays"
CRD_SCHEMAS = ROOT / "deploy" / "schemas"
KUBERNETES_VERSION = "1.32.0"  # the oldest Kubernetes the manifests must be accepted by (kubectl's too)
KUBECTL_TIMEOUT_S = 60
POD_TEMPLATE_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}
# Kinds whose containers run once (no probes): a Job's pods, and every init container.
RUN_ONCE_KINDS = {"Job", "CronJob"}


@dataclass(frozen=True)
class Problem:
    """One finding: where (``source``: the overlay or file), which object, which field, what."""

    source: str
    obj: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.source}: {self.obj}: {self.field or '(object)'}: {self.message}"


# -- schemas -----------------------------------------------------------------------------------------


def _core_schema_dir() -> Any:
    return (importlib_resources.files("kubernetes_validate") / "kubernetes-json-schema"
            / f"v{KUBERNETES_VERSION}-local-strict")


@functools.cache
def _core_registry() -> Registry:
    definitions = json.loads((_core_schema_dir() / "_definitions.json").read_text())
    return Resource.from_contents(definitions) @ Registry()


def _core_schema_name(api_version: str, kind: str) -> str:
    group, _, version = api_version.rpartition("/")
    group = group.split(".")[0] if group else "core"
    return f"{kind.lower()}-{group}-{version}.json" if group != "core" else f"{kind.lower()}-{version}.json"


@functools.cache
def core_validator(api_version: str, kind: str) -> jsonschema.protocols.Validator | None:
    """The strict validator of a core Kubernetes kind (``None``: the package ships no such schema)."""
    path = _core_schema_dir() / _core_schema_name(api_version, kind)
    if not path.is_file():
        return None
    schema = json.loads(path.read_text())
    registry = Resource.from_contents(schema) @ _core_registry()
    return jsonschema.Draft202012Validator(schema, registry=registry)


def strict(schema: Any) -> Any:
    """A copy of an OpenAPI v3 (CRD) schema in which a listed set of ``properties`` is closed, as
    ``openapi2jsonschema --strict``: ``additionalProperties: false`` unless the schema already says what
    else is allowed or preserves unknown fields; ``nullable: true`` admits null."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: strict(value) if key not in ("enum", "default", "example", "required") else value
           for key, value in schema.items()}
    if "properties" in out and "additionalProperties" not in out and not out.get(
            "x-kubernetes-preserve-unknown-fields"):
        out["properties"] = {name: strict(sub) for name, sub in schema["properties"].items()}
        out["additionalProperties"] = False
    if out.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"] if isinstance(out["type"], str) else [*out["type"], "null"]
    return out


def _crd_schema_path(api_version: str, kind: str) -> Path:
    group, _, version = api_version.rpartition("/")
    return CRD_SCHEMAS / group / f"{kind.lower()}_{version}.json"


@functools.cache
def crd_validator(api_version: str, kind: str) -> jsonschema.protocols.Validator | None:
    """The strict validator of an operator's kind from the vendored CRD schema (``None``: not vendored)."""
    path = _crd_schema_path(api_version, kind)
    if "/" not in api_version or not path.is_file():
        return None
    schema = strict(json.loads(path.read_text()))
    properties = schema.setdefault("properties", {})
    # a CRD's metadata is "type: object": check it as the ObjectMeta it is
    properties["metadata"] = {"$ref": "https://kubernetes.io/api/_definitions.json"
                                      "#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}
    properties["apiVersion"] = {"const": api_version}
    properties["kind"] = {"const": kind}
    schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind", "metadata"})
    return jsonschema.Draft202012Validator(schema, registry=_core_registry())


def _where(doc: dict) -> str:
    return f"{doc.get('kind', '?')}/{(doc.get('metadata') or {}).get('name', '?')}"


def _field(path: Iterable[Any]) -> str:
    return ".".join(f"[{part}]" if isinstance(part, int) else str(part) for part in path).replace(".[", "[")


def schema_problems(doc: dict, source: str) -> list[Problem]:
    """The object against its kind's schema: core (kubernetes-validate) or vendored CRD; none: a problem."""
    api_version, kind = doc.get("apiVersion"), doc.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        return [Problem(source, _where(doc), "apiVersion/kind", "missing")]
    validator = crd_validator(api_version, kind) or core_validator(api_version, kind)
    if validator is None:
        return [Problem(source, _where(doc), "apiVersion/kind",
                        f"no schema for {kind} {api_version} (Kubernetes {KUBERNETES_VERSION} or deploy/schemas):"
                        " vendor the CRD's schema, never skip an object")]
    problems = []
    for error in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path))):
        problems.append(Problem(source, _where(doc), _field(error.absolute_path), error.message))
    return problems


# -- policy -------------------------------------------------------------------------------------------


def _image_problem(image: Any) -> str | None:
    if not isinstance(image, str) or not image:
        return "no image"
    if "@sha256:" in image:
        return None
    name, _, tag = image.rpartition(":")
    if not name or "/" in tag:  # "registry:5000/app" has a colon but no tag
        return f"image {image!r} has no tag: pin a version"
    if tag == "latest":
        return f"image {image!r}: the tag latest is mutable, pin a version"
    return None


def _pod_spec(doc: dict) -> tuple[dict, str] | None:
    kind, spec = doc.get("kind"), doc.get("spec") or {}
    if kind in POD_TEMPLATE_KINDS:
        return (spec.get("template") or {}).get("spec") or {}, "spec.template.spec"
    if kind == "CronJob":
        template = ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}
        return template.get("spec") or {}, "spec.jobTemplate.spec.template.spec"
    if kind == "Pod":
        return spec, "spec"
    return None


def _resources_problems(resources: Any, where: str) -> list[tuple[str, str]]:
    found = []
    for bound in ("requests", "limits"):
        values = (resources or {}).get(bound) or {}
        for name in ("cpu", "memory"):
            if name not in values:
                found.append((f"{where}.resources.{bound}.{name}", f"no {name} {bound}: every container is bounded"))
    return found


def pod_policy_problems(doc: dict, source: str) -> list[Problem]:
    found = _pod_spec(doc)
    if found is None:
        return []
    spec, at = found
    problems: list[tuple[str, str]] = []
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(flag):
            problems.append((f"{at}.{flag}", "must not share the node's namespaces"))
    for n, volume in enumerate(spec.get("volumes") or []):
        if "hostPath" in volume:
            problems.append((f"{at}.volumes[{n}].hostPath", f"volume {volume.get('name')!r} mounts the node's files"))
    pod_security = spec.get("securityContext") or {}
    runs_once = doc.get("kind") in RUN_ONCE_KINDS
    for list_name in ("initContainers", "containers"):
        for n, container in enumerate(spec.get(list_name) or []):
            where = f"{at}.{list_name}[{n}]"
            label = f"container {container.get('name')!r}"
            image_problem = _image_problem(container.get("image"))
            if image_problem:
                problems.append((f"{where}.image", image_problem))
            problems.extend((path, f"{label}: {message}")
                            for path, message in _resources_problems(container.get("resources"), where))
            # an init container runs to completion (a restartable "sidecar" init container runs all along)
            long_running = not runs_once and (list_name == "containers" or container.get("restartPolicy") == "Always")
            if long_running:
                for probe in ("livenessProbe", "readinessProbe"):
                    if not container.get(probe):
                        problems.append((f"{where}.{probe}", f"{label}: a long-running container needs one"))
            security = container.get("securityContext") or {}
            if security.get("privileged"):
                problems.append((f"{where}.securityContext.privileged", f"{label}: privileged"))
            if security.get("allowPrivilegeEscalation") is not False:
                problems.append((f"{where}.securityContext.allowPrivilegeEscalation",
                                 f"{label}: must be false (it is {security.get('allowPrivilegeEscalation')!r})"))
            added = (security.get("capabilities") or {}).get("add")
            if added:
                problems.append((f"{where}.securityContext.capabilities.add", f"{label}: adds {added}"))
            if security.get("runAsNonRoot", pod_security.get("runAsNonRoot")) is not True:
                problems.append((f"{where}.securityContext.runAsNonRoot",
                                 f"{label}: runAsNonRoot must be true (here or in the pod's securityContext)"))
            if security.get("runAsUser", pod_security.get("runAsUser")) == 0:
                problems.append((f"{where}.securityContext.runAsUser", f"{label}: runs as root (uid 0)"))
    return [Problem(source, _where(doc), path, message) for path, message in problems]


def operator_policy_problems(doc: dict, source: str) -> list[Problem]:
    """The pods the operators run from our objects: their images pinned, their resources bounded."""
    kind, spec = doc.get("kind"), doc.get("spec") or {}
    image_field = {"RabbitmqCluster": "image", "Cluster": "imageName"}.get(kind)
    if image_field is None or not str(doc.get("apiVersion", "")).startswith(("rabbitmq.com/", "postgresql.cnpg.io/")):
        return []
    problems = []
    image_problem = _image_problem(spec.get(image_field))
    if image_problem:
        problems.append(Problem(source, _where(doc), f"spec.{image_field}", image_problem))
    problems.extend(Problem(source, _where(doc), path, message)
                    for path, message in _resources_problems(spec.get("resources"), "spec"))
    return problems


# -- driving --------------------------------------------------------------------------------------------


def check_documents(docs: Iterable[Any], source: str) -> list[Problem]:
    """Every problem of the rendered objects ``docs`` (``source`` names them in the messages)."""
    problems: list[Problem] = []
    seen: set[tuple[str, str, str]] = set()
    for doc in docs:
        if doc is None:
            continue
        if not isinstance(doc, dict):
            problems.append(Problem(source, "?", "", "a document is not a mapping"))
            continue
        identity = (str(doc.get("apiVersion")), _where(doc), str((doc.get("metadata") or {}).get("namespace")))
        if identity in seen:
            problems.append(Problem(source, _where(doc), "metadata.name", "declared twice"))
        seen.add(identity)
        problems += schema_problems(doc, source)
        problems += pod_policy_problems(doc, source)
        problems += operator_policy_problems(doc, source)
    return problems


def render(overlay: Path) -> list[Any]:
    """``kubectl kustomize overlay``, parsed. Raises RuntimeError when it does not render."""
    try:
        out = subprocess.run(["kubectl", "kustomize", str(overlay)], capture_output=True, text=True,
                             timeout=KUBECTL_TIMEOUT_S, check=False)
    except FileNotFoundError as exc:
        raise RuntimeError("kubectl is not installed (kubectl >= 1.32 renders the overlays)") from exc
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"kubectl kustomize {overlay} did not finish in {KUBECTL_TIMEOUT_S} s") from exc
    if out.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {overlay} failed:\n{out.stderr.strip()}")
    return list(yaml.safe_load_all(out.stdout))


def overlays() -> list[Path]:
    """Every overlay: each directory under deploy/k8s/overlays with a kustomization.yaml."""
    return sorted(path.parent for path in OVERLAYS.glob("*/kustomization.yaml"))


def _name(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def check_overlay(overlay: Path) -> tuple[int, list[Problem]]:
    """``(number of objects, problems)`` of one overlay. Raises RuntimeError when it does not render."""
    docs = [doc for doc in render(overlay) if doc is not None]
    return len(docs), check_documents(docs, _name(overlay))


def _report(problems: list[Problem]) -> Iterator[str]:
    for problem in problems:
        yield f"FAIL {problem}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overlays", nargs="*", type=Path, help="kustomize directories (default: every overlay)")
    parser.add_argument("--file", type=Path, action="append", default=[],
                        help="a rendered multi-document YAML file to check (- : stdin)")
    args = parser.parse_args(argv)
    targets = args.overlays or ([] if args.file else overlays())
    failed = False
    for path in args.file:
        text = sys.stdin.read() if str(path) == "-" else path.read_text()
        docs = [doc for doc in yaml.safe_load_all(text) if doc is not None]
        problems = check_documents(copy.deepcopy(docs), _name(path))
        print("\n".join(_report(problems)) or f"ok   {_name(path)}: {len(docs)} objects")
        failed |= bool(problems)
    for overlay in targets:
        try:
            count, problems = check_overlay(overlay)
        except RuntimeError as exc:
            print(f"FAIL {_name(overlay)}: {exc}", file=sys.stderr)
            return 2
        print("\n".join(_report(problems)) or f"ok   {_name(overlay)}: {count} objects valid "
              f"(Kubernetes {KUBERNETES_VERSION} strict, CRDs from deploy/schemas strict) and within policy")
        failed |= bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
