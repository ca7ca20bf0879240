"""popular: the most rated movies the person has not rated, with the genre/year filters; what
anyone gets before they have rated anything, and the baseline every other model must beat.
Popularity is the movies' rating_count payload in Qdrant, which every reader's catalog holds."""

from __future__ import annotations

import numpy as np

from movierec.models.base import Answer, Ask, Model, Person, Recommendation
from movierec.store import StoreReader


class PopularModel(Model):
    name = "popular"
    description = "the most rated movies of the dataset (the same for everyone), with filters"

    def answer(self, store: StoreReader, person: Person, ask: Ask) -> Answer:
        catalog = store.catalog()
        excluded = np.union1d(person.movie_ids, np.asarray(ask.exclude, dtype=np.int64))
        mf = ask.movie_filter
        movies = catalog.most_rated(ask.limit, exclude=excluded, genres=mf.genres,
                                    year_min=mf.year_min, year_max=mf.year_max)
        items = []
        for m in movies:
            mean = "" if m.rating_mean is None else f", {m.rating_mean:.2g} stars on average"
            items.append(Recommendation(m, float(m.rating_count), {
                "text": f"popular: rated by {m.rating_count:,} people{mean}",
                "popularity": m.rating_count}))
        return Answer(self.name, 0, items)
