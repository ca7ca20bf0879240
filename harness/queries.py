"""The requests people send, for tests and benchmarks alike: the tutorial's query, and random
people who like or dislike a few of the most rated movies."""

from __future__ import annotations

import numpy as np

from movierec.models.tutorial import example_ratings

# The reference tutorial's query on MovieLens-1M (its published top 5 starts with movie 1196).
TUTORIAL_RATINGS = example_ratings()


def body(ratings: dict[int, float] | None = None, model: str | None = None,
         limit: int = 5) -> dict:
    """A POST /recommendations body: the tutorial's ratings unless given; no "model" field
    unless one is named (a request without it is answered by the default model)."""
    out: dict = {"ratings": {str(m): int(r) if float(r).is_integer() else r
                             for m, r in (ratings or TUTORIAL_RATINGS).items()},
                 "limit": limit}
    if model is not None:
        out["model"] = model
    return out


def popular_pool(catalog, size: int = 1_000) -> np.ndarray:
    """The `size` most rated movies' ids, most rated first (ties by id)."""
    return np.array([m.movie_id for m in catalog.most_rated(size)], dtype=np.int64)


def random_people(pool: np.ndarray, count: int, rng: np.random.Generator,
                  most: int = 15, least: int = 1) -> list[dict[int, float]]:
    """`count` people, each liking (+1) or disliking (-1) between `least` and `most` movies
    of `pool`, drawn without replacement."""
    people = []
    for _ in range(count):
        n = int(rng.integers(least, most + 1))
        picked = rng.choice(pool, size=n, replace=False)
        signs = rng.choice([-1.0, 1.0], size=n)
        people.append({int(m): float(s) for m, s in zip(picked, signs)})
    return people
