"""checkov on the rendered chart (each values file), the k8s/ manifests and both Dockerfiles:
zero failed checks, every skip listed with a reason in .checkov.yaml, and the deliberate
breakages below are caught."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from .conftest import ROOT, render, render_named, require_tool, run

SCANNED_SOURCES = ["jobs/ingest/Dockerfile", "services/recommender/Dockerfile", "k8s"]
GOOD_RENDERS = ("default", "kind", "ovh", "everything")
# Renders that each break one rule, and the checks that must fail on them.
BREAKAGES = {
    "no-security-context": (
        {"set_json": ("containerSecurityContext=null",), "skip_schema": True},
        {"CKV_K8S_20", "CKV_K8S_22", "CKV_K8S_28", "CKV_K8S_37"},
    ),
    "image-latest": (
        {"sets": ("images.service.tag=latest",), "skip_schema": True},
        {"CKV_K8S_14"},
    ),
    "root-user": (
        {"set_json": ("podSecurityContext=null",
                      'containerSecurityContext={"runAsNonRoot": false, "runAsUser": 0}'),
         "skip_schema": True},
        {"CKV_K8S_23", "CKV_K8S_40"},
    ),
}


@pytest.fixture(scope="module")
def checkov_results(tmp_path_factory) -> dict:
    """One checkov run over everything (checkov takes seconds to start): file -> results."""
    checkov = require_tool("checkov")
    scan = tmp_path_factory.mktemp("checkov")
    for source in SCANNED_SOURCES:
        origin = ROOT / source
        if origin.is_dir():
            shutil.copytree(origin, scan / "sources" / source)
        else:
            (scan / "sources" / source).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(origin, scan / "sources" / source)
    for name in GOOD_RENDERS:
        (scan / "rendered" / name).mkdir(parents=True)
        (scan / "rendered" / name / "chart.yaml").write_text(render_named(name).text)
    for name, (kwargs, _) in BREAKAGES.items():
        (scan / "broken" / name).mkdir(parents=True)
        (scan / "broken" / name / "chart.yaml").write_text(render(**kwargs).text)
    result = run([checkov, "--directory", scan, "--config-file", ROOT / ".checkov.yaml",
                  "--framework", "kubernetes", "dockerfile", "--output", "json",
                  "--compact"])
    assert result.returncode in (0, 1), result.stderr
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    by_area: dict[str, dict] = {}
    for report in reports:
        for outcome in ("passed_checks", "failed_checks", "skipped_checks"):
            for check in report["results"].get(outcome, []):
                relative = check["file_abs_path"].split(str(scan) + "/", 1)[1]
                area = "/".join(relative.split("/")[:2])
                entry = by_area.setdefault(area, {"passed_checks": [], "failed_checks": [], "skipped_checks": []})
                entry[outcome].append(check)
    return by_area


def failures(results: dict, area: str) -> list[str]:
    return sorted(f"{c['check_id']} {c['resource']}" for c in results.get(area, {}).get("failed_checks", []))


@pytest.mark.parametrize("area", [f"rendered/{n}" for n in GOOD_RENDERS] + ["sources/jobs", "sources/services"])
def test_checkov_finds_no_failed_check(checkov_results, area):
    assert area in checkov_results, f"checkov scanned nothing in {area}"
    assert failures(checkov_results, area) == []
    assert len(checkov_results[area]["passed_checks"]) >= 20


def test_checkov_finds_no_failed_check_in_the_k8s_manifests(checkov_results):
    # Namespaces and NetworkPolicies: checkov has few checks for them, but none may fail.
    assert failures(checkov_results, "sources/k8s") == []


def test_checkov_scans_both_dockerfiles_with_their_user_and_healthcheck(checkov_results):
    for area in ("sources/jobs", "sources/services"):
        passed = {c["check_id"] for c in checkov_results[area]["passed_checks"]}
        assert {"CKV_DOCKER_2", "CKV_DOCKER_3", "CKV_DOCKER_7"} <= passed


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_checkov_reports_each_deliberate_breakage(checkov_results, breakage):
    failed = {c["check_id"] for c in checkov_results[f"broken/{breakage}"]["failed_checks"]}
    assert BREAKAGES[breakage][1] <= failed


def test_every_skipped_check_has_a_reason():
    text = (ROOT / ".checkov.yaml").read_text()
    skipped = re.findall(r"^  - (CKV\S*)$", text, flags=re.MULTILINE)
    ours = [c for c in skipped if c.startswith(("CKV_K8S", "CKV2_K8S", "CKV_DOCKER", "CKV2_DOCKER"))]
    assert ours == ["CKV_K8S_15", "CKV_K8S_35", "CKV_K8S_43"]
    for check in skipped:
        reason = re.search(r"((?:^  #.*\n)+)^  - " + check + "$", text, flags=re.MULTILINE)
        assert reason and len(reason.group(1)) > 80, f"{check} is skipped without a reason"
