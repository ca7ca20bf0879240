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

import concurrent.futures
import ctypes
import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy
import scipy.linalg
import scipy.sparse as sp

from movierec import schema
from movierec.schema import LIKED_STARS
from movierec.vectors import IdPositions, SparseVector

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
        (uint32, sorted, unique) and values float32 -- ready for a Qdrant sparse vector. The
        vectors are views of one array each for indices and values."""
        movie_ids = np.asarray(movie_ids)
        if np.any(np.diff(movie_ids) <= 0):
            raise ValueError("movie_ids must be strictly increasing (the columns' movie ids)")
        if sp.issparse(self.weights):
            columns = sp.csc_matrix(self.weights)
            columns.eliminate_zeros()
            columns.sort_indices()
            indptr, rows, values = columns.indptr, columns.indices, columns.data
        else:
            by_movie = np.asarray(self.weights).T  # row j: movie j's vector
            nonzero = by_movie != 0
            indptr = np.concatenate([[0], np.cumsum(nonzero.sum(axis=1))])
            rows = np.nonzero(nonzero)[1]
            values = by_movie[nonzero]
        indices = movie_ids[rows].astype(np.uint32)
        values = values.astype(np.float32, copy=False)
        bounds = indptr.tolist()
        for j, movie in enumerate(movie_ids.tolist()):
            yield movie, indices[bounds[j] : bounds[j + 1]], values[bounds[j] : bounds[j + 1]]


def _binary(interactions: sp.spmatrix, dtype: type = np.float64) -> sp.csr_matrix:
    x = sp.csr_matrix(interactions, dtype=dtype, copy=True)
    x.eliminate_zeros()
    x.data[:] = 1.0
    return x


# Users with more than this many movies per movie of the matrix go through a dense matrix
# product (BLAS), the others through scipy's sparse product: a user costs the sparse product
# about |user|^2 pair updates and the dense one n^2 multiply-adds at many times the speed;
# they break even near |user| = n / 40 (2 cores, AVX-512; ml-1m's first Gram matrix, median of
# 7: 0.230 s at n / 40, 0.233 at n / 50, 0.231 at n / 33, 0.245 at n / 25; all sparse 0.7 s).
DENSE_USER_SHARE = 0.025
DENSE_ROWS = 4096  # users per dense block (4,096 x 6,000 in float32: 98 MB)
# Past this many ratings of light users, their sparse product (one thread in scipy, which
# releases the GIL) is computed as two halves of the output's rows in two threads: 25M ratings,
# 11M of them light, 16.7 s in one. Below it (ml-1m: 0.6M), one product.
SPLIT_SPARSE_NNZ = 4_000_000


def gram_matrix(x: sp.spmatrix, dtype: type = np.float64,
                dense_share: float = DENSE_USER_SHARE) -> np.ndarray:
    """Dense X^T X of a users x movies matrix, in `dtype`: the rows of users with more than
    `dense_share` of the movies as dense blocks through BLAS, the rest as one sparse product."""
    x = sp.csr_matrix(x, dtype=dtype)
    n = x.shape[1]
    heavy = np.diff(x.indptr) > dense_share * n
    out = np.zeros((n, n), dtype=dtype)
    if not heavy.all():
        light = x[~heavy]
        if light.nnz > SPLIT_SPARSE_NNZ and n > 1:
            _sparse_gram_in_two(light, out)
        else:
            (light.T @ light).toarray(out=out)
    rows = np.flatnonzero(heavy)
    for start in range(0, rows.size, DENSE_ROWS):
        block = x[rows[start : start + DENSE_ROWS]].toarray()
        out += block.T @ block
    return out


def _sparse_gram_in_two(x: sp.csr_matrix, out: np.ndarray) -> None:
    """out = X^T X, its rows [0, m) and [m, n) each a sparse product X[:, a:b]^T X in its own
    thread. Row i costs the ratings of every user of movie i (those users' sizes, summed), so m
    splits that cost in half. Each entry sums the same terms in the same order as one product.
    Memory as one product's: the two column ranges are what it converts X^T into, in halves."""
    n = x.shape[1]
    sizes = np.diff(x.indptr).astype(np.float64)
    cost = np.bincount(x.indices, weights=np.repeat(sizes, np.diff(x.indptr)), minlength=n)
    m = int(np.clip(np.searchsorted(np.cumsum(cost), cost.sum() / 2), 1, n - 1))
    columns = x.tocsc()
    halves = [(0, m, columns[:, :m]), (m, n, columns[:, m:])]
    del columns

    def rows(a: int, b: int, part: sp.csc_matrix) -> None:
        (part.T @ x).toarray(out=out[a:b])

    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        for done in [pool.submit(rows, *half) for half in halves]:
            done.result()


def gram(interactions: sp.spmatrix) -> np.ndarray:
    """Dense item x item co-occurrence counts X^T X of the binary interactions."""
    return gram_matrix(_binary(interactions), np.float64)


def zero_diagonal_solution(g: np.ndarray, penalty: np.ndarray | float,
                           dtype: type = np.float32) -> np.ndarray:
    """argmin ||X - XW||^2 + sum_i penalty_i ||W[i, :]||^2 subject to diag(W) = 0, given the
    Gram matrix G = X^T X: W = -P / diag(P) column-wise with P = (G + diag(penalty))^-1.

    G + diag(penalty) is symmetric positive definite, so P comes from a Cholesky factorization;
    by default in float32, half the time of float64 (the weights are served as float32 anyway;
    on ML-1M the largest difference is 2e-6 of the largest weight and NDCG@10 is unchanged).
    Returned in `dtype`."""
    return zero_diagonal_rows(g, penalty, dtype).T


def zero_diagonal_rows(g: np.ndarray, penalty: np.ndarray | float,
                       dtype: type = np.float32, overwrite: bool = False) -> np.ndarray:
    """zero_diagonal_solution transposed, C-contiguous: row j is movie j's weights (P is
    symmetric, so W^T = -P / diag(P) row-wise, computed in place). overwrite: `g` (C-ordered,
    in `dtype`) becomes the result, without a copy."""
    a = g if overwrite and g.dtype == dtype and g.flags.c_contiguous else np.array(g, dtype=dtype)
    a[np.diag_indices_from(a)] += np.asarray(penalty, dtype=dtype)
    p = spd_inverse(a)
    diagonal = np.diag(p).copy()
    p /= -diagonal[:, None]
    np.fill_diagonal(p, 0.0)
    return p


@functools.cache
def lapack_single_threaded() -> bool:
    """Run scipy's LAPACK on one thread (its own OpenBLAS; numpy's matrix products keep theirs).

    A factorization syncs its threads at every panel: when another process holds a core, each
    sync waits for a descheduled thread, and potri on 3,260 x 3,260 took 2-10 s instead of
    0.18 s (2 cores, load 2); on one thread it takes 0.3 s whatever the load. Containers with
    a CPU quota below the host's cores are in that state all the time. Returns whether the
    wheel's OpenBLAS was found (other builds are left as they are)."""
    libs = Path(scipy.__file__).parent.parent / "scipy.libs"
    found = False
    for path in sorted(libs.glob("libscipy_openblas*.so*")):
        lib = ctypes.CDLL(str(path))
        for name in ("scipy_openblas_set_num_threads", "scipy_openblas_set_num_threads64_"):
            setter = getattr(lib, name, None)
            if setter is not None:
                setter(1)
                found = True
                break
    return found


def spd_inverse(a: np.ndarray) -> np.ndarray:
    """The inverse of a symmetric positive definite matrix (overwritten): potrf, then potri,
    returned in a's memory order.

    LAPACK works on Fortran-ordered memory: handed a C-ordered array, f2py copies it and returns
    a Fortran-ordered result, whose rows are strided (ml-1m: the rows' pruning afterwards took
    0.33 s instead of 0.15). A symmetric C-ordered `a` is its own transpose, a Fortran-ordered
    view of the same memory, so that view is factorized and inverted in place."""
    lapack_single_threaded()
    f = a.T if a.flags.c_contiguous and not a.flags.f_contiguous else a
    potrf, potri = scipy.linalg.lapack.get_lapack_funcs(("potrf", "potri"), (f,))
    c, info = potrf(f, lower=False, overwrite_a=True, clean=False)
    if info != 0:
        raise ValueError(f"the penalized Gram matrix is not positive definite (potrf {info})")
    p, info = potri(c, lower=False, overwrite_c=True)
    if info != 0:
        raise ValueError(f"cannot invert the penalized Gram matrix (potri {info})")
    _mirror_upper(p)  # potri fills the upper triangle
    return p.T if f is not a else p


def _mirror_upper(p: np.ndarray, block: int = 256) -> None:
    """Copy the upper triangle onto the lower one in place, a stripe at a time (fancy
    indexing over the whole triangle is several times slower)."""
    n = p.shape[0]
    for i in range(0, n, block):
        j = min(i + block, n)
        p[j:, i:j] = p[i:j, j:].T
        d = p[i:j, i:j]
        upper = np.triu(d)
        d[...] = upper + np.triu(d, 1).T


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


def lowpass_weights(interactions: sp.spmatrix, rank: int, dtype: type = np.float64) -> np.ndarray:
    """GF-CF's ideal low-pass filter D^-1/2 V V^T D^1/2 (zero diagonal), V spanning the top
    `rank` eigenvectors of the item-item matrix of D_u^-1/2 X D_i^-1/2 (binary X, D = degrees)."""
    return lowpass_rows(interactions, rank, dtype).T


def lowpass_rows(interactions: sp.spmatrix, rank: int, dtype: type = np.float64) -> np.ndarray:
    """lowpass_weights transposed, C-contiguous (row j: movie j's weights)."""
    x = _binary(interactions, dtype)
    user_degree = np.diff(x.indptr).astype(np.float64)
    item_degree = np.bincount(x.indices, minlength=x.shape[1]).astype(np.float64)
    user_degree[user_degree == 0] = 1.0
    item_degree[item_degree == 0] = 1.0
    x.data *= np.repeat(user_degree**-0.5, np.diff(x.indptr)).astype(dtype)
    x.data *= (item_degree**-0.5)[x.indices].astype(dtype)
    s = gram_matrix(x, dtype)
    v = top_eigenvectors(s, min(rank, x.shape[1]))
    sqrt_degree = np.sqrt(item_degree).astype(v.dtype)
    # Into the Gram matrix's memory, which the eigenvectors no longer need, where the dtypes
    # agree: one n x n matrix fewer to fault in (see learn_item_weights).
    out = s if s.dtype == v.dtype else None
    w = np.matmul(v * sqrt_degree[:, None], (v / sqrt_degree[:, None]).T, out=out)
    np.fill_diagonal(w, 0.0)
    return w


# Subspace iteration for the low-pass term: a block 1.5 times the rank, a few products with the
# matrix (BLAS), then Rayleigh-Ritz. A full `eigh` tridiagonalizes the whole matrix (1.9 s of
# the 6.3 s item model on ML-1M); this takes a small fraction of it. The block's edge is not
# exact (the 128th eigenvector mixes with its neighbours), which the filter does not feel:
# NDCG@10 on ML-1M's test part 0.2942 with the exact eigenvectors, 0.2944 with 6 iterations of
# a block of 256, 0.2944 with these 4 of 192 (3 iterations: 0.2933-0.2937).
SUBSPACE_ITERATIONS = 4
SUBSPACE_BLOCK = 1.5
SUBSPACE_SEED = 0


def _orthonormal(y: np.ndarray) -> np.ndarray:
    """An orthonormal basis of y's columns by Cholesky QR, twice (in float64): three matrix
    products and two small factorizations, where Householder QR makes hundreds of small BLAS
    calls (3-10x slower here, and far slower when another process holds a core)."""
    lapack_single_threaded()
    q = y.astype(np.float64)
    for _ in range(2):
        # q^T q = R^T R, then q R^-1: scipy's syrk (one thread) -- numpy's multithreaded
        # product of this thin shape took 0.1 s instead of 0.01 s when a core was busy.
        r, info = scipy.linalg.lapack.dpotrf(scipy.linalg.blas.dsyrk(1.0, q, trans=1),
                                             lower=False, clean=True)
        if info != 0:  # numerically rank-deficient block: Householder
            return scipy.linalg.qr(y, mode="economic", check_finite=False)[0]
        q = scipy.linalg.solve_triangular(r, q.T, trans="T", lower=False, check_finite=False).T
    return q.astype(y.dtype)


def top_eigenvectors(s: np.ndarray, rank: int, iterations: int = SUBSPACE_ITERATIONS,
                     seed: int = SUBSPACE_SEED) -> np.ndarray:
    """An orthonormal basis of (approximately) the top-`rank` eigenvectors of symmetric `s`,
    largest last, deterministic for a given seed."""
    n = s.shape[0]
    block = min(n, int(SUBSPACE_BLOCK * rank))
    if block >= n // 2:  # small matrices: the exact decomposition is cheap
        _, v = scipy.linalg.eigh(s, subset_by_index=[n - rank, n - 1], check_finite=False)
        return v
    s32 = s.astype(np.float32, copy=False)  # float32 products: twice as fast, ample for a filter
    q = np.random.default_rng(seed).standard_normal((n, block)).astype(np.float32)
    for _ in range(iterations):
        q = _orthonormal(s32 @ q)
    _, vectors = scipy.linalg.eigh((q.T @ (s32 @ q)).astype(np.float64), check_finite=False)
    return q @ vectors[:, -rank:].astype(np.float32)


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
    prune_m: int | None = None,
    dtype: type = np.float32,
) -> ItemWeights:
    """Learn the item model from a users x movies matrix whose values are star ratings (any
    positive value when `rating_weights` is None).

    l2: ridge penalty on the weighted Gram matrix's scale; dropout: EDLAE dropout probability p
    (penalty p/(1-p) * G_ii); user_norm: users weighted by |user|^-user_norm; lowpass_weight:
    weight of the low-pass term relative to the linear autoencoder (mean |w| ratio), 0 = none;
    top_m: keep only the m largest |w| of each movie's vector (None = all), the kept weights
    re-fitted (one small solve per movie); prune_m: keep the m weights of each movie's vector
    that matter most, without a refit (see prune_rows); dtype: the precision of the solve
    (float32: twice as fast, see zero_diagonal_solution).
    """
    if not 0.0 <= dropout < 1.0:
        raise ValueError("dropout must be in [0, 1)")
    # In `dtype` before the Gram matrix (which would make the same copy beside the float64
    # one): learning from 100M ratings, 0.28 GiB off its peak.
    x = sp.csr_matrix(weighted_interactions(interactions, rating_weights, user_norm), dtype=dtype)
    g = gram_matrix(x, dtype)
    del x
    diagonal = np.diag(g).astype(np.float64)
    penalty = l2 + dropout / (1.0 - dropout) * diagonal
    # Without a refit only G's diagonal is used from here on: G becomes the solution in place,
    # and dropping the low-pass term once added takes another n x n matrix off the peak. Each
    # n x n matrix (ml-1m: 39 MB) costs more than its arithmetic the first time a process
    # touches that much memory (the kernel finds it huge pages), so the learning makes as
    # few as it can: the solve in G's memory, the low-pass term in its own Gram matrix's, and
    # one scratch matrix for both |w| means and the pruning's key.
    refit = top_m is not None
    rows = zero_diagonal_rows(g, penalty, dtype, overwrite=not refit)  # row j: movie j's vector
    if not refit:
        del g
    low = None
    scratch = None  # both |w| means, then the pruning's key
    if lowpass_weight and lowpass_rank:
        low = lowpass_rows(interactions, lowpass_rank, dtype)
        scratch = np.empty_like(rows)
        rows_mean = np.abs(rows, out=scratch).mean()
        low *= lowpass_weight * rows_mean / max(np.abs(low, out=scratch).mean(), 1e-30)
        rows += low
        if not refit:
            low = None
    weights: np.ndarray | sp.spmatrix = rows.T
    if refit:
        scratch = None  # not held through the refit's solves
        weights = _refit_on_support(g, penalty, keep_top_per_column(rows.T, top_m).tocsc(),
                                    None if low is None else low.T)
    elif prune_m is not None:
        weights = prune_rows(rows, prune_m, np.sqrt(diagonal), scratch=scratch).T
    params = {
        "l2": l2,
        "dropout": dropout,
        "user_norm": user_norm,
        "lowpass_rank": lowpass_rank,
        "lowpass_weight": lowpass_weight,
        "rating_weights": {str(k): v for k, v in (rating_weights or {}).items()} or None,
        "top_m": top_m,
        "prune_m": prune_m,
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


def prune_rows(rows: np.ndarray, m: int, reach: np.ndarray,
               scratch: np.ndarray | None = None) -> sp.csr_matrix:
    """Each row (a movie's vector) cut to its m weights with the largest |w_i| * reach_i, the
    kept ones then shifted by one constant so that the row's sum of w_i * reach_i stays the same.

    reach_i = sqrt(G_ii), the root of movie i's weighted popularity: dropping w_i changes the
    movie's scores by w_i for every person who has movie i, a squared error of w_i^2 G_ii over
    the training people, so these are the weights whose loss costs least. The dropped weights
    are thousands of small ones, mostly of the low-pass term, whose sum is not small: the shift
    gives it back on average. ML-1M, NDCG@10 on test (all 3,123 movies of the evaluation's train
    part): 0.2944 with every weight; the top 768 by |w| alone 0.2924, with the shift 0.2943
    (512: 0.2936, 1,024: 0.2944). It costs 0.1 s; a refit on the support (top_m) minutes.
    scratch: an array of rows' shape and dtype to hold the key (overwritten), else one is made."""
    n = rows.shape[1]
    if m >= n:
        return sp.csr_matrix(rows)
    reach = np.asarray(reach, dtype=rows.dtype)
    if scratch is None:
        scratch = np.empty_like(rows)
    # Each row's m-th largest key, then a mask: a partition of values and no sort (the mask's
    # nonzeros come out in column order), about 3x faster than argpartition + sort. The
    # partition is made in place and the key computed again after it (one pass, where a
    # partitioned copy is one more n x n matrix).
    key = _key(rows, reach, scratch)
    key.partition(n - m, axis=1)
    kth = key[:, n - m, None].copy()
    keep = _key(rows, reach, key) >= kth
    del key, scratch  # freed here when made here
    keep &= rows != 0
    flat = np.flatnonzero(keep)
    del keep
    movie, columns = np.divmod(flat, n)
    counts = np.bincount(movie, minlength=rows.shape[0])
    indptr = np.concatenate([[0], np.cumsum(counts)])
    values = rows.ravel()[flat]
    kept_reach = reach[columns]
    kept = np.bincount(movie, weights=values * kept_reach, minlength=rows.shape[0])
    kept_reach = np.bincount(movie, weights=kept_reach, minlength=rows.shape[0])
    shift = (rows @ reach - kept) / np.maximum(kept_reach, np.finfo(rows.dtype).tiny)
    values += np.repeat(shift.astype(rows.dtype), counts)
    pruned = sp.csr_matrix((values, columns, indptr), shape=rows.shape)
    pruned.eliminate_zeros()
    return pruned


def _key(rows: np.ndarray, reach: np.ndarray, out: np.ndarray) -> np.ndarray:
    """|w_i| * reach_i of every weight, into `out`."""
    np.abs(rows, out=out)
    out *= reach[None, :]
    return out


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

# Learning is a dense solve over the movies (O(n^3)); past SERVED_MAX_MOVIES only the most liked
# are modelled (ml-1m: 3,123 movies qualify, all kept). Each movie's vector is cut to its
# SERVED_PRUNE_M weights that matter most (prune_rows): 4x fewer weights to write and to search
# than 3,123 each, for nearly the same NDCG (the served movies of the evaluation's train part,
# `bench.ml1m.item_model_quality`: 0.2943 with every weight, 0.2941 pruned to 1,024, 0.2938 to
# 768, 0.2931 to 640). 768 rather than 1,024: a quarter less to write (ml-1m's ingest -0.35 s)
# and to search (the default answer 5-11% faster), and new people's recall@20 unchanged within
# 0.003 at every k (`movierec evaluate --protocol new-people`). Past SERVED_SMALL_UP_TO movies
# each keeps SERVED_PRUNE_M_LARGE, a smaller share, so that searches stay fast on large
# catalogs. Pruning beats re-fitting the kept weights (learn_item_weights' top_m: one solve per
# movie, 40 s of the 95 s learning at 25M ratings) at the same budget: ml-1m, 512 weights,
# NDCG@10 0.2930 against 0.2919; 256, 0.2905 against 0.2886.
# A higher SERVED_MIN_LIKES learns faster (n^3) for the same NDCG on ml-1m, at a cost on small
# catalogs: 20 likes (ml-1m: 2,805 movies) learned in 1.47 s instead of 2.05, NDCG@10 0.2940
# against 0.2938, new people's recall@20 within 0.004 at every k (`movierec evaluate --protocol
# new-people`); but on ml-latest-small, where it drops far more of the movies, blend's lead over
# the item model at k = 50 went from 0.006 to none (0.452 each). Kept at 10.
SERVED_MAX_MOVIES = 6_000
SERVED_MIN_LIKES = 10
SERVED_SMALL_UP_TO = 4_000
SERVED_PRUNE_M = 768
SERVED_PRUNE_M_LARGE = 512


def served_movies(liked_movie_ids: np.ndarray) -> np.ndarray:
    """The movies the served model learns, sorted, given the movie of every liked rating: those
    with at least SERVED_MIN_LIKES, at most SERVED_MAX_MOVIES of them (the most liked)."""
    movie_ids, counts = np.unique(liked_movie_ids, return_counts=True)
    enough = counts >= SERVED_MIN_LIKES
    eligible = movie_ids[enough]
    if eligible.size > SERVED_MAX_MOVIES:
        popular = np.argsort(-counts[enough], kind="stable")[:SERVED_MAX_MOVIES]
        eligible = np.sort(eligible[popular])
    return eligible


def served_item_model(matrix: sp.spmatrix) -> ItemWeights:
    """The item model exactly as ingest serves it, from a users x movies matrix of liked star
    ratings over the served movies: the default settings, each vector pruned."""
    budget = SERVED_PRUNE_M if matrix.shape[1] <= SERVED_SMALL_UP_TO else SERVED_PRUNE_M_LARGE
    return learn_item_weights(matrix, **ITEM_MODEL_DEFAULTS, prune_m=budget)


def _ranks(ids: np.ndarray) -> tuple[int, np.ndarray]:
    """(the number of distinct ids, each id's rank among them): np.unique's count and inverse.
    Ids below their count (MovieLens users, who each rate many movies) are ranked through a
    table indexed by id, 5 bytes an id, where np.unique holds five int64 copies of its input at
    once (learning from 100M ratings: 0.24 GiB off its peak)."""
    if ids.size and ids.min() >= 0 and ids.max() < min(ids.size, 2**31 - 1):
        present = np.zeros(int(ids.max()) + 1, dtype=bool)
        present[ids] = True
        rank = np.cumsum(present, dtype=np.int32)
        rank -= 1
        return int(rank[-1]) + 1, rank[ids]
    distinct, inverse = np.unique(ids, return_inverse=True)
    return distinct.size, inverse


def ingest_item_vectors(dataset, stats=None) -> tuple[dict[str, Any], dict[str, list]]:
    """Learn the item model from every liked rating (schema.LIKED_STARS and up); return (params,
    {schema.ITEM_VECTOR: one SparseVector or None per movie of `dataset.movies`, in its order}).
    Movies outside the model get None."""
    liked = dataset.ratings >= LIKED_STARS
    eligible = served_movies(dataset.movie_ids[liked])
    # One mask over the ratings, and only the kept ones copied, each copy dropped once it is in
    # the matrix: copies of every liked rating's ids and stars, then int64 rows and columns,
    # had stayed alive through the whole learning, whose Gram matrices were the 100M ingest's
    # peak (with _ranks and the float32 matrix of learn_item_weights: 9.70 -> 6.67 GiB).
    keep = liked & np.isin(dataset.movie_ids, eligible)
    del liked
    n_users, rows = _ranks(dataset.user_ids[keep])
    # Each kept rating's column by one lookup in a table by movie id (vectors.IdPositions): a
    # binary search of ml-1m's 834k unsorted liked ids took 50 ms, this under 1 ms.
    cols = IdPositions(eligible, np.int32)(dataset.movie_ids[keep])
    matrix = sp.csr_matrix((dataset.ratings[keep], (rows, cols)), shape=(n_users, eligible.size))
    del keep, rows, cols
    model = served_item_model(matrix)
    by_movie = {
        movie: SparseVector(indices, values)
        for movie, indices, values in model.movie_vectors(eligible)
        if indices.size
    }
    params = dict(model.params, movies=int(eligible.size), min_likes=SERVED_MIN_LIKES,
                  liked_stars=LIKED_STARS)
    ordered = [by_movie.get(m) for m in dataset.movies["movie_id"].to_numpy().tolist()]
    return params, {schema.ITEM_VECTOR: ordered}
