"""The default ingest learns the item model while it writes the users: what goes live is what
learning first and writing after gives, and a failure of the learning, or an interrupt, while
the users are written leaves the previous version live and nothing of the new one behind."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from movierec import ingest, movielens, schema, synthetic
from movierec.models import REGISTRY
from movierec.store import MovieFilter, open_reader
from movierec.store.embedded import CURRENT, VERSIONS
from tests.conftest import settings_for


@pytest.fixture(scope="module")
def learning_dir(tmp_path_factory) -> Path:
    """3,000 movies: learning them takes seconds, longer than writing the 8,000 users."""
    data = synthetic.generate(n_users=8_000, n_movies=3_000, n_ratings=800_000, seed=7)
    return synthetic.write_dat(data, tmp_path_factory.mktemp("learning"))


def small_version_live(tmp_path: Path, small_dir: Path):
    """An embedded store whose live version is `small_dir` (no learned model): its root, its
    settings and that ingest's report."""
    root = tmp_path / "q"
    settings = settings_for(qdrant_path=root)
    return root, settings, ingest.run(settings, "small", small_dir, progress=False,
                                      models=REGISTRY.unlearned())


def wait_for_new_version(root: Path, proc: subprocess.Popen | None = None) -> None:
    """Until a second version directory exists beside the live one: the new version's writing
    has begun."""
    deadline = time.monotonic() + 120
    while len(list((root / VERSIONS).iterdir())) < 2:
        assert proc is None or proc.poll() is None, "the ingest ended before it began to write"
        assert time.monotonic() < deadline, "the ingest never began to write"
        time.sleep(0.002)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def learning_thread() -> threading.Thread | None:
    return next((t for t in threading.enumerate() if t.name == ingest.LEARNING_THREAD), None)


def test_what_goes_live_is_what_learning_before_writing_gives(tmp_path, small_dir):
    settings = settings_for(qdrant_path=tmp_path / "q")
    report = ingest.run(settings, "small", small_dir, progress=False)
    assert report.seconds["learning"] > 0
    expected = ingest.prepare(movielens.load(small_dir, "small"))
    assert "item" in expected.meta.models and "movies" in expected.meta.models["item"]
    with open_reader(settings) as store:
        assert store.meta().models == expected.meta.models
        ids = [p["movie_id"] for p in expected.movies.payloads]
        stored = store.movie_vectors(ids)
        learned = {m: v for m, v in zip(ids, expected.movies.vectors[schema.ITEM_VECTOR])
                   if v is not None}
        assert sorted(stored) == sorted(learned)
        # The engine's own copy too (what the item model's search reads).
        some = next(iter(learned.values()))
        found = store.similar_movies(some, len(ids), MovieFilter(), with_vectors=True)
        engine = {m.movie_id: m.vector for m in found}
        assert sorted(engine) == sorted(learned)
        for movie, vector in learned.items():
            for copy in (stored[movie], engine[movie]):
                np.testing.assert_array_equal(copy.indices, vector.indices)
                np.testing.assert_array_equal(copy.values, vector.values)


def test_a_large_set_learns_first_and_goes_live_with_the_same(tmp_path, small_dir, monkeypatch):
    monkeypatch.setattr(ingest, "OVERLAP_MAX_RATINGS", 0)  # as if small_dir were large
    settings = settings_for(qdrant_path=tmp_path / "q")
    report = ingest.run(settings, "small", small_dir, progress=False)
    assert report.seconds["learning"] > 0
    expected = ingest.prepare(movielens.load(small_dir, "small"))
    with open_reader(settings) as store:
        assert store.meta().models == expected.meta.models


def test_server_store_goes_live_with_what_the_learning_learned(tmp_path, small_dir):
    settings = settings_for(qdrant_url=f"local:{tmp_path / 'local'}")
    ingest.run(settings, "small", small_dir, progress=False)
    expected = ingest.prepare(movielens.load(small_dir, "small"))
    with open_reader(settings) as store:
        assert store.meta().models == expected.meta.models


def test_learning_failing_while_users_are_written_leaves_the_previous_version_live(
    tmp_path, small_dir, learning_dir
):
    root, settings, live = small_version_live(tmp_path, small_dir)
    import movierec.training.item  # noqa: F401 (imported here: the fault must not hit an import)

    hit = []

    def fail_the_learning() -> None:
        wait_for_new_version(root)
        learner = learning_thread()
        assert learner is not None
        # MemoryError raised inside the learning thread, as a failing allocation would.
        hit.append(ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(learner.ident), ctypes.py_object(MemoryError)))

    fault = threading.Thread(target=fail_the_learning)
    fault.start()
    try:
        with pytest.raises(MemoryError):
            ingest.run(settings, "learning", learning_dir, progress=False)
    finally:
        fault.join()
    assert hit == [1], "the learning had finished before the fault reached it"
    assert sorted(p.name for p in (root / VERSIONS).iterdir()) == [live.version]
    with open_reader(settings) as store:
        status = store.status()
        assert (status.version, status.users, status.movies) == (live.version, 300, 120)
        assert "item" not in store.meta().models


def test_interrupt_while_learning_and_writing_users_leaves_the_previous_version_live(
    tmp_path, small_dir, learning_dir
):
    root, settings, live = small_version_live(tmp_path, small_dir)
    proc = subprocess.Popen(
        [sys.executable, "-X", "faulthandler", "-m", "movierec.cli", "ingest", "--data",
         str(learning_dir)],
        env={**os.environ, "QDRANT_PATH": str(root), "QDRANT_URL": "", "MOVIELENS_DIR": ""},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # As a person's ctrl-C finds it. A run started in the background of a non-interactive
        # shell (`make test &`) ignores SIGINT, and the ingest would inherit that and finish.
        preexec_fn=_default_sigint,
    )
    wait_for_new_version(root, proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (proc.returncode, out, err)
    assert err.strip().splitlines()[-1] == "error: interrupted"
    assert sorted(p.name for p in (root / VERSIONS).iterdir()) == [live.version]
    assert (root / CURRENT).is_file()
    with open_reader(settings) as store:
        status = store.status()
        assert (status.version, status.users, status.movies) == (live.version, 300, 120)
