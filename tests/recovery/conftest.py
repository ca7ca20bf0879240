"""Shared pieces of the recovery suite: small synthetic datasets that give different answers,
the query asked of every version, and the CLI run as a person runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from movierec import recommend, synthetic

QUERY = {1: 1.0, 2: 1.0, 3: -1.0, 5: 1.0}


def make_dataset(folder: Path, seed: int) -> Path:
    data = synthetic.generate(n_users=300, n_movies=120, n_ratings=9_000, seed=seed,
                              name=f"seed{seed}")
    return synthetic.write_dat(data, folder)


@pytest.fixture(scope="package")
def datasets(tmp_path_factory) -> list[Path]:
    """Six small datasets (different seeds, so each version answers differently)."""
    root = tmp_path_factory.mktemp("datasets")
    return [make_dataset(root / f"seed{seed}", seed) for seed in range(1, 7)]


def begin_a_version(writer, folder: Path) -> str:
    """Start writing a version as an ingest does (collections created, nothing written yet)."""
    from movierec import ingest, movielens
    from movierec.models import REGISTRY

    prepared = ingest.prepare(movielens.load(folder, "x"), REGISTRY.unlearned())
    return writer.begin(prepared.meta, REGISTRY.user_vector_names(), REGISTRY.movie_vector_names())


def answer_of(store) -> list[tuple[int, float]]:
    a = recommend.recommend(store, QUERY, limit=10, neighbors=15, model="tutorial")
    return [(r.movie.movie_id, r.score) for r in a.items]


def cli(env: dict, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """`movierec ARGS` in its own process, with only the store settings the test gives."""
    return subprocess.run(
        [sys.executable, "-m", "movierec.cli", *args],
        env={**os.environ, "MOVIELENS_DIR": "", "QDRANT_URL": "", **env},
        capture_output=True, text=True, timeout=timeout)


def one_error_line(done: subprocess.CompletedProcess) -> str:
    """The CLI failed with exactly one `error: ...` line and no traceback; that line."""
    assert done.returncode == 1, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    return lines[0]
