"""The route that carries the product's load, without FastAPI's per-request machinery.

POST /recommendations is what the web page and every client call, once per answer. Through
FastAPI's router, its dependency solving and its exception middleware, the request cost a third
of a millisecond on top of the answer itself. Here it is plain ASGI: the body read, parsed
strictly (service/strict.py) and validated with the same pydantic model, the errors rendered by
the same functions (service/errors.py), the answer written by the same code as FastAPI's route
(routes/recommendations.py), which documents it in /docs and stays the reference:
tests/test_direct.py holds the two to the same status, headers and bytes for good and bad bodies.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TypeVar

from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from movierec.service import strict
from movierec.service.errors import http_problem, json_invalid, library_problem, validation_problem

Model = TypeVar("Model", bound=BaseModel)
Handler = Callable[[Request], Awaitable[Response]]

# FastAPI's words for a body it could not read (a client that left, a body over the limit) and
# for a request without one.
UNREADABLE = "There was an error parsing the body"
MISSING = {"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}


async def body_as(request: Request, model: type[Model]) -> Model:
    """The request's JSON body as `model`, or the error FastAPI's route raises for it: 415 when
    it is not application/json, 400 when it cannot be read, 422 when it is not valid."""
    strict.require_json(request)
    try:
        raw = await request.body()
    except ClientDisconnect:
        raise HTTPException(400, UNREADABLE) from None
    if not raw:
        raise RequestValidationError([MISSING])
    try:
        data = strict.loads(raw)
    except json.JSONDecodeError as exc:
        raise RequestValidationError([json_invalid(exc)]) from None
    try:
        # As FastAPI validates a body (from_attributes: its words for a body that is no object).
        return model.model_validate(data, from_attributes=True)
    except ValidationError as exc:
        raise RequestValidationError([{**error, "loc": ("body", *error["loc"])}
                                      for error in exc.errors()]) from None


def route_of(routes, method: str, path: str) -> APIRoute:
    """FastAPI's route for `method path` (what the metrics name the request by)."""
    for route in routes:
        if isinstance(route, APIRoute) and route.path == path and method in route.methods:
            return route
    raise LookupError(f"no route {method} {path}")


class DirectRoutes:
    """ASGI middleware, the innermost of the service's own (the guards and the metrics see every
    request as before): a request for a method and path it holds a handler for goes straight to
    that handler, anything else to FastAPI. Errors are answered as FastAPI's handlers answer
    them; an unexpected one goes up to the outermost middleware's 500, as from any route."""

    def __init__(self, app, routes: dict[tuple[str, str], tuple[APIRoute, Handler]]):
        self.app = app
        self.routes = routes

    async def __call__(self, scope, receive, send):
        hit = self.routes.get((scope.get("method"), scope.get("path"))) \
            if scope["type"] == "http" else None
        if hit is None:
            return await self.app(scope, receive, send)
        route, handler = hit
        scope["route"] = route
        request = Request(scope, receive, send)
        try:
            response = await handler(request)
        except RequestValidationError as exc:
            response = validation_problem(list(exc.errors()))
        except HTTPException as exc:
            response = http_problem(exc)
        except Exception as exc:
            response = library_problem(exc)
            if response is None:
                raise
        await response(scope, receive, send)
