"""The chart's monitoring objects, checked with real tools: the Prometheus Operator's CRD schemas,
`promtool check rules` and `promtool test rules` on the rules helm renders, and the dashboard's
queries parsed by promtool. Off by default, and switching it on changes nothing else."""

from __future__ import annotations

import copy
import hashlib
import re
import shutil
import subprocess

import pytest
import yaml

from tests.k8s.conftest import (
    CHART,
    EVERYTHING_ON,
    RELEASE,
    ROOT,
    VALUES,
    helm_template_command,
    render,
    run,
)

from .conftest import (
    CRDS,
    HERE,
    MONITORING_ON,
    render_monitoring,
    require_binary,
    rules_of,
    validate_against_crds,
    write_rules,
)

MONITORING_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}
ALERTS = ["MovierecNotReady", "Movierec5xxRatioHigh", "MovierecLatencyP99High",
          "MovierecDataStale", "MovierecIngestJobFailed", "QdrantDown", "QdrantReplicaNotActive"]


def key(o: dict) -> tuple[str, str, str]:
    return (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"])


@pytest.mark.parametrize("values", [*VALUES, "everything"])
def test_monitoring_is_off_by_default_and_switching_it_on_only_adds_its_own_objects(values):
    files, sets = (VALUES[values], ()) if values != "everything" else ((), EVERYTHING_ON)
    off = render(files, sets)
    on = render(files, (*sets, *MONITORING_ON))
    assert not [o for o in off.objects if o["apiVersion"].startswith("monitoring.coreos.com/")]
    assert "grafana_dashboard" not in off.text
    before = {key(o): o for o in off.objects}
    after = {key(o): o for o in on.objects}
    assert {k: after[k] for k in before} == before  # nothing that existed changes
    assert sorted(set(after) - set(before)) == [
        ("ConfigMap", "movierec", "movierec-dashboard"),
        ("PodMonitor", "qdrant", "movierec-qdrant-database"),
        ("PrometheusRule", "movierec", "movierec"),
        ("ServiceMonitor", "movierec", "movierec"),
        ("ServiceMonitor", "qdrant", "movierec-qdrant-cluster-exporter"),
        ("ServiceMonitor", "qdrant", "movierec-qdrant-operator"),
    ]


def test_service_monitor_scrapes_the_service_port_and_sends_the_token_only_when_auth_is_on():
    rendered = render_monitoring()
    monitor = rendered.one("ServiceMonitor", RELEASE)
    service = rendered.one("Service", RELEASE)
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["movierec"]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in [p["name"] for p in service["spec"]["ports"]]
    assert (endpoint["path"], endpoint["interval"], endpoint["scrapeTimeout"]) == ("/metrics", "30s", "10s")
    assert "authorization" not in endpoint

    authed = render_monitoring("service.auth.existingSecret=movierec-service-api-key",
                               "metrics.serviceMonitor.labels.release=prometheus",
                               "metrics.serviceMonitor.interval=15s")
    monitor = authed.one("ServiceMonitor", RELEASE)
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["authorization"] == {"type": "Bearer", "credentials": {
        "name": "movierec-service-api-key", "key": "service-api-key"}}
    # The same Secret and key the pods read SERVICE_API_KEY from.
    env = authed.one("Deployment", RELEASE)["spec"]["template"]["spec"]["containers"][0]["env"]
    (token,) = [e for e in env if e["name"] == "SERVICE_API_KEY"]
    assert token["valueFrom"]["secretKeyRef"] == endpoint["authorization"]["credentials"]
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert endpoint["interval"] == "15s"


def test_a_restricted_service_port_admits_prometheus_from_the_monitoring_namespace():
    peer = '[{"podSelector": {"matchLabels": {"app": "gateway"}}}]'
    rendered = render_monitoring("metrics.monitoringNamespace=observability",
                                 set_json=(f"networkPolicy.service.from={peer}",))
    (ingress,) = rendered.one("NetworkPolicy", "movierec-service")["spec"]["ingress"]
    assert ingress["from"] == [
        {"podSelector": {"matchLabels": {"app": "gateway"}}},
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "observability"}},
         "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}},
    ]
    # Without the ServiceMonitor, the restricted list stays as written.
    plain = render(set_json=(f"networkPolicy.service.from={peer}",))
    (ingress,) = plain.one("NetworkPolicy", "movierec-service")["spec"]["ingress"]
    assert ingress["from"] == [{"podSelector": {"matchLabels": {"app": "gateway"}}}]


def test_qdrant_side_network_policy_admits_prometheus_to_the_rest_port_only():
    policy = yaml.safe_load((ROOT / "k8s" / "qdrant" / "networkpolicy.yaml").read_text())
    scraper = [rule for rule in policy["spec"]["ingress"]
               if rule["from"][0].get("namespaceSelector", {}).get("matchLabels") ==
               {"kubernetes.io/metadata.name": "monitoring"}]
    assert scraper == [{"from": [{
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}],
        "ports": [{"protocol": "TCP", "port": 6333}]}]


def test_official_qdrant_chart_monitoring_values_switch_on_its_service_monitor():
    values = yaml.safe_load((ROOT / "k8s" / "qdrant" / "values-monitoring.yaml").read_text())
    monitor = values["metrics"]["serviceMonitor"]
    assert (monitor["enabled"], monitor["targetPort"], monitor["targetPath"]) == (True, "http", "/metrics")
    # The official chart sends the read-only key when readOnlyApiKey is set, as values.yaml does.
    assert yaml.safe_load((ROOT / "k8s" / "qdrant" / "values.yaml").read_text())["readOnlyApiKey"]
    # Its job ("qdrant-headless": the headless Service's name) is one the alerts watch.
    job = yaml.safe_load((CHART / "values.yaml").read_text())["metrics"]["prometheusRule"]["qdrant"]["job"]
    assert re.fullmatch(job, "qdrant-headless") and re.fullmatch(job, "qdrant")


def test_vendored_crds_are_the_pinned_upstream_files():
    readme = (CRDS / "README.md").read_text()
    for path in sorted(CRDS.glob("*.yaml")):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert f"`{digest}  {path.name}`" in readme
        assert yaml.safe_load(path.read_text())["metadata"]["annotations"][
            "operator.prometheus.io/version"] == "0.93.0"


def test_monitoring_objects_pass_the_prometheus_operator_crd_schemas(tmp_path):
    rendered = render_monitoring("service.auth.existingSecret=movierec-service-api-key",
                                 "metrics.prometheusRule.runbookUrl=https://example.org/README.md",
                                 "metrics.serviceMonitor.labels.release=prometheus")
    objects = [o for o in rendered.objects if o["kind"] in MONITORING_KINDS]
    assert len(objects) == 5
    assert validate_against_crds(objects, tmp_path) == {
        "PodMonitor/movierec-qdrant-database": [],
        "PrometheusRule/movierec": [],
        "ServiceMonitor/movierec": [],
        "ServiceMonitor/movierec-qdrant-cluster-exporter": [],
        "ServiceMonitor/movierec-qdrant-operator": [],
    }


def test_the_crd_check_rejects_a_misspelled_field_and_a_wrong_type(tmp_path):
    # Copies: render() is cached, and other tests read the same objects.
    monitor = copy.deepcopy(render_monitoring().one("ServiceMonitor", RELEASE))
    monitor["spec"]["endpoints"][0]["intervall"] = monitor["spec"]["endpoints"][0].pop("interval")
    rule = copy.deepcopy(render_monitoring().one("PrometheusRule", RELEASE))
    rule["spec"]["groups"][0]["rules"][0]["for"] = 120
    assert validate_against_crds([monitor, rule], tmp_path) == {
        "ServiceMonitor/movierec": [
            "spec/endpoints/0: Additional properties are not allowed ('intervall' was unexpected)"],
        "PrometheusRule/movierec": ["spec/groups/0/rules/0/for: 120 is not of type 'string'"],
    }


def test_promtool_accepts_the_rendered_rules(tmp_path):
    promtool = require_binary("promtool")
    rules = write_rules(render_monitoring("metrics.prometheusRule.runbookUrl=https://example.org/R.md"),
                        tmp_path / "rules.yaml")
    result = run([promtool, "check", "rules", rules])
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in result.stdout
    alerts = [r["alert"] for g in rules_of(render_monitoring())["groups"] for r in g["rules"]]
    assert alerts == ALERTS


def test_promtool_rejects_a_broken_rule(tmp_path):
    promtool = require_binary("promtool")
    spec = copy.deepcopy(rules_of(render_monitoring()))
    spec["groups"][0]["rules"][0]["expr"] = "movierec_ready{ == 0"
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(spec))
    result = run([promtool, "check", "rules", tmp_path / "rules.yaml"])
    assert result.returncode == 1 and "MovierecNotReady" in result.stdout + result.stderr


def test_each_alert_fires_on_series_that_should_fire_it_and_stays_silent_otherwise(tmp_path):
    promtool = require_binary("promtool")
    write_rules(render_monitoring(), tmp_path / "rules.yaml")
    shutil.copy(HERE / "rules_test.yaml", tmp_path / "rules_test.yaml")
    result = _promtool_test(promtool, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    # Every alert has at least one case that fires it and one that must stay silent.
    cases = yaml.safe_load((HERE / "rules_test.yaml").read_text())["tests"]
    checks = [c for t in cases for c in t["alert_rule_test"]]
    for alert in ALERTS:
        outcomes = [bool(c["exp_alerts"]) for c in checks if c["alertname"] == alert]
        assert True in outcomes and False in outcomes, alert


def _promtool_test(promtool: str, folder):
    # promtool resolves rule_files relative to the test file's folder.
    return subprocess.run([promtool, "test", "rules", "rules_test.yaml"], cwd=folder,
                          capture_output=True, text=True, check=False)


def test_every_alert_has_a_summary_a_description_and_a_runbook_entry_in_readme():
    readme = (ROOT / "README.md").read_text()
    operations = readme.split("\n## Operations", 1)[1].split("\n## ", 1)[0]
    rendered = render_monitoring("metrics.prometheusRule.runbookUrl=https://example.org/README.md")
    for group in rules_of(rendered)["groups"]:
        for rule in group["rules"]:
            annotations = rule["annotations"]
            assert annotations["summary"] and annotations["description"]
            assert f"Runbook: README, Operations, {rule['alert']}." in annotations["description"]
            assert annotations["runbook_url"] == f"https://example.org/README.md#{rule['alert'].lower()}"
            assert rule["labels"]["severity"] in ("critical", "warning")
            assert f"`{rule['alert']}`" in operations, f"no runbook line for {rule['alert']}"


def test_dashboard_queries_all_parse_with_promtool(dashboard, tmp_path):
    promtool = require_binary("promtool")
    queries = dashboard_queries(dashboard)
    assert len(queries) >= 10
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}", "expr": q} for i, q in enumerate(queries)]}]}
    (tmp_path / "dashboard.yaml").write_text(yaml.safe_dump(rules))
    result = run([promtool, "check", "rules", tmp_path / "dashboard.yaml"])
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_covers_what_the_issue_of_running_it_needs(dashboard):
    titles = [p["title"] for p in dashboard["panels"]]
    assert titles == [
        "Requests per second by route and status", "5xx ratio of API requests",
        "Latency percentiles by model", "Empty answers per second by model", "Ready pods",
        "Data version age", "Store query p99 by operation", "Qdrant targets up",
        "Qdrant shard replicas not active", "Qdrant points per collection",
    ]
    assert {v["name"] for v in dashboard["templating"]["list"]} == {
        "datasource", "namespace", "qdrant_job", "qdrant_namespace"}
    assert all(p["datasource"]["uid"] == "${datasource}" for p in dashboard["panels"])


# Grafana's variables, replaced the way Grafana would for one namespace.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$namespace": "movierec",
                     "$qdrant_job": "qdrant|qdrant-headless", "$qdrant_namespace": "qdrant"}


def dashboard_queries(dashboard: dict, variables: dict = GRAFANA_VARIABLES) -> list[str]:
    queries = []
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            for name, value in variables.items():
                expr = expr.replace(name, value)
            assert "$" not in expr, expr
            queries.append(expr)
    return queries


@pytest.mark.parametrize(("assignment", "named"), [
    ("metrics.prometheusRule.errors.threshold=5", "/metrics/prometheusRule/errors/threshold"),
    ("metrics.serviceMonitor.interval=30 seconds", "/metrics/serviceMonitor/interval"),
    ("metrics.serviceMonitor.intervall=30s", "'intervall' not allowed"),
    ("metrics.prometheusRule.qdrant.metricPrefix=qdrant-", "/metrics/prometheusRule/qdrant/metricPrefix"),
])
def test_the_schema_refuses_broken_monitoring_values(assignment, named):
    result = run(helm_template_command(sets=(assignment,)))
    assert result.returncode != 0 and named in result.stderr, result.stderr
