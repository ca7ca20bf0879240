"""infra/ statically: every file parses, versions are pinned, secrets stay out, checkov passes.

No cloud account is needed: nothing here talks to OVHcloud or Qdrant Cloud.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import hcl2
import pytest
import yaml
from hcl2 import SerializationOptions

from tests.k8s import manifest_checks as checks

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
CHECKOV = ROOT / ".tools" / "checkov-venv" / "bin" / "checkov"
CHECKOV_CONFIG = ROOT / ".checkov.yaml"
TF_FILES = sorted(INFRA.glob("*.tf"))


def parse(path: Path) -> dict:
    options = SerializationOptions(with_comments=False, explicit_blocks=False, strip_string_quotes=True)
    with path.open() as handle:
        return hcl2.load(handle, serialization_options=options)


def blocks(kind: str) -> dict[str, dict]:
    """Every `kind` block of infra/ by name: resources and data sources as "type.name"."""
    found: dict[str, dict] = {}
    for path in TF_FILES:
        for entry in parse(path).get(kind, []):
            for first, body in entry.items():
                if kind in ("resource", "data"):
                    for name, inner in body.items():
                        found[f"{first}.{name}"] = inner
                else:
                    found[first] = body
    return found


def test_infra_has_the_four_terraform_files_and_an_example():
    names = {path.name for path in TF_FILES}
    assert {"versions.tf", "variables.tf", "main.tf", "outputs.tf"} <= names
    assert (INFRA / "terraform.tfvars.example").is_file()


@pytest.mark.parametrize("path", TF_FILES + [INFRA / "terraform.tfvars.example"], ids=lambda p: p.name)
def test_terraform_file_parses(path):
    assert isinstance(parse(path), dict)


def test_providers_are_pinned_to_exact_released_versions():
    (terraform,) = parse(INFRA / "versions.tf")["terraform"]
    providers = terraform["required_providers"][0]
    assert providers["ovh"] == {"source": "ovh/ovh", "version": "2.19.0"}
    assert providers["qdrant-cloud"] == {"source": "qdrant/qdrant-cloud", "version": "1.28.0"}
    assert providers["local"] == {"source": "hashicorp/local", "version": "2.9.0"}
    assert terraform["required_version"] == ">= 1.7.0"


def test_every_variable_is_typed_and_documented():
    variables = blocks("variable")
    assert len(variables) >= 20
    for name, body in variables.items():
        assert body.get("type"), f"variable {name} has no type"
        assert len(body.get("description", "")) > 20, f"variable {name} is not documented"


def test_cluster_shape_is_set_by_variables():
    kube = blocks("resource")["ovh_cloud_project_kube.movierec"]
    pool = blocks("resource")["ovh_cloud_project_kube_nodepool.default"]
    assert kube["region"] == "${var.region}"
    assert kube["version"] == "${var.kubernetes_version}"
    assert pool["flavor_name"] == "${var.node_flavor}"
    assert pool["desired_nodes"] == "${var.node_count}"


def test_kubeconfig_is_written_to_an_owner_only_file():
    kubeconfig = blocks("resource")["local_sensitive_file.kubeconfig"]
    assert kubeconfig["content"] == "${ovh_cloud_project_kube.movierec.kubeconfig}"
    assert kubeconfig["file_permission"] == "0600"
    assert kubeconfig["directory_permission"] == "0700"


def test_hybrid_environment_uses_the_ovhcloud_storage_and_snapshot_classes():
    env = blocks("resource")["qdrant-cloud_accounts_hybrid_cloud_environment.movierec"]
    (config,) = env["configuration"]
    assert config["namespace"] == "${var.qdrant_namespace}"
    assert config["database_storage_class"] == "${var.storage_class}"
    assert config["volume_snapshot_storage_class"] == "${var.volume_snapshot_class}"
    variables = blocks("variable")
    assert variables["storage_class"]["default"] == "csi-cinder-high-speed"
    # OVHcloud's class for snapshots of volumes attached to running pods (force-create).
    assert variables["volume_snapshot_class"]["default"] == "csi-cinder-snapclass-in-use-v1"


def test_qdrant_cluster_is_cluster_ip_and_reads_both_keys_from_the_secret():
    cluster = blocks("resource")["qdrant-cloud_accounts_cluster.movierec"]
    assert cluster["cloud_provider"] == "hybrid"
    (config,) = cluster["configuration"]
    assert config["service_type"] == "CLUSTER_SERVICE_TYPE_CLUSTER_IP"
    assert config["number_of_nodes"] == "${var.qdrant_nodes}"
    (service,) = config["database_configuration"][0]["service"]
    assert service["api_key"][0] == {
        "secret_name": "${var.qdrant_api_key_secret}",
        "secret_key": "${var.qdrant_api_key_field}",
    }
    assert service["read_only_api_key"][0]["secret_key"] == "${var.qdrant_read_only_api_key_field}"
    variables = blocks("variable")
    # The same names as the chart's qdrant.existingSecret / apiKeyKey / readOnlyApiKeyKey.
    assert variables["qdrant_api_key_secret"]["default"] == "qdrant-api-key"
    assert variables["qdrant_api_key_field"]["default"] == "api-key"
    assert variables["qdrant_read_only_api_key_field"]["default"] == "read-only-api-key"


def test_outputs_give_the_kubeconfig_path_and_the_in_cluster_qdrant_url():
    outputs = blocks("output")
    assert {"kubeconfig_path", "qdrant_url", "hybrid_bootstrap_script_path"} <= set(outputs)
    assert "qdrant-${qdrant-cloud_accounts_cluster.movierec[0].id}" in outputs["qdrant_url"]["value"]
    assert ".svc:6333" in outputs["qdrant_url"]["value"]
    for name, body in outputs.items():
        assert body.get("description"), f"output {name} is not documented"


def test_no_credential_is_written_in_the_terraform_files():
    providers = {name: body for entry in parse(INFRA / "versions.tf")["provider"] for name, body in entry.items()}
    assert set(providers["ovh"]) == {"endpoint"}
    assert providers["qdrant-cloud"] == {}
    credential = re.compile(
        r"(application_secret|consumer_key|client_secret|api_key)\s*=\s*\"[^\"$]", re.IGNORECASE
    )
    for path in TF_FILES + [INFRA / "terraform.tfvars.example"]:
        assert not credential.search(path.read_text()), path.name


def test_local_state_and_generated_secrets_are_git_ignored():
    ignored = (INFRA / ".gitignore").read_text().split()
    assert {"*.tfstate", ".generated/", ".terraform/", "terraform.tfvars"} <= set(ignored)


def test_terraform_files_are_formatted():
    terraform = shutil.which("terraform")
    if terraform is None:
        pytest.skip("terraform is not installed: `terraform fmt -check` not run (parsing is checked above)")
    result = subprocess.run(
        [terraform, "fmt", "-check", "-diff", "-recursive", str(INFRA)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_terraform_validates_when_the_providers_are_available(tmp_path):
    terraform = shutil.which("terraform")
    if terraform is None:
        pytest.skip("terraform is not installed")
    work = tmp_path / "infra"
    shutil.copytree(INFRA, work, ignore=shutil.ignore_patterns(".terraform", ".generated", "*.tfstate*"))
    try:
        init = subprocess.run(
            [terraform, "init", "-backend=false", "-input=false", "-no-color"],
            cwd=work, capture_output=True, text=True, timeout=120,
        )
    except subprocess.TimeoutExpired:
        pytest.skip("terraform init timed out: providers cannot be downloaded here")
    if init.returncode != 0:
        reason = next((line.strip() for line in init.stderr.splitlines() if "Error" in line), "init failed")
        pytest.skip(f"providers ovh/ovh, qdrant/qdrant-cloud, hashicorp/local not available offline ({reason})")
    validate = subprocess.run([terraform, "validate", "-no-color"], cwd=work, capture_output=True, text=True)
    assert validate.returncode == 0, validate.stdout + validate.stderr


def test_checkov_finds_no_failure_in_infra():
    if not CHECKOV.exists():
        pytest.fail(f"checkov is missing at {CHECKOV.relative_to(ROOT)}: run tools/install-k8s-tools.sh (make test does)")
    command = [
        str(CHECKOV), "--directory", str(INFRA), "--framework", "terraform", "secrets",
        "--skip-download", "--output", "json", "--quiet",
    ]
    if CHECKOV_CONFIG.exists():
        command += ["--config-file", str(CHECKOV_CONFIG)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=600)
    reports = json.loads(result.stdout) if result.stdout.strip() else []
    reports = reports if isinstance(reports, list) else [reports]
    failures = [
        f"{check['check_id']} {check['resource']} {check['file_path']}:{check['file_line_range']}"
        for report in reports
        for check in report.get("results", {}).get("failed_checks", [])
    ]
    assert failures == [], "checkov failures (fix them, or skip with a reason in .checkov.yaml):\n" + "\n".join(failures)
    assert result.returncode == 0, result.stderr[-2000:]
    for report in reports:
        assert report.get("summary", report).get("parsing_errors", 0) == 0, report


# --- a distributed, backed-up Qdrant, behind a real network boundary ------------------------


def test_hybrid_cluster_runs_three_nodes_one_per_kubernetes_node():
    variables = blocks("variable")
    assert variables["qdrant_nodes"]["default"] == 3
    assert variables["node_count"]["default"] >= variables["qdrant_nodes"]["default"]
    (config,) = blocks("resource")["qdrant-cloud_accounts_cluster.movierec"]["configuration"]
    assert config["topology_spread_constraints"] == [{
        "max_skew": 1, "topology_key": "kubernetes.io/hostname",
        "when_unsatisfiable": "TOPOLOGY_SPREAD_CONSTRAINT_WHEN_UNSATISFIABLE_DO_NOT_SCHEDULE"}]
    conditions = [c["condition"] for c in
                  blocks("resource")["qdrant-cloud_accounts_cluster.movierec"]["lifecycle"][0]["precondition"]]
    assert "${var.node_count >= var.qdrant_nodes}" in conditions
    assert "${var.qdrant_replication_factor <= var.qdrant_nodes}" in conditions


def test_hybrid_cluster_defaults_collections_to_the_replication_the_ingest_uses():
    (config,) = blocks("resource")["qdrant-cloud_accounts_cluster.movierec"]["configuration"]
    (collection,) = config["database_configuration"][0]["collection"]
    assert collection == {"replication_factor": "${var.qdrant_replication_factor}",
                          "write_consistency_factor": "${var.qdrant_write_consistency}"}
    variables = blocks("variable")
    assert (variables["qdrant_replication_factor"]["default"],
            variables["qdrant_write_consistency"]["default"],
            variables["qdrant_shards"]["default"]) == (2, 1, None)
    # The same numbers reach the movierec chart (qdrant.replicationFactor, ...) via deploy.sh.
    settings = blocks("output")["movierec_qdrant_settings"]["value"]
    assert settings["replicationFactor"] == "${tostring(var.qdrant_replication_factor)}"


def test_hybrid_backups_run_on_a_schedule_with_retention():
    schedule = blocks("resource")["qdrant-cloud_accounts_backup_schedule.movierec"]
    assert schedule["cluster_id"] == "${qdrant-cloud_accounts_cluster.movierec[0].id}"
    assert schedule["cron_expression"] == "${var.qdrant_backup_schedule}"
    assert schedule["retention_period"] == "${var.qdrant_backup_retention}"
    assert schedule["count"] == "${local.create_qdrant_cluster ? 1 : 0}"
    variables = blocks("variable")
    assert variables["qdrant_backup_retention"]["default"] == "168h"
    assert variables["qdrant_backup_schedule"]["default"] == "0 3 * * *"


def test_self_hosted_snapshots_go_to_a_bucket_whose_credential_only_reaches_it():
    resources = blocks("resource")
    bucket = resources["ovh_cloud_project_storage.qdrant_snapshots"]
    assert bucket["count"] == "${local.self_hosted ? 1 : 0}"
    assert bucket["name"] == "${var.cluster_name}-qdrant-snapshots"
    policy = resources["ovh_cloud_project_user_s3_policy.qdrant_snapshots"]["policy"]
    assert "arn:aws:s3:::${ovh_cloud_project_storage.qdrant_snapshots[0].name}/*" in policy
    env_file = resources["local_sensitive_file.qdrant_snapshots_s3"]
    assert (env_file["file_permission"], env_file["directory_permission"]) == ("0600", "0700")
    content = env_file["content"]
    for key in ("bucket=", "region=", "endpoint-url=", "access-key=", "secret-key="):
        assert key in content  # the keys values-ovh.yaml reads from Secret qdrant-snapshots-s3
    output = blocks("output")["qdrant_snapshots_s3_env_path"]["value"]
    assert output == "${one(local_sensitive_file.qdrant_snapshots_s3[*].filename)}"
    deploy = (ROOT / "scripts" / "deploy.sh").read_text()
    assert "output -raw qdrant_snapshots_s3_env_path" in deploy
    assert "create secret generic qdrant-snapshots-s3 --from-env-file=" in deploy


# The Qdrant operator's network policy, as Terraform renders it into the Hybrid environment.

def operator_settings() -> dict:
    """infra/operator-settings.yaml.tftpl rendered with the variables' defaults, as main.tf
    passes them to templatefile()."""
    env = blocks("resource")["qdrant-cloud_accounts_hybrid_cloud_environment.movierec"]
    (config,) = env["configuration"]
    assert config["advanced_operator_settings"] == "${local.operator_settings}"
    (locals_,) = [entry for path in TF_FILES for entry in parse(path).get("locals", [])
                  if "operator_settings" in entry]
    call = locals_["operator_settings"]
    assert call.startswith('${templatefile("${path.module}/operator-settings.yaml.tftpl"')
    variables = blocks("variable")
    template = (INFRA / "operator-settings.yaml.tftpl").read_text()
    names = re.findall(r"(\w+)\s*=\s*var\.(\w+)", call)
    assert {n for n, _ in names} == set(re.findall(r"\$\{(\w+)\}", template))
    for name, variable in names:
        template = template.replace("${" + name + "}", str(variables[variable]["default"]))
    return yaml.safe_load(template)


def admitted_ports(rules: list[dict], namespace: str, labels: dict) -> set[int]:
    """The TCP ports NetworkPolicy ingress rules open to a pod (namespace, labels)."""
    ports: set[int] = set()
    for rule in rules:
        for peer in rule.get("from", [{}]):
            ns_ok = checks.matches(peer.get("namespaceSelector", {}),
                                   {"kubernetes.io/metadata.name": namespace})
            pod_ok = checks.matches(peer.get("podSelector", {}), labels)
            if ns_ok and pod_ok:
                ports |= {p["port"] for p in rule["ports"] if p["protocol"] == "TCP"}
    return ports


def test_operator_network_policy_admits_only_movierec_qdrant_and_monitoring():
    qdrant = operator_settings()["settings"]["features"]["clusterManagement"]["qdrant"]
    rules = qdrant["networkPolicies"]["ingress"]
    movierec = {"app.kubernetes.io/name": "movierec"}
    for component in ("service", "ingest", "maintenance"):
        labels = {**movierec, "app.kubernetes.io/component": component}
        assert admitted_ports(rules, "movierec", labels) == {6333, 6334}, component
    # Qdrant's own namespace (peers, operator, agent) and the monitoring namespace.
    assert admitted_ports(rules, "qdrant", {"app": "qdrant"}) == {6333, 6334, 6335}
    assert admitted_ports(rules, "monitoring", {"app.kubernetes.io/name": "prometheus"}) == {6333}
    assert admitted_ports(rules, "monitoring", {"app.kubernetes.io/name": "grafana"}) == set()
    # Everything else in the cluster is refused, including other movierec pods and namespaces.
    assert admitted_ports(rules, "movierec", {**movierec, "app.kubernetes.io/component": "test"}) == set()
    assert admitted_ports(rules, "movierec", {"app.kubernetes.io/name": "curl"}) == set()
    assert admitted_ports(rules, "default", {**movierec, "app.kubernetes.io/component": "service"}) == set()
    assert admitted_ports(rules, "kube-system", {}) == set()
    # Every rule names its sources: a rule without `from` would admit the whole cluster.
    assert all(rule.get("from") for rule in rules)


def test_operator_settings_spread_qdrant_and_snapshot_with_the_in_use_class():
    settings = operator_settings()["settings"]["features"]
    scheduling = settings["clusterManagement"]["scheduling"]
    assert scheduling["topologySpreadConstraints"][0]["topologyKey"] == "kubernetes.io/hostname"
    assert scheduling["podDisruptionBudget"] == {"maxUnavailable": 1}
    assert settings["backupManagement"]["snapshots"]["volumeSnapshotClass"] == "csi-cinder-snapclass-in-use-v1"
