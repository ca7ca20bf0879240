"""Offline evaluation: RecBole's ML-1M protocol (k-core filter, random 80/10/10 split per user,
ranking of the whole catalog) and its top-k metrics, for any model given as a ranker."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp

from movierec import itemmodel

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
    never included; -1 pads a list that has fewer than k items.
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
    rank_movies: Callable[
        [list[np.ndarray], list[np.ndarray], list[np.ndarray], int], list[Sequence[int]]
    ],
    movie_ids: np.ndarray,
) -> Ranker:
    """Adapt a ranker that speaks movie ids (as a Qdrant-served model does) to columns.

    `rank_movies(history_movie_ids, history_ratings, excluded_movie_ids, k)` gets one array per
    user and returns, per user, up to k recommended movie ids, best first.
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

    def rank(history: sp.csr_matrix, excluded: sp.csr_matrix, k: int) -> np.ndarray:
        hist = [
            movie_ids[history.indices[a:b]] for a, b in zip(history.indptr[:-1], history.indptr[1:])
        ]
        vals = [history.data[a:b] for a, b in zip(history.indptr[:-1], history.indptr[1:])]
        excl = [
            movie_ids[excluded.indices[a:b]]
            for a, b in zip(excluded.indptr[:-1], excluded.indptr[1:])
        ]
        lists = rank_movies(hist, vals, excl, k)
        best = np.full((history.shape[0], k), -1, dtype=np.int64)
        for row, movies in enumerate(lists):
            cols = [column(m) for m in list(movies)[:k]]
            best[row, : len(cols)] = cols
        return best

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
) -> Metrics:
    """Rank the whole catalog for every user with target items and average the metrics.

    Coverage@k = distinct items in those users' top-k lists / movies in the split.
    """
    targets = split.targets(phase)
    users = np.flatnonzero(np.diff(targets.indptr) > 0)
    history, excluded = split.history(phase), split.excluded(phase)
    sums = dict.fromkeys(("recall", "ndcg", "mrr", "hit", "precision"), 0.0)
    seen_items = np.zeros(split.n_items, dtype=bool)
    batches = range(0, len(users), batch_size)
    bar = _progress(len(users), progress)
    for start in batches:
        rows = users[start : start + batch_size]
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
    model: str
    params: dict[str, Any]
    test: Metrics
    valid: Metrics
    seconds: float
    main_param: str | None = None
    tuning: list[tuple[dict[str, Any], Metrics]] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        """The results.json object of this model."""
        params = json.loads(json.dumps(self.params))  # plain JSON types (dict keys as strings)
        return {"model": self.model, "params": params, **self.test.as_dict()}


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


def baseline_models(quick: bool = False) -> list[Model]:
    """Popularity, item-kNN cosine, EASE and the learned item model (numpy), with their grids
    (`quick`: each model's usual best setting only)."""
    knn = (200,) if quick else (25, 50, 100, 200, 400)
    ease = (800.0,) if quick else (100.0, 200.0, 300.0, 500.0, 800.0, 1200.0)
    item = [itemmodel.ITEM_MODEL_DEFAULTS] if quick else itemmodel.ITEM_MODEL_GRID
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
            "item",
            lambda train, **params: item_weights_ranker(
                itemmodel.learn_item_weights(train, **params)
            ),
            item,
            itemmodel.ITEM_MODEL_MAIN_PARAM,
        ),
    ]


def main(args: Any, settings: Any) -> int:
    """`movierec evaluate [--dataset NAME] [--data DIR] [--output DIR] [--quick]`."""
    import sys

    from movierec import movielens

    name = args.dataset or settings.movielens_dataset
    folder = args.data or settings.movielens_dir
    progress = sys.stderr.isatty()
    if folder is None:
        folder = movielens.fetch(
            name,
            settings.movielens_cache,
            settings.movielens_url,
            settings.movielens_md5,
            progress=progress,
        )
    dataset = movielens.load(Path(folder), name)
    started = time.perf_counter()
    split = prepare_split(dataset.user_ids, dataset.movie_ids, dataset.ratings)
    results = evaluate_models(split, baseline_models(quick=args.quick), progress=progress)
    print(
        f"{name}: {split.n_users} users, {split.n_items} movies, {split.ratings.nnz} interactions "
        f"(ratings >= {MIN_RATING}, 10-core), split 80/10/10 per user with seed {SEED}; "
        f"tuned on valid, test shown ({time.perf_counter() - started:.0f} s)"
    )
    print(format_table(results))
    if args.output is not None:
        write_results(results, args.output, split)
        print(f"wrote {Path(args.output) / 'results.json'} and {Path(args.output) / 'results.md'}")
    return 0


# ---------------------------------------------------------------------------------------------
# Reporting


def _format_params(params: Mapping[str, Any]) -> str:
    return " ".join(f"{key}={_format_value(value)}" for key, value in params.items()) or "-"


def _format_value(value: Any) -> str:
    if isinstance(value, Mapping):
        return "/".join(f"{_format_value(k)}:{_format_value(v)}" for k, v in value.items())
    return f"{value:g}" if isinstance(value, float) else str(value)


def format_table(results: Sequence[ModelResult], k: int = K) -> str:
    """The results as a fixed-width text table (test metrics)."""
    header = ["model", "params"] + [f"{name}@{k}" for name in METRICS] + ["time"]
    lines = [
        [r.model, _format_params(r.params)]
        + [f"{getattr(r.test, name):.4f}" for name in METRICS]
        + [f"{r.seconds:.1f}s"]
        for r in results
    ]
    widths = [max(len(str(row[c])) for row in [header] + lines) for c in range(len(header))]

    def fmt(row: list[str]) -> str:
        cells = zip(row, widths)
        return "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(cells))

    return "\n".join([fmt(header), fmt(["-" * w for w in widths])] + [fmt(row) for row in lines])


def format_markdown(results: Sequence[ModelResult], split: Split | None = None, k: int = K) -> str:
    """results.md: the table, the protocol, and NDCG@k on validation against each model's main
    parameter (Mermaid xychart, rendered by GitHub)."""
    names = [f"{name}@{k}" for name in METRICS]
    out = [
        f"# Offline evaluation (test part, k = {k})",
        "",
        "| model | params | " + " | ".join(names) + " | time |",
        "|---|---|" + "---:|" * (len(names) + 1),
    ]
    for r in results:
        cells = [f"{getattr(r.test, name):.4f}" for name in METRICS]
        out.append(
            f"| {r.model} | {_format_params(r.params)} | "
            + " | ".join(cells)
            + f" | {r.seconds:.1f} s |"
        )
    out += ["", PROTOCOL]
    if split is not None:
        out.append(
            f"\nData: {split.n_users} users, {split.n_items} movies, "
            f"{split.ratings.nnz} interactions ({split.train.nnz} train / {split.valid.nnz} "
            f"valid / {split.test.nnz} test)."
        )
    for r in results:
        points = [(p[r.main_param], m.ndcg) for p, m in r.tuning if r.main_param in p]
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
            f'    title "{r.model}"',
            f'    x-axis "{r.main_param}" [{xs}]',
            f'    y-axis "NDCG@{k} (valid)" {lo - 0.005:.3f} --> {hi + 0.005:.3f}',
            f"    line [{ys}]",
            "```",
        ]
    return "\n".join(out) + "\n"


def write_results(
    results: Sequence[ModelResult],
    output_dir: str | Path,
    split: Split | None = None,
    *,
    k: int = K,
) -> None:
    """DIR/results.json (one object per model) and DIR/results.md."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps([r.row() for r in results], indent=2) + "\n")
    (out / "results.md").write_text(format_markdown(results, split, k=k))
