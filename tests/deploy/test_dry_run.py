"""`make deploy|destroy|kind-* DRY_RUN=1`: the full plan, in order, with no secret in it, and
nothing run; without credentials, one message naming every missing variable.

terraform, kubectl, helm, docker and kind are replaced by stand-ins that only record being
called, so "runs none" is checked, not assumed.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ("terraform", "kubectl", "helm", "docker", "kind")

# Placeholder credentials: distinctive strings, so any leak into the output is found.
CREDENTIALS = {
    "OVH_CLOUD_PROJECT_SERVICE": "placeholderproject0000",
    "OVH_APPLICATION_KEY": "placeholder-application-key-1111",
    "OVH_APPLICATION_SECRET": "placeholder-application-secret-2222",
    "OVH_CONSUMER_KEY": "placeholder-consumer-key-3333",
    "QDRANT_CLOUD_API_KEY": "placeholder-management-key-4444",
    "QDRANT_CLOUD_ACCOUNT_ID": "placeholder-account-5555",
    "IMAGE_REGISTRY": "registry.example.org/movierec-test",
}
SECRET_VALUES = [
    CREDENTIALS["OVH_APPLICATION_KEY"],
    CREDENTIALS["OVH_APPLICATION_SECRET"],
    CREDENTIALS["OVH_CONSUMER_KEY"],
    CREDENTIALS["QDRANT_CLOUD_API_KEY"],
]
HYBRID_REQUIRED = [
    "OVH_CLOUD_PROJECT_SERVICE",
    "OVH_APPLICATION_KEY",
    "OVH_APPLICATION_SECRET",
    "OVH_CONSUMER_KEY",
    "QDRANT_CLOUD_API_KEY",
    "QDRANT_CLOUD_ACCOUNT_ID",
    "IMAGE_REGISTRY",
]


@pytest.fixture
def stand_ins(tmp_path):
    """A bin directory whose tools only append their command line to calls.log."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls.log"
    for tool in TOOLS:
        script = bin_dir / tool
        script.write_text(f'#!/bin/sh\necho "{tool} $*" >> "{calls}"\n')
        script.chmod(0o755)
    return bin_dir, calls


def make(target: str, stand_ins, tmp_path, *, dry_run: bool = True, **env) -> subprocess.CompletedProcess:
    bin_dir, _ = stand_ins
    environment = {
        "PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "TOOLS_BIN": str(bin_dir),  # instead of .tools/bin, where the real helm/kubectl live
        "LANG": "C.UTF-8",
        **env,
    }
    command = ["make", "--no-print-directory", "-s", "-C", str(ROOT), target]
    if dry_run:
        command.append("DRY_RUN=1")
    return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=120)


def plan(result: subprocess.CompletedProcess) -> list[str]:
    """The printed commands, without their "+ " prefix."""
    return [line[2:] for line in result.stdout.splitlines() if line.startswith("+ ")]


def assert_in_order(lines: list[str], *expected: str) -> None:
    """Each expected fragment appears in a line at or after the previous fragment's line."""
    position = 0
    for fragment in expected:
        later = [i for i, line in enumerate(lines) if i >= position and fragment in line]
        assert later, f"{fragment!r} not found after line {position}:\n" + "\n".join(lines)
        position = later[0]


def assert_nothing_ran(stand_ins) -> None:
    _, calls = stand_ins
    assert not calls.exists(), "a dry run ran: " + calls.read_text()


def assert_no_secret_printed(result: subprocess.CompletedProcess, *values: str) -> None:
    for value in (*SECRET_VALUES, *values):
        assert value not in result.stdout + result.stderr, f"secret {value!r} was printed"


def test_hybrid_dry_run_prints_the_whole_plan_in_order_and_runs_nothing(stand_ins, tmp_path):
    result = make("deploy", stand_ins, tmp_path, **CREDENTIALS)
    assert result.returncode == 0, result.stderr
    lines = plan(result)
    image = "registry.example.org/movierec-test/movierec"
    assert_in_order(
        lines,
        f"docker build -f {ROOT}/jobs/ingest/Dockerfile -t {image}/ingest:0.1.0 {ROOT}",
        f"docker build -f {ROOT}/services/recommender/Dockerfile -t {image}/recommender:0.1.0 {ROOT}",
        f"docker push {image}/ingest:0.1.0",
        f"docker push {image}/recommender:0.1.0",
        f"terraform -chdir={ROOT}/infra init -input=false",
        "-var qdrant_mode=hybrid",
        "-var qdrant_cluster_enabled=false",
        "kubectl wait --for=condition=Ready nodes --all",
        f"kubectl apply -f {ROOT}/k8s/namespaces.yaml",
        "output -raw hybrid_bootstrap_script_path",
        f"bash {ROOT}/infra/.generated/hybrid-bootstrap.sh",
        "kubectl -n qdrant wait --for=condition=Available deployment --all",
        "kubectl -n qdrant create secret generic qdrant-api-key",
        "kubectl -n movierec create secret generic qdrant-api-key",
        "-var qdrant_cluster_enabled=true",
        f"kubectl apply -f {ROOT}/k8s/qdrant/networkpolicy.yaml",
        "output -raw qdrant_url",
        f"helm upgrade --install movierec {ROOT}/charts/movierec --namespace movierec -f {ROOT}/charts/movierec/values-ovh.yaml",
        "kubectl -n movierec create job movierec-ingest-",
        "wait for job/movierec-ingest-",
        "kubectl -n movierec rollout status deployment/movierec",
        "kubectl -n movierec get service movierec",
    )
    helm = next(line for line in lines if line.startswith("helm upgrade --install movierec"))
    assert "qdrant.url=http://qdrant-<cluster id>.qdrant.svc:6333" in helm
    # The replication Terraform sets reaches the ingest; Hybrid backs up with its own schedule.
    assert "output -json movierec_qdrant_settings" in "\n".join(lines)
    assert "--set-string qdrant.replicationFactor=2 --set-string qdrant.writeConsistency=1" in helm
    assert "snapshots.enabled" not in helm
    assert f"images.registry={CREDENTIALS['IMAGE_REGISTRY']}" in helm
    assert "--from=cronjob/movierec-ingest" in next(line for line in lines if "create job" in line)
    assert "curl -s -X POST http://<load balancer address>/recommendations" in result.stdout
    assert sum("terraform" in line and " apply " in line for line in lines) == 2
    assert not any("latest" in line for line in lines)
    assert_no_secret_printed(result)
    assert_nothing_ran(stand_ins)


def test_self_hosted_dry_run_installs_the_pinned_official_chart_and_needs_no_qdrant_cloud(stand_ins, tmp_path):
    credentials = {k: v for k, v in CREDENTIALS.items() if not k.startswith("QDRANT_CLOUD")}
    result = make("deploy", stand_ins, tmp_path, QDRANT_MODE="self-hosted", **credentials)
    assert result.returncode == 0, result.stderr
    lines = plan(result)
    assert_in_order(
        lines,
        "-var qdrant_mode=self-hosted",
        f"kubectl apply -f {ROOT}/k8s/namespaces.yaml",
        "kubectl -n qdrant create secret generic qdrant-api-key",
        "kubectl -n movierec create secret generic qdrant-api-key",
        "output -raw qdrant_snapshots_s3_env_path",
        f"kubectl -n qdrant create secret generic qdrant-snapshots-s3 --from-env-file={ROOT}/infra/.generated/qdrant-snapshots-s3.env",
        "helm repo add qdrant https://qdrant.github.io/qdrant-helm",
        f"helm upgrade --install qdrant qdrant/qdrant --version 1.19.0 --namespace qdrant -f {ROOT}/k8s/qdrant/values.yaml -f {ROOT}/k8s/qdrant/values-ovh.yaml",
        f"kubectl apply -f {ROOT}/k8s/qdrant/networkpolicy.yaml",
        "helm upgrade --install movierec",
        "kubectl -n movierec create job movierec-ingest-",
    )
    movierec = next(line for line in lines if "install movierec" in line)
    assert "qdrant.url=http://qdrant.qdrant.svc:6333" in movierec
    assert "--set snapshots.enabled=true" in movierec  # scheduled snapshots into the bucket
    assert not any("bootstrap" in line for line in lines)
    assert sum("terraform" in line and " apply " in line for line in lines) == 1
    assert_nothing_ran(stand_ins)


def test_without_credentials_one_message_names_every_missing_variable(stand_ins, tmp_path):
    result = make("deploy", stand_ins, tmp_path)
    assert result.returncode != 0
    for name in HYBRID_REQUIRED:
        assert re.search(rf"^  - {name}: ", result.stderr, re.MULTILINE), f"{name} not named:\n{result.stderr}"
    assert result.stderr.count("error:") == 1, result.stderr
    assert plan(result) == [], "nothing may be planned before the prerequisites pass"
    assert_nothing_ran(stand_ins)


def test_a_real_run_without_credentials_fails_the_same_way(stand_ins, tmp_path):
    result = make("deploy", stand_ins, tmp_path, dry_run=False, QDRANT_MODE="self-hosted")
    assert result.returncode != 0
    for name in ("OVH_CLOUD_PROJECT_SERVICE", "OVH_APPLICATION_KEY", "IMAGE_REGISTRY"):
        assert f"  - {name}: " in result.stderr
    # Self-hosted needs no Qdrant Cloud account.
    assert "QDRANT_CLOUD_API_KEY" not in result.stderr
    assert_nothing_ran(stand_ins)


def test_only_the_variables_actually_missing_are_named(stand_ins, tmp_path):
    credentials = dict(CREDENTIALS)
    del credentials["QDRANT_CLOUD_ACCOUNT_ID"]
    result = make("deploy", stand_ins, tmp_path, **credentials)
    assert result.returncode != 0
    named = re.findall(r"^  - ([A-Z_]+): ", result.stderr, re.MULTILINE)
    assert named == ["QDRANT_CLOUD_ACCOUNT_ID"]
    assert_no_secret_printed(result)


def test_an_oauth2_service_account_replaces_the_application_keys(stand_ins, tmp_path):
    credentials = {k: v for k, v in CREDENTIALS.items() if not k.startswith(("OVH_APP", "OVH_CON"))}
    result = make("deploy", stand_ins, tmp_path, OVH_CLIENT_ID="placeholder-client", **credentials)
    assert result.returncode != 0
    named = re.findall(r"^  - ([A-Z_]+): ", result.stderr, re.MULTILINE)
    assert named == ["OVH_CLIENT_SECRET"]
    result = make(
        "deploy", stand_ins, tmp_path, OVH_CLIENT_ID="placeholder-client",
        OVH_CLIENT_SECRET="placeholder-client-secret-7777", **credentials,
    )
    assert result.returncode == 0, result.stderr
    assert_no_secret_printed(result, "placeholder-client-secret-7777")


def test_given_api_keys_and_registry_password_are_never_printed(stand_ins, tmp_path):
    secrets = {
        "QDRANT_API_KEY": "placeholder-qdrant-rw-8888",
        "QDRANT_READ_ONLY_API_KEY": "placeholder-qdrant-ro-9999",
        "IMAGE_REGISTRY_USER": "robot",
        "IMAGE_REGISTRY_PASSWORD": "placeholder-registry-pw-0000",
    }
    result = make("deploy", stand_ins, tmp_path, **CREDENTIALS, **secrets)
    assert result.returncode == 0, result.stderr
    assert_no_secret_printed(result, *(v for k, v in secrets.items() if k != "IMAGE_REGISTRY_USER"))
    assert any("create secret generic movierec-registry" in line for line in plan(result))
    assert "images.pullSecrets[0]=movierec-registry" in result.stdout


def test_an_unknown_qdrant_mode_is_refused(stand_ins, tmp_path):
    result = make("deploy", stand_ins, tmp_path, QDRANT_MODE="managed", **CREDENTIALS)
    assert result.returncode != 0
    assert "QDRANT_MODE: hybrid or self-hosted, not 'managed'" in result.stderr


@pytest.mark.parametrize("mode", ["hybrid", "self-hosted"])
def test_destroy_dry_run_frees_billed_resources_before_terraform_destroy(stand_ins, tmp_path, mode):
    result = make("destroy", stand_ins, tmp_path, QDRANT_MODE=mode, **CREDENTIALS)
    assert result.returncode == 0, result.stderr
    lines = plan(result)
    middle = (
        "-target=qdrant-cloud_accounts_cluster.movierec" if mode == "hybrid"
        else "helm uninstall qdrant --namespace qdrant"
    )
    assert_in_order(
        lines,
        f"terraform -chdir={ROOT}/infra init",
        "helm uninstall movierec --namespace movierec",
        middle,
        "kubectl -n qdrant delete pvc --all",
        f"-var qdrant_mode={mode}",
        f"rm -f {ROOT}/infra/.generated/kubeconfig",
    )
    assert lines[-2].startswith(f"terraform -chdir={ROOT}/infra destroy") and "-target" not in lines[-2]
    assert_no_secret_printed(result)
    assert_nothing_ran(stand_ins)


def test_kind_dry_run_builds_fixed_tags_loads_them_and_installs_both_charts(stand_ins, tmp_path):
    up = make("kind-up", stand_ins, tmp_path)
    deploy = make("kind-deploy", stand_ins, tmp_path)
    down = make("kind-down", stand_ins, tmp_path)
    for result in (up, deploy, down):
        assert result.returncode == 0, result.stderr
    lines = plan(up) + plan(deploy) + plan(down)
    assert_in_order(
        lines,
        f"kind create cluster --name movierec --config {ROOT}/k8s/kind-cluster.yaml",
        "kubectl wait --for=condition=Ready nodes --all",
        f"env CONTAINER_ENGINE=docker IMAGE_TAG=0.1.0 bash {ROOT}/tools/build-images.sh",
        "kind load docker-image --name movierec movierec/ingest:0.1.0 movierec/recommender:0.1.0",
        f"kubectl apply -f {ROOT}/k8s/namespaces.yaml",
        "kubectl -n qdrant create secret generic qdrant-api-key",
        "kubectl -n movierec create secret generic qdrant-api-key",
        f"helm upgrade --install qdrant qdrant/qdrant --version 1.19.0 --namespace qdrant -f {ROOT}/k8s/qdrant/values.yaml -f {ROOT}/k8s/qdrant/values-kind.yaml",
        f"helm upgrade --install movierec {ROOT}/charts/movierec --namespace movierec -f {ROOT}/charts/movierec/values-kind.yaml",
        "kubectl -n movierec create job movierec-ingest-",
        "wait for job/movierec-ingest-",
        "kubectl -n movierec rollout status deployment/movierec",
        "kind delete cluster --name movierec",
    )
    assert not any(":latest" in line for line in lines)
    assert_nothing_ran(stand_ins)


def test_every_path_the_plans_use_exists():
    """The dry runs print paths; a real run needs them to be there."""
    for relative in (
        "infra/main.tf", "k8s/namespaces.yaml", "k8s/kind-cluster.yaml", "k8s/qdrant/values.yaml",
        "k8s/qdrant/values-kind.yaml", "k8s/qdrant/values-ovh.yaml", "k8s/qdrant/networkpolicy.yaml",
        "charts/movierec/values-kind.yaml", "charts/movierec/values-ovh.yaml",
        "jobs/ingest/Dockerfile", "services/recommender/Dockerfile", "tools/install-k8s-tools.sh",
    ):
        assert (ROOT / relative).is_file(), relative
    assert os.access(ROOT / "scripts" / "deploy.sh", os.X_OK)


HELM = ROOT / ".tools" / "bin" / "helm"


@pytest.mark.parametrize(
    "target, env",
    [
        ("deploy", {**CREDENTIALS, "IMAGE_REGISTRY_USER": "robot", "IMAGE_REGISTRY_PASSWORD": "placeholder-pw"}),
        ("deploy", {**CREDENTIALS, "QDRANT_MODE": "self-hosted"}),
        ("kind-deploy", {}),
    ],
    ids=["ovh-hybrid", "ovh-self-hosted", "kind"],
)
def test_the_chart_renders_with_exactly_what_the_plan_passes_to_helm(stand_ins, tmp_path, target, env):
    """The planned `helm upgrade --install movierec ...`, run as `helm template` by real helm."""
    if not HELM.exists():
        pytest.fail(f"helm is missing at {HELM.relative_to(ROOT)}: run tools/install-k8s-tools.sh (make test does)")
    result = make(target, stand_ins, tmp_path, **env)
    assert result.returncode == 0, result.stderr
    line = next(line for line in plan(result) if line.startswith("helm upgrade --install movierec "))
    args = shlex.split(line.replace("<cluster id>", "0f1e2d3c-aaaa-bbbb-cccc-123456789abc"))
    rendered = subprocess.run(
        [str(HELM), "template", *args[3:]], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert rendered.returncode == 0, rendered.stderr
    images = set(re.findall(r'image: "?([^"\s]+)"?', rendered.stdout))
    registry = f"{env['IMAGE_REGISTRY']}/" if "IMAGE_REGISTRY" in env else ""
    assert f"{registry}movierec/ingest:0.1.0" in images
    assert f"{registry}movierec/recommender:0.1.0" in images
    assert "name: QDRANT_API_KEY" in rendered.stdout


def test_a_rerun_keeps_the_qdrant_cluster_in_the_first_terraform_pass(stand_ins, tmp_path):
    """The first apply leaves the Qdrant cluster out only while it does not exist yet: on a
    re-run, leaving it out would make Terraform delete it."""
    bin_dir, calls = stand_ins
    (bin_dir / "terraform").write_text(
        "#!/bin/sh\n"
        'case "$*" in\n'
        '  *"state list"*) echo "qdrant-cloud_accounts_cluster.movierec[0]" ;;\n'
        f'  *apply*) echo "terraform $*" >> "{calls}"; exit 1 ;;\n'  # stop the run at the first apply
        "esac\n"
    )
    environment = {
        "PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path), "TOOLS_BIN": str(bin_dir),
        "SKIP_IMAGE_BUILD": "1", **CREDENTIALS,
    }
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "deploy.sh")], env=environment, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    (first_apply,) = [line for line in calls.read_text().splitlines() if " apply " in line]
    assert "-var qdrant_cluster_enabled=true" in first_apply
