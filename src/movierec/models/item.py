"""The learned item model, served: each movie carries a sparse vector of item-item weights
(learned at ingest by movierec.training.item), so the person's movies form one sparse query
whose top results, with the genre/year filters and the person's movies inside the same Qdrant
query, are the recommendations; each explained by the person's movies that pulled it up."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from movierec import schema
from movierec.catalog import MovieCatalog
from movierec.errors import QueryError
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
        values = [query_weight(ratings[m], scale, weights) for m in movie_ids]
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
        # (each holds thousands of weights; asking the search for all of them cost 2 ms).
        vectors = store.movie_vectors([hit.movie_id for hit in found]) if found else {}
        catalog = store.catalog()
        out = []
        for hit in found:
            movie = catalog.get(hit.movie_id)
            if movie is None:
                continue
            out.append(Recommendation(movie, hit.score,
                                      explain(catalog, query, vectors.get(hit.movie_id))))
        return Answer(self.name, 0, out)


def query_weight(rating: float, scale: str, rating_weights: Mapping[str, float] | None) -> float:
    """A person's rating as an item-model query value: a like is 1, a dislike -1 (it pushes
    similar movies down); stars from schema.LIKED_STARS up use the model's star weights (linear
    in between), below count as dislikes."""
    if scale == "unit":
        return float(rating)
    if rating < schema.LIKED_STARS:
        return -1.0
    if not rating_weights:
        return 1.0
    stars = np.array(sorted(float(s) for s in rating_weights), dtype=np.float64)
    values = [rating_weights[k] for k in sorted(rating_weights, key=float)]
    return float(np.interp(rating, stars, values))


def explain(catalog: MovieCatalog, query: SparseVector, vector: SparseVector | None) -> dict:
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
    titles = {m.movie_id: m.title for m in catalog.take(top)}
    named = [titles[m] for m in top if m in titles]
    if not named:
        return {"text": "", "movies": []}
    text = "because you liked " + (named[0] if len(named) == 1 else
                                   ", ".join(named[:-1]) + " and " + named[-1])
    return {"text": text, "movies": top}
