"""Every error the API sends is one JSON line, {"error": ..., "field": ...}: library errors map to
4xx/503 here, validation errors name their field, and nothing ever answers with a traceback."""

from __future__ import annotations

import json
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from movierec.errors import NotFoundError, NotServedError, QueryError, StoreBusy, StoreUnavailable
from movierec.imports.formats import ExportError

log = logging.getLogger("movierec.service")


def problem(status: int, error: str, field: str | None = None, headers=None) -> JSONResponse:
    body = {"error": error} if field is None else {"error": error, "field": field}
    return JSONResponse(body, status_code=status, headers=headers)


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


def validation_problem(errors: list[dict]) -> JSONResponse:
    """422 for a request that failed validation: its first error, naming the field."""
    first = errors[0] if errors else {}
    field = None if first.get("type") == "json_invalid" else _field(tuple(first.get("loc", ())))
    return problem(422, _message(first), field)


def json_invalid(exc: json.JSONDecodeError) -> dict:
    """A body that is not JSON, as a validation error (FastAPI's own words for it)."""
    return {"type": "json_invalid", "loc": ("body", exc.pos), "msg": "JSON decode error",
            "input": {}, "ctx": {"error": exc.msg}}


# The library's errors that are the client's or the store's, not the service's (library_problem
# answers each); any other error is a 500.
LIBRARY_ERRORS = (QueryError, NotFoundError, NotServedError, StoreUnavailable, StoreBusy)


def library_problem(exc: Exception) -> JSONResponse | None:
    """The answer to one of LIBRARY_ERRORS (None for any other error)."""
    if isinstance(exc, ExportError):  # a QueryError about an uploaded file
        return problem(422, str(exc), "file")
    if isinstance(exc, QueryError):
        return problem(422, str(exc), exc.field)
    if isinstance(exc, NotFoundError):
        return problem(404, str(exc))
    if isinstance(exc, NotServedError):
        return problem(409, str(exc))
    if isinstance(exc, (StoreUnavailable, StoreBusy)):
        return problem(503, str(exc), headers={"Retry-After": "5"})
    return None


def http_problem(exc: StarletteHTTPException) -> JSONResponse:
    detail = exc.detail if isinstance(exc.detail, str) else "request failed"
    if exc.status_code == 404 and detail == "Not Found":
        detail = "no such route; see /docs"
    return problem(exc.status_code, detail, headers=getattr(exc, "headers", None))


def add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError):
        return validation_problem(list(exc.errors()))

    async def library_error(_: Request, exc: Exception):
        return library_problem(exc)

    for error in LIBRARY_ERRORS:
        app.add_exception_handler(error, library_error)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException):
        return http_problem(exc)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception):
        log.error("unexpected error", exc_info=exc)
        return problem(500, "internal error; the service log has the details")
