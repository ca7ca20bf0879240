"""Request and response bodies of the HTTP API (they are the OpenAPI schema)."""

from __future__ import annotations

import math
from typing import Any, Literal

import pydantic_core
from pydantic import BaseModel, ConfigDict, Field, field_validator

from movierec.models import REGISTRY
from movierec.models.tutorial import example_ratings
from movierec.recommend import MAX_LIMIT, MAX_NEIGHBORS, MAX_RATINGS
from movierec.schema import MAX_ID

# The registered models' names, as the schema's enum (GET /models lists the live ones).
ModelName = Literal[tuple(REGISTRY.names())]  # type: ignore[valid-type]


class RecommendationRequest(BaseModel):
    """A person's ratings, by MovieLens movie id (find ids with GET /movies?search=...)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "ratings": {str(m): int(r) for m, r in example_ratings().items()},
                    "limit": 5,
                }
            ]
        },
    )

    ratings: dict[str, float] = Field(
        description="movie id -> rating: +1 like / -1 dislike (scale 'unit', any value in "
        "[-1, 1]), or 0.5-5 stars (scale 'stars'); empty: the most popular movies (model "
        "'popular'), with the filters, to start rating from",
    )
    scale: Literal["unit", "stars"] = "unit"
    model: ModelName | None = Field(
        None, description="the model (GET /models); default: the best one the data supports")
    genres: list[str] = Field(default_factory=list, max_length=30,
                              description="only movies with at least one of these genres")
    year_min: int | None = Field(None, ge=1800, le=2100, description="only movies from this year")
    year_max: int | None = Field(None, ge=1800, le=2100, description="only movies up to this year")
    limit: int = Field(5, ge=1, le=MAX_LIMIT, description="how many movies to return")
    neighbors: int | None = Field(None, ge=1, le=MAX_NEIGHBORS,
                                  description="how many similar users (user models; default "
                                  "20 for tutorial, 100 for user-knn)")

    @field_validator("ratings")
    @classmethod
    def _ids_and_values(cls, ratings: dict[str, float]) -> dict[str, float]:
        if len(ratings) > MAX_RATINGS:
            raise ValueError(f"too many ratings: {len(ratings)} (at most {MAX_RATINGS})")
        seen: dict[int, str] = {}
        for key, value in ratings.items():
            if not (key.isascii() and key.isdigit()) or int(key) > MAX_ID:
                raise ValueError(f"movie id {key[:40]!r} is not an integer in 0..{MAX_ID}")
            if int(key) in seen:  # "1" and "001": one movie, two ratings
                raise ValueError(f"movie {int(key)} is rated twice ({seen[int(key)]!r} and "
                                 f"{key[:40]!r})")
            seen[int(key)] = key
            if not math.isfinite(value):
                raise ValueError(f"rating of movie {key} must be a finite number")
        return ratings

    def movie_ratings(self) -> dict[int, float]:
        if self.scale == "unit":
            bad = [k for k, v in self.ratings.items() if not -1 <= v <= 1]
            if bad:
                raise ValueError(f"rating of movie {bad[0]} must be between -1 and 1 on the "
                                 "'unit' scale (use \"scale\": \"stars\" for 0.5-5 stars)")
        return {int(k): float(v) for k, v in self.ratings.items()}


class Why(BaseModel):
    """What contributed most: similar users (user models) or the person's movies (item)."""

    text: str = ""
    neighbors: int | None = None
    mean_rating: float | None = None
    movies: list[int] | None = None
    # blend: each part's contribution to the score (popularity, item, neighbors)
    parts: dict[str, float] | None = None


class ModelInfo(BaseModel):
    name: str
    description: str
    filters: bool = True


class ModelList(BaseModel):
    default: str
    models: list[ModelInfo]
    liked_stars: float = Field(description="ratings of this many stars or more count as likes")


class GenreList(BaseModel):
    genres: list[str]


class MovieOut(BaseModel):
    movie_id: int
    title: str
    year: int | None
    genres: list[str]
    rating_count: int
    rating_mean: float | None


class RecommendedMovie(BaseModel):
    movie_id: int
    title: str
    genres: list[str]
    year: int | None
    score: float
    why: Why


class RecommendationResponse(BaseModel):
    model: str
    neighbors: int = Field(description="how many similar users were used")
    items: list[RecommendedMovie]


# Why's fields and their defaults, in its order: what RecommendationResponse's JSON holds.
_WHY_FIELDS = tuple((name, f.default) for name, f in Why.model_fields.items())


def recommendation_json(model: str, neighbors: int, items: list[dict]) -> bytes:
    """RecommendationResponse's JSON for an answer the library built (`items`: each movie's
    `Recommendation.to_dict()`, RecommendedMovie's keys in its order; each `why` gets Why's
    fields, defaults filled in), written without validating it again: the same bytes as
    validating it and dumping the model (tests/test_service.py holds them to that), at half
    the cost (the default answer's 10 items: 17 us against 31 for TypeAdapter's validate_python
    and dump_json alone, timeit; FastAPI adds its own steps around those)."""
    return pydantic_core.to_json({"model": model, "neighbors": neighbors, "items": [
        {**item, "why": {name: item["why"].get(name, default) for name, default in _WHY_FIELDS}}
        for item in items]})


class SimilarMovies(BaseModel):
    """Movies like one movie ("more like this"), from the item model's vectors."""

    movie: MovieOut
    model: str
    items: list[RecommendedMovie]


class MovieList(BaseModel):
    items: list[MovieOut]


class Problem(BaseModel):
    """Every error: what is wrong, and where (the field), in one line."""

    error: str
    field: str | None = None


class Ready(BaseModel):
    status: str
    store: str
    users: int = 0
    movies: int = 0
    version: str | None = None
    dataset: str | None = None
    detail: str | None = None
    # Shards and replicas of the live collections and any replica not Active (server), or
    # why the store has none (embedded, local mode). Ready stays 200 while one replica is
    # down: the other copy still answers.
    cluster: dict[str, Any] = {}


class ImportedRating(BaseModel):
    line: int = Field(description="the file's line")
    movie_id: int
    title: str
    year: int | None
    genres: list[str]
    stars: float
    matched_by: Literal["imdb id", "title", "movie id"]
    given: dict = Field(description="the title and year as the file names them")


class ImportProblem(BaseModel):
    line: int
    title: str | None
    year: int | None
    reason: str


class ImportAnswer(BaseModel):
    format: Literal["letterboxd", "imdb", "csv"]
    rows: int = Field(description="rows read (the header not counted)")
    ratings: dict[str, float] = Field(description="movie id -> stars, for POST /recommendations "
                                      "with \"scale\": \"stars\"")
    matched: list[ImportedRating]
    unmatched: list[ImportProblem] = Field(description="every row not used, with the reason")
