"""Real tools for the monitoring checks: promtool and prometheus (Debian's prometheus package,
installed by `make prometheus-tools`), helm and the kubernetes-validate venv (`make k8s-tools`).
A missing tool skips its tests on a developer's machine and fails them under CI=true.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml

from tests.browser.conftest import browser  # noqa: F401 (headless Chromium, for the picture)
from tests.k8s.conftest import TOOLS, render, require_tool, run

HERE = Path(__file__).resolve().parent
CRDS = HERE / "crds"
CRD_VALIDATE = HERE / "crd_validate.py"

# Every monitoring object on, with the bearer token and a restricted service port.
MONITORING_ON = (
    "metrics.serviceMonitor.enabled=true",
    "metrics.prometheusRule.enabled=true",
    "metrics.dashboard.enabled=true",
    "metrics.qdrantHybrid.enabled=true",
)


def require_binary(name: str) -> str:
    path = shutil.which(name)
    if path:
        return path
    message = f"{name} is not installed: run `make prometheus-tools`"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def render_monitoring(*sets: str, set_json: tuple[str, ...] = ()):
    return render(sets=(*MONITORING_ON, *sets), set_json=set_json)


def rules_of(rendered) -> dict:
    """The rule groups of the rendered PrometheusRule, as a Prometheus rule file."""
    (rule,) = rendered.of_kind("PrometheusRule")
    return rule["spec"]


def write_rules(rendered, path: Path) -> Path:
    path.write_text(yaml.safe_dump(rules_of(rendered), sort_keys=False))
    return path


def validate_against_crds(objects: list[dict], tmp_path: Path) -> dict[str, list[str]]:
    """{Kind/name: errors} from the vendored CRD schemas, unknown fields included."""
    require_tool("kubernetes-validate")  # its venv carries jsonschema
    manifest = tmp_path / "objects.yaml"
    manifest.write_text(yaml.safe_dump_all(objects))
    python = TOOLS / "k8s-venv" / "bin" / "python"
    result = run([python, CRD_VALIDATE, CRDS, manifest])
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def dashboard_json() -> dict:
    """The dashboard as the chart renders it into its ConfigMap."""
    rendered = render_monitoring()
    (configmap,) = [o for o in rendered.of_kind("ConfigMap")
                    if o["metadata"]["name"].endswith("-dashboard")]
    return json.loads(configmap["data"]["movierec.json"])


@pytest.fixture(scope="session")
def dashboard() -> dict:
    return dashboard_json()
