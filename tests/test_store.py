"""Both stores on small generated data: idempotent re-ingest, atomic switch, locks, interruption."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from movierec import ingest, movielens, recommend, schema, synthetic
from movierec.errors import StoreBusy, StoreUnavailable
from movierec.models import REGISTRY
from movierec.store import open_reader, open_writer
from movierec.store.embedded import VERSIONS
from tests.conftest import settings_for

QUERY = {1: 1.0, 2: 1.0, 3: -1.0, 5: 1.0}


@pytest.fixture(scope="module")
def big_dir(tmp_path_factory) -> Path:
    """Big enough that writing takes a while, so an ingest can be killed in the middle."""
    data = synthetic.generate(n_users=40_000, n_movies=3_000, n_ratings=3_000_000, seed=2)
    return synthetic.write_dat(data, tmp_path_factory.mktemp("big"))


def ingest_cli(settings_env: dict, data: Path, *extra: str, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, **settings_env, "MOVIELENS_DIR": ""}
    return subprocess.run(
        [sys.executable, "-m", "movierec.cli", "ingest", "--data", str(data), *extra],
        env=env, capture_output=True, text=True, timeout=300, **kw,
    )


def answer_of(store) -> list[tuple[int, float]]:
    a = recommend.recommend(store, QUERY, limit=10, neighbors=15, model="tutorial")
    return [(r.movie.movie_id, r.score) for r in a.items]


def test_embedded_reingest_is_idempotent_and_keeps_the_previous_version(tmp_path, small_dir):
    settings = settings_for(qdrant_path=tmp_path / "q")
    first = ingest.run(settings, "small", small_dir, progress=False)
    with open_reader(settings) as store:
        before = answer_of(store)
        status = store.status()
    assert (status.users, status.movies) == (first.users, first.movies) == (300, 120)
    second = ingest.run(settings, "small", small_dir, progress=False)
    assert second.version != first.version
    with open_reader(settings) as store:
        status = store.status()
        assert (status.users, status.movies, status.version) == (300, 120, second.version)
        assert answer_of(store) == before
    # The live version and one previous complete version (KEEP_PREVIOUS_VERSIONS=1).
    assert sorted(p.name for p in (tmp_path / "q" / VERSIONS).iterdir()) == [first.version,
                                                                            second.version]
    third = ingest.run(settings, "small", small_dir, progress=False)
    assert sorted(p.name for p in (tmp_path / "q" / VERSIONS).iterdir()) == [second.version,
                                                                            third.version]


def test_embedded_store_with_no_previous_version_kept_holds_only_the_live_one(tmp_path, small_dir):
    settings = settings_for(qdrant_path=tmp_path / "q", keep_previous_versions=0)
    ingest.run(settings, "small", small_dir, progress=False)
    second = ingest.run(settings, "small", small_dir, progress=False)
    assert [p.name for p in (tmp_path / "q" / VERSIONS).iterdir()] == [second.version]


def test_empty_embedded_store_is_not_ready_and_says_to_ingest(tmp_path):
    with open_reader(settings_for(qdrant_path=tmp_path / "q")) as store:
        status = store.status()
        assert not status.ready
        assert "run `movierec ingest` first" in status.detail
        with pytest.raises(StoreUnavailable, match="run `movierec ingest` first"):
            store.catalog()


def test_second_process_opening_the_embedded_store_gets_a_clear_error(tmp_path, small_dir):
    settings = settings_for(qdrant_path=tmp_path / "q")
    ingest.run(settings, "small", small_dir, progress=False)
    with open_reader(settings) as store:
        assert store.status().ready
        other = subprocess.run(
            [sys.executable, "-m", "movierec.cli", "check"],
            env={**os.environ, "QDRANT_PATH": str(tmp_path / "q"), "QDRANT_URL": ""},
            capture_output=True, text=True, timeout=60,
        )
        assert other.returncode == 1
        assert "in use by another process" in other.stderr
        assert "Traceback" not in other.stderr
        assert len(other.stderr.strip().splitlines()) == 1
        # ... and the store it holds is unharmed.
        assert store.status().users == 300


def test_second_ingest_while_one_runs_is_refused(tmp_path, small_dir):
    settings = settings_for(qdrant_path=tmp_path / "q")
    writer = open_writer(settings)
    prepared = ingest.prepare(movielens.load(small_dir, "small"), REGISTRY.unlearned())
    writer.begin(prepared.meta, REGISTRY.user_vector_names(), REGISTRY.movie_vector_names())
    try:
        with pytest.raises(StoreBusy, match="another ingest is writing"):
            ingest.run(settings, "small", small_dir, progress=False)
    finally:
        writer.abort()


def test_open_reader_switches_to_a_new_ingest_and_removes_the_old_version(tmp_path, small_dir):
    settings = settings_for(qdrant_path=tmp_path / "q", keep_previous_versions=0)
    first = ingest.run(settings, "small", small_dir, progress=False)
    with open_reader(settings) as store:
        assert store.status().version == first.version
        # Another process ingests while this one serves the first version.
        done = ingest_cli({"QDRANT_PATH": str(tmp_path / "q"), "QDRANT_URL": "",
                           "KEEP_PREVIOUS_VERSIONS": "0"}, small_dir)
        assert done.returncode == 0, done.stderr
        versions = sorted(p.name for p in (tmp_path / "q" / VERSIONS).iterdir())
        assert len(versions) == 2  # the served one is kept while it is open
        assert store.refresh(force=True)
        assert store.status().version != first.version
    assert len(list((tmp_path / "q" / VERSIONS).iterdir())) == 1


@pytest.mark.slow
def test_ingest_killed_mid_write_leaves_the_previous_version_fully_served(
    tmp_path, small_dir, big_dir
):
    root = tmp_path / "q"
    settings = settings_for(qdrant_path=root)
    live = ingest.run(settings, "small", small_dir, progress=False)
    with open_reader(settings) as store:
        expected = answer_of(store)
    rng = np.random.default_rng(3)
    env = {"QDRANT_PATH": str(root), "QDRANT_URL": ""}
    for trial in range(3):
        proc = subprocess.Popen(
            [sys.executable, "-m", "movierec.cli", "ingest", "--data", str(big_dir),
             "--no-item-model"],
            env={**os.environ, **env, "MOVIELENS_DIR": ""},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120
        while len(list((root / VERSIONS).iterdir())) < 2 and proc.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.002)
        time.sleep(float(rng.uniform(0, 0.4)))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL, f"trial {trial}: ingest finished before the kill"
        with open_reader(settings) as store:
            status = store.status()
            assert (status.version, status.users, status.movies) == (live.version, 300, 120)
            assert answer_of(store) == expected
    # A re-run finishes with exact counts and removes what the killed runs left; the version
    # live before it is kept for rollback.
    done = ingest_cli(env, big_dir, "--no-item-model")
    assert done.returncode == 0, done.stderr
    with open_reader(settings) as store:
        status = store.status()
        assert (status.users, status.movies) == (40_000, 3_000)
    assert sorted(p.name for p in (root / VERSIONS).iterdir()) == sorted([live.version,
                                                                         status.version])


# --- the server store, on qdrant-client local mode -----------------------------------------


def test_server_store_reingest_moves_both_aliases_and_drops_old_collections(tmp_path, small_dir):
    settings = settings_for(qdrant_url=f"local:{tmp_path / 'local'}", keep_previous_versions=0)
    first = ingest.run(settings, "small", small_dir, progress=False)
    reader = open_reader(settings)
    before = answer_of(reader)
    second = ingest.run(settings, "small", small_dir, progress=False)
    client = reader.client
    names = sorted(c.name for c in client.get_collections().collections)
    assert names == sorted([schema.versioned(schema.USERS, second.version),
                            schema.versioned(schema.MOVIES, second.version)])
    aliases = {a.alias_name: a.collection_name for a in client.get_aliases().aliases}
    assert aliases == {schema.USERS: schema.versioned(schema.USERS, second.version),
                       schema.MOVIES: schema.versioned(schema.MOVIES, second.version)}
    assert first.version != second.version
    status = reader.status()
    assert (status.users, status.movies, status.version) == (300, 120, second.version)
    assert answer_of(reader) == before
    assert reader.meta().rating_stats.std > 0


def test_server_store_failed_ingest_leaves_the_live_version_untouched(tmp_path, small_dir):
    settings = settings_for(qdrant_url=f"local:{tmp_path / 'local'}")
    live = ingest.run(settings, "small", small_dir, progress=False)
    prepared = ingest.prepare(synthetic.generate(50, 20, 500, seed=9), REGISTRY.unlearned())
    # Two movies with one id: the second overwrites the first, so the count check must fail.
    prepared.movies.payloads[5]["movie_id"] = prepared.movies.payloads[4]["movie_id"]
    with pytest.raises(StoreUnavailable, match="point counts do not verify: wrote 50 users and "
                       "20 movies, the store holds 50 and 19; the previous version stays live"):
        ingest.write(open_writer(settings), prepared, progress=False)
    reader = open_reader(settings)
    status = reader.status()
    assert (status.version, status.users, status.movies) == (live.version, 300, 120)
    names = {c.name for c in reader.client.get_collections().collections}
    assert names == {schema.versioned(schema.USERS, live.version),
                     schema.versioned(schema.MOVIES, live.version)}


def test_server_store_reports_unreachable_qdrant_as_unavailable_not_a_crash():
    settings = settings_for(qdrant_url="http://127.0.0.1:9", qdrant_timeout=1)
    store = open_reader(settings)
    status = store.status()
    assert not status.ready
    assert status.detail.startswith("cannot reach Qdrant at http://127.0.0.1:9")
    with pytest.raises(StoreUnavailable, match="cannot reach Qdrant"):
        store.catalog()


def test_both_stores_batch_the_item_searches_and_give_the_same_default_answer(tmp_path, small_dir):
    """blend sends its two item-vector searches (likes, dislikes) as one batch: each store's
    batch returns what the searches one by one return, and the two stores answer alike."""
    from movierec.store import MovieFilter
    from movierec.vectors import SparseVector

    stores = []
    for where in ({"qdrant_path": tmp_path / "embedded"},
                  {"qdrant_url": f"local:{tmp_path / 'local'}"}):
        ingest.run(settings_for(**where), "small", small_dir, progress=False)
        stores.append(open_reader(settings_for(**where)))
    likes = SparseVector(np.array([1, 2, 5], dtype=np.uint32), np.ones(3, np.float32))
    dislikes = SparseVector(np.array([3, 7], dtype=np.uint32), np.ones(2, np.float32))
    try:
        for store in stores:
            assert "item" in store.meta().models
            for where in (MovieFilter(), MovieFilter(exclude_ids=(1, 2), genres=("Drama",))):
                asked = [(likes, 40), (dislikes, 7)]
                batch = store.similar_movie_ids_batch(asked, where)
                alone = [store.similar_movie_ids(q, n, where) for q, n in asked]
                assert [ids.size for ids, _ in batch] == [ids.size for ids, _ in alone]
                assert batch[0][0].size > 7 and batch[1][0].size == 7
                for (ids_b, scores_b), (ids_a, scores_a) in zip(batch, alone):
                    assert ids_b.tolist() == ids_a.tolist()
                    np.testing.assert_array_equal(scores_b, scores_a)
        for ratings in (QUERY, {1: 1.0, 3: -1.0}, {3: -1.0}, {4: 1.0}):
            a, b = (recommend.recommend(store, ratings, limit=10) for store in stores)
            assert a.model == b.model == "blend"
            assert [r.movie.movie_id for r in a.items] == [r.movie.movie_id for r in b.items]
            assert [r.score for r in a.items] == pytest.approx([r.score for r in b.items],
                                                               rel=1e-5)
    finally:
        for store in stores:
            store.close()
