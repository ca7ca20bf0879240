"""The entry points: recommendations for a person's ratings, and for an existing user, answered
by a model from the registry (movierec.models). Validation common to every model lives here."""

from __future__ import annotations

from typing import Any

from movierec.errors import MovierecError, NotFoundError, NotServedError, QueryError
from movierec.models import REGISTRY, Answer, Ask, Person, Recommendation
from movierec.models.item import ItemModel, more_like
from movierec.models.neighbors import MAX_NEIGHBORS, similar_users
from movierec.store import MovieFilter, StoreReader
from movierec.vectors import SparseVector, query_vector

__all__ = ["MAX_LIMIT", "MAX_NEIGHBORS", "MAX_RATINGS", "Answer", "Recommendation",
           "available_models", "default_model", "recommend", "recommend_for_user",
           "similar_movies", "similar_users", "tutorial_query", "validate_ratings", "warm"]

MAX_RATINGS = 1_000
MAX_LIMIT = 100


def available_models(store: StoreReader) -> list[str]:
    """The models the live data supports, best first."""
    return REGISTRY.available(store.meta())


def default_model(store: StoreReader) -> str:
    return REGISTRY.default(store.meta())


def tutorial_query(likes, dislikes) -> dict[int, float]:
    """The tutorial's query: +1 for each liked movie, -1 for each disliked one."""
    likes, dislikes = [int(m) for m in likes], [int(m) for m in dislikes]
    both = sorted(set(likes) & set(dislikes))
    if both:
        raise QueryError(f"movie {both[0]} is both liked and disliked")
    ratings = {m: 1.0 for m in likes}
    ratings.update({m: -1.0 for m in dislikes})
    return ratings


def check_ratings(store: StoreReader, ratings: dict[int, float], scale: str) -> None:
    """A person's ratings against the limits and the live catalog, or a QueryError saying why.
    No ratings at all is valid: that person gets REGISTRY.for_no_ratings's answer."""
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
        raise QueryError(f"unknown scale {scale!r}: use 'unit' (like +1 / dislike -1) or 'stars'",
                         field="scale")


def validate_ratings(store: StoreReader, ratings: dict[int, float], scale: str) -> SparseVector:
    """Check a person's ratings and turn them into the tutorial's query vector."""
    check_ratings(store, ratings, scale)
    return query_vector(Person(ratings, scale).zscores(store.meta().rating_stats))


def _ask(model, limit: int, movie_filter: MovieFilter | None, exclude, params) -> Ask:
    if not 1 <= limit <= MAX_LIMIT:
        raise QueryError(f"limit must be between 1 and {MAX_LIMIT}, got {limit}", field="limit")
    # `neighbors` is the user-based models' parameter; the others answer without neighbours.
    if "neighbors" not in model.params:
        params = {k: v for k, v in params.items() if k != "neighbors"}
    options = model.options(params)
    neighbors = options.get("neighbors")
    if neighbors is not None and not 1 <= neighbors <= MAX_NEIGHBORS:
        raise QueryError(f"neighbors must be between 1 and {MAX_NEIGHBORS}, got {neighbors}",
                         field="neighbors")
    return Ask(limit, movie_filter or MovieFilter(), tuple(int(m) for m in exclude), options)


def recommend(
    store: StoreReader,
    ratings: dict[int, float],
    limit: int = 5,
    neighbors: int | None = None,
    scale: str = "unit",
    model: str | None = None,
    movie_filter: MovieFilter | None = None,
    exclude: tuple[int, ...] = (),
    exclude_user: int | None = None,
    **params: Any,
) -> Answer:
    """Recommendations for a person's ratings with `model` (default: the best available).

    exclude: movies never to answer besides the person's own; exclude_user: a user who may not
    be a neighbour (the evaluation's own user, whose training ratings are stored); params: the
    model's own parameters (Model.params), e.g. user-knn's knn_power.

    No ratings: the answer of REGISTRY.for_no_ratings (the most rated movies, with the filters),
    whichever model was named or is the default; the request is still checked against the named
    model, so that it gets the same errors as with ratings."""
    meta = store.meta()
    chosen = REGISTRY.resolve(model, meta)
    ask = _ask(chosen, limit, movie_filter, exclude, {"neighbors": neighbors, **params})
    check_ratings(store, ratings, scale)
    if not ratings:
        chosen = _no_ratings_model(meta)
        ask = _ask(chosen, limit, movie_filter, exclude, {})
    return chosen.answer(store, Person(ratings, scale, exclude_user), ask)


def _no_ratings_model(meta):
    try:
        return REGISTRY.resolve(REGISTRY.for_no_ratings, meta)
    except QueryError:
        raise QueryError(f"ratings are empty and the live data has no {REGISTRY.for_no_ratings!r}"
                         " model to start from: rate at least one movie") from None


def recommend_for_user(
    store: StoreReader, user_id: int, limit: int = 5, neighbors: int | None = None,
    model: str | None = None, movie_filter: MovieFilter | None = None,
) -> Answer:
    """For an existing user: their own ratings are the query; they are not their own neighbour,
    and the movies they rated are never answered."""
    meta = store.meta()
    chosen = REGISTRY.resolve(model or REGISTRY.users_default(meta), meta)
    ask = _ask(chosen, limit, movie_filter, (), {"neighbors": neighbors})
    vector = store.user_vector(user_id)
    if vector is None:
        raise NotFoundError(f"no user {user_id} in the dataset")
    ratings = dict(zip(vector.indices.tolist(), vector.values.tolist()))
    return chosen.answer(store, Person(ratings, "z", user_id), ask)


def similar_movies(store: StoreReader, movie_id: int, limit: int = 10,
                   movie_filter: MovieFilter | None = None) -> Answer:
    """"More like this": the movies nearest `movie_id` in the item model's vectors (never the
    movie itself), with the genre/year filters; each explained by the movies behind the likeness.
    NotFoundError for an unknown movie; NotServedError when the live data has no item model or
    the movie has no item vector (too few ratings to learn one)."""
    if not 1 <= limit <= MAX_LIMIT:
        raise QueryError(f"limit must be between 1 and {MAX_LIMIT}, got {limit}", field="limit")
    if store.catalog().get(movie_id) is None:
        raise NotFoundError(f"no movie {movie_id} in the dataset")
    if ItemModel.name not in store.meta().models:
        raise NotServedError("the live data has no item model, which finds similar movies: "
                             "ingest without --no-item-model")
    return Answer(ItemModel.name, 0, more_like(store, movie_id, limit, movie_filter or MovieFilter()))


def warm(store: StoreReader) -> int:
    """Answer one person with every available model (the 5 most rated movies liked, the next 3
    disliked), so that what a reader builds on first use -- the catalog, each user's liked
    movies, the item weights' cells, the popularity prior -- is built before the first person
    asks rather than inside their request (ml-1m, embedded: ~0.25 s). Returns how many models
    answered; 0 when the store has nothing to answer from yet (readiness says why)."""
    try:
        top = [m.movie_id for m in store.catalog().most_rated(8)]
        if len(top) < 2:
            return 0
        ratings = {m: 1.0 for m in top[:5]} | {m: -1.0 for m in top[5:]}
        models = available_models(store)
        for name in models:
            recommend(store, ratings, limit=10, model=name)
    except MovierecError:
        return 0
    return len(models)
