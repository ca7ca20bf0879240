"""user-knn: the tutorial's idea on cosine similarity of liked movies. Each user's liked movies
(rated at least schema.LIKED_STARS) are stored as a unit-length binary vector; the person's
likes (+) and dislikes (-) form a unit-length query; each of the 100 most similar users adds
similarity^2 to every movie they liked."""

from __future__ import annotations

import numpy as np

from movierec import schema
from movierec.errors import QueryError
from movierec.models.base import Answer, Ask, Model, Person
from movierec.models.neighbors import aggregate, nearest, recommendations
from movierec.store import StoreReader
from movierec.vectors import RatingStats, SparseVector, UserVectors, liked_vectors, query_vector


class UserKnnModel(Model):
    name = "user-knn"
    description = ("user kNN: cosine similarity of liked movies, 100 neighbours, "
                   "similarity-squared weights")
    # Chosen on ML-1M's validation split (movierec evaluate): 100 neighbours, power 2.
    params = {"neighbors": 100, "knn_power": 2.0}
    user_vectors = (schema.RATINGS_VECTOR, schema.LIKED_VECTOR)

    def user_vectors_of(self, ratings: UserVectors, stats: RatingStats) -> dict[str, UserVectors]:
        return {schema.LIKED_VECTOR: liked_vectors(ratings, stats, schema.LIKED_STARS)}

    def ingest_params(self) -> dict:
        return {"liked_stars": schema.LIKED_STARS}

    def answer(self, store: StoreReader, person: Person, ask: Ask) -> Answer:
        stats = store.meta().rating_stats
        query = liked_query(person.signed(stats))
        block, rows, exact = nearest(store, query, ask.params["neighbors"], person.user_id,
                                     using=schema.LIKED_VECTOR)
        if not rows.size:
            return Answer(self.name, 0, [])
        similarity = np.maximum(exact[rows], 0.0)
        c = aggregate(block, rows, similarity ** float(ask.params["knn_power"]),
                      stats.z_at_least(schema.LIKED_STARS))
        excluded = np.union1d(query.indices.astype(np.int64), np.asarray(ask.exclude, dtype=np.int64))
        items = recommendations(store, int(rows.size), c, excluded, ask.limit, ask.movie_filter,
                                positive_only=True)  # only movies some neighbour liked
        return Answer(self.name, int(rows.size), items)


def liked_query(signed: dict[int, float]) -> SparseVector:
    """Liked movies positive, disliked negative, scaled to unit length (a dot product with the
    stored liked vectors is then the cosine similarity)."""
    if not signed:
        raise QueryError("ratings are all 0: like (+1) or dislike (-1) at least one movie")
    vector = query_vector(signed)
    norm = float(np.sqrt(np.sum(vector.values.astype(np.float64) ** 2)))
    return SparseVector(vector.indices, (vector.values / norm).astype(np.float32))
