"""The tutorial, kept exact: the person's ratings are the query (+1 like / -1 dislike, or stars
z-scored with the dataset's mean and deviation); Qdrant returns the 20 users with the largest
dot product of z-scored ratings; each movie the person has not rated scores the plain sum of
those users' z-scored ratings."""

from __future__ import annotations

import numpy as np

from movierec import schema
from movierec.models.base import Answer, Ask, Model, Person
from movierec.models.neighbors import aggregate, nearest, recommendations
from movierec.store import StoreReader
from movierec.vectors import query_vector

# The reference tutorial's example: six likes and five dislikes (MovieLens-1M ids), whose top 5
# on ml-1m is the reference result (The Empire Strikes Back 20.0239, ...).
EXAMPLE_LIKES = (2571, 329, 260, 1, 356, 2116)
EXAMPLE_DISLIKES = (2288, 1721, 296, 1291, 1036)


def example_ratings() -> dict[int, float]:
    """The tutorial's example as unit ratings: +1 per like, -1 per dislike."""
    return {**{m: 1.0 for m in EXAMPLE_LIKES}, **{m: -1.0 for m in EXAMPLE_DISLIKES}}


class TutorialModel(Model):
    name = "tutorial"
    description = "the tutorial: z-scored ratings, dot product, 20 neighbours, plain sum"
    params = {"neighbors": 20}
    user_vectors = (schema.RATINGS_VECTOR,)

    def answer(self, store: StoreReader, person: Person, ask: Ask) -> Answer:
        query = query_vector(person.zscores(store.meta().rating_stats))
        block, rows, _ = nearest(store, query, ask.params["neighbors"], person.user_id)
        if not rows.size:
            return Answer(self.name, 0, [])
        excluded = np.union1d(query.indices.astype(np.int64),
                              np.asarray(ask.exclude, dtype=np.int64))
        items = recommendations(store, rows.size, aggregate(block, rows), excluded, ask.limit,
                                ask.movie_filter)
        return Answer(self.name, int(rows.size), items)
