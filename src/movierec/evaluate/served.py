"""The Qdrant-served models, evaluated as they are served: a dataset ingested by the real
ingest into a temporary embedded store, every person ranked through recommend.recommend()
exactly as the service asks the store."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from movierec.evaluate.metrics import evaluate_ranker
from movierec.evaluate.protocol import K, SEED, Split, prepare_split
from movierec.evaluate.rankers import Model, Ranker, baseline_models, movie_id_ranker
from movierec.evaluate.tuning import ModelResult, evaluate_models, tune_then_test

SERVED_MODELS = ("tutorial", "user-knn", "item")
USER_KNN_GRID: tuple[dict[str, Any], ...] = tuple(
    {"neighbors": n, "knn_power": p} for n in (50, 100, 200) for p in (1.0, 2.0)
)
# A served grid is tuned on this many validation users (a fixed random sample): every setting
# costs one store query per user, and the full validation set would not fit the time budget.
TUNING_USERS = 1_000
# Scratch space for the temporary store: memory when there is room (faster), else the temp dir.
SCRATCH = Path("/dev/shm")
SCRATCH_MIN_FREE = 2 << 30


@dataclass(frozen=True)
class ServedModel:
    """A model served from the store: `name` is recommend()'s model; each params dict of
    `grid` (recommend() keyword arguments) is tried on validation when there are several."""

    name: str
    grid: Sequence[Mapping[str, Any]] = ({},)
    main_param: str | None = None


def served_models(quick: bool = False) -> list[ServedModel]:
    """tutorial (exact: 20 neighbours), user-knn (neighbours x power grid; `quick`: the served
    constants only) and the item model as ingest learns it (served defaults, not re-tuned)."""
    from movierec.models import REGISTRY

    served = dict(REGISTRY.get("user-knn").params)
    return [
        ServedModel("tutorial", ({"neighbors": 20},)),
        ServedModel("user-knn", (served,) if quick else USER_KNN_GRID, "neighbors"),
        ServedModel("item"),
    ]


def train_dataset(split: Split, dataset: Any) -> Any:
    """The split's training part as a movielens.Dataset to ingest: the train interactions with
    their stars, the split's users, and the split's movies (titles, years and genres from
    `dataset`, the full dataset the split was made from)."""
    from movierec import movielens

    train = split.history("test").tocoo()  # rows sorted by user, then movie
    movies = dataset.movies[dataset.movies["movie_id"].isin(split.movie_ids)]
    users = dataset.users[dataset.users["user_id"].isin(split.user_ids)]
    return movielens.Dataset(
        f"{dataset.name}-train",
        split.user_ids[train.row].astype(np.int64),
        split.movie_ids[train.col].astype(np.int64),
        train.data.astype(np.float64),
        movies.reset_index(drop=True),
        users.reset_index(drop=True),
    )


def _scratch_dir() -> str | None:
    try:
        if os.access(SCRATCH, os.W_OK) and shutil.disk_usage(SCRATCH).free >= SCRATCH_MIN_FREE:
            return str(SCRATCH)
    except OSError:
        pass
    return None


@contextmanager
def served_store(dataset: Any, *, item_model: bool = True, progress: bool = False):
    """`dataset` ingested as `movierec ingest` does (the item model learned from it with the
    served defaults) into a temporary embedded store; yields a reader, removes it all after."""
    from movierec import ingest
    from movierec.config import Settings
    from movierec.store import open_reader, open_writer

    with tempfile.TemporaryDirectory(prefix="movierec-evaluate-", dir=_scratch_dir()) as tmp:
        settings = Settings(qdrant_url=None, qdrant_path=Path(tmp) / "qdrant")
        from movierec.models import REGISTRY

        prepared = ingest.prepare(dataset, None if item_model else REGISTRY.unlearned())
        ingest.write(open_writer(settings), prepared, progress=progress)
        del prepared
        reader = open_reader(settings)
        try:
            yield reader
        finally:
            reader.close()


def store_ranker(store: Any, movie_ids: np.ndarray, model: str, **params: Any) -> Ranker:
    """Rank through the store as the service does: recommend.recommend() with the user's train
    movies and stars as the person's ratings, the excluded movies as `exclude`, and the user
    kept out of their own neighbours (their train ratings are in the store). A history longer
    than the service's request cap is cut to its best-rated movies (3 users of ML-1M)."""
    from movierec import recommend

    def rank_movies(hist, vals, excl, k, users) -> list[list[int]]:
        lists = []
        for movies, stars, excluded, user in zip(hist, vals, excl, users):
            if len(movies) > recommend.MAX_RATINGS:
                keep = np.lexsort((movies, -stars))[: recommend.MAX_RATINGS]
                movies, stars = movies[keep], stars[keep]
            answer = recommend.recommend(
                store,
                dict(zip(movies.tolist(), stars.tolist())),
                limit=k,
                scale="stars",
                model=model,
                exclude=tuple(excluded.tolist()),
                exclude_user=int(user),
                **params,
            )
            lists.append([r.movie.movie_id for r in answer.items])
        return lists

    return movie_id_ranker(rank_movies, movie_ids, with_users=True)


def tuning_sample(split: Split, n: int = TUNING_USERS, seed: int = SEED) -> np.ndarray:
    """Rows of up to n users with validation items, drawn at random with a fixed seed."""
    users = np.flatnonzero(np.diff(split.valid.indptr) > 0)
    if len(users) <= n:
        return users
    return np.sort(np.random.default_rng(seed).choice(users, n, replace=False))


def evaluate_served(
    store: Any,
    split: Split,
    models: Iterable[ServedModel] | None = None,
    *,
    k: int = K,
    progress: bool = False,
    tuning_users: int = TUNING_USERS,
) -> list[ModelResult]:
    """Each served model through `store` (built from `split`'s train part): a grid tuned by
    NDCG on a sample of validation users, then every test user ranked."""
    results = []
    sample = tuning_sample(split, tuning_users)
    for model in served_models() if models is None else models:

        def build(_name: str = model.name, **params: Any) -> Ranker:
            return store_ranker(store, split.movie_ids, _name, **params)

        result = tune_then_test(
            model.name, model.grid, build,
            lambda ranker, label: evaluate_ranker(
                ranker, split, "valid", k=k, batch_size=64, progress=label, users=sample
            ),
            lambda ranker, label: evaluate_ranker(
                ranker, split, "test", k=k, batch_size=64, progress=label
            ),
            main_param=model.main_param, engine="qdrant", progress=progress,
        )
        if model.name == "item":  # what the store serves, as the ingest learned it
            result.params = dict(store.meta().models.get("item", {}))
        results.append(result)
    return results


def evaluate_all(
    dataset: Any,
    split: Split | None = None,
    *,
    quick: bool = False,
    progress: bool = False,
    tuning_users: int = TUNING_USERS,
    served: Iterable[ServedModel] | None = None,
    baselines: Iterable[Model] | None = None,
) -> tuple[list[ModelResult], dict[str, Any]]:
    """Every model on `dataset` (a movielens.Dataset): the served ones through a temporary
    store built from the split's train part, then the numpy baselines. Returns the results
    (served first) and facts about the run (split sizes, store build time, tuning sample)."""
    started = time.perf_counter()
    if split is None:
        split = prepare_split(dataset.user_ids, dataset.movie_ids, dataset.ratings)
    built = time.perf_counter()
    with served_store(train_dataset(split, dataset), progress=progress) as store:
        store_seconds = time.perf_counter() - built
        results = evaluate_served(
            store,
            split,
            served_models(quick) if served is None else served,
            progress=progress,
            tuning_users=tuning_users,
        )
    results += evaluate_models(
        split, baseline_models(quick) if baselines is None else baselines, progress=progress
    )
    tuned = any(len(r.tuning) > 1 for r in results if r.engine == "qdrant")
    info = {
        "dataset": dataset.name,
        "users": split.n_users,
        "movies": split.n_items,
        "interactions": int(split.ratings.nnz),
        "store_seconds": round(store_seconds, 1),
        "tuning_users": len(tuning_sample(split, tuning_users)) if tuned else 0,
        "seconds": round(time.perf_counter() - started, 1),
    }
    return results, info


def evaluate_seeds(
    dataset: Any, seeds: Sequence[int], *, quick: bool = False, progress: bool = False,
) -> list[list[ModelResult]]:
    """The whole existing-users protocol once per split seed (each its own store): one list of
    results per seed, the models in the same order."""
    runs = []
    for seed in seeds:
        split = prepare_split(dataset.user_ids, dataset.movie_ids, dataset.ratings, seed=seed)
        results, _ = evaluate_all(dataset, split, quick=quick, progress=progress)
        runs.append(results)
    return runs


BEYOND_COLUMNS = ("coverage", "popularity", "long_tail", "gini")


def seed_summary(runs: Sequence[Sequence[ModelResult]], metric: str = "ndcg",
                 reference: str = "ease") -> list[dict[str, Any]]:
    """Per model: the metric's mean over seeds, its 95% interval (Student t), and the paired
    difference against `reference` on the same splits (mean and 95% interval); and the
    beyond-accuracy metrics' means over seeds."""
    from scipy import stats

    names = [r.model for r in runs[0]]
    by_seed = [{r.model: getattr(r.test, metric) for r in run} for run in runs]
    n = len(runs)
    t = float(stats.t.ppf(0.975, n - 1)) if n > 1 else float("nan")
    out = []
    for name in names:
        values = np.array([seed[name] for seed in by_seed])
        diff = values - np.array([seed[reference] for seed in by_seed])
        half = t * values.std(ddof=1) / np.sqrt(n) if n > 1 else float("nan")
        diff_half = t * diff.std(ddof=1) / np.sqrt(n) if n > 1 else float("nan")
        beyond = {b: float(np.mean([getattr(r.test, b) for run in runs for r in run
                                     if r.model == name])) for b in BEYOND_COLUMNS}
        out.append({"model": name, "mean": float(values.mean()), "ci95": float(half),
                    "vs_" + reference: float(diff.mean()), "vs_ci95": float(diff_half),
                    "seeds": n, "values": values.tolist(), **beyond})
    return out
