"""`movierec rollback` on both stores: ingest A, ingest B, roll back, and A's answers come back;
a running service follows; a rollback killed with SIGKILL leaves one complete version live;
with nothing to roll back to, one line says so.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from movierec import ingest, schema
from movierec.errors import NothingToRollBack, StoreBusy
from movierec.store import open_reader, open_writer, rollback
from movierec.store.embedded import CURRENT, META, VERSIONS
from tests.conftest import settings_for
from tests.recovery.conftest import answer_of, begin_a_version, cli, one_error_line
from tests.service_helpers import running


def test_embedded_rollback_brings_back_the_previous_version_s_answers(tmp_path, datasets):
    settings = settings_for(qdrant_path=tmp_path / "q")
    a = ingest.run(settings, "a", datasets[0], progress=False)
    with open_reader(settings) as store:
        answers_a = answer_of(store)
    b = ingest.run(settings, "b", datasets[1], progress=False)
    with open_reader(settings) as store:
        assert answer_of(store) != answers_a
    env = {"QDRANT_PATH": str(tmp_path / "q")}
    done = cli(env, "rollback")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"rolled back the embedded store at {tmp_path / 'q'} from "
                                  f"version {b.version} to {a.version}")
    with open_reader(settings) as store:
        status = store.status()
        assert (status.version, status.users, status.movies) == (a.version, 300, 120)
        assert answer_of(store) == answers_a
    # B is gone (nothing kept it), and A has nothing before it.
    assert [p.name for p in (tmp_path / "q" / VERSIONS).iterdir()] == [a.version]
    line = one_error_line(cli(env, "rollback"))
    assert line == (f"error: nothing to roll back to in the embedded store at {tmp_path / 'q'}: "
                    "no previous version is kept (KEEP_PREVIOUS_VERSIONS keeps them from the "
                    "next ingest on)")


def test_rollback_of_an_empty_store_is_a_one_line_error(tmp_path):
    line = one_error_line(cli({"QDRANT_PATH": str(tmp_path / "q")}, "rollback"))
    assert line.startswith("error: nothing to roll back to in the embedded store")


def test_keep_previous_versions_bounds_how_far_back_rollback_goes(tmp_path, datasets):
    settings = settings_for(qdrant_path=tmp_path / "q", keep_previous_versions=2)
    versions = [ingest.run(settings, f"v{k}", datasets[k], progress=False).version
                for k in range(4)]
    assert sorted(p.name for p in (tmp_path / "q" / VERSIONS).iterdir()) == versions[1:]
    assert rollback(settings) == (versions[3], versions[2])
    assert rollback(settings) == (versions[2], versions[1])
    with pytest.raises(NothingToRollBack):
        rollback(settings)


def test_rollback_waits_for_no_ingest(tmp_path, datasets):
    settings = settings_for(qdrant_path=tmp_path / "q")
    ingest.run(settings, "a", datasets[0], progress=False)
    ingest.run(settings, "b", datasets[1], progress=False)
    writer = open_writer(settings)
    begin_a_version(writer, datasets[2])
    try:
        with pytest.raises(StoreBusy, match="an ingest is writing to .*; wait for it, then roll back"):
            rollback(settings)
    finally:
        writer.abort()


def test_a_running_service_switches_to_the_rolled_back_version(tmp_path, datasets):
    root = tmp_path / "q"
    settings = settings_for(qdrant_path=root)
    a = ingest.run(settings, "a", datasets[0], progress=False)
    b = ingest.run(settings, "b", datasets[1], progress=False)
    with running({"QDRANT_PATH": str(root), "QDRANT_URL": ""}, tmp_path / "serve.log",
                 wait_for="/readyz") as service:
        body = {"ratings": {"1": 1, "2": 1, "3": -1, "5": 1}, "limit": 10, "neighbors": 15,
                "model": "tutorial"}
        assert service.client.get("/readyz").json()["version"] == b.version
        served_b = service.client.post("/recommendations", json=body).json()["items"]
        done = cli({"QDRANT_PATH": str(root)}, "rollback")
        assert done.returncode == 0, done.stderr
        deadline = time.monotonic() + 10
        while service.client.get("/readyz").json()["version"] != a.version:
            assert time.monotonic() < deadline, "the service did not switch to the rolled-back version"
            time.sleep(0.1)
        served_a = service.client.post("/recommendations", json=body).json()["items"]
    assert served_a != served_b
    with open_reader(settings) as store:
        assert [(i["movie_id"], i["score"]) for i in served_a] == [
            (m, pytest.approx(s, rel=1e-6)) for m, s in answer_of(store)]


def test_rollback_killed_with_sigkill_always_leaves_one_complete_version_live(tmp_path, datasets):
    root = tmp_path / "q"
    settings = settings_for(qdrant_path=root, keep_previous_versions=5)
    answers = {}
    for k, folder in enumerate(datasets):
        version = ingest.run(settings, f"v{k}", folder, progress=False).version
        with open_reader(settings) as store:
            answers[version] = answer_of(store)
    assert len(set(map(tuple, answers.values()))) == len(datasets)  # each version answers its own
    env = {**os.environ, "QDRANT_PATH": str(root), "QDRANT_URL": "", "MOVIELENS_DIR": ""}
    rng = np.random.default_rng(11)
    killed = 0
    for trial in range(12):
        proc = subprocess.Popen([sys.executable, "-m", "movierec.cli", "rollback"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # The interpreter and imports take most of a rollback's life: kill anywhere in it.
        time.sleep(float(rng.uniform(0.05, 0.9)))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed += proc.returncode == -signal.SIGKILL
        live = json.loads((root / CURRENT).read_text())
        assert live["version"] in answers, f"trial {trial}: {live}"
        assert (root / VERSIONS / live["version"] / META).is_file()
        for kept in live["previous"]:
            assert (root / VERSIONS / kept / META).is_file()
        with open_reader(settings) as store:
            status = store.status()
            assert (status.version, status.users, status.movies) == (live["version"], 300, 120)
            assert answer_of(store) == answers[status.version], f"trial {trial}"
    assert killed >= 3


# --- the server store, on qdrant-client local mode -----------------------------------------


def test_server_store_rollback_moves_both_aliases_back_in_one_request(tmp_path, datasets):
    settings = settings_for(qdrant_url=f"local:{tmp_path / 'local'}")
    a = ingest.run(settings, "a", datasets[0], progress=False)
    reader = open_reader(settings)
    answers_a = answer_of(reader)
    b = ingest.run(settings, "b", datasets[1], progress=False)
    reader.refresh(force=True)
    assert reader.status().version == b.version
    assert answer_of(reader) != answers_a
    client = reader.client
    aliases = {x.alias_name: x.collection_name for x in client.get_aliases().aliases}
    assert aliases == {
        schema.USERS: schema.versioned(schema.USERS, b.version),
        schema.MOVIES: schema.versioned(schema.MOVIES, b.version),
        schema.previous(schema.USERS, 1): schema.versioned(schema.USERS, a.version),
        schema.previous(schema.MOVIES, 1): schema.versioned(schema.MOVIES, a.version),
    }

    assert rollback(settings) == (b.version, a.version)
    reader.refresh(force=True)
    status = reader.status()
    assert (status.version, status.users, status.movies) == (a.version, 300, 120)
    assert answer_of(reader) == answers_a
    aliases = {x.alias_name: x.collection_name for x in client.get_aliases().aliases}
    assert aliases == {schema.USERS: schema.versioned(schema.USERS, a.version),
                       schema.MOVIES: schema.versioned(schema.MOVIES, a.version)}
    assert sorted(c.name for c in client.get_collections().collections) == sorted(
        [schema.versioned(schema.USERS, a.version), schema.versioned(schema.MOVIES, a.version)])
    with pytest.raises(NothingToRollBack, match=r"^nothing to roll back to in Qdrant at local:"):
        rollback(settings)


def test_server_store_killed_ingest_is_never_a_rollback_target(tmp_path, datasets):
    settings = settings_for(qdrant_url=f"local:{tmp_path / 'local'}")
    a = ingest.run(settings, "a", datasets[0], progress=False)
    # An ingest that died after creating its collections: they are not complete, never live.
    dead = open_writer(settings)
    begin_a_version(dead, datasets[2])
    b = ingest.run(settings, "b", datasets[1], progress=False)
    client = open_reader(settings).client
    names = {c.name for c in client.get_collections().collections}
    assert schema.versioned(schema.USERS, dead.version) not in names
    assert rollback(settings) == (b.version, a.version)
