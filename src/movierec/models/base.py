"""What every served model is: the `Model` base class (what it needs from the store and how it
answers), the person it answers for, and the answer it gives.

A model is one module under movierec/models/ and one line in the registry (models/__init__.py).
Serving code only: numpy and the store, never scipy or pandas (a model that learns something at
ingest names its trainer as a "module:function" string, which only the ingest imports).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from movierec import schema
from movierec.catalog import Movie
from movierec.errors import QueryError
from movierec.vectors import RatingStats, UserVectors

if TYPE_CHECKING:
    from movierec.store import MovieFilter, StoreReader

# Rating scales a person's ratings can be on. "unit": +1 like / -1 dislike (any value in
# [-1, 1]); "stars": 0.5-5 stars; "z": an existing user's stored z-scored ratings.
SCALES = ("unit", "stars", "z")


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


@dataclass(frozen=True)
class Person:
    """Whom a model answers for: their ratings by movie id, on one of SCALES, and (for an
    existing user) their user id, so that they are never their own neighbour."""

    ratings: Mapping[int, float]
    scale: str = "unit"
    user_id: int | None = None

    def __post_init__(self) -> None:
        if self.scale not in SCALES:
            raise QueryError(f"unknown scale {self.scale!r}: use 'unit' (like +1 / dislike -1) "
                             "or 'stars'", field="scale")

    @property
    def movie_ids(self) -> np.ndarray:
        return np.fromiter(self.ratings.keys(), dtype=np.int64, count=len(self.ratings))

    def stars(self, stats: RatingStats) -> dict[int, float]:
        """Ratings in stars: as given, or an existing user's z-scores mapped back (to the nearest
        half star). Unit ratings have no stars; models use `liked()` for them."""
        if self.scale == "stars":
            return dict(self.ratings)
        if self.scale == "z":
            z = np.fromiter(self.ratings.values(), dtype=np.float64, count=len(self.ratings))
            stars = np.round(np.clip(z * stats.std + stats.mean, 0.5, 5.0) * 2) / 2
            return dict(zip(self.ratings.keys(), stars.tolist()))
        raise ValueError("unit ratings have no stars")

    def zscores(self, stats: RatingStats) -> dict[int, float]:
        """The tutorial's query values: unit ratings as given (+1/-1), stars z-scored with the
        dataset's mean and deviation, stored z-scores as they are."""
        if self.scale == "stars":
            return {m: float(stats.normalize(np.array(r))) for m, r in self.ratings.items()}
        return dict(self.ratings)

    def signed(self, stats: RatingStats) -> dict[int, float]:
        """Likes positive, dislikes negative: unit ratings as given (0s dropped), stars +1 from
        schema.LIKED_STARS up and -1 below."""
        if self.scale == "unit":
            return {m: float(r) for m, r in self.ratings.items() if r != 0}
        return {m: (1.0 if r >= schema.LIKED_STARS else -1.0)
                for m, r in self.stars(stats).items()}


@dataclass(frozen=True)
class Ask:
    """What is asked of a model besides the person: how many movies, which filters, which
    movies never to answer (besides the person's own), and the model's own parameters."""

    limit: int
    movie_filter: MovieFilter
    exclude: tuple[int, ...] = ()
    params: Mapping[str, Any] = field(default_factory=dict)


class Model:
    """A served model. Subclasses set the class attributes and implement `answer`.

    name, description: what GET /models, the CLI and the evaluation show.
    params: default parameters; a request may override these (and only these).
    user_vectors / movie_vectors: the named sparse vectors it searches; the ingest writes the
        union over all registered models into the users and movies collections.
    trainer: "module:function" of what the ingest runs to learn the movie vectors (None: the
        model learns nothing). function(dataset, stats) -> (params, {vector name: one
        SparseVector or None per movie of dataset.movies}).
    """

    name: ClassVar[str]
    description: ClassVar[str]
    params: ClassVar[Mapping[str, Any]] = {}
    user_vectors: ClassVar[tuple[str, ...]] = ()
    movie_vectors: ClassVar[tuple[str, ...]] = ()
    trainer: ClassVar[str | None] = None

    def user_vectors_of(self, ratings: UserVectors, stats: RatingStats) -> dict[str, UserVectors]:
        """The named user vectors this model needs, built at ingest from every user's z-scored
        ratings (numpy). The ratings vector itself is always written."""
        return {}

    def ingest_params(self) -> dict[str, Any]:
        """What the ingest records for this model in the metadata (beside what its trainer
        learned); a reader treats the model as available when the metadata names it."""
        return {}

    def answer(self, store: StoreReader, person: Person, ask: Ask) -> Answer:
        raise NotImplementedError

    def options(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """The defaults overridden by `given` (None means "the default")."""
        unknown = sorted(k for k, v in given.items() if v is not None and k not in self.params)
        if unknown:
            raise QueryError(f"model {self.name!r} takes no parameter {unknown[0]!r}", field=None)
        return {**self.params, **{k: v for k, v in given.items() if v is not None}}
