"""Neighbours -> scores: the tutorial's user-based collaborative filtering, in numpy.

A person's ratings become a sparse query; Qdrant returns the most similar users with their
rating vectors; each movie the person has not rated scores the sum of those users' ratings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from movierec.catalog import Movie
from movierec.errors import NotFoundError, QueryError
from movierec.store import Neighbor, StoreReader
from movierec.vectors import RatingStats, SparseVector, query_vector

MAX_RATINGS = 1_000
MAX_LIMIT = 100
MAX_NEIGHBORS = 1_000


@dataclass(frozen=True)
class Recommendation:
    movie: Movie
    score: float

    def to_dict(self) -> dict:
        m = self.movie
        return {"movie_id": m.movie_id, "title": m.title, "genres": list(m.genres),
                "year": m.year, "score": self.score}


@dataclass(frozen=True)
class Answer:
    model: str
    neighbors: int
    items: list[Recommendation]


def tutorial_query(likes, dislikes) -> dict[int, float]:
    """The tutorial's query: +1 for each liked movie, -1 for each disliked one."""
    likes, dislikes = [int(m) for m in likes], [int(m) for m in dislikes]
    both = sorted(set(likes) & set(dislikes))
    if both:
        raise QueryError(f"movie {both[0]} is both liked and disliked")
    ratings = {m: 1.0 for m in likes}
    ratings.update({m: -1.0 for m in dislikes})
    return ratings


def validate_ratings(store: StoreReader, ratings: dict[int, float], scale: str) -> SparseVector:
    """Check a person's ratings against the catalog and turn them into the query vector."""
    if not ratings:
        raise QueryError("ratings are empty: rate at least one movie")
    if len(ratings) > MAX_RATINGS:
        raise QueryError(f"too many ratings: {len(ratings)} (at most {MAX_RATINGS})")
    unknown = store.catalog().unknown(ratings.keys())
    if unknown:
        shown = ", ".join(str(m) for m in unknown[:10])
        more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
        raise QueryError(f"unknown movie id{'s' if len(unknown) > 1 else ''}: {shown}{more}")
    if scale == "stars":
        bad = [m for m, r in ratings.items() if not 0.5 <= r <= 5]
        if bad:
            raise QueryError(f"movie {bad[0]}: star ratings must be between 0.5 and 5")
        stats = RatingStats(**store.meta()["rating_stats"])
        ratings = {m: float(stats.normalize(np.array(r))) for m, r in ratings.items()}
    elif scale != "unit":
        raise QueryError(f"unknown scale {scale!r}: use 'unit' (like +1 / dislike -1) or 'stars'")
    return query_vector(ratings)


def _check_sizes(limit: int, neighbors: int) -> None:
    if not 1 <= limit <= MAX_LIMIT:
        raise QueryError(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
    if not 1 <= neighbors <= MAX_NEIGHBORS:
        raise QueryError(f"neighbors must be between 1 and {MAX_NEIGHBORS}, got {neighbors}")


def similar_users(
    store: StoreReader, query: SparseVector, neighbors: int, exclude_user: int | None = None
) -> list[Neighbor]:
    """The top `neighbors` users by dot product, in a canonical order.

    Equal dot products are common (few query movies, five rating values), and engines order
    ties differently; so a few extra users are fetched, each similarity is recomputed exactly
    in float64 from the returned vectors, and ties go to the lower user id. That makes the
    answer identical on every store (embedded, server, local mode).
    """
    fetch = neighbors + max(5, neighbors // 4)
    while True:
        fetched = store.similar_users(query, fetch, exclude_user)
        if not fetched:
            return []
        exact = _exact_scores(query, fetched)
        ids = np.array([n.user_id for n in fetched])
        order = np.lexsort((ids, -exact))
        if len(fetched) < fetch or len(fetched) <= neighbors or fetch >= MAX_TIE_FETCH:
            break
        # Every user tied with the last neighbour must be among those fetched; the engine's
        # float32 scores are within ~1e-6 of the exact ones, so a margin below proves it.
        boundary = exact[order[neighbors - 1]]
        lowest = min(p.score for p in fetched)
        if lowest < boundary - 2e-5 * max(1.0, abs(boundary)):
            break
        fetch = min(fetch * 4, MAX_TIE_FETCH)
    return [Neighbor(fetched[k].user_id, float(exact[k]), fetched[k].vector)
            for k in order[:neighbors]]


MAX_TIE_FETCH = 4_000


def _exact_scores(query: SparseVector, fetched: list[Neighbor]) -> np.ndarray:
    """Dot products recomputed in float64, summed in index order: equal inputs, equal sums."""
    q_idx = query.indices
    q_val = query.values.astype(np.float64)
    exact = np.empty(len(fetched))
    for k, n in enumerate(fetched):
        common, qi, ni = np.intersect1d(q_idx, n.vector.indices, assume_unique=True,
                                        return_indices=True)
        exact[k] = np.dot(q_val[qi], n.vector.values[ni].astype(np.float64)) if common.size else 0.0
    return exact


def movie_scores(
    neighbors: list[Neighbor], exclude: np.ndarray, limit: int
) -> tuple[np.ndarray, np.ndarray]:
    """Sum of the neighbours' normalized ratings per movie, minus excluded movies; top `limit`.

    Ties are broken by movie id, so the order is the same on every store.
    """
    if not neighbors:
        return np.empty(0, dtype=np.int64), np.empty(0)
    indices = np.concatenate([n.vector.indices for n in neighbors]).astype(np.int64)
    values = np.concatenate([n.vector.values for n in neighbors]).astype(np.float64)
    movies, slot = np.unique(indices, return_inverse=True)
    scores = np.bincount(slot, weights=values, minlength=movies.size)
    keep = ~np.isin(movies, exclude)
    movies, scores = movies[keep], scores[keep]
    top = np.lexsort((movies, -scores))[:limit]
    return movies[top], scores[top]


def recommend(
    store: StoreReader,
    ratings: dict[int, float],
    limit: int = 5,
    neighbors: int = 20,
    scale: str = "unit",
) -> Answer:
    """Tutorial mode: top `neighbors` similar users, plain sum of their ratings."""
    _check_sizes(limit, neighbors)
    query = validate_ratings(store, ratings, scale)
    found = similar_users(store, query, neighbors)
    movie_ids, scores = movie_scores(found, query.indices.astype(np.int64), limit)
    return Answer("tutorial", len(found), _titled(store, movie_ids, scores))


def recommend_for_user(
    store: StoreReader, user_id: int, limit: int = 5, neighbors: int = 20
) -> Answer:
    """For an existing user: their own vector is the query; they are not their own neighbour."""
    _check_sizes(limit, neighbors)
    vector = store.user_vector(user_id)
    if vector is None:
        raise NotFoundError(f"no user {user_id} in the dataset")
    found = similar_users(store, vector, neighbors, exclude_user=user_id)
    movie_ids, scores = movie_scores(found, vector.indices.astype(np.int64), limit)
    return Answer("tutorial", len(found), _titled(store, movie_ids, scores))


def _titled(store: StoreReader, movie_ids: np.ndarray, scores: np.ndarray) -> list[Recommendation]:
    catalog = store.catalog()
    by_id = {m.movie_id: m for m in catalog.take(movie_ids)}
    return [
        Recommendation(by_id[m], float(s))
        for m, s in zip(movie_ids.tolist(), scores.tolist())
        if m in by_id
    ]
