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
from hcl2 import SerializationOptions

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
    assert variables["volume_snapshot_class"]["default"] == "csi-cinder-snapclass-v1"


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
