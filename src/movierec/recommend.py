"""Neighbours -> scores, in numpy: the tutorial's user-based filtering, a tuned user-kNN, and
the learned item model, all served from Qdrant.

- tutorial: a person's ratings become a sparse query; Qdrant returns the most similar users
  (dot product of z-scored ratings) with their rating vectors; each movie the person has not
  rated scores the plain sum of those users' normalized ratings. Kept exact.
- user-knn: the same, on unit-length "liked" vectors (cosine similarity), more neighbours, and
  each neighbour's liked movies weighted by similarity^power.
- item: each movie carries a learned sparse vector of item-item weights; the person's movies
  form the query, so one sparse query (with the person's movies and the genre/year filters in
  it) returns the recommended movies directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from movierec import schema
from movierec.catalog import Movie, MovieCatalog
from movierec.errors import NotFoundError, QueryError
from movierec.itemmodel import query_weight
from movierec.store import MovieFilter, Neighbor, StoreReader
from movierec.vectors import RatingStats, SparseVector, query_vector

MAX_RATINGS = 1_000
MAX_LIMIT = 100
MAX_NEIGHBORS = 1_000
MAX_TIE_FETCH = 4_000
# While the movie id range is at most this many times the ratings summed, aggregate by id.
DENSE_RANGE_FACTOR = 64

# user-knn: cosine on liked movies, chosen on ML-1M's validation split (movierec evaluate).
USER_KNN_NEIGHBORS = 100
USER_KNN_POWER = 2.0

MODELS = {
    "item": "a learned item-item model (EASE family: dropout-regularized linear autoencoder "
    "with a low-pass term), one sparse query against the movies' vectors",
    "user-knn": "user kNN: cosine similarity of liked movies, 100 neighbours, "
    "similarity-squared weights",
    "tutorial": "the tutorial: z-scored ratings, dot product, 20 neighbours, plain sum",
}


@dataclass(frozen=True)
class Recommendation:
    movie: Movie
    score: float
    why: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        m = self.movie
        return {"movie_id": m.movie_id, "title": m.title, "genres": list(m.genres),
                "year": m.year, "score": self.score, "why": self.why}


@dataclass(frozen=True)
class Answer:
    model: str
    neighbors: int
    items: list[Recommendation]


def available_models(store: StoreReader) -> list[str]:
    """The models the live data supports, best first (the item model needs its vectors)."""
    learned = store.meta().get("models", {})
    return [m for m in MODELS if m in learned or m == "tutorial"]


def default_model(store: StoreReader) -> str:
    return available_models(store)[0]


def tutorial_query(likes, dislikes) -> dict[int, float]:
    """The tutorial's query: +1 for each liked movie, -1 for each disliked one."""
    likes, dislikes = [int(m) for m in likes], [int(m) for m in dislikes]
    both = sorted(set(likes) & set(dislikes))
    if both:
        raise QueryError(f"movie {both[0]} is both liked and disliked")
    ratings = {m: 1.0 for m in likes}
    ratings.update({m: -1.0 for m in dislikes})
    return ratings


def _check_ratings(store: StoreReader, ratings: dict[int, float], scale: str) -> None:
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
    elif scale != "unit":
        raise QueryError(f"unknown scale {scale!r}: use 'unit' (like +1 / dislike -1) or 'stars'")


def validate_ratings(store: StoreReader, ratings: dict[int, float], scale: str) -> SparseVector:
    """Check a person's ratings against the catalog and turn them into the tutorial's query."""
    _check_ratings(store, ratings, scale)
    if scale == "stars":
        stats = RatingStats(**store.meta()["rating_stats"])
        ratings = {m: float(stats.normalize(np.array(r))) for m, r in ratings.items()}
    return query_vector(ratings)


def _liked_query(ratings: dict[int, float], scale: str) -> SparseVector:
    """user-knn's query: liked movies positive, disliked negative, scaled to unit length."""
    if scale == "stars":
        signed = {m: (1.0 if r >= schema.LIKED_STARS else -1.0) for m, r in ratings.items()}
    else:
        signed = {m: float(r) for m, r in ratings.items() if r != 0}
    if not signed:
        raise QueryError("ratings are all 0: like (+1) or dislike (-1) at least one movie")
    vector = query_vector(signed)
    norm = float(np.sqrt(np.sum(vector.values.astype(np.float64) ** 2)))
    return SparseVector(vector.indices, (vector.values / norm).astype(np.float32))


def _check_sizes(limit: int, neighbors: int) -> None:
    if not 1 <= limit <= MAX_LIMIT:
        raise QueryError(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
    if not 1 <= neighbors <= MAX_NEIGHBORS:
        raise QueryError(f"neighbors must be between 1 and {MAX_NEIGHBORS}, got {neighbors}")


# ---------------------------------------------------------------------------------------------
# Neighbours


def _liked_threshold(store: StoreReader) -> float:
    stats = RatingStats(**store.meta()["rating_stats"])
    return (schema.LIKED_STARS - stats.mean) / stats.std - 1e-6


def similar_users(
    store: StoreReader,
    query: SparseVector,
    neighbors: int,
    exclude_user: int | None = None,
    using: str = schema.RATINGS_VECTOR,
) -> list[Neighbor]:
    """The top `neighbors` users by dot product, in a canonical order.

    Equal dot products are common (few query movies, five rating values), and engines order
    ties differently; so a few extra users are fetched, each similarity is recomputed exactly
    in float64 from the vector that was searched, and ties go to the lower user id. That makes
    the answer identical on every store (embedded, server, local mode).
    """
    threshold = _liked_threshold(store) if using == schema.LIKED_VECTOR else None
    fetch = neighbors + max(5, neighbors // 4)
    while True:
        fetched = store.similar_users(query, fetch, exclude_user, using=using)
        if not fetched:
            return []
        exact = _exact_scores(query, fetched, threshold)
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


def _exact_scores(query: SparseVector, fetched: list[Neighbor], threshold: float | None):
    """Dot products recomputed in float64 from the searched vectors, vectorized over all the
    neighbours; each row sums its terms in index order, so equal inputs give equal sums."""
    lengths = np.array([len(n.vector) for n in fetched])
    indices = np.concatenate([n.vector.indices for n in fetched])
    values = np.concatenate([n.vector.values for n in fetched]).astype(np.float64)
    row = np.repeat(np.arange(len(fetched)), lengths)
    if threshold is not None:  # the liked vector: liked movies at 1/sqrt(how many)
        liked = values >= threshold
        per_row = np.bincount(row, weights=liked, minlength=len(fetched))
        # As vectors.liked_vectors stored them: computed in float64, kept as float32.
        scale = (1.0 / np.sqrt(np.maximum(per_row, 1))).astype(np.float32).astype(np.float64)
        values = np.where(liked, scale[row], 0.0)
    pos = np.minimum(np.searchsorted(query.indices, indices), query.indices.size - 1)
    hit = query.indices[pos] == indices
    terms = np.where(hit, query.values[pos].astype(np.float64) * values, 0.0)
    return np.bincount(row, weights=terms, minlength=len(fetched))


# ---------------------------------------------------------------------------------------------
# Aggregation


@dataclass
class _Candidates:
    movies: np.ndarray  # int64 movie ids, sorted
    scores: np.ndarray  # float64
    raters: np.ndarray  # how many neighbours rated each
    z_sum: np.ndarray  # sum of those neighbours' z-scored ratings


def _aggregate(neighbors: list[Neighbor], weights: np.ndarray | None = None,
               threshold: float | None = None) -> _Candidates:
    """Per movie: the neighbours' summed z-scores (the tutorial's score) and how many rated it;
    with `weights` (user-knn), the score is instead the sum of the weights of the neighbours
    who liked it (z-score >= threshold)."""
    indices = np.concatenate([n.vector.indices for n in neighbors]).astype(np.int64)
    values = np.concatenate([n.vector.values for n in neighbors]).astype(np.float64)
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
        return _Candidates(movies, z_sum, raters, z_sum)
    per_rating = np.repeat(weights, [len(n.vector) for n in neighbors])
    liked = np.where(values >= threshold, per_rating, 0.0)
    scores = np.bincount(slot, weights=liked, minlength=size)
    if size != movies.size:
        scores = scores[movies]
    return _Candidates(movies, scores, raters, z_sum)


def movie_scores(
    neighbors: list[Neighbor], exclude: np.ndarray, limit: int
) -> tuple[np.ndarray, np.ndarray]:
    """The tutorial's scores: sum of the neighbours' normalized ratings per movie, excluded
    movies removed, top `limit`; ties broken by movie id, so every store gives the same order."""
    if not neighbors:
        return np.empty(0, dtype=np.int64), np.empty(0)
    c = _aggregate(neighbors, None, None)
    keep = ~np.isin(c.movies, exclude)
    movies, scores = c.movies[keep], c.scores[keep]
    top = np.lexsort((movies, -scores))[:limit]
    return movies[top], scores[top]


def _stars(z: float, stats: RatingStats) -> float:
    return round(float(z * stats.std + stats.mean), 2)


# ---------------------------------------------------------------------------------------------
# The models


def recommend(
    store: StoreReader,
    ratings: dict[int, float],
    limit: int = 5,
    neighbors: int | None = None,
    scale: str = "unit",
    model: str | None = None,
    movie_filter: MovieFilter | None = None,
    exclude: tuple[int, ...] = (),
    knn_power: float | None = None,
    exclude_user: int | None = None,
) -> Answer:
    """Recommendations for a person's ratings with `model` (default: the best available).

    knn_power: user-knn's similarity exponent (default USER_KNN_POWER); exclude_user: a user
    who may not be a neighbour (the evaluation's own user, whose train ratings are stored)."""
    model = model or default_model(store)
    if model not in MODELS:
        raise QueryError(f"unknown model {model!r}: choose one of {', '.join(MODELS)}")
    if model not in available_models(store):
        raise QueryError(f"model {model!r} is not in the live data: ingest without "
                         "--no-item-model to learn it")
    movie_filter = movie_filter or MovieFilter()
    if neighbors is None:
        neighbors = {"tutorial": 20, "user-knn": USER_KNN_NEIGHBORS}.get(model, 1)
    _check_sizes(limit, neighbors)
    if model == "item":
        _check_ratings(store, ratings, scale)
        return _recommend_item(store, ratings, scale, limit, movie_filter, exclude)
    if model == "user-knn":
        _check_ratings(store, ratings, scale)
        query = _liked_query(ratings, scale)
        using = schema.LIKED_VECTOR
    else:
        query = validate_ratings(store, ratings, scale)
        using = schema.RATINGS_VECTOR
    found = similar_users(store, query, neighbors, exclude_user, using=using)
    excluded = np.union1d(query.indices.astype(np.int64), np.asarray(exclude, dtype=np.int64))
    return Answer(model, len(found),
                  _from_neighbors(store, model, found, excluded, limit, movie_filter, knn_power))


def recommend_for_user(
    store: StoreReader, user_id: int, limit: int = 5, neighbors: int | None = None,
    model: str | None = None, movie_filter: MovieFilter | None = None,
) -> Answer:
    """For an existing user: their own ratings are the query; they are not their own neighbour."""
    model = model or "tutorial"
    if model not in MODELS:
        raise QueryError(f"unknown model {model!r}: choose one of {', '.join(MODELS)}")
    if model not in available_models(store):
        raise QueryError(f"model {model!r} is not in the live data: ingest without "
                         "--no-item-model to learn it")
    if model != "tutorial":
        vector = store.user_vector(user_id)
        if vector is None:
            raise NotFoundError(f"no user {user_id} in the dataset")
        stats = RatingStats(**store.meta()["rating_stats"])
        stars = np.clip(vector.values.astype(np.float64) * stats.std + stats.mean, 0.5, 5.0)
        ratings = dict(zip(vector.indices.tolist(), np.round(stars * 2) / 2))
        if model == "item":
            _check_sizes(limit, 1)
            return _recommend_item(store, ratings, "stars", limit, movie_filter or MovieFilter(),
                                   ())
        query = _liked_query(ratings, "stars")
        found = similar_users(store, query, neighbors or USER_KNN_NEIGHBORS, exclude_user=user_id,
                              using=schema.LIKED_VECTOR)
        return Answer(model, len(found), _from_neighbors(
            store, model, found, vector.indices.astype(np.int64), limit,
            movie_filter or MovieFilter()))
    neighbors = neighbors or 20
    _check_sizes(limit, neighbors)
    vector = store.user_vector(user_id)
    if vector is None:
        raise NotFoundError(f"no user {user_id} in the dataset")
    found = similar_users(store, vector, neighbors, exclude_user=user_id)
    return Answer("tutorial", len(found), _from_neighbors(
        store, "tutorial", found, vector.indices.astype(np.int64), limit,
        movie_filter or MovieFilter()))


def _from_neighbors(store, model, found, excluded, limit, movie_filter,
                    knn_power=None) -> list[Recommendation]:
    if not found:
        return []
    stats = RatingStats(**store.meta()["rating_stats"])
    if model == "user-knn":
        similarity = np.maximum(np.array([n.score for n in found]), 0.0)
        power = USER_KNN_POWER if knn_power is None else float(knn_power)
        c = _aggregate(found, similarity ** power, _liked_threshold(store))
    else:
        c = _aggregate(found, None, None)
    catalog = store.catalog()
    keep = ~np.isin(c.movies, excluded)
    if movie_filter.genres or movie_filter.year_min is not None or movie_filter.year_max is not None:
        keep &= catalog.allowed(c.movies, movie_filter.genres, movie_filter.year_min,
                                movie_filter.year_max)
    if model == "user-knn":
        keep &= c.scores > 0  # only movies some neighbour liked
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
            "text": f"rated by {raters} of your {len(found)} most similar users, "
                    f"{mean:g} stars on average",
            "neighbors": raters,
            "mean_rating": mean,
        }
        out.append(Recommendation(movie, float(c.scores[k]), why))
    return out


def _recommend_item(store, ratings, scale, limit, movie_filter, exclude) -> Answer:
    params = store.meta()["models"]["item"]
    weights = params.get("rating_weights")
    movie_ids = sorted(ratings)
    values = [query_weight(ratings[m], scale, weights) for m in movie_ids]
    try:
        query = SparseVector.checked(movie_ids, values)
    except ValueError as exc:
        raise QueryError(f"invalid ratings: {exc}") from None
    rated = tuple(sorted(set(movie_ids) | {int(m) for m in exclude}))
    if movie_filter.genres or movie_filter.year_min is not None or movie_filter.year_max is not None:
        # Genre/year filters and the person's movies, all in the one Qdrant query.
        search = MovieFilter(rated, movie_filter.genres, movie_filter.year_min,
                             movie_filter.year_max)
        found = store.similar_movies(query, limit, search)
    else:
        # Without a payload filter, fetching len(rated) more and dropping the person's movies
        # gives the same answer as a must_not filter, which costs qdrant-edge a filtered scan
        # (11 ms instead of 0.3 ms with 150 rated movies, ml-1m; see BENCHMARKS.md).
        found = store.similar_movies(query, limit + len(rated), MovieFilter())
        excluded = set(rated)
        found = [hit for hit in found if hit.movie_id not in excluded][:limit]
    found = [hit for hit in found if hit.score > 0]
    # The explanations need the answers' weight vectors: fetched for those few movies only
    # (each holds thousands of weights; asking the search for all of them cost 2 ms).
    vectors = store.movie_vectors([hit.movie_id for hit in found]) if found else {}
    catalog = store.catalog()
    out = []
    for hit in found:
        movie = catalog.get(hit.movie_id)
        if movie is None:
            continue
        out.append(Recommendation(movie, hit.score,
                                  _item_why(catalog, query, vectors.get(hit.movie_id))))
    return Answer("item", 0, out)


def _item_why(catalog: MovieCatalog, query: SparseVector, vector: SparseVector | None) -> dict:
    """Which of the person's movies pulled this one up most (their share of its score)."""
    if vector is None:
        return {"text": "", "movies": []}
    common, qi, vi = np.intersect1d(query.indices, vector.indices, assume_unique=True,
                                    return_indices=True)
    # Only liked movies with a positive weight "pulled it up" (a dislike can push others up too,
    # through a negative weight, but "because you disliked" reads as nonsense).
    liked = query.values[qi] > 0
    contribution = np.where(liked, query.values[qi].astype(np.float64) * vector.values[vi], 0.0)
    order = np.argsort(-contribution, kind="stable")
    top = [int(common[i]) for i in order[:3] if contribution[i] > 0]
    titles = [m.title for m in catalog.take(top)]
    by_id = dict(zip([m.movie_id for m in catalog.take(top)], titles))
    named = [by_id[m] for m in top if m in by_id]
    if not named:
        return {"text": "", "movies": []}
    text = "because you liked " + (named[0] if len(named) == 1 else
                                   ", ".join(named[:-1]) + " and " + named[-1])
    return {"text": text, "movies": top}
