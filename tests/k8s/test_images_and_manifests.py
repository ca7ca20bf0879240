"""The Dockerfiles, .dockerignore and the k8s/ manifests agree with the chart and the contract.
(The images themselves are built and run in tests/images.)"""

from __future__ import annotations

import json
import re

import pytest
import yaml

from . import manifest_checks as checks
from .conftest import K8S_DIR, ROOT, render

DOCKERFILES = {
    "ingest": ROOT / "jobs" / "ingest" / "Dockerfile",
    "service": ROOT / "services" / "recommender" / "Dockerfile",
}
PINNED_BASE = re.compile(
    r"^\$\{BASE_IMAGE:-python:3\.11\.\d+-slim-bookworm@sha256:[0-9a-f]{64}\} AS (build|runtime)$")


def instructions(dockerfile) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n\s*", " ", dockerfile.read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [tuple(line.split(None, 1)) for line in lines if line and not line.startswith("#")]


def stage(dockerfile, index) -> list[tuple[str, str]]:
    stages, current = [], []  # what comes before the first FROM (global ARGs) is no stage
    for instruction in instructions(dockerfile):
        if instruction[0] == "FROM":
            current = []
            stages.append(current)
        current.append(instruction)
    return stages[index]


@pytest.mark.parametrize("image", DOCKERFILES)
def test_images_build_on_a_base_pinned_by_version_and_digest_by_default(image):
    # One build argument, empty by default, picks the base of both stages; without it both are
    # the official image, pinned by version and digest.
    steps = instructions(DOCKERFILES[image])
    assert steps[0] == ("ARG", "BASE_IMAGE=")
    froms = [args for op, args in steps if op == "FROM"]
    assert len(froms) == 2, "multi-stage: a build stage and a runtime stage"
    assert [PINNED_BASE.match(base)[1] for base in froms] == ["build", "runtime"]
    assert len({base.split(" AS ")[0] for base in froms}) == 1


@pytest.mark.parametrize("image, lock", [("ingest", "ingest.lock"), ("service", "service.lock")])
def test_dependencies_install_from_the_hashed_lock_before_the_code_is_copied(image, lock):
    build = stage(DOCKERFILES[image], 0)
    steps = [f"{op} {args}" for op, args in build]
    lock_copy = steps.index(f"COPY requirements/{lock} /tmp/{lock}")
    lock_install = next(i for i, s in enumerate(steps) if f"--require-hashes -r /tmp/{lock}" in s)
    code_copy = steps.index("COPY src/ ./src/")
    assert lock_copy < lock_install < code_copy
    install = dict(build)["ENV"].split("INSTALL=", 1)[1]
    assert "install --no-deps" in install and "$INSTALL --require-hashes" in steps[lock_install]
    assert "$INSTALL --root /opt/code /tmp/wheels/movierec-" in steps[-1]
    assert (ROOT / "requirements" / lock).exists()
    assert "--hash=sha256:" in (ROOT / "requirements" / lock).read_text()


@pytest.mark.parametrize("image, command", [
    ("ingest", ["ingest"]),
    ("service", ["serve", "--host", "0.0.0.0", "--port", "8000"]),
])
def test_runtime_runs_movierec_as_uid_10001_in_exec_form(image, command):
    runtime = dict(stage(DOCKERFILES[image], 1))
    assert runtime["USER"] == "10001:10001"
    assert json.loads(runtime["ENTRYPOINT"]) == ["movierec"]
    assert json.loads(runtime["CMD"]) == command
    assert "COPY --from=build /opt/venv /opt/venv" in [f"COPY {a}" for op, a in stage(DOCKERFILES[image], 1) if op == "COPY"]
    assert "pip install" not in " ".join(args for _, args in stage(DOCKERFILES[image], 1))


def test_images_run_as_the_user_the_chart_expects(default_values):
    assert default_values["podSecurityContext"]["runAsUser"] == 10001
    assert default_values["containerSecurityContext"]["runAsUser"] == 10001


def test_build_context_admits_only_what_the_images_copy():
    patterns = [line for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line and not line.startswith("#")]
    assert patterns[0] == "*", "deny everything first"
    admitted = {p[1:] for p in patterns if p.startswith("!")}
    assert admitted == {"pyproject.toml", "README.md", "requirements/service.lock",
                        "requirements/ingest.lock", "src/", "tools/trim-venv.sh"}
    copied = set()
    for dockerfile in DOCKERFILES.values():
        for op, args in instructions(dockerfile):
            if op == "COPY" and not args.startswith("--from"):
                copied |= set(args.split()[:-1])
    assert copied <= admitted


def test_qdrant_side_network_policy_admits_exactly_the_movierec_workloads():
    policy = yaml.safe_load((K8S_DIR / "qdrant" / "networkpolicy.yaml").read_text())
    clients = policy["spec"]["ingress"][0]["from"][0]
    rendered = render(sets=("snapshots.enabled=true",))
    namespace_labels = {"kubernetes.io/metadata.name": "movierec"}
    admitted = [checks.name_of(w) for w in checks.workloads(rendered.objects)
                if checks.matches(clients["namespaceSelector"], namespace_labels)
                and checks.matches(clients["podSelector"], checks.pod_labels(w))]
    assert sorted(admitted) == ["CronJob/movierec-ingest", "CronJob/movierec-rollback",
                                "CronJob/movierec-snapshot", "Deployment/movierec"]
    # The pods it guards are the ones the chart's egress rules aim at.
    qdrant_pods = render().one("NetworkPolicy", "movierec-service")["spec"]["egress"][0]["to"][0]["podSelector"]
    assert policy["spec"]["podSelector"] == qdrant_pods
    assert [p["port"] for p in policy["spec"]["ingress"][0]["ports"]] == [6333, 6334]


def test_namespaces_enforce_pod_security_and_are_the_ones_the_network_rules_name(default_values):
    namespaces = {n["metadata"]["name"]: n["metadata"]["labels"]
                  for n in yaml.safe_load_all((K8S_DIR / "namespaces.yaml").read_text())}
    assert namespaces["movierec"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert namespaces["qdrant"]["pod-security.kubernetes.io/enforce"] == "baseline"
    assert default_values["networkPolicy"]["qdrant"]["namespace"] in namespaces
    policy = yaml.safe_load((K8S_DIR / "qdrant" / "networkpolicy.yaml").read_text())
    assert policy["metadata"]["namespace"] in namespaces


def test_official_qdrant_values_read_both_keys_from_the_secret_the_chart_uses(default_values):
    values = yaml.safe_load((K8S_DIR / "qdrant" / "values.yaml").read_text())
    qdrant = default_values["qdrant"]
    assert values["apiKey"] == {"valueFrom": {"secretKeyRef": {
        "name": qdrant["existingSecret"], "key": qdrant["apiKeyKey"]}}}
    assert values["readOnlyApiKey"] == {"valueFrom": {"secretKeyRef": {
        "name": qdrant["existingSecret"], "key": qdrant["readOnlyApiKeyKey"]}}}
    assert qdrant["url"] == "http://qdrant.qdrant.svc:6333"  # release "qdrant", namespace "qdrant"


def test_official_qdrant_chart_version_and_image_are_pinned_together():
    lib = (ROOT / "scripts" / "lib.sh").read_text()
    chart_version = re.search(r'QDRANT_CHART_VERSION="\$\{QDRANT_CHART_VERSION:-([0-9.]+)\}"', lib)
    assert chart_version, "scripts/lib.sh pins QDRANT_CHART_VERSION"
    values = yaml.safe_load((K8S_DIR / "qdrant" / "values.yaml").read_text())
    assert values["image"]["tag"] == f"v{chart_version.group(1)}"


@pytest.mark.parametrize("environment, storage_class", [("kind", "standard"), ("ovh", "csi-cinder-high-speed")])
def test_qdrant_storage_class_fits_each_environment(environment, storage_class):
    values = yaml.safe_load((K8S_DIR / "qdrant" / f"values-{environment}.yaml").read_text())
    assert values["persistence"]["storageClassName"] == storage_class


def test_kind_node_image_is_pinned_by_digest():
    config = yaml.safe_load((K8S_DIR / "kind-cluster.yaml").read_text())
    assert re.fullmatch(r"kindest/node:v1\.\d+\.\d+@sha256:[0-9a-f]{64}", config["nodes"][0]["image"])


# --- Qdrant as a distributed database: three nodes, one per Kubernetes node -----------------


def qdrant_values() -> dict:
    return yaml.safe_load((K8S_DIR / "qdrant" / "values.yaml").read_text())


def test_official_qdrant_runs_three_peers_one_per_node_and_drains_one_at_a_time():
    values = qdrant_values()
    assert values["replicaCount"] == 3
    (spread,) = values["topologySpreadConstraints"]
    assert spread == {
        "maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "DoNotSchedule",
        # The official chart's selector labels of release "qdrant".
        "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "qdrant",
                                          "app.kubernetes.io/instance": "qdrant"}}}
    assert values["podDisruptionBudget"] == {"enabled": True, "maxUnavailable": 1}


def test_official_qdrant_defaults_new_collections_to_two_copies_and_snapshots_to_their_volume():
    config = qdrant_values()["config"]
    assert config["storage"]["collection"] == {"replication_factor": 2,
                                               "write_consistency_factor": 1}
    assert config["storage"]["snapshots_path"] == "/qdrant/snapshots"
    assert qdrant_values()["snapshotPersistence"]["enabled"] is True
    # The chart's own cluster settings are kept (values merge into them, never replace them).
    assert "cluster" not in config


def test_self_hosted_qdrant_on_ovhcloud_writes_snapshots_to_object_storage_from_a_secret():
    values = yaml.safe_load((K8S_DIR / "qdrant" / "values-ovh.yaml").read_text())
    env = {e["name"]: e for e in values["env"]}
    prefix = "QDRANT__STORAGE__SNAPSHOTS_CONFIG__"
    assert env[prefix + "SNAPSHOTS_STORAGE"]["value"] == "s3"
    from_secret = {name.removeprefix(prefix + "S3_CONFIG__"): e["valueFrom"]["secretKeyRef"]
                   for name, e in env.items() if "valueFrom" in e}
    assert from_secret == {
        "BUCKET": {"name": "qdrant-snapshots-s3", "key": "bucket"},
        "REGION": {"name": "qdrant-snapshots-s3", "key": "region"},
        "ENDPOINT_URL": {"name": "qdrant-snapshots-s3", "key": "endpoint-url"},
        "ACCESS_KEY": {"name": "qdrant-snapshots-s3", "key": "access-key"},
        "SECRET_KEY": {"name": "qdrant-snapshots-s3", "key": "secret-key"},
    }
    assert all("value" not in e for name, e in env.items() if "KEY" in name)


def test_kind_has_three_workers_for_the_three_qdrant_pods():
    config = yaml.safe_load((K8S_DIR / "kind-cluster.yaml").read_text())
    roles = [n["role"] for n in config["nodes"]]
    assert roles == ["control-plane", "worker", "worker", "worker"]
    assert roles.count("worker") >= qdrant_values()["replicaCount"]
    assert len({n["image"] for n in config["nodes"]}) == 1  # one pinned node image


def test_snapshot_cronjob_runs_movierec_snapshot_with_the_read_write_key():
    rendered = render(sets=("snapshots.enabled=true", "snapshots.keep=5"))
    cronjob = rendered.one("CronJob", "movierec-snapshot")
    assert cronjob["spec"]["schedule"] == "30 2 * * *"
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == ["movierec"]
    assert container["args"] == ["snapshot", "--keep", "5"]
    key = checks.env_var(container, "QDRANT_API_KEY")["valueFrom"]["secretKeyRef"]
    assert key == {"name": "qdrant-api-key", "key": "api-key"}
    assert container["envFrom"] == [{"configMapRef": {"name": "movierec-ingest"}}]
    assert pod["automountServiceAccountToken"] is False
    assert cronjob["metadata"]["labels"]["app.kubernetes.io/component"] == "maintenance"
    policy = rendered.one("NetworkPolicy", "movierec-maintenance")
    assert policy["spec"].get("ingress") is None and policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert [r["ports"][0]["port"] for r in policy["spec"]["egress"]] == [6333, 53]
    assert not any(o["metadata"]["name"] == "movierec-snapshot" for o in render().objects)


def test_rollback_is_an_on_demand_job_with_the_read_write_key():
    cronjob = render().one("CronJob", "movierec-rollback")
    assert cronjob["spec"]["suspend"] is True
    job = cronjob["spec"]["jobTemplate"]["spec"]
    assert job["backoffLimit"] == 0  # a rollback is not retried behind the operator's back
    (container,) = job["template"]["spec"]["containers"]
    assert (container["command"], container["args"]) == (["movierec"], ["rollback"])
    key = checks.env_var(container, "QDRANT_API_KEY")["valueFrom"]["secretKeyRef"]
    assert key == {"name": "qdrant-api-key", "key": "api-key"}
