"""Offline evaluation: RecBole's ML-1M protocol (k-core filter, random 80/10/10 split per user,
ranking of the whole catalog) and its top-k metrics, for any model given as a ranker: the
Qdrant-served models through a real embedded store built from the train part (exactly as the
service asks it), and in-memory numpy baselines beside them."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp

from movierec.training import item as itemmodel

# The protocol, as RecBole's ml-1m config states it (val_interval rating "[3,inf)",
# user/item_inter_num_interval "[10,inf)", split RS [0.8, 0.1, 0.1], order RO, group_by user,
# mode full). On ML-1M it leaves 6,033 users, 3,123 movies and 834,449 interactions, the same
# counts RecBole reports (it adds one padding id to each).
MIN_RATING = 3
MIN_USER_INTERACTIONS = 10
MIN_ITEM_INTERACTIONS = 10
SPLIT_RATIOS = (0.8, 0.1, 0.1)
SEED = 2020
K = 10
PHASES = ("valid", "test")
METRICS = ("recall", "ndcg", "mrr", "hit", "precision", "coverage")
PROTOCOL = (
    "Protocol (RecBole ML-1M): ratings >= 3; users and movies with fewer than 10 interactions "
    "dropped until none is left; each user's interactions split 80/10/10 at random (fixed "
    "seed); models fit on train, tuned by NDCG on valid, reported on test; every movie ranked "
    "except the user's train + valid movies; metrics averaged over users with test movies; "
    "coverage = distinct recommended movies / movies in the catalog. Validation scores are "
    "lower than test scores because the test movies are still unlabelled candidates then."
)


# ---------------------------------------------------------------------------------------------
# Data: filtering and splitting


def filter_interactions(
    user_ids: np.ndarray,
    movie_ids: np.ndarray,
    ratings: np.ndarray,
    *,
    min_rating: float = MIN_RATING,
    min_user_interactions: int = MIN_USER_INTERACTIONS,
    min_item_interactions: int = MIN_ITEM_INTERACTIONS,
) -> np.ndarray:
    """Boolean mask of the interactions the protocol keeps.

    Ratings below `min_rating` go first; then users and movies with too few interactions are
    dropped together, again and again, until every remaining user and movie has enough (one
    pass can push others below the threshold).
    """
    user_ids = np.asarray(user_ids)
    movie_ids = np.asarray(movie_ids)
    keep = np.asarray(ratings) >= min_rating
    _, users = np.unique(user_ids, return_inverse=True)
    _, movies = np.unique(movie_ids, return_inverse=True)
    n_users, n_movies = users.max(initial=-1) + 1, movies.max(initial=-1) + 1
    while True:
        user_counts = np.bincount(users[keep], minlength=n_users)
        movie_counts = np.bincount(movies[keep], minlength=n_movies)
        banned = keep & (
            (user_counts[users] < min_user_interactions)
            | (movie_counts[movies] < min_item_interactions)
        )
        if not banned.any():
            return keep
        keep &= ~banned


@dataclass(frozen=True)
class Split:
    """A user x movie split. Rows are users, columns are movies (`movie_ids[c]` is the movie
    of column c). `train`, `valid`, `test` hold 1.0 where the interaction is in that part;
    `ratings` holds the rating of every kept interaction (all three parts)."""

    user_ids: np.ndarray
    movie_ids: np.ndarray
    train: sp.csr_matrix
    valid: sp.csr_matrix
    test: sp.csr_matrix
    ratings: sp.csr_matrix

    @property
    def n_users(self) -> int:
        return self.train.shape[0]

    @property
    def n_items(self) -> int:
        return self.train.shape[1]

    def targets(self, phase: str) -> sp.csr_matrix:
        """What a model must find: the validation items, or the test items."""
        return {"valid": self.valid, "test": self.test}[_check_phase(phase)]

    def history(self, phase: str) -> sp.csr_matrix:
        """What a model knows of each user: the training items, with their ratings as values.

        As in RecBole, models are fit on the training part only and users are represented by
        their training items in both phases; validation items are only excluded at test time.
        """
        _check_phase(phase)
        return self.ratings.multiply(self.train).tocsr()

    def excluded(self, phase: str) -> sp.csr_matrix:
        """Items never recommended: train items (valid phase), train + valid items (test)."""
        if _check_phase(phase) == "valid":
            return self.train
        return (self.train + self.valid).tocsr()


def _check_phase(phase: str) -> str:
    if phase not in PHASES:
        raise ValueError(f"phase must be one of {PHASES}, not {phase!r}")
    return phase


def split_interactions(
    user_ids: np.ndarray,
    movie_ids: np.ndarray,
    ratings: np.ndarray | None = None,
    *,
    ratios: Sequence[float] = SPLIT_RATIOS,
    seed: int = SEED,
) -> Split:
    """Split each user's interactions at random into train / valid / test parts.

    Counts follow RecBole: each part after the first gets floor(ratio * n) interactions, the
    first part gets the rest; a part whose share is between 0 and 1 interaction gets one,
    taken from the first part while it keeps more than one. The same seed gives the same split.
    """
    user_ids = np.asarray(user_ids)
    movie_ids = np.asarray(movie_ids)
    ratings = np.ones(len(user_ids)) if ratings is None else np.asarray(ratings, dtype=np.float64)
    uniq_users, rows = np.unique(user_ids, return_inverse=True)
    uniq_movies, cols = np.unique(movie_ids, return_inverse=True)
    shape = (len(uniq_users), len(uniq_movies))

    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(len(rows)), rows))  # users in turn, shuffled inside each
    counts = np.bincount(rows, minlength=shape[0])
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    position = np.empty(len(rows), dtype=np.int64)
    position[order] = np.arange(len(rows)) - np.repeat(starts, counts)

    part_sizes = part_counts(counts, ratios)
    boundaries = np.cumsum(part_sizes, axis=1)  # per user: end of train, end of valid, ...
    part = (position[:, None] >= boundaries[rows][:, :-1]).sum(axis=1)

    def part_matrix(p: int) -> sp.csr_matrix:
        chosen = part == p
        m = sp.csr_matrix(
            (np.ones(chosen.sum()), (rows[chosen], cols[chosen])), shape=shape, dtype=np.float64
        )
        m.data[:] = 1.0  # a duplicated (user, movie) pair counts once
        return m

    rating_matrix = sp.csr_matrix((ratings, (rows, cols)), shape=shape)
    train, valid, test = (part_matrix(p) for p in range(3))
    return Split(uniq_users, uniq_movies, train, valid, test, rating_matrix)


def part_counts(totals: np.ndarray, ratios: Sequence[float]) -> np.ndarray:
    """(n_users, n_parts) number of interactions per part, RecBole's rounding rule."""
    ratios = np.asarray(ratios, dtype=np.float64) / np.sum(ratios)
    totals = np.asarray(totals, dtype=np.int64)
    shares = ratios[None, :] * totals[:, None]
    cnt = np.floor(shares).astype(np.int64)
    cnt[:, 0] = totals - cnt[:, 1:].sum(axis=1)
    for p in range(len(ratios) - 1, 0, -1):  # last part first, as RecBole does
        bump = (cnt[:, 0] > 1) & (shares[:, p] > 0) & (shares[:, p] < 1)
        cnt[bump, p] += 1
        cnt[bump, 0] -= 1
    return cnt


def prepare_split(
    user_ids: np.ndarray, movie_ids: np.ndarray, ratings: np.ndarray, *, seed: int = SEED
) -> Split:
    """The whole protocol's data side: filter, then split."""
    keep = filter_interactions(user_ids, movie_ids, ratings)
    if not keep.any():
        raise ValueError("no interactions left after filtering (ratings >= 3, 10-core)")
    return split_interactions(
        np.asarray(user_ids)[keep],
        np.asarray(movie_ids)[keep],
        np.asarray(ratings)[keep],
        seed=seed,
    )


# ---------------------------------------------------------------------------------------------
# Rankers and metrics


class Ranker(Protocol):
    """A model as the evaluation sees it.

    Given a batch of users' histories (rows: users, columns: the split's movies, values: the
    ratings of their training items) and the items each must not get (same shape, nonzero =
    excluded), return an int array (batch, k) of column indices, best first, excluded items
    never included; -1 pads a list that has fewer than k items. A ranker whose `takes_users`
    attribute is true is also given `users=` (the rows' user ids), as a served user model needs
    them to keep each user from being their own neighbour.
    """

    def __call__(self, history: sp.csr_matrix, excluded: sp.csr_matrix, k: int) -> np.ndarray: ...


def top_k(scores: np.ndarray, excluded: sp.csr_matrix | None, k: int) -> np.ndarray:
    """Column indices of the k best scores per row, exclusions applied, -1 where a row has
    fewer than k allowed items. Equal scores are ordered by column index (exactly so unless
    more than 32 items tie at the k-th place), so results do not depend on the sort algorithm."""
    scores = np.array(scores, dtype=np.float64, copy=True)
    if excluded is not None:
        coo = excluded.tocoo()
        scores[coo.row, coo.col] = -np.inf
    k_eff = min(k, scores.shape[1])
    m = min(scores.shape[1], k_eff + 32)
    part = (
        np.argpartition(-scores, m - 1, axis=1)[:, :m]
        if m < scores.shape[1]
        else np.tile(np.arange(scores.shape[1]), (scores.shape[0], 1))
    )
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -part_scores), axis=1)[:, :k_eff]
    best = np.take_along_axis(part, order, axis=1)
    best[~np.isfinite(np.take_along_axis(scores, best, axis=1))] = -1
    if k_eff < k:
        best = np.hstack([best, np.full((best.shape[0], k - k_eff), -1, dtype=best.dtype)])
    return best


def matrix_ranker(item_weights: np.ndarray | sp.spmatrix, *, binary: bool = True) -> Ranker:
    """Ranker for an item-item model: score(u, j) = sum over u's items i of W[i, j]
    (ratings as the query values when `binary` is False)."""

    def rank(history: sp.csr_matrix, excluded: sp.csr_matrix, k: int) -> np.ndarray:
        query = history.copy()
        if binary:
            query.data[:] = 1.0
        scores = query @ item_weights
        return top_k(scores.toarray() if sp.issparse(scores) else np.asarray(scores), excluded, k)

    return rank


def item_weights_ranker(model: itemmodel.ItemWeights) -> Ranker:
    """Ranker for a learned item model (its own query values for the person's ratings)."""

    def rank(history: sp.csr_matrix, excluded: sp.csr_matrix, k: int) -> np.ndarray:
        return top_k(model.scores(history), excluded, k)

    return rank


def popularity_ranker(train: sp.csr_matrix) -> Ranker:
    """The most popular training items the user has not seen yet."""
    counts = np.asarray((train > 0).sum(axis=0), dtype=np.float64).ravel()

    def rank(history: sp.csr_matrix, excluded: sp.csr_matrix, k: int) -> np.ndarray:
        return top_k(np.broadcast_to(counts, history.shape), excluded, k)

    return rank


def movie_id_ranker(
    rank_movies: Callable[..., list[Sequence[int]]],
    movie_ids: np.ndarray,
    *,
    with_users: bool = False,
) -> Ranker:
    """Adapt a ranker that speaks movie ids (as a Qdrant-served model does) to columns.

    `rank_movies(history_movie_ids, history_ratings, excluded_movie_ids, k)` gets one array per
    user and returns, per user, up to k recommended movie ids, best first; `with_users`: it
    gets the users' ids as a fifth argument.
    """
    movie_ids = np.asarray(movie_ids)
    column_of = {int(m): c for c, m in enumerate(movie_ids)}

    def column(movie: int) -> int:
        try:
            return column_of[int(movie)]
        except KeyError:  # the protocol ranks the split's catalog only: filter the others out
            raise ValueError(
                f"ranker returned movie {movie}, which is not in the evaluated catalog"
            ) from None

    def rank(
        history: sp.csr_matrix, excluded: sp.csr_matrix, k: int, users: np.ndarray | None = None
    ) -> np.ndarray:
        hist = [
            movie_ids[history.indices[a:b]] for a, b in zip(history.indptr[:-1], history.indptr[1:])
        ]
        vals = [history.data[a:b] for a, b in zip(history.indptr[:-1], history.indptr[1:])]
        excl = [
            movie_ids[excluded.indices[a:b]]
            for a, b in zip(excluded.indptr[:-1], excluded.indptr[1:])
        ]
        if with_users:
            if users is None:
                raise ValueError("this ranker needs the users' ids (users=...)")
            lists = rank_movies(hist, vals, excl, k, np.asarray(users))
        else:
            lists = rank_movies(hist, vals, excl, k)
        best = np.full((history.shape[0], k), -1, dtype=np.int64)
        for row, movies in enumerate(lists):
            cols = [column(m) for m in list(movies)[:k]]
            best[row, : len(cols)] = cols
        return best

    rank.takes_users = with_users  # type: ignore[attr-defined]
    return rank


@dataclass(frozen=True)
class Metrics:
    """Top-k metrics averaged over the users that have at least one target item."""

    recall: float
    ndcg: float
    mrr: float
    hit: float
    precision: float
    coverage: float
    users: int
    k: int = K

    def as_dict(self) -> dict[str, float]:
        return {f"{name}@{self.k}": getattr(self, name) for name in METRICS}


def user_metrics(recommended: np.ndarray, targets: sp.csr_matrix) -> dict[str, np.ndarray]:
    """Per-user recall, ndcg (binary gains), mrr, hit and precision of top-k lists.

    recommended: (n, k) column indices best first (-1 = no item); targets: (n, items) nonzero
    where the item is relevant. Users without targets get NaN.
    """
    k = recommended.shape[1]
    relevant = targets.toarray() > 0
    valid = recommended >= 0
    hits = np.take_along_axis(relevant, np.where(valid, recommended, 0), axis=1) & valid
    n_relevant = relevant.sum(axis=1)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.concatenate(([0.0], np.cumsum(discounts)))[np.minimum(n_relevant, k)]
    first = np.where(hits.any(axis=1), hits.argmax(axis=1) + 1, 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = {
            "recall": hits.sum(axis=1) / n_relevant,
            "ndcg": (hits * discounts).sum(axis=1) / ideal,
            "mrr": np.where(first > 0, 1.0 / np.maximum(first, 1), 0.0),
            "hit": hits.any(axis=1).astype(np.float64),
            "precision": hits.sum(axis=1) / k,
        }
    without = n_relevant == 0
    for values in out.values():
        values[without] = np.nan
    return out


def evaluate_ranker(
    ranker: Ranker,
    split: Split,
    phase: str = "test",
    *,
    k: int = K,
    batch_size: int = 1024,
    progress: bool | str = False,
    users: np.ndarray | None = None,
) -> Metrics:
    """Rank the whole catalog for every user with target items and average the metrics.

    Coverage@k = distinct items in those users' top-k lists / movies in the split.
    `users`: only these rows (those among them with target items), e.g. a tuning sample.
    """
    targets = split.targets(phase)
    with_targets = np.diff(targets.indptr) > 0
    if users is None:
        users = np.flatnonzero(with_targets)
    else:
        users = np.unique(np.asarray(users, dtype=np.int64))
        users = users[with_targets[users]]
    takes_users = bool(getattr(ranker, "takes_users", False))
    history, excluded = split.history(phase), split.excluded(phase)
    sums = dict.fromkeys(("recall", "ndcg", "mrr", "hit", "precision"), 0.0)
    seen_items = np.zeros(split.n_items, dtype=bool)
    batches = range(0, len(users), batch_size)
    bar = _progress(len(users), progress)
    for start in batches:
        rows = users[start : start + batch_size]
        if takes_users:
            recommended = np.asarray(
                ranker(history[rows], excluded[rows], k, users=split.user_ids[rows])
            )
        else:
            recommended = np.asarray(ranker(history[rows], excluded[rows], k))
        if recommended.shape != (len(rows), k):
            raise ValueError(
                f"ranker returned shape {recommended.shape}, expected {(len(rows), k)}"
            )
        _check_exclusions(recommended, excluded[rows])
        for name, values in user_metrics(recommended, targets[rows]).items():
            sums[name] += float(np.sum(values))
        seen_items[recommended[recommended >= 0]] = True
        if bar is not None:
            bar.update(len(rows))
    if bar is not None:
        bar.close()
    n = max(len(users), 1)
    return Metrics(
        **{name: total / n for name, total in sums.items()},
        coverage=float(seen_items.sum()) / split.n_items,
        users=len(users),
        k=k,
    )


def _check_exclusions(recommended: np.ndarray, excluded: sp.csr_matrix) -> None:
    valid = recommended >= 0
    rows = np.broadcast_to(np.arange(len(recommended))[:, None], recommended.shape)
    if valid.any() and np.asarray(excluded[rows[valid], recommended[valid]]).any():
        raise ValueError("ranker recommended an excluded item")


def _progress(total: int, progress: bool | str):
    if not progress:
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # progress is a nicety; the numbers do not need it
        return None
    return tqdm(
        total=total, desc=progress if isinstance(progress, str) else None, unit="user", leave=False
    )


# ---------------------------------------------------------------------------------------------
# Models: tuning on valid, reporting on test


@dataclass(frozen=True)
class Model:
    """A model to evaluate: `build(train, **params)` returns a Ranker fit on the training part
    (a users x movies matrix whose values are ratings). Every params dict in `grid` is tried on
    the validation part; the best by NDCG@k is reported on test."""

    name: str
    build: Callable[..., Ranker]
    grid: Sequence[Mapping[str, Any]] = ({},)
    main_param: str | None = None


@dataclass
class ModelResult:
    """A model's test metrics with the setting chosen on validation (`valid` is None for a
    model evaluated in one fixed setting). `engine`: "qdrant" when served through the store,
    "numpy" for an in-memory baseline."""

    model: str
    params: dict[str, Any]
    test: Metrics
    valid: Metrics | None
    seconds: float
    main_param: str | None = None
    tuning: list[tuple[dict[str, Any], Metrics]] = field(default_factory=list)
    engine: str = "numpy"

    def row(self) -> dict[str, Any]:
        """The results.json object of this model."""
        row = {
            "model": self.model,
            "engine": self.engine,
            "params": _plain(self.params),
            **self.test.as_dict(),
            "users": self.test.users,
            "seconds": round(self.seconds, 1),
        }
        if len(self.tuning) > 1:
            row["tuning"] = [
                {"params": _plain(p), f"ndcg@{m.k}": m.ndcg, "users": m.users}
                for p, m in self.tuning
            ]
        return row


def _plain(value: Any) -> Any:
    """Plain JSON types (dict keys as strings)."""
    return json.loads(json.dumps(value))


def evaluate_model(
    model: Model, split: Split, *, k: int = K, progress: bool = False
) -> ModelResult:
    """Tune `model` on the validation part, then evaluate its best setting on test."""
    if not model.grid:
        raise ValueError(f"model {model.name!r} has an empty parameter grid")
    started = time.perf_counter()
    train = split.ratings.multiply(split.train).tocsr()
    tuning: list[tuple[dict[str, Any], Metrics]] = []
    best_ranker: Ranker | None = None
    for params in model.grid:
        ranker = model.build(train, **params)
        label = f"{model.name} {_format_params(params)} (valid)" if progress else False
        metrics = evaluate_ranker(ranker, split, "valid", k=k, progress=label)
        if best_ranker is None or metrics.ndcg > max(m.ndcg for _, m in tuning):
            best_ranker = ranker  # keep only the best fitted model, not all of them
        tuning.append((dict(params), metrics))
        del ranker
    best_params, best_valid = max(tuning, key=lambda pair: pair[1].ndcg)
    label = f"{model.name} (test)" if progress else False
    test = evaluate_ranker(best_ranker, split, "test", k=k, progress=label)
    return ModelResult(
        model.name,
        best_params,
        test,
        best_valid,
        time.perf_counter() - started,
        model.main_param,
        tuning,
    )


def evaluate_models(
    split: Split, models: Iterable[Model], *, k: int = K, progress: bool = False
) -> list[ModelResult]:
    return [evaluate_model(m, split, k=k, progress=progress) for m in models]


def run_evaluation(
    user_ids: np.ndarray,
    movie_ids: np.ndarray,
    ratings: np.ndarray,
    models: Iterable[Model] | None = None,
    *,
    seed: int = SEED,
    k: int = K,
    progress: bool = False,
    output_dir: str | Path | None = None,
) -> list[ModelResult]:
    """The whole protocol on raw ratings arrays: filter, split, tune and test each model
    (the baselines and the numpy item model when `models` is None); with `output_dir`, write
    results.json and results.md there."""
    split = prepare_split(user_ids, movie_ids, ratings, seed=seed)
    results = evaluate_models(
        split, baseline_models() if models is None else models, k=k, progress=progress
    )
    if output_dir is not None:
        write_results(results, output_dir, split, k=k)
    return results


NUMPY_ITEM = "item-numpy"


def baseline_models(quick: bool = False, item_grid: bool = False) -> list[Model]:
    """Popularity, item-kNN cosine and EASE with their grids (`quick`: each model's usual best
    setting only), and the learned item model in numpy ("item-numpy") in the setting the store
    serves (`item_grid`: its l2 grid instead)."""
    knn = (200,) if quick else (25, 50, 100, 200, 400)
    ease = (800.0,) if quick else (100.0, 200.0, 300.0, 500.0, 800.0, 1200.0)
    item = itemmodel.ITEM_MODEL_GRID if item_grid and not quick else [itemmodel.ITEM_MODEL_DEFAULTS]
    return [
        Model("popularity", lambda train: popularity_ranker(train)),
        Model(
            "item-knn",
            lambda train, neighbors: matrix_ranker(itemmodel.cosine_knn_weights(train, neighbors)),
            [{"neighbors": n} for n in knn],
            "neighbors",
        ),
        Model(
            "ease",
            lambda train, l2: matrix_ranker(itemmodel.ease_weights(train, l2)),
            [{"l2": lam} for lam in ease],
            "l2",
        ),
        Model(
            NUMPY_ITEM,
            lambda train, **params: item_weights_ranker(
                itemmodel.learn_item_weights(train, **params)
            ),
            item,
            itemmodel.ITEM_MODEL_MAIN_PARAM,
        ),
    ]


# ---------------------------------------------------------------------------------------------
# Qdrant-served models: the split's training part ingested into a temporary embedded store,
# every user ranked through recommend.recommend() exactly as the service asks the store.

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
    import os
    import shutil

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
        if not model.grid:
            raise ValueError(f"model {model.name!r} has an empty parameter grid")
        started = time.perf_counter()
        tuning: list[tuple[dict[str, Any], Metrics]] = []
        best_valid: Metrics | None = None
        best_params = dict(model.grid[0])
        if len(model.grid) > 1:
            for params in model.grid:
                label = f"{model.name} {_format_params(params)} (valid)" if progress else False
                ranker = store_ranker(store, split.movie_ids, model.name, **params)
                metrics = evaluate_ranker(
                    ranker, split, "valid", k=k, batch_size=64, progress=label, users=sample
                )
                tuning.append((dict(params), metrics))
            best_params, best_valid = max(tuning, key=lambda pair: pair[1].ndcg)
        ranker = store_ranker(store, split.movie_ids, model.name, **best_params)
        label = f"{model.name} (test)" if progress else False
        test = evaluate_ranker(ranker, split, "test", k=k, batch_size=64, progress=label)
        shown = dict(best_params)
        if model.name == "item":  # what the store serves, as the ingest learned it
            shown = dict(store.meta().models.get("item", {}))
        results.append(
            ModelResult(
                model.name,
                shown,
                test,
                best_valid,
                time.perf_counter() - started,
                model.main_param,
                tuning,
                engine="qdrant",
            )
        )
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


def main(args: Any, settings: Any) -> int:
    """`movierec evaluate [--dataset NAME] [--data DIR] [--output DIR] [--quick]`."""
    import sys

    from movierec import movielens

    name = args.dataset or settings.movielens_dataset
    progress = sys.stderr.isatty()
    folder = movielens.dataset_folder(settings, name, args.data, progress=progress)
    started = time.perf_counter()
    dataset = movielens.load(Path(folder), name)
    split = prepare_split(dataset.user_ids, dataset.movie_ids, dataset.ratings)
    results, info = evaluate_all(dataset, split, quick=args.quick, progress=progress)
    info["seconds"] = round(time.perf_counter() - started, 1)
    notes = run_notes(info)
    print(notes[0])
    print(format_table(results))
    for line in notes[1:]:
        print(line)
    if args.output is not None:
        write_results(results, args.output, split, notes=notes)
        print(f"wrote {Path(args.output) / 'results.json'} and {Path(args.output) / 'results.md'}")
    return 0


def run_notes(info: Mapping[str, Any]) -> list[str]:
    """What a reader of the table needs to know about the run."""
    return [
        f"{info['dataset']}: {info['users']} users, {info['movies']} movies, "
        f"{info['interactions']} interactions (ratings >= {MIN_RATING}, 10-core), split "
        f"80/10/10 per user with seed {SEED}; tuned on valid, test shown "
        f"({info['seconds']:.0f} s in all)",
        f"engine qdrant: served through an embedded Qdrant store holding the train part "
        f"(built in {info['store_seconds']:.0f} s, item model learned at ingest with the served "
        f"defaults), each user asking recommend() with their train movies and stars"
        + (
            f"; user-knn tuned on {info['tuning_users']} validation users"
            if info.get("tuning_users")
            else ""
        )
        + ". engine numpy: in-memory baselines.",
    ]


# ---------------------------------------------------------------------------------------------
# Reporting


# Shown in results.json, left out of the tables (they would only widen them).
_TABLE_HIDDEN = ("rating_weights", "liked_stars", "min_likes")


def _format_params(params: Mapping[str, Any], hidden: Sequence[str] = ()) -> str:
    shown = {k: v for k, v in params.items() if k not in hidden and v is not None}
    return " ".join(f"{key}={_format_value(value)}" for key, value in shown.items()) or "-"


def _format_value(value: Any) -> str:
    if isinstance(value, Mapping):
        return "/".join(f"{_format_value(k)}:{_format_value(v)}" for k, v in value.items())
    return f"{value:g}" if isinstance(value, float) else str(value)


def format_table(results: Sequence[ModelResult], k: int = K) -> str:
    """The results as a fixed-width text table (test metrics)."""
    header = ["model", "engine", "params"] + [f"{name}@{k}" for name in METRICS] + ["time"]
    lines = [
        [r.model, r.engine, _format_params(r.params, _TABLE_HIDDEN)]
        + [f"{getattr(r.test, name):.4f}" for name in METRICS]
        + [f"{r.seconds:.1f}s"]
        for r in results
    ]
    widths = [max(len(str(row[c])) for row in [header] + lines) for c in range(len(header))]

    def fmt(row: list[str]) -> str:
        cells = zip(row, widths)
        return "  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(cells))

    return "\n".join([fmt(header), fmt(["-" * w for w in widths])] + [fmt(row) for row in lines])


def format_markdown(
    results: Sequence[ModelResult],
    split: Split | None = None,
    k: int = K,
    notes: Sequence[str] = (),
) -> str:
    """results.md: the table, the protocol, and NDCG@k on validation against each model's main
    parameter, the other parameters at their chosen values (Mermaid xychart, rendered by
    GitHub)."""
    names = [f"{name}@{k}" for name in METRICS]
    out = [
        f"# Offline evaluation (test part, k = {k})",
        "",
        "| model | engine | params | " + " | ".join(names) + " | time |",
        "|---|---|---|" + "---:|" * (len(names) + 1),
    ]
    for r in results:
        cells = [f"{getattr(r.test, name):.4f}" for name in METRICS]
        out.append(
            f"| {r.model} | {r.engine} | {_format_params(r.params, _TABLE_HIDDEN)} | "
            + " | ".join(cells)
            + f" | {r.seconds:.1f} s |"
        )
    out += [""] + [f"{line}\n" for line in notes] + [PROTOCOL]
    if split is not None:
        out.append(
            f"\nData: {split.n_users} users, {split.n_items} movies, "
            f"{split.ratings.nnz} interactions ({split.train.nnz} train / {split.valid.nnz} "
            f"valid / {split.test.nnz} test)."
        )
    for r in results:
        points = [
            (p[r.main_param], m.ndcg)
            for p, m in r.tuning
            if r.main_param in p
            and all(v == r.params.get(key) for key, v in p.items() if key != r.main_param)
        ]
        if len(points) < 2:
            continue
        xs = ", ".join(_format_value(x) for x, _ in points)
        ys = ", ".join(f"{y:.4f}" for _, y in points)
        lo, hi = min(y for _, y in points), max(y for _, y in points)
        out += [
            "",
            f"## {r.model}: validation NDCG@{k} against {r.main_param}",
            "",
            "```mermaid",
            "xychart-beta",
            f'    title "{r.model} ({_format_params(_others(r))})"' if _others(r) else
            f'    title "{r.model}"',
            f'    x-axis "{r.main_param}" [{xs}]',
            f'    y-axis "NDCG@{k} (valid)" {lo - 0.005:.3f} --> {hi + 0.005:.3f}',
            f"    line [{ys}]",
            "```",
        ]
    return "\n".join(out) + "\n"


def _others(r: ModelResult) -> dict[str, Any]:
    """The tuned parameters other than the main one, at their chosen values."""
    tuned = {key for p, _ in r.tuning for key in p}
    return {key: r.params[key] for key in r.params if key in tuned and key != r.main_param}


def write_results(
    results: Sequence[ModelResult],
    output_dir: str | Path,
    split: Split | None = None,
    *,
    k: int = K,
    notes: Sequence[str] = (),
) -> None:
    """DIR/results.json (one object per model) and DIR/results.md."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps([r.row() for r in results], indent=2) + "\n")
    (out / "results.md").write_text(format_markdown(results, split, k=k, notes=notes))
