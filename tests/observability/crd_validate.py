"""Validates Kubernetes objects against CRDs' openAPIV3Schema, as the API server's strict field
validation would: unknown fields are errors. Run with a Python that has jsonschema and PyYAML
(the kubernetes-validate venv under .tools/):

    python crd_validate.py CRD_DIR MANIFEST.yaml   -> prints {"<Kind>/<name>": [errors...]} as JSON
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jsonschema
import yaml


def strict(schema: dict) -> dict:
    """OpenAPI v3 structural schema -> JSON Schema that rejects fields the CRD does not declare."""
    schema = dict(schema)
    if schema.pop("x-kubernetes-int-or-string", False) and "type" not in schema:
        schema.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    preserve = schema.get("x-kubernetes-preserve-unknown-fields", False)
    if "properties" in schema:
        schema["properties"] = {k: strict(v) for k, v in schema["properties"].items()}
        if "additionalProperties" not in schema and not preserve:
            schema["additionalProperties"] = False
    if isinstance(schema.get("additionalProperties"), dict):
        schema["additionalProperties"] = strict(schema["additionalProperties"])
    if isinstance(schema.get("items"), dict):
        schema["items"] = strict(schema["items"])
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            schema[key] = [strict(s) for s in schema[key]]
    if schema.pop("nullable", False) and "type" in schema:
        schema["type"] = [schema["type"], "null"]
    return schema


def schemas(crd_dir: Path) -> dict[tuple[str, str], dict]:
    found = {}
    for path in sorted(crd_dir.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schema = strict(version["schema"]["openAPIV3Schema"])
            # metadata is the API server's to check; apiVersion and kind must be these.
            schema["properties"]["metadata"] = {"type": "object"}
            found[(f"{group}/{version['name']}", kind)] = schema
    return found


def main(crd_dir: str, manifest: str) -> None:
    known = schemas(Path(crd_dir))
    report = {}
    for obj in yaml.safe_load_all(Path(manifest).read_text()):
        if not obj:
            continue
        name = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        schema = known.get((obj.get("apiVersion"), obj.get("kind")))
        if schema is None:
            report[name] = [f"no CRD for {obj.get('apiVersion')} {obj.get('kind')}"]
            continue
        validator = jsonschema.Draft7Validator(schema)
        report[name] = sorted(
            f"{'/'.join(str(p) for p in e.absolute_path) or '.'}: {e.message}"
            for e in validator.iter_errors(obj))
    print(json.dumps(report))


if __name__ == "__main__":
    main(*sys.argv[1:])
