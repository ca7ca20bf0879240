"""The catalog: GET /movies (search), GET /movies/{id}, GET /genres."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request

from movierec.errors import NotFoundError
from movierec.service.routes import on_store
from movierec.service.schemas import MAX_ID, GenreList, MovieList, MovieOut, Problem
from movierec.service.strict import StrictRoute

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
