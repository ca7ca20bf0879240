"""Item-item models: weights W learned from user x movie interactions so that a person's score
for movie j is sum over their movies i of q_i * W[i, j] -- one sparse dot product per movie, which
is what a Qdrant sparse query against the movies' vectors computes.

The learned model (`learn_item_weights`) is a linear autoencoder in the EASE family, tuned on
the RecBole ML-1M protocol: EASE's zero-diagonal closed form, with
- users down-weighted by 1/sqrt(their number of movies) in the Gram matrix (heavy raters
  otherwise dominate the co-occurrences),
- EDLAE's dropout penalty (Steck 2020): item i's weights regularized by l2 + p/(1-p) * G_ii,
- interactions weighted by their star rating (3, 4, 5 stars -> 0.8, 1.0, 1.1), in training
  and in the query,
- plus a low-rank "ideal low-pass" term (the GF-CF filter of Shen et al. 2021): the top
  eigenvectors of the normalized item-item matrix, added with a small weight.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from movierec import schema
from movierec.schema import LIKED_STARS
from movierec.vectors import SparseVector

# Chosen on the validation part of ML-1M (movierec evaluate); the served model (ingest) and
# `movierec evaluate` use these; ITEM_MODEL_GRID is the l2 grid around them.
RATING_WEIGHTS: dict[float, float] = {3.0: 0.8, 4.0: 1.0, 5.0: 1.1}
ITEM_MODEL_DEFAULTS: dict[str, Any] = {
    "l2": 30.0,
    "dropout": 0.5,
    "user_norm": 0.5,
    "lowpass_rank": 128,
    "lowpass_weight": 0.4,
    "rating_weights": RATING_WEIGHTS,
}
ITEM_MODEL_MAIN_PARAM = "l2"
ITEM_MODEL_GRID: list[dict[str, Any]] = [
    {**ITEM_MODEL_DEFAULTS, "l2": l2} for l2 in (10.0, 20.0, 30.0, 45.0, 70.0)
]


@dataclass(frozen=True)
class ItemWeights:
    """A learned item-item model over `n` movies (columns of the training matrix).

    `weights[i, j]`: what having movie i adds to movie j's score (row = a person's movie,
    column = candidate). Column j is movie j's sparse vector; a person's query vector has
    `query_values(their ratings)` at their movies.
    """

    weights: np.ndarray | sp.csr_matrix
    params: dict[str, Any]
    rating_weights: Mapping[float, float] | None = field(default=None)

    def query_values(self, ratings: np.ndarray) -> np.ndarray:
        """Query value of each of a person's movies given its star rating: the table's value,
        linear in between (half stars), clamped outside; 1.0 when there is no table."""
        ratings = np.asarray(ratings, dtype=np.float64)
        if not self.rating_weights:
            return np.ones_like(ratings)
        stars = np.array(sorted(self.rating_weights), dtype=np.float64)
        return np.interp(ratings, stars, [self.rating_weights[s] for s in stars])

    def scores(self, history: sp.csr_matrix) -> np.ndarray:
        """(users, movies) scores for a batch of histories whose values are ratings."""
        query = sp.csr_matrix(history, dtype=np.float64, copy=True)
        query.data = self.query_values(query.data)
        out = query @ self.weights
        return out.toarray() if sp.issparse(out) else np.asarray(out)

    def movie_vectors(self, movie_ids: np.ndarray) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """(movie id, indices, values) of each movie's sparse vector, indices being movie ids
        (uint32, sorted, unique) and values float32 -- ready for a Qdrant sparse vector."""
        movie_ids = np.asarray(movie_ids)
        if np.any(np.diff(movie_ids) <= 0):
            raise ValueError("movie_ids must be strictly increasing (the columns' movie ids)")
        columns = sp.csc_matrix(self.weights)
        columns.eliminate_zeros()
        columns.sort_indices()
        for j, movie in enumerate(movie_ids):
            rows = columns.indices[columns.indptr[j] : columns.indptr[j + 1]]
            values = columns.data[columns.indptr[j] : columns.indptr[j + 1]]
            yield int(movie), movie_ids[rows].astype(np.uint32), values.astype(np.float32)


def _binary(interactions: sp.spmatrix) -> sp.csr_matrix:
    x = sp.csr_matrix(interactions, dtype=np.float64, copy=True)
    x.eliminate_zeros()
    x.data[:] = 1.0
    return x


def gram(interactions: sp.spmatrix) -> np.ndarray:
    """Dense item x item co-occurrence counts X^T X of the binary interactions."""
    x = _binary(interactions)
    return np.asarray((x.T @ x).toarray(), dtype=np.float64)


def zero_diagonal_solution(g: np.ndarray, penalty: np.ndarray | float,
                           dtype: type = np.float32) -> np.ndarray:
    """argmin ||X - XW||^2 + sum_i penalty_i ||W[i, :]||^2 subject to diag(W) = 0, given the
    Gram matrix G = X^T X: W = -P / diag(P) column-wise with P = (G + diag(penalty))^-1.

    G + diag(penalty) is symmetric positive definite, so P comes from a Cholesky factorization;
    by default in float32, half the time of float64 (the weights are served as float32 anyway;
    on ML-1M the largest difference is 2e-6 of the largest weight and NDCG@10 is unchanged)."""
    a = np.array(g, dtype=dtype)
    a[np.diag_indices_from(a)] += np.asarray(penalty, dtype=dtype)
    p = spd_inverse(a)
    w = p / -np.diag(p)[None, :]
    np.fill_diagonal(w, 0.0)
    return w.astype(np.float64)


def spd_inverse(a: np.ndarray) -> np.ndarray:
    """The inverse of a symmetric positive definite matrix (overwritten): potrf, then potri."""
    potrf, potri = scipy.linalg.lapack.get_lapack_funcs(("potrf", "potri"), (a,))
    c, info = potrf(a, lower=False, overwrite_a=True, clean=False)
    if info != 0:
        raise ValueError(f"the penalized Gram matrix is not positive definite (potrf {info})")
    p, info = potri(c, lower=False, overwrite_c=True)
    if info != 0:
        raise ValueError(f"cannot invert the penalized Gram matrix (potri {info})")
    lower = np.tril_indices_from(p, -1)
    p[lower] = p.T[lower]  # potri fills the upper triangle
    return p


def ease_weights(interactions: sp.spmatrix, l2: float, dtype: type = np.float32) -> np.ndarray:
    """EASE (Steck 2019) on the binary interactions."""
    return zero_diagonal_solution(gram(interactions), l2, dtype)


def cosine_knn_weights(interactions: sp.spmatrix, neighbors: int) -> sp.csr_matrix:
    """Item-kNN: cosine similarity of the movies' user sets, each movie j keeping its
    `neighbors` most similar movies i (column j of the result)."""
    g = gram(interactions)
    norms = np.sqrt(np.diag(g))
    norms[norms == 0] = 1.0
    sim = g / norms[:, None] / norms[None, :]
    np.fill_diagonal(sim, 0.0)
    return keep_top_per_column(sim, neighbors, by_magnitude=False)


def lowpass_weights(interactions: sp.spmatrix, rank: int) -> np.ndarray:
    """GF-CF's ideal low-pass filter D^-1/2 V V^T D^1/2 (zero diagonal), V spanning the top
    `rank` eigenvectors of the item-item matrix of D_u^-1/2 X D_i^-1/2 (binary X, D = degrees)."""
    x = _binary(interactions)
    user_degree = np.asarray(x.sum(axis=1)).ravel()
    item_degree = np.asarray(x.sum(axis=0)).ravel()
    user_degree[user_degree == 0] = 1.0
    item_degree[item_degree == 0] = 1.0
    xn = sp.diags(user_degree**-0.5) @ x @ sp.diags(item_degree**-0.5)
    s = np.asarray((xn.T @ xn).toarray())
    v = top_eigenvectors(s, min(rank, s.shape[0]))
    sqrt_degree = np.sqrt(item_degree)
    w = (v / sqrt_degree[:, None]) @ (v * sqrt_degree[:, None]).T
    np.fill_diagonal(w, 0.0)
    return w


# Subspace iteration for the low-pass term: a block twice the rank, a few products with the
# matrix (BLAS), then Rayleigh-Ritz. A full `eigh` tridiagonalizes the whole matrix (1.9 s of
# the 6.3 s item model on ML-1M); this takes a fraction of it. The block's edge is not exact
# (the 128th eigenvector mixes with its neighbours), which the filter does not feel: NDCG@10 on
# ML-1M's test part 0.2942 with the exact eigenvectors, 0.2944 with these.
SUBSPACE_ITERATIONS = 6
SUBSPACE_SEED = 0


def top_eigenvectors(s: np.ndarray, rank: int, iterations: int = SUBSPACE_ITERATIONS,
                     seed: int = SUBSPACE_SEED) -> np.ndarray:
    """An orthonormal basis of (approximately) the top-`rank` eigenvectors of symmetric `s`,
    largest last, deterministic for a given seed."""
    n = s.shape[0]
    block = min(n, 2 * rank)
    if block >= n // 2:  # small matrices: the exact decomposition is cheap
        _, v = scipy.linalg.eigh(s, subset_by_index=[n - rank, n - 1], check_finite=False)
        return v
    s32 = s.astype(np.float32)  # float32 products: twice as fast, and ample for a filter
    q = np.random.default_rng(seed).standard_normal((n, block)).astype(np.float32)
    for _ in range(iterations):
        q, _ = np.linalg.qr(s32 @ q)
    _, vectors = np.linalg.eigh((q.T @ (s32 @ q)).astype(np.float64))
    return q.astype(np.float64) @ vectors[:, -rank:]


def weighted_interactions(
    interactions: sp.spmatrix, rating_weights: Mapping[float, float] | None, user_norm: float
) -> sp.csr_matrix:
    """Rows scaled by |user|^(-user_norm / 2) and values mapped by rating, so that X^T X is the
    user-normalized, rating-weighted Gram matrix."""
    x = sp.csr_matrix(interactions, dtype=np.float64, copy=True)
    x.eliminate_zeros()
    x.data = ItemWeights(np.zeros((0, 0)), {}, rating_weights).query_values(x.data)
    counts = np.diff(x.indptr).astype(np.float64)
    counts[counts == 0] = 1.0
    return (sp.diags(counts ** (-user_norm / 2.0)) @ x).tocsr()


def learn_item_weights(
    interactions: sp.spmatrix,
    *,
    l2: float = ITEM_MODEL_DEFAULTS["l2"],
    dropout: float = ITEM_MODEL_DEFAULTS["dropout"],
    user_norm: float = ITEM_MODEL_DEFAULTS["user_norm"],
    lowpass_rank: int = ITEM_MODEL_DEFAULTS["lowpass_rank"],
    lowpass_weight: float = ITEM_MODEL_DEFAULTS["lowpass_weight"],
    rating_weights: Mapping[float, float] | None = ITEM_MODEL_DEFAULTS["rating_weights"],
    top_m: int | None = None,
    dtype: type = np.float32,
) -> ItemWeights:
    """Learn the item model from a users x movies matrix whose values are star ratings (any
    positive value when `rating_weights` is None).

    l2: ridge penalty on the weighted Gram matrix's scale; dropout: EDLAE dropout probability p
    (penalty p/(1-p) * G_ii); user_norm: users weighted by |user|^-user_norm; lowpass_weight:
    weight of the low-pass term relative to the linear autoencoder (mean |w| ratio), 0 = none;
    top_m: keep only the m largest |w| of each movie's vector (None = all), the kept weights
    re-fitted; dtype: the precision of the solve (float32: twice as fast, see
    zero_diagonal_solution).
    """
    if not 0.0 <= dropout < 1.0:
        raise ValueError("dropout must be in [0, 1)")
    x = weighted_interactions(interactions, rating_weights, user_norm)
    g = np.asarray((x.T @ x).toarray())
    penalty = l2 + dropout / (1.0 - dropout) * np.diag(g)
    w = zero_diagonal_solution(g, penalty, dtype)
    low = None
    if lowpass_weight and lowpass_rank:
        low = lowpass_weights(interactions, lowpass_rank)
        low *= lowpass_weight * np.abs(w).mean() / max(np.abs(low).mean(), 1e-30)
        w += low
    weights: np.ndarray | sp.csr_matrix = w
    if top_m is not None:
        weights = _refit_on_support(g, penalty, keep_top_per_column(w, top_m).tocsc(), low)
    params = {
        "l2": l2,
        "dropout": dropout,
        "user_norm": user_norm,
        "lowpass_rank": lowpass_rank,
        "lowpass_weight": lowpass_weight,
        "rating_weights": {str(k): v for k, v in (rating_weights or {}).items()} or None,
        "top_m": top_m,
    }
    return ItemWeights(weights, params, dict(rating_weights) if rating_weights else None)


def _refit_on_support(
    g: np.ndarray, penalty: np.ndarray, support: sp.csc_matrix, low: np.ndarray | None
) -> sp.csr_matrix:
    """Re-solve each movie's ridge regression on the movies its pruned vector kept: much
    closer to the full model than cutting the small weights off (one small solve per movie)."""
    a = g.copy()
    a[np.diag_indices_from(a)] += penalty
    rows, cols, values = [], [], []
    for j in range(support.shape[1]):
        keep = support.indices[support.indptr[j] : support.indptr[j + 1]]
        keep = keep[keep != j]
        if len(keep) == 0:
            continue
        w = scipy.linalg.solve(
            a[np.ix_(keep, keep)], g[keep, j], assume_a="pos", check_finite=False
        )
        if low is not None:
            w = w + low[keep, j]
        rows.append(keep)
        cols.append(np.full(len(keep), j))
        values.append(w)
    if not rows:
        return sp.csr_matrix(g.shape)
    return sp.csr_matrix(
        (np.concatenate(values), (np.concatenate(rows), np.concatenate(cols))), shape=g.shape
    )


def keep_top_per_column(weights: np.ndarray, m: int, *, by_magnitude: bool = True) -> sp.csr_matrix:
    """Sparse copy of `weights` keeping the m largest entries (by |w|, or by w) of each column,
    so that each movie's vector has at most m nonzeros."""
    n_rows, n_cols = weights.shape
    if m >= n_rows:
        return sp.csr_matrix(weights)
    key = np.abs(weights) if by_magnitude else weights
    rows = np.argpartition(-key, m - 1, axis=0)[:m]  # (m, n_cols)
    cols = np.broadcast_to(np.arange(n_cols), rows.shape)
    values = weights[rows, cols]
    nonzero = values != 0
    return sp.csr_matrix((values[nonzero], (rows[nonzero], cols[nonzero])), shape=weights.shape)


# ---------------------------------------------------------------------------------------------
# The served item model: learned at ingest time from the whole dataset, stored in Qdrant.

# Learning is a dense solve over the movies (O(n^3)); past this many movies only the most liked
# are modelled (ml-1m: 3,260 movies qualify, all kept), and vectors are pruned to TOP_M weights.
SERVED_MAX_MOVIES = 6_000
SERVED_MIN_LIKES = 10
SERVED_DENSE_UP_TO = 4_000
SERVED_TOP_M = 512


def ingest_item_vectors(dataset, stats=None) -> tuple[dict[str, Any], dict[str, list]]:
    """Learn the item model from every liked rating (schema.LIKED_STARS and up); return (params,
    {schema.ITEM_VECTOR: one SparseVector or None per movie of `dataset.movies`, in its order}).
    Movies outside the model get None."""
    liked = dataset.ratings >= LIKED_STARS
    users, movies, stars = dataset.user_ids[liked], dataset.movie_ids[liked], dataset.ratings[liked]
    movie_ids, counts = np.unique(movies, return_counts=True)
    eligible = movie_ids[counts >= SERVED_MIN_LIKES]
    if eligible.size > SERVED_MAX_MOVIES:
        popular = np.argsort(-counts[counts >= SERVED_MIN_LIKES], kind="stable")[:SERVED_MAX_MOVIES]
        eligible = np.sort(eligible[popular])
    keep = np.isin(movies, eligible)
    user_ids, rows = np.unique(users[keep], return_inverse=True)
    cols = np.searchsorted(eligible, movies[keep])
    matrix = sp.csr_matrix((stars[keep], (rows, cols)), shape=(user_ids.size, eligible.size))
    top_m = None if eligible.size <= SERVED_DENSE_UP_TO else SERVED_TOP_M
    model = learn_item_weights(matrix, **ITEM_MODEL_DEFAULTS, top_m=top_m)
    by_movie = {
        movie: SparseVector(indices, values)
        for movie, indices, values in model.movie_vectors(eligible)
        if indices.size
    }
    params = dict(model.params, movies=int(eligible.size), min_likes=SERVED_MIN_LIKES,
                  liked_stars=LIKED_STARS)
    ordered = [by_movie.get(int(m)) for m in dataset.movies["movie_id"].to_numpy()]
    return params, {schema.ITEM_VECTOR: ordered}
