"""The learned item model, served: each movie carries a sparse vector of item-item weights
(learned at ingest by movierec.training.item), so the person's movies form one sparse query
whose top results, with the genre/year filters and the person's movies inside the same Qdrant
query, are the recommendations; each explained by the person's movies that pulled it up."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from movierec import schema
from movierec.catalog import MovieCatalog
from movierec.errors import NotServedError, QueryError
from movierec.models.base import Answer, Ask, Model, Person, Recommendation
from movierec.store import MovieFilter, StoreReader
from movierec.vectors import SparseVector


class ItemModel(Model):
    name = "item"
    description = ("a learned item-item model (EASE family: dropout-regularized linear "
                   "autoencoder with a low-pass term), one sparse query against the movies' "
                   "vectors")
    movie_vectors = (schema.ITEM_VECTOR,)
    trainer = "movierec.training.item:ingest_item_vectors"

    def answer(self, store: StoreReader, person: Person, ask: Ask) -> Answer:
        meta = store.meta()
        weights = meta.models[self.name].get("rating_weights")
        ratings = person.ratings if person.scale == "unit" else person.stars(meta.rating_stats)
        scale = "unit" if person.scale == "unit" else "stars"
        movie_ids = sorted(ratings)
        values = query_weights(np.array([ratings[m] for m in movie_ids], dtype=np.float64),
                               scale, weights)
        try:
            query = SparseVector.checked(movie_ids, values)
        except ValueError as exc:
            raise QueryError(f"invalid ratings: {exc}") from None
        rated = tuple(sorted(set(movie_ids) | {int(m) for m in ask.exclude}))
        mf = ask.movie_filter
        if mf.filters_movies:
            # Genre/year filters and the person's movies, all in the one Qdrant query.
            found = store.similar_movies(query, ask.limit,
                                         MovieFilter(rated, mf.genres, mf.year_min, mf.year_max))
        else:
            # Without a payload filter, fetching len(rated) more and dropping the person's
            # movies gives the same answer as a must_not filter, which costs qdrant-edge a
            # filtered scan (11 ms instead of 0.3 ms with 150 rated movies, ml-1m).
            found = store.similar_movies(query, ask.limit + len(rated), MovieFilter())
            excluded = set(rated)
            found = [hit for hit in found if hit.movie_id not in excluded][: ask.limit]
        found = [hit for hit in found if hit.score > 0]
        # The explanations need the answers' weight vectors: fetched for those few movies only
        # (each holds up to 768 weights; asking the search for all of them cost 2 ms).
        catalog = store.catalog()
        whys = explanations(store, catalog, query, [hit.movie_id for hit in found])
        out = []
        for hit, why in zip(found, whys):
            movie = catalog.get(hit.movie_id)
            if movie is not None:
                out.append(Recommendation(movie, hit.score, why))
        return Answer(self.name, 0, out)


def more_like(store: StoreReader, movie_id: int, limit: int, movie_filter: MovieFilter
              ) -> list[Recommendation]:
    """Movies like `movie_id` in the item model: its own vector (which movies predict it, and how
    much) is the sparse query, so the movies predicted by the same movies come first; never the
    movie itself. The caller has checked that the item model is served and the movie exists."""
    vector = store.movie_vectors([movie_id]).get(movie_id)
    if vector is None:
        raise NotServedError(f"movie {movie_id} has too few ratings for the item model to know "
                             "which movies are like it")
    if movie_filter.filters_movies:
        found = store.similar_movies(vector, limit, MovieFilter(
            (movie_id,), movie_filter.genres, movie_filter.year_min, movie_filter.year_max))
    else:
        # As in ItemModel.answer: one more and drop the movie, cheaper than a must_not filter.
        found = [hit for hit in store.similar_movies(vector, limit + 1, MovieFilter())
                 if hit.movie_id != movie_id][:limit]
    found = [hit for hit in found if hit.score > 0]
    vectors = store.movie_vectors([hit.movie_id for hit in found]) if found else {}
    catalog = store.catalog()
    out = []
    for hit in found:
        movie = catalog.get(hit.movie_id)
        if movie is not None:
            out.append(Recommendation(movie, hit.score,
                                      explain_likeness(catalog, vector, vectors.get(hit.movie_id))))
    return out


def explain_likeness(catalog: MovieCatalog, vector: SparseVector,
                     other: SparseVector | None) -> dict:
    """The movies that predict both most (their share of the likeness score)."""
    top = _top_shared(vector, other, positive_query_only=False)
    named = _titles(catalog, top)
    if not named:
        return {"text": "", "movies": []}
    return {"text": f"people who liked {_joined(named)} like both", "movies": top}


def query_weight(rating: float, scale: str, rating_weights: Mapping[str, float] | None) -> float:
    """A person's rating as an item-model query value: a like is 1, a dislike -1 (it pushes
    similar movies down); stars from schema.LIKED_STARS up use the model's star weights (linear
    in between), below count as dislikes."""
    if scale == "unit":
        return float(rating)
    if rating < schema.LIKED_STARS:
        return -1.0
    return float(_like_weights(np.array([rating], dtype=np.float64), rating_weights)[0])


def query_weights(ratings: np.ndarray, scale: str,
                  rating_weights: Mapping[str, float] | None) -> np.ndarray:
    """query_weight of every rating at once (float64)."""
    if scale == "unit":
        return ratings.astype(np.float64)
    out = np.full(ratings.size, -1.0)
    liked = ratings >= schema.LIKED_STARS
    out[liked] = _like_weights(ratings[liked], rating_weights)
    return out


def like_weights(stars: np.ndarray, rating_weights: Mapping[str, float] | None) -> np.ndarray:
    """query_weight of liked ratings in stars (each at least schema.LIKED_STARS), all at once, as
    float32 query values."""
    return _like_weights(stars, rating_weights).astype(np.float32)


def _like_weights(stars: np.ndarray, rating_weights: Mapping[str, float] | None) -> np.ndarray:
    if not rating_weights:
        return np.ones(stars.size)
    at = np.array(sorted(float(s) for s in rating_weights), dtype=np.float64)
    values = [rating_weights[k] for k in sorted(rating_weights, key=float)]
    return np.interp(stars.astype(np.float64), at, values)


def explanations(store: StoreReader, catalog: MovieCatalog, query: SparseVector,
                 movie_ids: list[int]) -> list[dict]:
    """For each answer, which of the person's movies pulled it up most (their share of its
    score): pulled_up over the query's liked movies."""
    # Only liked movies with a positive weight "pulled it up" (a dislike can push others up too,
    # through a negative weight, but "because you disliked" reads as nonsense).
    liked = query.values > 0
    movies = query.indices[liked]
    if not movies.size or not movie_ids:
        return [{"text": "", "movies": []} for _ in movie_ids]
    return pulled_up(store, catalog, movies, movie_ids, query.values[liked])


def pulled_up(store: StoreReader, catalog: MovieCatalog, movies: np.ndarray,
              movie_ids: list[int], values: np.ndarray | None = None) -> list[dict]:
    """For each of `movie_ids`, {"text", "movies"}: the (at most three) of the person's liked
    `movies` that add most to its score, named (liked_reasons)."""
    return [{"text": text, "movies": top}
            for text, top in liked_reasons(store, catalog, movies, movie_ids, values)]


# Up to this many liked movies, each answer's are ordered in Python (a sort of a few floats);
# past it by one argsort of them all.
PYTHON_ORDER_MAX = 16


def liked_reasons(store: StoreReader, catalog: MovieCatalog, movies: np.ndarray,
                  movie_ids: list[int], values: np.ndarray | None = None
                  ) -> list[tuple[str, list[int]]]:
    """For each of `movie_ids`, (its text, the at most three of the person's liked `movies`
    (sorted ids, each with its query value in `values`; None: 1 each) that add most to its
    score, best first, ties to the lower id): the weight of each liked movie in each answer's
    vector (store.movie_weights, read for these few movies only) times its value; only those
    that pulled it up (a positive part) are named. ("", []) where none did."""
    liked = movies.tolist()
    parts = store.movie_weights(movie_ids, liked)
    if values is not None:
        parts *= values
    if len(liked) <= PYTHON_ORDER_MAX:
        # sorted(reverse=True) keeps equal parts in their order: the lower id first.
        positions = range(len(liked))
        tops = ([j for j in sorted(positions, key=row.__getitem__, reverse=True)[:3]
                 if row[j] > 0] for row in parts.tolist())
    else:
        order = np.argsort(-parts, axis=1, kind="stable")[:, :3]
        tops = ([j for j, w in zip(at, best) if w > 0] for at, best in
                zip(order.tolist(), np.take_along_axis(parts, order, 1).tolist()))
    names = list(map(catalog.titles.get, liked))  # None: a movie the catalog does not hold
    out = []
    for top in tops:
        named = [names[j] for j in top if names[j] is not None]
        out.append(("because you liked " + _joined(named), [liked[j] for j in top]) if named
                   else ("", []))
    return out


def _top_shared(query: SparseVector, vector: SparseVector | None, positive_query_only: bool,
                count: int = 3) -> list[int]:
    """The indices (movie ids) both vectors hold whose products add most to their dot product."""
    if vector is None:
        return []
    common, qi, vi = np.intersect1d(query.indices, vector.indices, assume_unique=True,
                                    return_indices=True)
    contribution = query.values[qi].astype(np.float64) * vector.values[vi]
    if positive_query_only:
        contribution = np.where(query.values[qi] > 0, contribution, 0.0)
    order = np.argsort(-contribution, kind="stable")
    return [int(common[i]) for i in order[:count] if contribution[i] > 0]


def _titles(catalog: MovieCatalog, movie_ids: list[int]) -> list[str]:
    titles = catalog.titles
    return [titles[m] for m in movie_ids if m in titles]


def _joined(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
