"""Observability and guards as plain ASGI middleware (cheap on every request): body-size limit,
bearer-token check, Prometheus metrics, and one structured JSON log line per request.
"""

from __future__ import annotations

import hmac
import json
import logging
import sys
import time

from movierec.service.metrics import Metrics

log = logging.getLogger("movierec.access")

OPEN_PATHS = frozenset({"/healthz", "/readyz"})
# Set in a request's scope when its body did not arrive in time and the server sent 408.
READ_TIMED_OUT = "movierec.read_timed_out"


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

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        message = f"request body is larger than {self.max_bytes} bytes"
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_bytes
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
                if seen > self.max_bytes:
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


class Observe:
    """Counts and times every request by its route template, status and the model that answered
    (set in the request state by the route), and logs it as one JSON line."""

    def __init__(self, app, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = 500

        async def send_status(msg):
            nonlocal status
            if msg["type"] == "http.response.start":
                status = msg["status"]
            await send(msg)

        try:
            await self.app(scope, receive, send_status)
        finally:
            if scope.get(READ_TIMED_OUT):  # the server answered 408 itself (service/server.py)
                status = 408
            elapsed = time.perf_counter() - start
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            self.metrics.observe_request(scope, method, template, status, elapsed)
            if log.isEnabledFor(logging.INFO):
                log.info("request", extra={"http": {
                    "method": method, "route": template, "path": scope.get("path"),
                    "status": status, "duration_ms": round(elapsed * 1000, 3),
                    "client": (scope.get("client") or ("", 0))[0],
                }})


class JsonFormatter(logging.Formatter):
    """One JSON object per line. Only fields we put there: never headers, never keys."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        http = getattr(record, "http", None)
        if http:
            entry.update(http)
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info).splitlines()[-1]
        return json.dumps(entry, default=str)


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # Observe logs each request instead
    logging.captureWarnings(True)  # e.g. qdrant-client's "insecure connection": JSON like the rest
    logging.getLogger("httpx").setLevel(logging.WARNING)  # its lines would repeat Qdrant URLs
