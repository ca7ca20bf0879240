"""Checks on rendered Kubernetes objects. Each returns the problems it finds, empty when sound,
so a test can assert both that the chart passes and that a deliberate breakage is reported."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod"}
SECRET_LIKE = re.compile(r"(KEY|TOKEN|PASSWORD|SECRET)", re.IGNORECASE)


def pod_spec(obj: dict) -> dict | None:
    kind = obj["kind"]
    if kind == "Pod":
        return obj["spec"]
    if kind == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    if kind in WORKLOAD_KINDS:
        return obj["spec"]["template"]["spec"]
    return None


def pod_labels(obj: dict) -> dict:
    kind = obj["kind"]
    if kind == "Pod":
        return obj["metadata"].get("labels", {})
    if kind == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["metadata"].get("labels", {})
    return obj["spec"]["template"]["metadata"].get("labels", {})


def workloads(objects: Iterable[dict]) -> Iterator[dict]:
    return (o for o in objects if o["kind"] in WORKLOAD_KINDS)


def containers(spec: dict) -> list[dict]:
    return spec.get("initContainers", []) + spec.get("containers", [])


def name_of(obj: dict) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def matches(selector: dict, labels: dict) -> bool:
    """Kubernetes label-selector semantics (matchLabels and matchExpressions)."""
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and labels.get(key) in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def env_names(obj: dict, configmaps: dict[str, dict]) -> dict[str, set[str]]:
    """Per container: the env vars it gets, from env and from envFrom ConfigMaps."""
    spec = pod_spec(obj)
    names = {}
    for container in spec.get("containers", []):
        found = {e["name"] for e in container.get("env", [])}
        for source in container.get("envFrom", []):
            ref = source.get("configMapRef")
            if ref:
                found |= set(configmaps[ref["name"]].get("data", {}))
        names[container["name"]] = found
    return names


def env_var(container: dict, name: str) -> dict | None:
    return next((e for e in container.get("env", []) if e["name"] == name), None)


# --- the checks -------------------------------------------------------------------------------


def selector_problems(objects: list[dict]) -> list[str]:
    """Selectors of Deployments, Services, PDBs, HPAs and NetworkPolicies find the right pods."""
    problems = []
    pods = {name_of(w): pod_labels(w) for w in workloads(objects)}
    deployments = [o for o in objects if o["kind"] == "Deployment"]
    for deployment in deployments:
        if not matches(deployment["spec"]["selector"], pod_labels(deployment)):
            problems.append(f"{name_of(deployment)}: selector does not match its pod labels")
    for service in (o for o in objects if o["kind"] == "Service"):
        selector = {"matchLabels": service["spec"].get("selector", {})}
        selected = [w for w, labels in pods.items() if matches(selector, labels)]
        if not selected or any(not w.startswith("Deployment/") for w in selected):
            problems.append(f"{name_of(service)}: selects {selected or 'no pods'}, not one Deployment")
    for pdb in (o for o in objects if o["kind"] == "PodDisruptionBudget"):
        selected = [w for w, labels in pods.items() if matches(pdb["spec"]["selector"], labels)]
        if selected != [name_of(d) for d in deployments]:
            problems.append(f"{name_of(pdb)}: selects {selected}")
    for hpa in (o for o in objects if o["kind"] == "HorizontalPodAutoscaler"):
        target = hpa["spec"]["scaleTargetRef"]
        if f"{target['kind']}/{target['name']}" not in pods:
            problems.append(f"{name_of(hpa)}: scales {target['kind']}/{target['name']}, not rendered")
    for policy in (o for o in objects if o["kind"] == "NetworkPolicy"):
        if not any(matches(policy["spec"]["podSelector"], labels) for labels in pods.values()):
            problems.append(f"{name_of(policy)}: selects no pod of the release")
    return problems


def image_problems(objects: list[dict]) -> list[str]:
    """Every image names a fixed version: a tag other than latest, or a digest."""
    problems = []
    for workload in workloads(objects):
        for container in containers(pod_spec(workload)):
            image = container["image"]
            reference = image.split("@", 1)[0]
            tag = reference.rsplit(":", 1)[1] if ":" in reference.rsplit("/", 1)[-1] else ""
            if "@sha256:" not in image and (not tag or tag == "latest"):
                problems.append(f"{name_of(workload)}/{container['name']}: image {image!r} is not pinned")
            elif tag == "latest":
                problems.append(f"{name_of(workload)}/{container['name']}: image {image!r} uses latest")
    return problems


def security_problems(objects: list[dict]) -> list[str]:
    """Pods run as non-root with a seccomp profile, no token, hardened containers and limits."""
    problems = []
    for workload in workloads(objects):
        spec = pod_spec(workload)
        where = name_of(workload)
        pod_context = spec.get("securityContext") or {}
        if pod_context.get("runAsNonRoot") is not True:
            problems.append(f"{where}: pod runAsNonRoot is not true")
        if pod_context.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            problems.append(f"{where}: pod seccompProfile is not RuntimeDefault")
        if spec.get("automountServiceAccountToken") is not False:
            problems.append(f"{where}: the service account token is mounted")
        for container in containers(spec):
            context = container.get("securityContext") or {}
            at = f"{where}/{container['name']}"
            if context.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{at}: allowPrivilegeEscalation is not false")
            if context.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{at}: readOnlyRootFilesystem is not true")
            if context.get("privileged"):
                problems.append(f"{at}: privileged")
            if "ALL" not in context.get("capabilities", {}).get("drop", []):
                problems.append(f"{at}: capabilities are not all dropped")
            if context.get("runAsNonRoot") is not True:
                problems.append(f"{at}: runAsNonRoot is not true")
            resources = container.get("resources", {})
            for part in ("requests", "limits"):
                if not {"cpu", "memory"} <= set(resources.get(part, {})):
                    problems.append(f"{at}: {part} lack cpu or memory")
    return problems


def secret_problems(objects: list[dict], api_key_key: str, read_only_key: str) -> list[str]:
    """Keys only through secretKeyRef: the ingest gets the read-write key, the service the
    read-only one; no literal secret values in env or ConfigMaps; the chart creates no Secret."""
    problems = []
    for secret in (o for o in objects if o["kind"] == "Secret"):
        problems.append(f"{name_of(secret)}: the chart must not create Secrets")
    for configmap in (o for o in objects if o["kind"] == "ConfigMap"):
        for key in configmap.get("data", {}):
            if SECRET_LIKE.search(key):
                problems.append(f"{name_of(configmap)}: holds {key}, which belongs in a Secret")
    for workload in workloads(objects):
        component = pod_labels(workload).get("app.kubernetes.io/component")
        for container in containers(pod_spec(workload)):
            at = f"{name_of(workload)}/{container['name']}"
            for env in container.get("env", []):
                if SECRET_LIKE.search(env["name"]) and "secretKeyRef" not in env.get("valueFrom", {}):
                    problems.append(f"{at}: {env['name']} is not read from a Secret")
            qdrant_key = env_var(container, "QDRANT_API_KEY")
            if qdrant_key is None:
                continue
            key = qdrant_key["valueFrom"]["secretKeyRef"]["key"]
            if component == "service" and key != read_only_key:
                problems.append(f"{at}: the service gets Qdrant key {key!r}, not the read-only key")
            if component == "ingest" and key != api_key_key:
                problems.append(f"{at}: the ingest gets Qdrant key {key!r}, not the read-write key")
    return problems


def probe_problems(objects: list[dict], routes: set[str]) -> list[str]:
    """The service's probes call routes the app serves, on a port the container declares:
    liveness and startup on /healthz, readiness on /readyz."""
    problems = []
    expected = {"livenessProbe": "/healthz", "startupProbe": "/healthz", "readinessProbe": "/readyz"}
    for deployment in (o for o in objects if o["kind"] == "Deployment"):
        for container in pod_spec(deployment)["containers"]:
            at = f"{name_of(deployment)}/{container['name']}"
            ports = {p.get("name") for p in container.get("ports", [])}
            ports |= {p["containerPort"] for p in container.get("ports", [])}
            for probe, path in expected.items():
                get = container.get(probe, {}).get("httpGet")
                if get is None:
                    problems.append(f"{at}: no {probe} httpGet")
                    continue
                if get["path"] != path:
                    problems.append(f"{at}: {probe} calls {get['path']}, expected {path}")
                if get["path"] not in routes:
                    problems.append(f"{at}: {probe} calls {get['path']}, which the app does not serve")
                if get["port"] not in ports:
                    problems.append(f"{at}: {probe} uses port {get['port']!r}, not declared")
    return problems


def network_problems(objects: list[dict]) -> list[str]:
    """Every pod of the release is covered by a NetworkPolicy for ingress and egress; only the
    service accepts traffic, and only on its container port."""
    problems = []
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    for workload in workloads(objects):
        labels = pod_labels(workload)
        covering = [p for p in policies if matches(p["spec"]["podSelector"], labels)]
        types = {t for p in covering for t in p["spec"].get("policyTypes", [])}
        if not {"Ingress", "Egress"} <= types:
            problems.append(f"{name_of(workload)}: not isolated by a NetworkPolicy ({sorted(types)})")
        allowed = [rule for p in covering for rule in p["spec"].get("ingress", [])]
        component = labels.get("app.kubernetes.io/component")
        if component != "service" and allowed:
            problems.append(f"{name_of(workload)}: accepts ingress, but only the service should")
        if component == "service":
            spec = pod_spec(workload)
            own_ports = {p.get("name") for c in spec["containers"] for p in c.get("ports", [])}
            own_ports |= {p["containerPort"] for c in spec["containers"] for p in c.get("ports", [])}
            for rule in allowed:
                rule_ports = {p["port"] for p in rule.get("ports", [])}
                if not rule_ports or not rule_ports <= own_ports:
                    problems.append(f"{name_of(workload)}: ingress rule open beyond its port: {rule}")
    return problems
