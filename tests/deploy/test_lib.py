"""scripts/lib.sh pieces that a dry run cannot show: where the Qdrant API keys come from, and
that they land in owner-only files without ever being printed."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# One bash: make the keys, then write file modes and values to a report file (REPORT_FILE),
# away from what lib.sh prints, which must never contain them.
SCRIPT = """
source scripts/lib.sh
prepare_api_keys qdrant
exec >"$REPORT_FILE"
stat -c '%a' "$KEY_DIR" "$KEY_DIR/api-key" "$KEY_DIR/read-only-api-key"
echo "rw=$(cat "$KEY_DIR/api-key")"
echo "ro=$(cat "$KEY_DIR/read-only-api-key")"
"""


def run_keys(tmp_path, kubectl: str, **env: str):
    """prepare_api_keys with a stand-in kubectl; returns (result, file modes, key values)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "kubectl").write_text("#!/bin/sh\n" + kubectl)
    (bin_dir / "kubectl").chmod(0o755)
    report = tmp_path / "report"
    environment = {
        "PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin", "TOOLS_BIN": str(bin_dir),
        "REPORT_FILE": str(report), **env,
    }
    result = subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + SCRIPT], cwd=ROOT, env=environment,
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = report.read_text().splitlines()
    modes, values = lines[:3], dict(line.split("=", 1) for line in lines[3:])
    return result, modes, values


def test_new_keys_are_generated_into_owner_only_files_and_never_printed(tmp_path):
    result, modes, values = run_keys(tmp_path, "exit 1\n")  # no cluster, no Secret yet
    assert modes == ["700", "600", "600"]
    assert len(values["rw"]) >= 40 and len(values["ro"]) >= 40
    assert values["rw"] != values["ro"]
    assert "generated" in result.stdout
    for value in values.values():
        assert value not in result.stdout + result.stderr


def test_keys_of_an_existing_secret_are_kept(tmp_path):
    rw, ro = base64.b64encode(b"kept-read-write").decode(), base64.b64encode(b"kept-read-only").decode()
    kubectl = (
        'case "$*" in\n'
        f'  *"{{.data.api-key}}"*) printf %s {rw} ;;\n'
        f'  *"{{.data.read-only-api-key}}"*) printf %s {ro} ;;\n'
        "esac\n"
    )
    result, _, values = run_keys(tmp_path, kubectl)
    assert values == {"rw": "kept-read-write", "ro": "kept-read-only"}
    assert "kept from the existing Secret qdrant/qdrant-api-key" in result.stdout
    assert "kept-read" not in result.stdout + result.stderr


def test_keys_given_in_the_environment_win(tmp_path):
    result, _, values = run_keys(
        tmp_path, "exit 1\n", QDRANT_API_KEY="given-rw-key", QDRANT_READ_ONLY_API_KEY="given-ro-key"
    )
    assert values == {"rw": "given-rw-key", "ro": "given-ro-key"}
    assert "given-r" not in result.stdout + result.stderr


def test_a_secret_value_on_a_command_line_is_printed_as_stars():
    """Defence in depth: no command the scripts print carries a secret, but if one ever did,
    the plan would show *** in its place."""
    result = subprocess.run(
        ["bash", "-c", "source scripts/lib.sh; run terraform apply -var \"key=$OVH_APPLICATION_SECRET\" -var region=GRA11"],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
        env={"PATH": "/usr/bin:/bin", "DRY_RUN": "1", "OVH_APPLICATION_SECRET": "s3cr3t-value"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "+ terraform apply -var key=*** -var region=GRA11\n"
