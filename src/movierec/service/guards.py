"""Guards as plain ASGI middleware, before any route runs: a body-size limit and the bearer-token
check (when SERVICE_API_KEY is set)."""

from __future__ import annotations

import hmac
import json

# Routes that never need the bearer token: the probes must answer the kubelet.
OPEN_PATHS = frozenset({"/healthz", "/readyz"})


async def _send_json(send, status: int, body: dict, headers: list | None = None) -> None:
    payload = json.dumps(body).encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()), *(headers or [])],
    })
    await send({"type": "http.response.body", "body": payload})


class BodyLimit:
    """413 for bodies over max_bytes, whether announced by Content-Length or streamed."""

    def __init__(self, app, max_bytes: int, larger: dict[str, int] | None = None):
        self.app = app
        self.max_bytes = max_bytes
        self.larger = larger or {}  # path -> its own limit (an uploaded file)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        max_bytes = self.larger.get(scope["path"], self.max_bytes)
        message = f"request body is larger than {max_bytes} bytes"
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    too_big = int(value) > max_bytes
                except ValueError:
                    return await _send_json(send, 400, {"error": "invalid Content-Length"})
                if too_big:
                    return await _send_json(send, 413, {"error": message},
                                            [(b"connection", b"close")])
        seen = 0
        started = refused = False

        # A streamed body over the limit: answer 413 at once and tell the app the client left.
        # (Raising here instead would reach the route's body parser, which turns any error into
        # FastAPI's generic 400.)
        async def limited_receive():
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > max_bytes:
                    refused = True
                    if not started:
                        await _send_json(send, 413, {"error": message},
                                         [(b"connection", b"close")])
                    return {"type": "http.disconnect"}
            return msg

        async def tracking_send(msg):
            nonlocal started
            if refused:
                return  # the 413 is out; whatever the app answers after it is dropped
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        await self.app(scope, limited_receive, tracking_send)


class BearerAuth:
    """When SERVICE_API_KEY is set, every route but the health probes needs it (constant time)."""

    def __init__(self, app, token: str | None):
        self.app = app
        self.expected = f"Bearer {token}".encode() if token else None

    async def __call__(self, scope, receive, send):
        if self.expected is None or scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            return await self.app(scope, receive, send)
        given = b""
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                given = value
                break
        if not hmac.compare_digest(given, self.expected):
            return await _send_json(
                send, 401, {"error": "missing or wrong bearer token (Authorization: Bearer ...)"},
                [(b"www-authenticate", b"Bearer")],
            )
        return await self.app(scope, receive, send)
