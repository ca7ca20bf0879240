"""The chart's rendered objects (real `helm template` output) wire the Python package correctly."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from . import manifest_checks as checks
from .conftest import CHART, EVERYTHING_ON, ROOT, VALUES, render, require_module

SERVICE_CONFIGMAP = "movierec-service"
INGEST_CONFIGMAP = "movierec-ingest"

# Settings the cluster deliberately leaves at their defaults: QDRANT_PATH is the embedded engine's
# directory, unused when QDRANT_URL points at a server.
NOT_FOR_THE_CLUSTER = {"QDRANT_PATH"}
SERVICE_ENV = {"QDRANT_URL", "QDRANT_API_KEY", "QDRANT_PREFER_GRPC", "QDRANT_TIMEOUT", "LOG_LEVEL",
               "HOST", "PORT", "CORS_ORIGINS", "SERVICE_API_KEY"}
INGEST_ENV = {"QDRANT_URL", "QDRANT_API_KEY", "QDRANT_PREFER_GRPC", "QDRANT_TIMEOUT", "LOG_LEVEL",
              "MOVIELENS_DATASET", "MOVIELENS_DIR", "MOVIELENS_CACHE", "MOVIELENS_URL",
              "MOVIELENS_MD5", "QDRANT_SHARDS", "QDRANT_REPLICATION_FACTOR",
              "QDRANT_WRITE_CONSISTENCY", "KEEP_PREVIOUS_VERSIONS"}


def settings_env_vars() -> set[str]:
    """The env vars movierec.config.Settings reads, from its source: fields without a prefix."""
    tree = ast.parse((ROOT / "src" / "movierec" / "config.py").read_text())
    settings = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Settings")
    names = set()
    for statement in settings.body:
        if isinstance(statement, ast.Assign) and statement.targets[0].id == "model_config":
            config = {k.arg: ast.literal_eval(k.value) for k in statement.value.keywords}
            assert config.get("env_prefix", "") == "", "the chart assumes Settings has no env prefix"
        if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
            names.add(statement.target.id.upper())
    return names


def configmaps(rendered) -> dict[str, dict]:
    return {c["metadata"]["name"]: c for c in rendered.of_kind("ConfigMap")}


def everything():
    return render(sets=EVERYTHING_ON)


def test_every_setting_the_python_code_reads_is_wired_to_a_workload():
    settings = settings_env_vars()
    assert settings - NOT_FOR_THE_CLUSTER == SERVICE_ENV | INGEST_ENV, (
        "movierec.config.Settings and the chart disagree: wire the new setting or drop the old one"
    )
    rendered = everything()
    service_env = checks.env_names(rendered.one("Deployment", "movierec"), configmaps(rendered))
    ingest_env = checks.env_names(rendered.one("CronJob", "movierec-ingest"), configmaps(rendered))
    assert service_env["recommender"] == SERVICE_ENV
    assert ingest_env["ingest"] == INGEST_ENV


@pytest.mark.parametrize("name", VALUES)
def test_selectors_find_exactly_the_pods_they_are_meant_for(name):
    assert checks.selector_problems(list(render(VALUES[name]).objects)) == []
    assert checks.selector_problems(list(everything().objects)) == []


def test_service_routes_port_80_to_the_container_port_8000():
    rendered = render()
    service = rendered.one("Service", "movierec")
    container = rendered.one("Deployment", "movierec")["spec"]["template"]["spec"]["containers"][0]
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    assert container["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    assert configmaps(rendered)[SERVICE_CONFIGMAP]["data"]["PORT"] == "8000"
    assert configmaps(rendered)[SERVICE_CONFIGMAP]["data"]["HOST"] == "0.0.0.0"


def test_qdrant_keys_come_from_the_secret_and_the_service_gets_only_the_read_only_key(rendered):
    assert checks.secret_problems(list(rendered.objects), "api-key", "read-only-api-key") == []
    service = rendered.one("Deployment", "movierec")["spec"]["template"]["spec"]["containers"][0]
    ingest = checks.pod_spec(rendered.one("CronJob", "movierec-ingest"))["containers"][0]
    assert checks.env_var(service, "QDRANT_API_KEY")["valueFrom"] == {
        "secretKeyRef": {"name": "qdrant-api-key", "key": "read-only-api-key"}}
    assert checks.env_var(ingest, "QDRANT_API_KEY")["valueFrom"] == {
        "secretKeyRef": {"name": "qdrant-api-key", "key": "api-key"}}


def test_a_service_wired_to_the_read_write_key_is_reported():
    broken = render(sets=("qdrant.readOnlyApiKeyKey=api-key",))
    assert checks.secret_problems(list(broken.objects), "api-key", "read-only-api-key") == [
        "Deployment/movierec/recommender: the service gets Qdrant key 'api-key', not the read-only key"
    ]


def test_values_defaults_hold_no_secret(default_values):
    def walk(node, path=""):
        if isinstance(node, dict):
            for key, value in node.items():
                yield from walk(value, f"{path}.{key}")
        elif isinstance(node, str):
            yield path, node

    secret_like = [(path, value) for path, value in walk(default_values)
                   if checks.SECRET_LIKE.search(path.rsplit(".", 1)[-1]) and value]
    # Only the names of Secrets and of keys inside them: never a key's value.
    assert secret_like == [
        (".qdrant.existingSecret", "qdrant-api-key"),
        (".qdrant.apiKeyKey", "api-key"),
        (".qdrant.readOnlyApiKeyKey", "read-only-api-key"),
        (".service.auth.key", "service-api-key"),
        (".metrics.qdrantHybrid.apiKeySecret", "qdrant-api-key"),
        (".metrics.qdrantHybrid.apiKeyKey", "read-only-api-key"),
    ]


def test_images_are_pinned_and_default_to_the_chart_app_version(rendered):
    assert checks.image_problems(list(rendered.objects)) == []
    app_version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    images = {c["image"] for w in checks.workloads(rendered.objects)
              for c in checks.containers(checks.pod_spec(w))}
    ours = {i for i in images if "movierec/" in i}
    assert {i.rsplit(":", 1)[1] for i in ours} == {app_version}


def test_chart_app_version_is_the_python_package_version():
    chart = (CHART / "Chart.yaml").read_text()
    app_version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert f'appVersion: "{app_version}"' in chart


def test_an_image_tagged_latest_is_reported_when_the_schema_is_bypassed():
    broken = render(sets=("images.service.tag=latest",), skip_schema=True)
    assert checks.image_problems(list(broken.objects)) == [
        "Deployment/movierec/recommender: image 'movierec/recommender:latest' is not pinned"
    ]


def test_a_digest_pins_the_image_by_content():
    digest = "sha256:" + "ab" * 32
    rendered = render(sets=(f"images.ingest.digest={digest}", "images.registry=registry.example/team"))
    ingest = checks.pod_spec(rendered.one("CronJob", "movierec-ingest"))["containers"][0]
    assert ingest["image"] == f"registry.example/team/movierec/ingest:0.1.0@{digest}"


def test_probes_call_the_service_s_real_routes():
    require_module("movierec.service.app")
    from movierec.service.app import create_app

    routes = set(create_app().openapi()["paths"])
    assert {"/healthz", "/readyz", "/recommendations"} <= routes
    for name in VALUES:
        assert checks.probe_problems(list(render(VALUES[name]).objects), routes) == []


def test_a_probe_on_a_route_the_app_does_not_serve_is_reported():
    rendered = render()
    deployment = json.loads(json.dumps(rendered.one("Deployment", "movierec")))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["path"] = "/ready"
    assert checks.probe_problems([deployment], {"/healthz", "/readyz"}) == [
        "Deployment/movierec/recommender: readinessProbe calls /ready, expected /readyz",
        "Deployment/movierec/recommender: readinessProbe calls /ready, which the app does not serve",
    ]


def test_cronjob_runs_the_real_movierec_ingest_command_and_waits_for_qdrant():
    cronjob = render().one("CronJob", "movierec-ingest")
    container = checks.pod_spec(cronjob)["containers"][0]
    script = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert container["command"] == ["movierec"] and "movierec" in script
    assert container["args"] == ["ingest", "--dataset", "$(MOVIELENS_DATASET)", "--wait", "120"]
    # The flags exist in the real CLI (argparse rejects unknown ones).
    require_module("movierec.cli")
    help_text = subprocess.run(
        [Path(sys.executable).with_name("movierec"), "ingest", "--help"], capture_output=True,
        text=True, check=True,
    ).stdout
    assert "--dataset" in help_text and "--wait SECONDS" in help_text
    service = render().one("Deployment", "movierec")["spec"]["template"]["spec"]["containers"][0]
    assert (service["command"], service["args"]) == (["movierec"], ["serve"])


def test_ingest_cronjob_is_suspended_and_bounded():
    cronjob = render().one("CronJob", "movierec-ingest")
    job = cronjob["spec"]["jobTemplate"]["spec"]
    assert cronjob["spec"]["suspend"] is True
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    assert (job["backoffLimit"], job["activeDeadlineSeconds"], job["ttlSecondsAfterFinished"]) == (2, 3600, 86400)
    assert job["template"]["spec"]["restartPolicy"] == "Never"


def test_ingest_caches_downloads_on_a_writable_volume_and_reads_a_claim_read_only():
    default = checks.pod_spec(render().one("CronJob", "movierec-ingest"))
    mounts = {m["name"]: m for m in default["containers"][0]["volumeMounts"]}
    volumes = {v["name"]: v for v in default["volumes"]}
    assert mounts["cache"]["mountPath"] == "/var/cache/movierec"
    assert volumes["cache"] == {"name": "cache", "emptyDir": {"sizeLimit": "2Gi"}}
    assert configmaps(render())[INGEST_CONFIGMAP]["data"]["MOVIELENS_CACHE"] == "/var/cache/movierec"

    claim = checks.pod_spec(everything().one("CronJob", "movierec-ingest"))
    container = claim["containers"][0]
    assert checks.env_var(container, "MOVIELENS_DIR") == {"name": "MOVIELENS_DIR", "value": "/data/movielens"}
    dataset = next(m for m in container["volumeMounts"] if m["name"] == "dataset")
    assert dataset == {"name": "dataset", "mountPath": "/data/movielens", "readOnly": True, "subPath": "ml-1m"}
    assert {"name": "cache", "persistentVolumeClaim": {"claimName": "movielens-cache"}} in claim["volumes"]


def test_mirror_download_url_and_md5_reach_the_ingest():
    md5 = "c4d9eecfca2ab87c1945afe126590906"
    rendered = render(sets=("ingest.dataset.url=https://mirror.example/ml-1m.zip", f"ingest.dataset.md5={md5}"))
    data = configmaps(rendered)[INGEST_CONFIGMAP]["data"]
    assert (data["MOVIELENS_URL"], data["MOVIELENS_MD5"]) == ("https://mirror.example/ml-1m.zip", md5)


def test_first_ingest_hook_is_optional_and_shares_the_cronjob_pod():
    assert render().of_kind("Job") == [render().one("Job", "movierec-test-recommendation")]
    rendered = render(sets=("ingest.hook.enabled=true",))
    hook = rendered.one("Job", "movierec-ingest-hook")
    assert hook["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    cronjob_pod = rendered.one("CronJob", "movierec-ingest")["spec"]["jobTemplate"]["spec"]["template"]
    assert hook["spec"]["template"] == cronjob_pod


def test_pods_are_hardened(rendered):
    assert checks.security_problems(list(rendered.objects)) == []
    for account in rendered.of_kind("ServiceAccount"):
        assert account["automountServiceAccountToken"] is False
    accounts = {checks.pod_spec(w).get("serviceAccountName") for w in checks.workloads(rendered.objects)}
    assert {"movierec-service", "movierec-ingest"} <= accounts


def test_containers_without_a_security_context_are_reported():
    broken = render(set_json=("containerSecurityContext=null",), skip_schema=True)
    problems = checks.security_problems(list(broken.objects))
    assert "Deployment/movierec/recommender: readOnlyRootFilesystem is not true" in problems
    assert "CronJob/movierec-ingest/ingest: capabilities are not all dropped" in problems
    assert "Deployment/movierec/recommender: allowPrivilegeEscalation is not false" in problems


def test_only_the_service_accepts_traffic_and_only_on_its_port(rendered):
    assert checks.network_problems(list(rendered.objects)) == []
    service_policy = rendered.one("NetworkPolicy", "movierec-service")
    assert service_policy["spec"]["ingress"] == [{"ports": [{"protocol": "TCP", "port": "http"}]}]


def test_both_workloads_may_reach_qdrant_and_nothing_else_inside_the_cluster():
    rendered = render()
    for name in ("movierec-service", "movierec-ingest", "movierec-maintenance"):
        egress = rendered.one("NetworkPolicy", name)["spec"]["egress"]
        qdrant = egress[0]
        assert qdrant["to"] == [{
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "qdrant"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "qdrant"}},
        }]
        assert [p["port"] for p in qdrant["ports"]] == [6333, 6334]
    download = rendered.one("NetworkPolicy", "movierec-ingest")["spec"]["egress"][2]
    assert download == {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"protocol": "TCP", "port": 443}]}


def test_workloads_without_network_policies_are_reported():
    broken = render(sets=("networkPolicy.enabled=false",))
    assert checks.network_problems(list(broken.objects)) == [
        "Deployment/movierec: not isolated by a NetworkPolicy ([])",
        "CronJob/movierec-ingest: not isolated by a NetworkPolicy ([])",
        "CronJob/movierec-rollback: not isolated by a NetworkPolicy ([])",
        "Job/movierec-test-recommendation: not isolated by a NetworkPolicy ([])",
    ]


def test_a_pod_label_that_overrides_the_component_breaks_the_selectors_and_is_reported():
    broken = render(sets=("service.podLabels.app\\.kubernetes\\.io/component=web",), skip_schema=True)
    problems = checks.selector_problems(list(broken.objects))
    assert "Deployment/movierec: selector does not match its pod labels" in problems


def test_service_shuts_down_gracefully_and_spreads_over_nodes():
    spec = render().one("Deployment", "movierec")["spec"]["template"]["spec"]
    container = spec["containers"][0]
    assert container["lifecycle"] == {"preStop": {"sleep": {"seconds": 5}}}
    assert spec["terminationGracePeriodSeconds"] == 30 > 5
    assert [c["topologyKey"] for c in spec["topologySpreadConstraints"]] == [
        "kubernetes.io/hostname", "topology.kubernetes.io/zone"]
    assert render().one("PodDisruptionBudget", "movierec")["spec"]["maxUnavailable"] == 1


def test_kind_values_expose_the_node_port_that_the_kind_cluster_maps_to_the_host():
    import yaml

    service = render(VALUES["kind"]).one("Service", "movierec")
    kind_config = yaml.safe_load((ROOT / "k8s" / "kind-cluster.yaml").read_text())
    mapped = {m["containerPort"]: m["hostPort"] for m in kind_config["nodes"][0]["extraPortMappings"]}
    assert service["spec"]["type"] == "NodePort"
    assert mapped[service["spec"]["ports"][0]["nodePort"]] == 8080


def test_ovh_values_ask_for_an_ovhcloud_load_balancer_and_autoscale():
    rendered = render(VALUES["ovh"])
    service = rendered.one("Service", "movierec")
    assert service["spec"]["type"] == "LoadBalancer"
    assert service["metadata"]["annotations"] == {"loadbalancer.ovhcloud.com/flavor": "small"}
    hpa = rendered.one("HorizontalPodAutoscaler", "movierec")
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 6)
    assert "replicas" not in rendered.one("Deployment", "movierec")["spec"]


def test_helm_test_checks_readiness_then_asks_the_tutorial_query():
    job = render().one("Job", "movierec-test-recommendation")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "test"
    spec = job["spec"]["template"]["spec"]
    assert spec["initContainers"][0]["args"][-1] == "http://movierec:80/readyz"
    script = spec["containers"][0]["args"][0]
    assert "http://movierec:80/recommendations" in script
    assert '"2571": 1' in script and '"model": "tutorial"' in script


def test_notes_tell_how_to_run_the_ingest_and_curl_the_service():
    from .conftest import require_tool, run

    result = run([require_tool("helm"), "install", "movierec", CHART, "--namespace", "movierec",
                  "--dry-run=client", "--values", CHART / "values-kind.yaml"])
    assert result.returncode == 0, result.stderr
    notes = result.stdout.split("NOTES:", 1)[1]
    assert "kubectl -n movierec create job --from=cronjob/movierec-ingest ingest-$(date +%s)" in notes
    assert 'curl -fsS -X POST "$MOVIEREC_URL/recommendations"' in notes
    assert "export MOVIEREC_URL=http://127.0.0.1:8080" in notes
