"""`movierec serve`: uvicorn with JSON logs and graceful shutdown (in-flight requests finish)."""

from __future__ import annotations

import asyncio
import json
import logging
import sys

import uvicorn

from movierec.config import Settings
from movierec.errors import MovierecError
from movierec.service.app import create_app
from movierec.service.observe import configure_logging

log = logging.getLogger("movierec.service")

TUTORIAL = {"2571": 1, "329": 1, "260": 1, "1": 1, "356": 1, "2116": 1,
            "2288": -1, "1721": -1, "296": -1, "1291": -1, "1036": -1}


def curl_example(host: str, port: int) -> str:
    shown = "localhost" if host in ("0.0.0.0", "127.0.0.1", "::") else host
    body = json.dumps({"ratings": TUTORIAL, "limit": 5})
    return (f"curl -s {shown}:{port}/recommendations -H 'content-type: application/json' "
            f"-d '{body}'")


class _Server(uvicorn.Server):
    """Prints the ready-to-paste curl command once the socket is listening."""

    def __init__(self, config: uvicorn.Config, announce: str):
        super().__init__(config)
        self._announce = announce

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets)
        if self.started:
            print(self._announce, file=sys.stderr, flush=True)


def serve(settings: Settings, host: str | None = None, port: int | None = None) -> int:
    host = host or settings.host
    port = port or settings.port
    configure_logging(settings.log_level)
    try:
        app = create_app(settings)
    except MovierecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on",
        # SIGTERM: stop accepting, let in-flight requests finish (up to this long), then exit.
        timeout_graceful_shutdown=20,
        timeout_keep_alive=5,
        server_header=False,
        proxy_headers=False,
    )
    server = _Server(config, f"movierec is serving on http://{host}:{port} (docs at /docs); "
                             f"try:\n  {curl_example(host, port)}")
    try:
        asyncio.run(server.serve())
    except MovierecError as exc:  # raised by the lifespan: e.g. the embedded store is locked
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0 if server.started else 1
