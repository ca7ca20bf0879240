"""An ingest killed with SIGKILL at random points, 20 times, while a real service serves the
store: every time, the served data is still the previous complete version (same version id,
counts and answers), and a final re-run finishes with exact counts and leaves no garbage.

Protection checked: the new version is written beside the live one and switched in by one
atomic rename of CURRENT after its counts verify (store/embedded.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from movierec import synthetic
from movierec.store.embedded import CURRENT, VERSIONS
from tests.reliability.conftest import run_ingest
from tests.service_helpers import running

KILLS = 20
QUERY = {"ratings": {"1": 1, "2": 1, "3": -1, "5": 1}, "limit": 10, "neighbors": 15}
MEDIUM = dict(n_users=8_000, n_movies=3_000, n_ratings=800_000, seed=7)


@pytest.fixture(scope="module")
def medium_dir(tmp_path_factory) -> tuple[Path, int]:
    data = synthetic.generate(**MEDIUM, name="medium")
    return synthetic.write_dat(data, tmp_path_factory.mktemp("medium")), data.n_ratings


def served_view(service) -> tuple[str, int, int, list]:
    """What the service serves: version, counts, and one recommendation (all must be 200)."""
    ready = service.client.get("/readyz")
    answer = service.client.post("/recommendations", json=QUERY)
    assert (ready.status_code, answer.status_code) == (200, 200), (ready.text, answer.text)
    ready, items = ready.json(), answer.json()["items"]
    return (ready["version"], ready["users"], ready["movies"],
            [(i["movie_id"], i["score"]) for i in items])


def wait_for_version(service, version: str, seconds: float = 5) -> None:
    deadline = time.monotonic() + seconds
    while service.client.get("/readyz").json().get("version") != version:
        assert time.monotonic() < deadline, f"service did not switch to {version}"
        time.sleep(0.05)


def test_ingest_killed_at_random_points_never_changes_what_is_served(
    tmp_path, small_dir, medium_dir
):
    data, n_ratings = medium_dir
    root = tmp_path / "q"
    env = {"QDRANT_PATH": str(root), "QDRANT_URL": ""}
    assert run_ingest(env, small_dir).returncode == 0
    live = json.loads((root / CURRENT).read_text())["version"]
    rng = np.random.default_rng(11)
    command = [sys.executable, "-m", "movierec.cli", "ingest", "--data", str(data),
               "--no-item-model"]
    full_env = {**os.environ, "MOVIELENS_DIR": "", **env}

    with running(env, tmp_path / "serve.log") as service:
        expected = served_view(service)
        assert expected[:3] == (live, 300, 120) and len(expected[3]) == 10
        # How long a whole ingest of the medium set takes here (it is not killed).
        started = time.monotonic()
        probe = run_ingest(env, data)
        whole = time.monotonic() - started
        assert probe.returncode == 0, probe.stderr
        live = json.loads((root / CURRENT).read_text())["version"]
        wait_for_version(service, live)
        expected = served_view(service)
        assert expected[:3] == (live, 8_000, 3_000)

        kills: list[tuple[str, float]] = []
        attempts = 0
        while len(kills) < KILLS:
            attempts += 1
            assert attempts <= 2 * KILLS, f"only {len(kills)} ingests were killed: {kills}"
            before = set((root / VERSIONS).iterdir())
            proc = subprocess.Popen(command, env=full_env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            if attempts % 2:  # anywhere in the run: imports, parsing, vectors, writing, commit
                time.sleep(float(rng.uniform(0.05, whole)))
                phase = "anywhere"
            else:  # within the write: from the moment the staging version exists
                deadline = time.monotonic() + 60
                while set((root / VERSIONS).iterdir()) == before and proc.poll() is None:
                    assert time.monotonic() < deadline
                    time.sleep(0.001)
                time.sleep(float(rng.uniform(0, 0.4)))
                phase = "writing"
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            if proc.returncode != -signal.SIGKILL:  # it finished first: a complete new version
                assert proc.returncode == 0
                live = json.loads((root / CURRENT).read_text())["version"]
                wait_for_version(service, live)
                assert served_view(service)[1:] == expected[1:]
                expected = served_view(service)
                continue
            current = json.loads((root / CURRENT).read_text())["version"]
            if current != live:
                # Killed after the switch (while removing old versions): the new version is
                # live and must be as complete as the one it replaced (same data, same answers).
                kills.append(("after switch", current))
                live = current
                wait_for_version(service, live)
                assert served_view(service)[1:] == expected[1:]
                expected = served_view(service)
                continue
            kills.append((phase, live))
            # CURRENT still names the complete version, and the service still serves it whole.
            time.sleep(1.1)  # the reader looks at CURRENT once a second
            assert served_view(service) == expected, f"kill {len(kills)} ({phase})"
        phases = [phase for phase, _ in kills]
        print(f"\n{len(kills)} kills in {attempts} runs:",
              {k: phases.count(k) for k in sorted(set(phases))})
        assert phases.count("writing") >= KILLS // 2 - 2

        # A re-run after all that finishes with exact counts and removes what the kills left.
        done = run_ingest(env, data)
        assert done.returncode == 0, done.stderr
        assert f": 8000 users, 3000 movies, {n_ratings} ratings into" in done.stdout
        new = json.loads((root / CURRENT).read_text())["version"]
        assert new != live
        wait_for_version(service, new)
        view = served_view(service)
        assert view[1:3] == (8_000, 3_000) and view[3] == expected[3]
        deadline = time.monotonic() + 5
        # What the kills left is removed; the version live before the re-run is kept for
        # rollback (KEEP_PREVIOUS_VERSIONS=1).
        while sorted(p.name for p in (root / VERSIONS).iterdir()) != sorted([live, new]):
            assert time.monotonic() < deadline, sorted(p.name for p in (root / VERSIONS).iterdir())
            time.sleep(0.1)
