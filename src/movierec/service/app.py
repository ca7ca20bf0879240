"""The FastAPI application. Routes validate, call movierec.recommend, and shape JSON; no logic."""

from __future__ import annotations

import json
import logging
import time
from contextlib import asynccontextmanager
from functools import partial
from typing import Annotated, Any, Callable, Literal

import anyio
from fastapi import FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.routing import APIRoute
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException as StarletteHTTPException

from movierec import __version__, recommend
from movierec.config import Settings, get_settings
from movierec.errors import NotFoundError, QueryError, StoreBusy, StoreUnavailable
from movierec.service.metrics import record_answer
from movierec.service.observe import BearerAuth, BodyLimit, Metrics, Observe
from movierec.service.schemas import (
    MAX_ID,
    GenreList,
    ModelList,
    MovieList,
    MovieOut,
    Problem,
    Ready,
    RecommendationRequest,
    RecommendationResponse,
)
from movierec.service.web import mount_web
from movierec.store import MovieFilter, StoreReader, open_reader

log = logging.getLogger("movierec.service")

MAX_BODY = 64 * 1024
MAX_JSON_DEPTH = 32


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise json.JSONDecodeError(f"duplicate key {key[:40]!r}", "", 0)
        seen[key] = value
    return seen


class StrictJSONRequest(Request):
    """JSON bodies without duplicate keys, bounded nesting, and only as application/json."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            depth = max_depth(body)
            if depth > MAX_JSON_DEPTH:
                raise json.JSONDecodeError(f"nested deeper than {MAX_JSON_DEPTH} levels", "", 0)
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                raise json.JSONDecodeError("the body is not UTF-8", "", 0) from None
            self._json = json.loads(text, object_pairs_hook=_no_duplicate_keys)
        return self._json


def max_depth(body: bytes) -> int:
    """Nesting depth of a JSON text, counted without parsing it (brackets outside strings)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


class StrictRoute(APIRoute):
    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def strict(request: Request):
            if request.method == "POST":
                kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
                if kind != "application/json":
                    raise HTTPException(415, "send the body as JSON (Content-Type: application/json)")
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict


def _safe(part: object) -> str:
    """A location part as printable text of bounded length (it can be a client's dict key)."""
    text = str(part)
    if not text.isprintable() or len(text) > 40:
        text = repr(text[:40])
    return text


def _field(loc: tuple) -> str | None:
    parts = [_safe(p) for p in loc if p not in ("body", "query", "path") and not isinstance(p, int)]
    return ".".join(parts) or None


def _message(error: dict) -> str:
    if error.get("type") == "json_invalid":
        detail = (error.get("ctx") or {}).get("error", "")
        return f"invalid JSON: {detail}" if detail else "invalid JSON"
    msg = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    field = _field(tuple(error.get("loc", ())))
    return f"{field}: {msg}" if field else msg


def problem(status: int, error: str, field: str | None = None, headers=None) -> JSONResponse:
    body = {"error": error} if field is None else {"error": error, "field": field}
    return JSONResponse(body, status_code=status, headers=headers)


def create_app(settings: Settings | None = None, store: StoreReader | None = None) -> FastAPI:
    settings = settings or get_settings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.store = store if store is not None else open_reader(settings)
        try:
            yield
        finally:
            if store is None:
                app.state.store.close()

    app = FastAPI(
        title="movierec",
        version=__version__,
        description="Movie recommendations from MovieLens ratings, served from Qdrant.",
        lifespan=lifespan,
        responses={
            401: {"model": Problem, "description": "SERVICE_API_KEY is set and the bearer "
                  "token is missing or wrong"},
            413: {"model": Problem, "description": "request body over 64 KiB"},
            415: {"model": Problem, "description": "body is not application/json"},
            422: {"model": Problem},
            503: {"model": Problem, "description": "Qdrant unreachable or holding no data"},
        },
    )
    app.router.route_class = StrictRoute

    async def call(operation: str, fn: Callable, *args, **kwargs):
        """Embedded calls are sub-millisecond: run inline. Server calls go to a thread."""
        s: StoreReader = app.state.store
        start = time.perf_counter()
        try:
            if s.kind == "embedded":
                return fn(s, *args, **kwargs)
            return await anyio.to_thread.run_sync(partial(fn, s, *args, **kwargs))
        finally:
            metrics.store_latency.labels(operation).observe(time.perf_counter() - start)

    # --- errors: always one JSON line, never a traceback --------------------------------------

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        field = None if first.get("type") == "json_invalid" else _field(tuple(first.get("loc", ())))
        return problem(422, _message(first), field)

    @app.exception_handler(QueryError)
    async def invalid_query(_: Request, exc: QueryError):
        return problem(422, str(exc), "ratings")

    @app.exception_handler(NotFoundError)
    async def not_found(_: Request, exc: NotFoundError):
        return problem(404, str(exc))

    @app.exception_handler(StoreUnavailable)
    @app.exception_handler(StoreBusy)
    async def unavailable(_: Request, exc: Exception):
        return problem(503, str(exc), headers={"Retry-After": "5"})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException):
        detail = exc.detail if isinstance(exc.detail, str) else "request failed"
        if exc.status_code == 404 and detail == "Not Found":
            detail = "no such route; see /docs"
        return problem(exc.status_code, detail, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception):
        log.error("unexpected error", exc_info=exc)
        return problem(500, "internal error; the service log has the details")

    # --- routes --------------------------------------------------------------------------------

    @app.post("/recommendations", response_model=RecommendationResponse, tags=["recommend"])
    async def recommendations(body: RecommendationRequest, request: Request):
        """Movies for a person's ratings (+1 like / -1 dislike, or 1-5 stars), with the chosen
        model and optional genre / year filters; each with a one-line reason."""
        try:
            ratings = body.movie_ratings()
        except ValueError as exc:
            raise QueryError(str(exc)) from None
        if body.year_min is not None and body.year_max is not None and body.year_min > body.year_max:
            raise QueryError("year_min is after year_max")
        movie_filter = MovieFilter(genres=tuple(body.genres), year_min=body.year_min,
                                   year_max=body.year_max)
        answer = await call("recommend", recommend.recommend, ratings, limit=body.limit,
                            neighbors=body.neighbors, scale=body.scale, model=body.model,
                            movie_filter=movie_filter)
        return _answer(answer, request)

    @app.get("/users/{user_id}/recommendations", response_model=RecommendationResponse,
             tags=["recommend"], responses={404: {"model": Problem}})
    async def user_recommendations(
        request: Request,
        user_id: Annotated[int, Path(ge=0, le=MAX_ID)],
        limit: Annotated[int, Query(ge=1, le=recommend.MAX_LIMIT)] = 5,
        neighbors: Annotated[int | None, Query(ge=1, le=recommend.MAX_NEIGHBORS)] = None,
        model: Annotated[Literal["item", "user-knn", "tutorial"], Query()] = "tutorial",
    ):
        """Movies for an existing MovieLens user, excluding what they rated."""
        answer = await call("recommend_for_user", recommend.recommend_for_user, user_id,
                            limit=limit, neighbors=neighbors, model=model)
        return _answer(answer, request)

    @app.get("/models", response_model=ModelList, tags=["recommend"])
    async def models():
        """The models the live data supports, best first; `default` is used when none is named."""
        names = await call("models", recommend.available_models)
        return {"default": names[0], "models": [
            {"name": n, "description": recommend.MODELS[n], "filters": True} for n in names]}

    @app.get("/genres", response_model=GenreList, tags=["movies"])
    async def genres():
        catalog = await call("catalog", lambda s: s.catalog())
        return {"genres": catalog.genres}

    @app.get("/movies", response_model=MovieList, tags=["movies"])
    async def movies(
        search: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
        limit: Annotated[int, Query(ge=1, le=100)] = 10,
    ):
        """Movies whose title contains `search` (most rated first); without it, the most rated."""
        catalog = await call("catalog", lambda s: s.catalog())
        found = catalog.search(search, limit) if search else catalog.most_rated(limit)
        return {"items": [m.to_dict() for m in found]}

    @app.get("/movies/{movie_id}", response_model=MovieOut, tags=["movies"],
             responses={404: {"model": Problem}})
    async def movie(movie_id: Annotated[int, Path(ge=0, le=MAX_ID)]):
        catalog = await call("catalog", lambda s: s.catalog())
        found = catalog.get(movie_id)
        if found is None:
            raise NotFoundError(f"no movie {movie_id} in the dataset")
        return found.to_dict()

    @app.get("/healthz", tags=["operations"])
    async def healthz():
        """The process is alive (no dependency checked)."""
        return {"status": "ok"}

    @app.get("/readyz", response_model=Ready, tags=["operations"],
             responses={503: {"model": Ready}})
    async def readyz():
        """Ready when the store is reachable and both collections hold data."""
        status = await call("status", lambda s: s.status())
        body = Ready(
            status="ready" if status.ready else "not ready",
            store=app.state.store.kind,
            users=status.users,
            movies=status.movies,
            version=status.version,
            dataset=status.meta.get("dataset"),
            detail=status.detail or None,
        ).model_dump()
        return JSONResponse(body, status_code=200 if status.ready else 503)

    @app.get("/metrics", tags=["operations"], response_class=PlainTextResponse)
    async def prometheus():
        return PlainTextResponse(await metrics.exposition(app.state.store),
                                 media_type=CONTENT_TYPE_LATEST)

    # add_middleware wraps: the last added is outermost. Observe sees every request (413 and
    # 401 included); the size limit runs before auth so a huge body is refused unread.
    app.add_middleware(BearerAuth, token=settings.service_api_key.get_secret_value()
                       if settings.service_api_key else None)
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY)
    if settings.cors_origin_list:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origin_list,
                           allow_methods=["GET", "POST"], allow_headers=["*"])
    app.add_middleware(Observe, metrics=metrics)
    app.state.metrics = metrics
    mount_web(app)
    return app


def _answer(answer: recommend.Answer, request: Request) -> dict:
    record_answer(request, answer.model, len(answer.items))  # for the metrics, by model
    return {"model": answer.model, "neighbors": answer.neighbors,
            "items": [r.to_dict() for r in answer.items]}
