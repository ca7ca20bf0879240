"""The catalog: GET /movies (search), GET /movies/{id}, GET /movies/{id}/similar, GET /genres."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request

from movierec import recommend
from movierec.errors import NotFoundError
from movierec.service.routes import on_store
from movierec.service.schemas import (
    MAX_ID,
    GenreList,
    MovieList,
    MovieOut,
    Problem,
    SimilarMovies,
)
from movierec.service.strict import StrictRoute
from movierec.store import MovieFilter

router = APIRouter(route_class=StrictRoute, tags=["movies"])


def _catalog(store):
    return store.catalog()


@router.get("/genres", response_model=GenreList)
async def genres(request: Request):
    catalog = await on_store(request, "catalog", _catalog)
    return {"genres": catalog.genres}


@router.get("/movies", response_model=MovieList)
async def movies(
    request: Request,
    search: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
):
    """Movies whose title contains `search` (most rated first); without it, the most rated."""
    catalog = await on_store(request, "catalog", _catalog)
    found = catalog.search(search, limit) if search else catalog.most_rated(limit)
    return {"items": [m.to_dict() for m in found]}


@router.get("/movies/{movie_id}", response_model=MovieOut, responses={404: {"model": Problem}})
async def movie(request: Request, movie_id: Annotated[int, Path(ge=0, le=MAX_ID)]):
    catalog = await on_store(request, "catalog", _catalog)
    found = catalog.get(movie_id)
    if found is None:
        raise NotFoundError(f"no movie {movie_id} in the dataset")
    return found.to_dict()


@router.get("/movies/{movie_id}/similar", response_model=SimilarMovies,
            responses={404: {"model": Problem, "description": "no such movie"},
                       409: {"model": Problem, "description": "the live data has no item model, "
                             "or the movie has too few ratings to have an item vector"}})
async def similar(
    request: Request,
    movie_id: Annotated[int, Path(ge=0, le=MAX_ID)],
    limit: Annotated[int, Query(ge=1, le=recommend.MAX_LIMIT)] = 10,
    genres: Annotated[list[str], Query(max_length=30, description="only movies with one of "
                                       "these genres (repeat the parameter, or comma-separated)"
                                       )] = [],  # noqa: B006 (FastAPI copies the default)
    year_min: Annotated[int | None, Query(ge=1800, le=2100)] = None,
    year_max: Annotated[int | None, Query(ge=1800, le=2100)] = None,
):
    """"More like this": the movies nearest this one in the item model (never itself), with
    optional genre / year filters; each says which movies link the two."""
    if year_min is not None and year_max is not None and year_min > year_max:
        raise HTTPException(422, "year_min is after year_max")
    wanted = tuple(g.strip() for part in genres for g in part.split(",") if g.strip())
    answer = await on_store(request, "similar", recommend.similar_movies, movie_id, limit=limit,
                            movie_filter=MovieFilter(genres=wanted, year_min=year_min,
                                                     year_max=year_max))
    catalog = await on_store(request, "catalog", _catalog)
    return {"movie": catalog.get(movie_id).to_dict(), "model": answer.model,
            "items": [r.to_dict() for r in answer.items]}
