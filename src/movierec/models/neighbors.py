"""User-based filtering's two halves, in numpy: the most similar users (one sparse Qdrant query,
in a canonical order on every store), and their ratings aggregated into movie scores."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from movierec import schema
from movierec.models.base import Recommendation
from movierec.store import MovieFilter, Neighbor, StoreReader
from movierec.store.base import NeighborBlock
from movierec.vectors import RatingStats, SparseVector, ranges

MAX_NEIGHBORS = 1_000
MAX_TIE_FETCH = 4_000
# While the movie id range is at most this many times the ratings summed, aggregate by id.
DENSE_RANGE_FACTOR = 64


def similar_users(
    store: StoreReader,
    query: SparseVector,
    neighbors: int,
    exclude_user: int | None = None,
    using: str = schema.RATINGS_VECTOR,
) -> list[Neighbor]:
    """The top `neighbors` users by dot product, in a canonical order (see `nearest`), as one
    Neighbor each."""
    block, rows, exact = nearest(store, query, neighbors, exclude_user, using)
    return block.neighbors(rows.tolist(), exact) if rows.size else []


def nearest(
    store: StoreReader,
    query: SparseVector,
    neighbors: int,
    exclude_user: int | None = None,
    using: str = schema.RATINGS_VECTOR,
) -> tuple[NeighborBlock, np.ndarray, np.ndarray]:
    """The top `neighbors` users by dot product, in a canonical order, as arrays: the block of
    users searched, the neighbours' rows of it (best first) and every row's exact score.

    Equal dot products are common (few query movies, five rating values), and engines order
    ties differently; so a few extra users are fetched, each similarity is recomputed exactly
    in float64 from the vector that was searched, and ties go to the lower user id. That makes
    the answer identical on every store (embedded, server, local mode).

    When even the last user fetched may tie with the last neighbour, a second search asks the
    engine for everyone who can (a score threshold just under the boundary, at most
    MAX_TIE_FETCH users): a one-movie query ties thousands of users, and this costs one more
    search where growing the limit cost up to four. The users stay one block of arrays.
    """
    threshold = None
    if using == schema.LIKED_VECTOR:
        threshold = store.meta().rating_stats.z_at_least(schema.LIKED_STARS)
    fetch = neighbors + max(5, neighbors // 4)
    block = store.similar_users_block(query, fetch, exclude_user, using=using)
    if not len(block):
        return block, np.zeros(0, dtype=np.int64), np.zeros(0)
    exact = _exact_scores(query, block, threshold)
    order = np.lexsort((block.user_ids, -exact))
    if len(block) >= fetch and len(block) > neighbors:
        # Every user tied with the last neighbour must be among those fetched; the engine's
        # float32 scores are within ~1e-6 of the exact ones, so a margin below proves it.
        boundary = exact[order[neighbors - 1]]
        floor = boundary - 2e-5 * max(1.0, abs(boundary))
        if not block.scores.min() < floor:
            block = store.similar_users_block(query, MAX_TIE_FETCH, exclude_user, using=using,
                                              score_threshold=floor)
            exact = _exact_scores(query, block, threshold)
            order = np.lexsort((block.user_ids, -exact))
    return block, order[:neighbors], exact


def _exact_scores(query: SparseVector, block: NeighborBlock, threshold: float | None):
    """Dot products recomputed in float64 from the searched vectors, for every user of the
    block; each row's terms are summed in movie order, so equal inputs give equal sums.
    `threshold`: against the liked vectors (liked movies at 1/sqrt(how many) of the row)."""
    if threshold is not None and block.liked is not None:
        exact = _exact_liked_scores(query, block)
        if exact is not None:
            return exact
    lengths = block.stops - block.starts
    # Gathering the rows costs a step per rating; searching them ~16 per (row, query movie).
    if threshold is None and len(block) * query.indices.size * 16 < int(lengths.sum()):
        return _exact_scores_searched(query, block)
    row = np.repeat(np.arange(len(block)), lengths)
    at = ranges(block.starts, block.stops)
    indices = block.indices[at]
    values = block.values[at].astype(np.float64)
    if threshold is not None:
        liked = values >= threshold
        scale = _liked_scale(np.bincount(row, weights=liked, minlength=len(block)))
        values = np.where(liked, scale[row], 0.0)
    return np.bincount(row, weights=query_values_at(query, indices) * values,
                       minlength=len(block))


def _exact_liked_scores(query: SparseVector, block: NeighborBlock) -> np.ndarray | None:
    """The same against the liked vectors without reading the rows, for a query whose values
    share one magnitude q (unit-length likes and dislikes, as user-knn and blend ask): a row
    holds 1/sqrt(its liked count) at each liked movie, so its score is an integer n (the query's
    likes it liked, less its dislikes) times q/sqrt(liked). n is read off the engine's score
    (float32, within ~1e-6) and the score rebuilt as n * (q * scale) in float64; None (read the
    rows) when the query's magnitudes differ or a score is not within 0.05 of such a product."""
    magnitude = np.abs(query.values)
    if not magnitude.size or magnitude.min() != magnitude.max() or not magnitude[0] > 0:
        return None
    unit = float(magnitude[0]) * _liked_scale(block.liked)
    ratio = block.scores / unit
    count = np.rint(ratio)
    if np.abs(ratio - count).max(initial=0.0) > 0.05:
        return None
    return count * unit


def _liked_scale(liked_counts: np.ndarray) -> np.ndarray:
    """Each row's value in the liked vectors, 1/sqrt(its liked count), as vectors.liked_vectors
    stored it: computed in float64, kept as float32 (returned as float64)."""
    return (1.0 / np.sqrt(np.maximum(liked_counts, 1))).astype(np.float32).astype(np.float64)


def query_values_at(query: SparseVector, indices: np.ndarray) -> np.ndarray:
    """The query's value at each of `indices` (0 where it has none), in float64: one lookup in
    a table by movie id while that table is small next to `indices`, else a binary search.

    The table costs about its size (movie ids up to the query's largest), the search about
    `indices` times the log of the query's size: at ml-1m's 3,953 ids the search is faster up
    to a few hundred indices (a block of a few light raters: 100 ratings, 12 us against 14),
    the table past them (a neighbour block's thousands of ratings: 1,000, 23 us against 32)."""
    if not query.indices.size:
        return np.zeros(indices.size)
    top = int(query.indices[-1]) + 1
    if top <= 16 * indices.size:
        table = np.zeros(top)
        table[query.indices] = query.values
        return np.where(indices < top, table[np.minimum(indices, top - 1)], 0.0)
    pos = np.minimum(np.searchsorted(query.indices, indices), query.indices.size - 1)
    return np.where(query.indices[pos] == indices, query.values[pos].astype(np.float64), 0.0)


def _exact_scores_searched(query: SparseVector, block: NeighborBlock):
    """The same for a block of long rows (a tie-heavy search: thousands of users, hundreds of
    ratings each): each query movie found in each row by a binary search over the row's range,
    vectorized over rows x query movies, so the rows are never gathered. Summed in movie order
    with zeros for misses, as the bincount over each row's entries adds them: the same bits."""
    q = query.indices.astype(np.int64)
    lo = np.repeat(block.starts, q.size)
    hi = np.repeat(block.stops, q.size)
    end = hi.copy()
    target = np.tile(q, len(block))
    indices, last = block.indices, block.indices.size - 1
    while True:
        open_ = lo < hi
        if not open_.any():
            break
        mid = (lo + hi) >> 1
        below = indices[np.minimum(mid, last)] < target
        lo = np.where(open_ & below, mid + 1, lo)
        hi = np.where(open_ & ~below, mid, hi)
    at = np.minimum(lo, last)
    hit = (lo < end) & (indices[at] == target)
    terms = np.where(hit, block.values[at].astype(np.float64), 0.0).reshape(len(block), q.size)
    terms *= query.values.astype(np.float64)
    total = np.zeros(len(block))
    for j in range(q.size):
        total += terms[:, j]
    return total


@dataclass
class Candidates:
    """Every movie some neighbour rated, with its score and what the explanation needs."""

    movies: np.ndarray  # int64 movie ids, sorted
    scores: np.ndarray  # float64
    raters: np.ndarray  # how many neighbours rated each
    z_sum: np.ndarray  # sum of those neighbours' z-scored ratings


def aggregate(block: NeighborBlock, rows: np.ndarray, weights: np.ndarray | None = None,
              threshold: float | None = None) -> Candidates:
    """Per movie: the summed z-scores of the neighbours (`rows` of the block, in that order:
    the tutorial's score) and how many rated it; with `weights` (one per row; user-knn), the
    score is instead the sum of the weights of the neighbours who liked it (z-score >=
    threshold)."""
    starts, stops = block.starts[rows], block.stops[rows]
    at = ranges(starts, stops)
    indices = block.indices[at].astype(np.int64)
    values = block.values[at].astype(np.float64)
    top = int(indices.max()) + 1 if indices.size else 0
    if indices.size and top <= DENSE_RANGE_FACTOR * indices.size:
        # Movie ids are dense (ml-1m: 3,952 for 3,706 movies): one bincount by id, no sort.
        counts = np.bincount(indices, minlength=top)
        movies = np.flatnonzero(counts)
        raters = counts[movies]
        z_sum = np.bincount(indices, weights=values, minlength=top)[movies]
        slot, size = indices, top
    else:
        movies, slot = np.unique(indices, return_inverse=True)
        raters = np.bincount(slot, minlength=movies.size)
        z_sum = np.bincount(slot, weights=values, minlength=movies.size)
        size = movies.size
    if weights is None:
        return Candidates(movies, z_sum, raters, z_sum)
    per_rating = np.repeat(weights, stops - starts)
    liked = np.where(values >= threshold, per_rating, 0.0)
    scores = np.bincount(slot, weights=liked, minlength=size)
    if size != movies.size:
        scores = scores[movies]
    return Candidates(movies, scores, raters, z_sum)


def movie_scores(
    neighbors: list[Neighbor], exclude: np.ndarray, limit: int
) -> tuple[np.ndarray, np.ndarray]:
    """The tutorial's scores: sum of the neighbours' normalized ratings per movie, excluded
    movies removed, top `limit`; ties broken by movie id, so every store gives the same order."""
    if not neighbors:
        return np.empty(0, dtype=np.int64), np.empty(0)
    block = NeighborBlock.of([n.user_id for n in neighbors], [n.score for n in neighbors],
                             [n.vector for n in neighbors])
    c = aggregate(block, np.arange(len(block)))
    keep = ~np.isin(c.movies, exclude)
    movies, scores = c.movies[keep], c.scores[keep]
    top = np.lexsort((movies, -scores))[:limit]
    return movies[top], scores[top]


def _stars(z: float, stats: RatingStats) -> float:
    return round(float(z * stats.std + stats.mean), 2)


def recommendations(store: StoreReader, found: int, c: Candidates,
                    excluded: np.ndarray, limit: int, movie_filter: MovieFilter,
                    positive_only: bool = False) -> list[Recommendation]:
    """The best `limit` candidates not excluded and passing the filters (ties by movie id), each
    explained by how many of the neighbours rated it and how."""
    stats = store.meta().rating_stats
    catalog = store.catalog()
    keep = ~np.isin(c.movies, excluded)
    if movie_filter.filters_movies:
        keep &= catalog.allowed(c.movies, movie_filter.genres, movie_filter.year_min,
                                movie_filter.year_max)
    if positive_only:
        keep &= c.scores > 0
    idx = np.flatnonzero(keep)
    best = idx[np.lexsort((c.movies[idx], -c.scores[idx]))[:limit]]
    out = []
    for k in best.tolist():
        movie = catalog.get(int(c.movies[k]))
        if movie is None:
            continue
        raters = int(c.raters[k])
        mean = _stars(c.z_sum[k] / raters, stats)
        why = {
            "text": f"rated by {raters} of your {found} most similar users, "
                    f"{mean:g} stars on average",
            "neighbors": raters,
            "mean_rating": mean,
        }
        out.append(Recommendation(movie, float(c.scores[k]), why))
    return out
