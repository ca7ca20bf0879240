"""Strict request bodies: JSON only as application/json, UTF-8, no duplicate keys, bounded nesting.
Every route of the API is a StrictRoute."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi import HTTPException, Request
from fastapi.routing import APIRoute

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
            self._json = loads(await self.body())
        return self._json


def loads(body: bytes) -> Any:
    """A request body's JSON: UTF-8, no duplicate keys, nested at most MAX_JSON_DEPTH levels
    (json.JSONDecodeError otherwise, as for any invalid JSON)."""
    # Fewer brackets than the limit cannot nest deeper (most bodies): no scan.
    if (body.count(b"{") + body.count(b"[") > MAX_JSON_DEPTH
            and max_depth(body) > MAX_JSON_DEPTH):
        raise json.JSONDecodeError(f"nested deeper than {MAX_JSON_DEPTH} levels", "", 0)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise json.JSONDecodeError("the body is not UTF-8", "", 0) from None
    return json.loads(text, object_pairs_hook=_no_duplicate_keys)


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


def require_json(request: Request) -> None:
    """415 unless the request's body is declared application/json."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise HTTPException(415, "send the body as JSON (Content-Type: application/json)")


class StrictRoute(APIRoute):
    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def strict(request: Request):
            if request.method == "POST":
                require_json(request)
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict
