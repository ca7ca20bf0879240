"""Ingest: dataset files -> parse -> normalize -> sparse user vectors -> a new Qdrant version.

Everything is parsed, validated and built in memory before the first write, so a bad file
never leaves anything behind; the new version goes live only after its point counts verify.
Learning the movies' vectors runs beside the users' writes (their vectors do not depend on it).
"""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from movierec import movielens, schema
from movierec.config import Settings
from movierec.errors import DataError, StoreUnavailable
from movierec.meta import IngestMeta
from movierec.models import REGISTRY, Model
from movierec.store import MoviePoints, StoreWriter, UserPoints, open_writer, wait_until_reachable
from movierec.vectors import RatingStats, UserVectors, user_vectors

MOVIE_BATCH = 2_000
LEARNING_THREAD = "movierec-learning"  # the thread that learns while the users are written
# Up to this many ratings `run` learns while it writes the users (ml-1m: no higher peak).
# Past it, the users' shard (~45 bytes a rating in memory) would add to the learning's peak
# instead of following it (25M ratings, one run each: 113 s within 4.3 GiB instead of 156 s
# within 3.2 GiB), so larger sets learn first and write after.
OVERLAP_MAX_RATINGS = 2_000_000


@dataclass
class Prepared:
    """Everything one ingest writes, built and validated before the first write."""

    meta: IngestMeta
    users: UserPoints
    movies: MoviePoints
    models: tuple[str, ...]  # the registered models this version serves

    @property
    def vectors(self) -> UserVectors:
        """Every user's z-scored ratings (the tutorial's vectors)."""
        return self.users.ratings


@dataclass
class IngestReport:
    version: str
    dataset: str
    users: int
    movies: int
    ratings: int
    seconds: dict[str, float] = field(default_factory=dict)


def _plain(value: Any) -> Any:
    """numpy/pandas scalars -> JSON-friendly Python values (payloads must be plain JSON)."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and np.isnan(value):
        return None
    return value


def movie_payloads(dataset: movielens.Dataset) -> list[dict[str, Any]]:
    """One payload per movie: id, title, year, genres, how often / how well it was rated, and
    its IMDb id."""
    movies = dataset.movies
    ids = movies["movie_id"].to_numpy()
    counts, sums = _per_movie(ids, dataset.movie_ids, dataset.ratings)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    years = movies["year"].astype(object).where(movies["year"].notna(), None).tolist()
    # The IMDb id (links.csv) lets imported ratings match by id; None where the set has none.
    imdb = movies["imdb_id"] if "imdb_id" in movies else pd.Series([pd.NA] * len(movies))
    imdb_ids = imdb.astype(object).where(imdb.notna(), None).tolist()
    return [
        {
            "movie_id": int(movie_id),
            "title": title,
            "year": None if year is None else int(year),
            "genres": list(genres),
            "rating_count": int(count),
            "rating_mean": None if np.isnan(mean) else round(float(mean), 4),
            "imdb_id": None if imdb_id is None else int(imdb_id),
        }
        for movie_id, title, year, genres, count, mean, imdb_id in zip(
            ids.tolist(), movies["title"].tolist(), years, movies["genres"].tolist(),
            counts.tolist(), means.tolist(), imdb_ids
        )
    ]


# Movie ids up to this many times the number of movies are counted in a dense array indexed by
# id (one bincount); sparser ids are located by binary search instead.
DENSE_ID_FACTOR = 64


def _per_movie(ids: np.ndarray, rated: np.ndarray, stars: np.ndarray):
    """(number of ratings, sum of stars) per movie of `ids`, from every rating's movie id."""
    if not ids.size:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    top = int(max(ids.max(), rated.max() if rated.size else 0)) + 1
    if top <= DENSE_ID_FACTOR * ids.size + 1_000:
        # The same additions, in the same order, as a bincount over each movie's slot.
        return (np.bincount(rated, minlength=top)[ids],
                np.bincount(rated, weights=stars, minlength=top)[ids])
    order = np.argsort(ids)
    slot = order[np.searchsorted(ids[order], rated)]
    return (np.bincount(slot, minlength=ids.size),
            np.bincount(slot, weights=stars, minlength=ids.size))


def _plain_column(values: pd.Series) -> list[Any]:
    """A column as JSON-friendly Python values: numpy scalars unboxed, NaN and <NA> as None."""
    out = values.tolist()
    if values.hasnans:
        out = [_plain(v) for v in out]
    return out


def user_payloads(dataset: movielens.Dataset, user_ids: np.ndarray) -> list[dict[str, Any]]:
    """Payloads aligned with `user_ids`; demographic fields where the dataset has them."""
    columns = [c for c in schema.USER_FIELDS if c in dataset.users.columns]
    if columns == ["user_id"]:  # csv datasets (and ml-10m): no demographics, 1M+ users at scale
        return [{"user_id": u} for u in np.asarray(user_ids).tolist()]
    frame = (
        dataset.users[columns]
        .drop_duplicates("user_id")
        .set_index("user_id")
        .reindex(user_ids)
        .reset_index()
    )
    values = [_plain_column(frame[c]) for c in columns]
    return [dict(zip(columns, row)) for row in zip(*values)]


def prepare(dataset: movielens.Dataset, models: Iterable[str] | None = None) -> Prepared:
    """Validate and build everything to write for these registered models (default: all of
    them, the learned ones learned here). Raises DataError before any write."""
    prepared, learning = stage(dataset, models)
    learning.apply(prepared, learning.learn())
    return prepared


def stage(dataset: movielens.Dataset,
          models: Iterable[str] | None = None) -> tuple[Prepared, Learning]:
    """`prepare` but for the learning: the input validated (DataError here, before any write)
    and the users built; the learned models' movie vectors and parameters are left to the
    returned Learning, which `write` runs beside the users' writes."""
    chosen: list[Model] = [REGISTRY.get(name) for name in (models or REGISTRY.names())]
    movielens.check_movies_known(dataset)
    try:
        stats = RatingStats.of(dataset.ratings)
    except ValueError as exc:
        raise DataError(f"{dataset.files.get('ratings', dataset.name)}: {exc}") from None
    ratings = user_vectors(dataset.user_ids, dataset.movie_ids, dataset.ratings, stats)
    named = {schema.RATINGS_VECTOR: ratings}
    movies = MoviePoints(payloads=movie_payloads(dataset))
    params: dict[str, dict[str, Any]] = {}
    for model in chosen:
        named.update(model.user_vectors_of(ratings, stats))
        params[model.name] = model.ingest_params()
    meta = IngestMeta(dataset=dataset.name, users=len(ratings), movies=len(movies.payloads),
                      ratings=dataset.n_ratings, rating_stats=stats, models=params)
    users = UserPoints(user_payloads(dataset, ratings.user_ids), named)
    learners = [m for m in chosen if m.trainer is not None]
    prepared = Prepared(meta, users, movies, tuple(m.name for m in chosen))
    return prepared, Learning(dataset if learners else None, stats, learners)


# What one learned model learned: (its name, its parameters, {movie vector name: one vector or
# None per movie, in the order of the movies' payloads}).
Learned = tuple[str, dict[str, Any], dict[str, list]]


@dataclass
class Learning:
    """What the learned models of one ingest still have to learn. `learn` reads only the
    dataset (it may run in another thread); `apply` puts what it learned into the Prepared."""

    dataset: movielens.Dataset | None
    stats: RatingStats
    models: list[Model]
    seconds: float = 0.0

    def __bool__(self) -> bool:
        return bool(self.models)

    def learn(self) -> list[Learned]:
        """What each learned model learned, every vector validated. Drops the dataset: the
        ratings arrays (2.4 GB at 100M ratings) are not needed to write."""
        start = time.perf_counter()
        dataset, self.dataset = self.dataset, None
        out = []
        for model in self.models:
            learned, by_movie = _trainer(model.trainer)(dataset, self.stats)
            for column in by_movie.values():
                for v in column:
                    if v is not None:
                        v.validate()
            out.append((model.name, learned, by_movie))
        self.seconds = time.perf_counter() - start
        return out

    @staticmethod
    def apply(prepared: Prepared, learned: list[Learned]) -> None:
        """The learned movie vectors and parameters into `prepared` (its meta replaced)."""
        params = dict(prepared.meta.models)
        for name, values, by_movie in learned:
            prepared.movies.vectors.update(by_movie)
            params[name] = {**params[name], **values}
        prepared.meta = replace(prepared.meta, models=params)


class _Learner(threading.Thread):
    """Runs a Learning in its own thread. Learning is mostly BLAS and LAPACK, which release the
    GIL, so the users' writes use the other core meanwhile; only the writing thread touches the
    store. A daemon: an interrupted ingest exits without waiting for it."""

    def __init__(self, learning: Learning):
        super().__init__(name=LEARNING_THREAD, daemon=True)
        self.learning = learning
        self.learned: list[Learned] | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.learned = self.learning.learn()
        except BaseException as exc:  # noqa: BLE001 (handed to the writing thread, raised there)
            self.error = exc

    def check(self) -> None:
        """Raise what learning raised, if it has failed already."""
        if self.error is not None:
            raise self.error

    def result(self) -> list[Learned]:
        self.join()
        self.check()
        assert self.learned is not None
        return self.learned


def _trainer(path: str) -> Callable:
    """A model's trainer, imported only here: learning needs scipy, which serving never loads."""
    module, _, function = path.partition(":")
    return getattr(importlib.import_module(module), function)


def write(writer: StoreWriter, prepared: Prepared, progress: bool = True,
          learning: Learning | None = None) -> str:
    """Write a complete new version and switch it in; on any failure, drop it.

    With `learning` (see `stage`), the learning runs in a thread while the users are written,
    and the movies are written once it is done; a failure of either drops the version."""
    from tqdm import tqdm

    n_users, n_movies = len(prepared.users), len(prepared.movies)
    learner = None
    if learning:
        learner = _Learner(learning)
        learner.start()
    try:
        # Every registered model's vectors are in the schema, written or not: a version's
        # collections look the same whichever models it serves.
        version = writer.begin(prepared.meta, REGISTRY.user_vector_names(),
                               REGISTRY.movie_vector_names())
        with tqdm(total=n_users + n_movies, unit="pt", desc="writing", disable=not progress) as bar:
            batch = writer.user_batch if learner is None else writer.user_batch_beside
            for start in range(0, n_users, batch):
                if learner is not None:
                    learner.check()
                stop = min(start + batch, n_users)
                writer.write_users(prepared.users, start, stop)
                bar.update(stop - start)
            writer.users_written()  # while the learning runs, if it still does
            if learner is not None:
                bar.set_description("learning")
                Learning.apply(prepared, learner.result())
                writer.update_meta(prepared.meta)
                bar.set_description("writing")
            for start in range(0, n_movies, MOVIE_BATCH):
                stop = min(start + MOVIE_BATCH, n_movies)
                writer.write_movies(prepared.movies, start, stop)
                bar.update(stop - start)
        got = writer.counts()
        if got != (n_users, n_movies):
            raise StoreUnavailable(
                f"point counts do not verify: wrote {n_users} users and {n_movies} movies, "
                f"the store holds {got[0]} and {got[1]}; the previous version stays live"
            )
        writer.commit()
        return version
    except BaseException:
        writer.abort()
        raise
    finally:
        writer.close()


def run(
    settings: Settings,
    dataset_name: str | None = None,
    data_dir: Path | None = None,
    wait_seconds: float = 0.0,
    progress: bool = True,
    models: Iterable[str] | None = None,
    log: Callable[[str], None] = print,
) -> IngestReport:
    """The whole ingest, as `movierec ingest` runs it (default: every registered model)."""
    name = dataset_name or settings.movielens_dataset
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    folder = movielens.dataset_folder(settings, name, data_dir, progress=progress)
    t1 = time.perf_counter()
    seconds["fetch"] = t1 - t0
    dataset = movielens.load(Path(folder), name)
    t2 = time.perf_counter()
    seconds["parse"] = t2 - t1
    prepared, learning = stage(dataset, models)
    n_ratings = dataset.n_ratings
    del dataset  # only the learning keeps the ratings, until it is done
    t3 = time.perf_counter()
    seconds["vectors"] = t3 - t2
    beside: Learning | None = learning  # learned beside the users' writes
    if learning and n_ratings > OVERLAP_MAX_RATINGS:
        Learning.apply(prepared, learning.learn())  # first, then the writes, as one stage each
        seconds["learning"] = learning.seconds
        beside = None
        t3 = time.perf_counter()
    if wait_seconds:
        wait_until_reachable(settings, wait_seconds, log=log)
    version = write(open_writer(settings), prepared, progress=progress, learning=beside)
    if beside:
        seconds["learning"] = beside.seconds  # within "write"
    seconds["write"] = time.perf_counter() - t3
    seconds["total"] = time.perf_counter() - t0
    return IngestReport(version, name, len(prepared.users), len(prepared.movies), n_ratings,
                        seconds)
