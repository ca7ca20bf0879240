"""Models as the evaluation sees them: the Ranker interface, top-k selection, the in-memory
numpy baselines (popularity, item-kNN, EASE, the item model in numpy) and the adapter for
rankers that speak movie ids (as the Qdrant-served models do)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp

from movierec.training import item as itemmodel

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
class Model:
    """A model to evaluate: `build(train, **params)` returns a Ranker fit on the training part
    (a users x movies matrix whose values are ratings). Every params dict in `grid` is tried on
    the validation part; the best by NDCG@k is reported on test."""

    name: str
    build: Callable[..., Ranker]
    grid: Sequence[Mapping[str, Any]] = ({},)
    main_param: str | None = None


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


