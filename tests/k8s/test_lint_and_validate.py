"""yamllint, helm lint --strict, the values schema and kubernetes-validate, run for real."""

from __future__ import annotations

import re

import pytest
import yaml

from .conftest import (
    CHART,
    EVERYTHING_ON,
    K8S_DIR,
    ROOT,
    VALUES,
    helm_template_command,
    render,
    render_named,
    require_tool,
    run,
)

KUBERNETES_VERSIONS = ("1.30.0", "1.34.0", "1.35.0")
# Relative paths: the ignore patterns of .yamllint.yaml are relative to the repository root.
OWNED_YAML = ["charts", "k8s", "tests/k8s", ".checkov.yaml", ".yamllint.yaml"]
BROKEN = ROOT / "tests" / "k8s" / "broken-values"

# Each broken values file and the part of helm's message that names what is wrong.
BROKEN_VALUES = {
    "api-key-in-values.yaml": "apiKey",
    "image-tag-latest.yaml": "/images/service/tag",
    "mirror-without-md5.yaml": "/ingest/dataset/md5",
    "misspelled-key.yaml": "'replica' not allowed",
    "no-resource-limits.yaml": "missing property 'limits'",
    "pod-label-overrides-selector.yaml": "app.kubernetes.io/component",
    "replicas-not-a-number.yaml": "/service/replicas",
    "runs-as-root.yaml": "/containerSecurityContext/runAsNonRoot",
    "unknown-service-type.yaml": "/service/expose/type",
    "writable-root-filesystem.yaml": "/containerSecurityContext/readOnlyRootFilesystem",
}


def yamllint(*paths, config=None) -> tuple[int, str]:
    command = [require_tool("yamllint"), "--strict", "--format", "parsable"]
    command += ["-d", config] if config else ["-c", ROOT / ".yamllint.yaml"]
    result = run([*command, *paths])
    return result.returncode, result.stdout + result.stderr


def test_every_yaml_file_we_own_passes_yamllint():
    code, output = yamllint(*OWNED_YAML)
    assert code == 0, output


def test_rendered_manifests_pass_yamllint(tmp_path):
    # toYaml indents lists its own way; everything else (trailing spaces, blank lines full of
    # spaces from template whitespace, duplicate keys) is held to the project's rules.
    config = f"{{extends: {ROOT / '.yamllint.yaml'}, rules: {{indentation: {{indent-sequences: whatever}}}}}}"
    for name in (*VALUES, "everything"):
        path = tmp_path / f"{name}.yaml"
        path.write_text(render_named(name).text)
        code, output = yamllint(path, config=config)
        assert code == 0, output


def test_yamllint_reports_a_duplicate_key(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("service:\n  replicas: 2\n  replicas: 3\n")
    code, output = yamllint(broken)
    assert code == 1 and "duplication of key" in output


@pytest.mark.parametrize("helm", ["helm", "helm3"])
@pytest.mark.parametrize("name", VALUES)
def test_helm_lint_strict_passes_with_each_values_file(helm, name):
    command = [require_tool(helm), "lint", "--strict", CHART]
    for values_file in VALUES[name]:
        command += ["--values", values_file]
    result = run(command)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("name", (*VALUES, "everything"))
def test_helm_3_and_helm_4_render_the_same_objects(name):
    sets = EVERYTHING_ON if name == "everything" else ()
    values = () if name == "everything" else VALUES[name]
    helm4 = render(values, sets)
    helm3 = render(values, sets, helm="helm3")
    assert helm3.objects == helm4.objects


@pytest.mark.parametrize("broken", sorted(BROKEN_VALUES))
def test_schema_rejects_a_broken_values_file(broken):
    lint = run([require_tool("helm"), "lint", "--strict", CHART, "--values", BROKEN / broken])
    assert lint.returncode != 0
    assert "[ERROR] values.yaml:" in lint.stdout
    assert BROKEN_VALUES[broken] in lint.stdout
    for helm in ("helm", "helm3"):
        install = run(helm_template_command((BROKEN / broken,), helm=helm))
        assert install.returncode != 0, f"{helm} template accepted {broken}"
        assert "values don't meet the specifications of the schema" in install.stderr


def kubernetes_validate(path, version) -> tuple[int, str]:
    result = run([require_tool("kubernetes-validate"), "--strict", "--kubernetes-version", version, path])
    return result.returncode, result.stdout + result.stderr


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("name", (*VALUES, "everything"))
def test_rendered_chart_is_valid_kubernetes(tmp_path, name, version):
    rendered = render_named(name)
    path = tmp_path / "rendered.yaml"
    path.write_text(rendered.text)
    code, output = kubernetes_validate(path, version)
    assert code == 0, output
    passed = output.count(" passed for resource ")
    assert passed == len(rendered.objects) >= 12


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_k8s_manifests_are_valid_kubernetes(version):
    manifests = [K8S_DIR / "namespaces.yaml", K8S_DIR / "qdrant" / "networkpolicy.yaml"]
    for manifest in manifests:
        code, output = kubernetes_validate(manifest, version)
        assert code == 0, output
        assert output.count(" passed for resource ") == len(
            [d for d in yaml.safe_load_all(manifest.read_text()) if d])


def test_a_misspelled_field_fails_strict_kubernetes_validation(tmp_path):
    # affinity is passed through as written, so only the Kubernetes schema can catch this typo.
    broken = render(set_json=('service.affinity={"nodeAffinty": {}}',))
    path = tmp_path / "rendered.yaml"
    path.write_text(broken.text)
    code, output = kubernetes_validate(path, "1.34.0")
    assert code == 1
    assert "deployment/movierec" in output and "nodeAffinty" in output


def test_every_value_in_values_yaml_is_documented():
    """A value is documented by a `# --` comment right above it or above one of its parents."""
    undocumented, stack = [], []  # stack: (indent, key, has a "# --" comment)
    lines = (CHART / "values.yaml").read_text().splitlines()
    for number, line in enumerate(lines):
        key = re.match(r"^( *)([A-Za-z0-9_.-]+):", line)
        if not key:
            continue
        indent = len(key.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        comment_block = []
        for previous in reversed(lines[:number]):
            if not previous.strip().startswith("#"):
                break
            comment_block.append(previous.strip())
        doc_comment = any(c.startswith("# --") for c in comment_block)
        documented = doc_comment or any(parent_doc for _, _, parent_doc in stack)
        stack.append((indent, key.group(2), doc_comment))
        if line.split(":", 1)[1].strip() and not documented:
            undocumented.append(".".join(k for _, k, _ in stack))
    assert undocumented == []
