"""Each image's virtualenv, made as its Dockerfile makes it (the lock alone, then movierec with
--no-deps), starts its own entrypoint. A module the lock lacks fails here without any container."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.service_helpers import free_port

ROOT = Path(__file__).resolve().parents[2]


def clean_env(**extra: str) -> dict[str, str]:
    """Nothing of the test's own environment that could lend the venv a module (PYTHONPATH)."""
    keep = {k: v for k, v in os.environ.items()
            if k in ("PATH", "HOME", "LANG", "TMPDIR") or k.startswith(("PIP_", "SSL_"))}
    return {**keep, "PYTHONDONTWRITEBYTECODE": "1", **extra}


@pytest.fixture(scope="module")
def movierec_wheel(tmp_path_factory) -> Path:
    """The wheel built from what the images' build context holds (pyproject, README, src/)."""
    context = tmp_path_factory.mktemp("context")
    shutil.copy(ROOT / "pyproject.toml", context)
    shutil.copy(ROOT / "README.md", context)
    shutil.copytree(ROOT / "src", context / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", ".movierec"))
    wheels = tmp_path_factory.mktemp("wheels")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--wheel-dir", str(wheels), str(context)],
                   check=True, env=clean_env())
    return next(wheels.glob("movierec-*.whl"))


def pip_into(python: Path, *args: str) -> None:
    """The test's pip installing into another interpreter (the venvs have no pip, like the images)."""
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install",
                           "--quiet", "--no-deps", *args],
                          env=clean_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def venv_from_lock(lock: str, wheel: Path) -> Path:
    """A virtualenv holding exactly the lock's packages plus movierec; returns its `movierec`.

    The dependencies are kept under .movierec/lock-venvs per lock content (the slow part, like
    the images' cached dependency layer); movierec itself is reinstalled every time.
    """
    lock_file = ROOT / "requirements" / lock
    digest = hashlib.sha256(lock_file.read_bytes() + sys.version.encode()).hexdigest()[:16]
    where = ROOT / ".movierec" / "lock-venvs" / f"{lock_file.stem}-{digest}"
    python = where / "bin" / "python"
    if not (where / ".complete").exists():
        shutil.rmtree(where, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
        pip_into(python, "--require-hashes", "-r", str(lock_file))
        (where / ".complete").touch()
    pip_into(python, "--force-reinstall", str(wheel))
    return where / "bin" / "movierec"


def test_the_service_lock_alone_runs_movierec_serve(movierec_wheel, tmp_path):
    movierec = venv_from_lock("service.lock", movierec_wheel)
    port = free_port()
    log = tmp_path / "serve.log"
    env = clean_env(QDRANT_URL="", QDRANT_PATH=str(tmp_path / "store"), HOST="127.0.0.1",
                    PORT=str(port))
    with open(log, "wb") as out:
        server = subprocess.Popen([str(movierec), "serve"], env=env, cwd=tmp_path,
                                  stdout=out, stderr=subprocess.STDOUT)
    answer = None
    try:
        deadline = time.monotonic() + 60
        while server.poll() is None and time.monotonic() < deadline:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert server.poll() is None, f"movierec serve exited {server.returncode}:\n{log.read_text()}"
        assert answer is not None and answer.status_code == 200, log.read_text()
    finally:
        # How it stops is the container test's subject (podman stop, with a request in flight).
        server.terminate()
        server.wait(30)


def test_the_ingest_lock_alone_runs_movierec_ingest(movierec_wheel, tmp_path):
    movierec = venv_from_lock("ingest.lock", movierec_wheel)
    done = subprocess.run([str(movierec), "ingest", "--help"], env=clean_env(), cwd=tmp_path,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "--no-item-model" in done.stdout
