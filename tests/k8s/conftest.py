"""Real tools for the chart tests: helm (v4 and v3), kubernetes-validate, yamllint, checkov.

They are installed by `make k8s-tools` (tools/install-k8s-tools.sh) under .tools/. A missing
tool skips its tests on a developer's machine and fails them under CI=true.
"""

from __future__ import annotations

import functools
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "movierec"
K8S_DIR = ROOT / "k8s"
TOOLS = Path(os.environ.get("K8S_TOOLS_DIR", ROOT / ".tools"))
if not TOOLS.is_absolute():
    TOOLS = ROOT / TOOLS

TOOL_PATHS = {
    "helm": TOOLS / "bin" / "helm",
    "helm3": TOOLS / "bin" / "helm3",
    "kubectl": TOOLS / "bin" / "kubectl",
    "kubernetes-validate": TOOLS / "k8s-venv" / "bin" / "kubernetes-validate",
    "yamllint": TOOLS / "k8s-venv" / "bin" / "yamllint",
    "checkov": TOOLS / "checkov-venv" / "bin" / "checkov",
}

RELEASE = "movierec"
NAMESPACE = "movierec"

# The values files a person deploys with, by name.
VALUES = {
    "default": (),
    "kind": (CHART / "values-kind.yaml",),
    "ovh": (CHART / "values-ovh.yaml",),
}

# Every optional object switched on at once, so that each template is rendered and checked.
EVERYTHING_ON = (
    "ingest.hook.enabled=true",
    "service.ingress.enabled=true",
    "service.autoscaling.enabled=true",
    "service.auth.existingSecret=movierec-service-api-key",
    "ingest.dataset.existingClaim=movielens-data",
    "ingest.dataset.subPath=ml-1m",
    "ingest.cache.existingClaim=movielens-cache",
)


def require_tool(name: str) -> Path:
    path = TOOL_PATHS[name]
    if path.exists():
        return path
    message = f"{name} is not installed at {path}: run `make k8s-tools`"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def require_module(module: str) -> None:
    """The Python package's own modules: skipped locally while absent, failed under CI."""
    try:
        __import__(module)
    except ImportError as error:
        message = f"{module} cannot be imported ({error})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)


def run(command: list[str | os.PathLike], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(part) for part in command], capture_output=True, text=True, cwd=ROOT, **kwargs
    )


@dataclass(frozen=True)
class Render:
    """The output of one `helm template`: its text and the objects in it."""

    text: str
    objects: tuple[dict, ...]

    def of_kind(self, kind: str) -> list[dict]:
        return [o for o in self.objects if o["kind"] == kind]

    def one(self, kind: str, name: str) -> dict:
        matches = [o for o in self.objects if o["kind"] == kind and o["metadata"]["name"] == name]
        assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
        return matches[0]


def helm_template_command(
    values_files: tuple[Path, ...] = (),
    sets: tuple[str, ...] = (),
    set_json: tuple[str, ...] = (),
    skip_schema: bool = False,
    helm: str = "helm",
) -> list[str | os.PathLike]:
    command: list[str | os.PathLike] = [
        require_tool(helm), "template", RELEASE, CHART, "--namespace", NAMESPACE,
    ]
    for values_file in values_files:
        command += ["--values", values_file]
    for assignment in sets:
        command += ["--set", assignment]
    for assignment in set_json:
        command += ["--set-json", assignment]
    if skip_schema:
        command.append("--skip-schema-validation")
    return command


@functools.lru_cache(maxsize=None)
def render(
    values_files: tuple[Path, ...] = (),
    sets: tuple[str, ...] = (),
    set_json: tuple[str, ...] = (),
    skip_schema: bool = False,
    helm: str = "helm",
) -> Render:
    """`helm template` of the chart; a failed render fails the calling test with helm's message."""
    result = run(helm_template_command(values_files, sets, set_json, skip_schema, helm))
    assert result.returncode == 0, f"helm template failed:\n{result.stderr}"
    objects = tuple(o for o in yaml.safe_load_all(result.stdout) if o)
    return Render(result.stdout, objects)


def render_named(name: str) -> Render:
    if name == "everything":
        return render(sets=EVERYTHING_ON)
    return render(VALUES[name])


RENDER_NAMES = (*VALUES, "everything")


@pytest.fixture(params=RENDER_NAMES)
def rendered(request) -> Render:
    """Each way the chart is deployed, plus one with every optional object on."""
    return render_named(request.param)


@pytest.fixture(scope="session")
def default_values() -> dict:
    return yaml.safe_load((CHART / "values.yaml").read_text())
