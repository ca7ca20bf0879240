"""POST /recommendations, GET /users/{id}/recommendations, GET /models."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from movierec import recommend, schema
from movierec.errors import QueryError
from movierec.models import REGISTRY
from movierec.service.direct import body_as
from movierec.service.metrics import record_answer
from movierec.service.routes import on_store
from movierec.service.schemas import (
    MAX_ID,
    ModelList,
    ModelName,
    Problem,
    RecommendationRequest,
    RecommendationResponse,
    recommendation_json,
)
from movierec.service.strict import StrictRoute
from movierec.store import MovieFilter

router = APIRouter(route_class=StrictRoute, tags=["recommend"])


@router.post("/recommendations", response_model=RecommendationResponse)
async def recommendations(request: Request, body: RecommendationRequest):
    """Movies for a person's ratings (+1 like / -1 dislike, or 1-5 stars), with the chosen
    model and optional genre / year filters; each with a one-line reason. No ratings (`{}`):
    the most popular movies (model "popular"), to start rating from."""
    return await _recommend(request, body)


async def recommendations_direct(request: Request) -> Response:
    """POST /recommendations as the service runs it (service/direct.py): the same body model,
    errors and answer as the route above, without FastAPI's per-request steps."""
    return await _recommend(request, await body_as(request, RecommendationRequest))


# Routes served by service/direct.py: (method, path) -> the handler.
DIRECT = {("POST", "/recommendations"): recommendations_direct}


async def _recommend(request: Request, body: RecommendationRequest) -> Response:
    try:
        ratings = body.movie_ratings()
    except ValueError as exc:
        raise QueryError(str(exc)) from None
    if body.year_min is not None and body.year_max is not None and body.year_min > body.year_max:
        raise QueryError("year_min is after year_max", field="year_max")
    movie_filter = MovieFilter(genres=tuple(body.genres), year_min=body.year_min,
                               year_max=body.year_max)
    answer = await on_store(request, "recommend", recommend.recommend, ratings, limit=body.limit,
                            neighbors=body.neighbors, scale=body.scale, model=body.model,
                            movie_filter=movie_filter)
    return _answer(answer, request)


@router.get("/users/{user_id}/recommendations", response_model=RecommendationResponse,
            responses={404: {"model": Problem}})
async def user_recommendations(
    request: Request,
    user_id: Annotated[int, Path(ge=0, le=MAX_ID)],
    limit: Annotated[int, Query(ge=1, le=recommend.MAX_LIMIT)] = 5,
    neighbors: Annotated[int | None, Query(ge=1, le=recommend.MAX_NEIGHBORS)] = None,
    model: Annotated[ModelName | None, Query()] = None,
):
    """Movies for an existing MovieLens user, excluding what they rated (default: the item
    model, the best for them on the existing-users protocol; the tutorial where it is not
    ingested)."""
    answer = await on_store(request, "recommend_for_user", recommend.recommend_for_user, user_id,
                            limit=limit, neighbors=neighbors, model=model)
    return _answer(answer, request)


@router.get("/models", response_model=ModelList)
async def models(request: Request):
    """The models the live data supports, best first; `default` is used when none is named."""
    names = await on_store(request, "models", recommend.available_models)
    return {"default": names[0], "liked_stars": schema.LIKED_STARS, "models": [
        {"name": n, "description": REGISTRY.get(n).description, "filters": True} for n in names]}


def _answer(answer: recommend.Answer, request: Request) -> Response:
    """The answer's JSON, written directly (response_model documents it): FastAPI would validate
    the dicts the library built once more, half the cost of writing them."""
    record_answer(request, answer.model, len(answer.items))  # for the metrics, by model
    return Response(recommendation_json(answer.model, answer.neighbors,
                                        [r.to_dict() for r in answer.items]),
                    media_type="application/json")
