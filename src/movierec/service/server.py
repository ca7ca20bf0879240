"""`movierec serve`: uvicorn with JSON logs and graceful shutdown (in-flight requests finish).

uvicorn alone waits forever for a request that arrives slowly and accepts request heads of any
size; the protocol below bounds both, so slow or oversized clients cannot pin the server. It also
closes with a lingering close when it answers before a request's body has arrived (a 413): it
stops writing, drains what the client still sends (bounded), then closes, so the client reads
its answer instead of a reset.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from movierec.config import Settings
from movierec.errors import MovierecError
from movierec.models.tutorial import example_ratings
from movierec.recommend import warm
from movierec.service.app import create_app
from movierec.service.observe import READ_TIMED_OUT, configure_logging
from movierec.store import open_reader

log = logging.getLogger("movierec.service")

# A whole request (line, headers and body; at most 64 KiB) must arrive within this many seconds
# of the connection opening or the previous response: then 408 and the connection is closed.
REQUEST_READ_TIMEOUT = 10.0
# Request line plus headers, in bytes (a URL with a 200-character search fits many times over).
MAX_REQUEST_HEAD = 16 * 1024
KEEP_ALIVE_TIMEOUT = 5
# Lingering close: after answering a request whose body is still arriving, read and discard at
# most this many bytes for at most this many seconds before closing. Closing with unread data
# makes the kernel send a reset, and a client still sending its body then loses the answer.
LINGER_BYTES = 8 * 1024 * 1024
LINGER_SECONDS = 5.0



def curl_example(host: str, port: int) -> str:
    shown = "localhost" if host in ("0.0.0.0", "127.0.0.1", "::") else host
    ratings = {str(m): int(r) for m, r in example_ratings().items()}
    body = json.dumps({"ratings": ratings, "limit": 5, "model": "tutorial"})
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


def _raw_json(status: int, reason: str, body: dict) -> bytes:
    payload = json.dumps(body).encode()
    return (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(payload)}\r\nconnection: close\r\n\r\n"
    ).encode() + payload


class _LingeringTransport:
    """The transport as the request cycles see it: their close() becomes a lingering close
    while the request's body is still arriving; everything else goes to the real transport."""

    def __init__(self, transport, protocol: GuardedHttpProtocol):
        self._transport = transport
        self._protocol = protocol

    def close(self) -> None:
        if self._protocol._receiving_body and not self._transport.is_closing():
            self._protocol._linger()
        else:
            self._transport.close()

    def __getattr__(self, name: str):
        return getattr(self._transport, name)


class GuardedHttpProtocol(HttpToolsProtocol):
    """httptools' protocol with a deadline for reading each request, a cap on its head, and a
    lingering close."""

    read_timeout = REQUEST_READ_TIMEOUT
    max_head = MAX_REQUEST_HEAD
    linger_bytes = LINGER_BYTES
    linger_seconds = LINGER_SECONDS

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._read_deadline: asyncio.TimerHandle | None = None
        self._head_bytes = 0
        self._head_too_large = False
        self._reading_head = True  # until this request's headers are complete
        self._receiving_body = False  # between a request's head and the end of its body
        self._lingering: asyncio.TimerHandle | None = None
        self._drained = 0
        self._raw_transport = None

    def _arm_read_deadline(self) -> None:
        self._disarm_read_deadline()
        self._read_deadline = self.loop.call_later(self.read_timeout, self._read_timed_out)

    def _disarm_read_deadline(self) -> None:
        if self._read_deadline is not None:
            self._read_deadline.cancel()
            self._read_deadline = None

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._raw_transport = transport
        self.transport = _LingeringTransport(transport, self)  # type: ignore[assignment]
        self._arm_read_deadline()  # a connection that never sends a byte is closed too

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_read_deadline()
        if self._lingering is not None:
            self._lingering.cancel()
            self._lingering = None
        super().connection_lost(exc)

    def _linger(self) -> None:
        """The answer is written: send FIN after it (the client reads the whole answer), keep
        reading and dropping the rest of the body, and close at the first bound reached (bytes,
        seconds) or when the client closes its side."""
        if self._lingering is not None:
            return
        self._disarm_read_deadline()
        transport = self._raw_transport
        try:
            transport.write_eof()
        except (OSError, RuntimeError):
            transport.close()
            return
        self.flow.resume_reading()
        self._lingering = self.loop.call_later(self.linger_seconds, transport.close)

    def data_received(self, data: bytes) -> None:
        if self._lingering is not None:
            self._drained += len(data)
            if self._drained > self.linger_bytes:
                self._raw_transport.close()
            return
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0
        self._reading_head = True
        self._arm_read_deadline()

    def on_url(self, url: bytes) -> None:
        self._count_head(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_head(len(name) + len(value) + 4)
        super().on_header(name, value)

    def _count_head(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > self.max_head:
            # Raised inside the parser's callback: the parser stops, send_400_response runs.
            self._head_too_large = True
            raise ValueError("request head too large")

    def on_headers_complete(self) -> None:
        self._reading_head = False
        self._receiving_body = True
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._receiving_body = False
        self._disarm_read_deadline()
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        if self._head_too_large:
            body = {"error": f"request line and headers are larger than {self.max_head} bytes"}
            self.transport.write(_raw_json(431, "Request Header Fields Too Large", body))
        else:
            self.transport.write(_raw_json(400, "Bad Request", {"error": "invalid HTTP request"}))
        self.transport.close()

    def _read_timed_out(self) -> None:
        self._read_deadline = None
        # self.cycle is this request's only once its head is complete (before: the previous one).
        cycle = None if self._reading_head else self.cycle
        if self.transport.is_closing() or (cycle is not None and cycle.response_started):
            return
        log.warning("request not received in time; connection closed", extra={"http": {
            "status": 408, "client": (self.client or ("", 0))[0],
            "timeout_s": self.read_timeout}})
        if cycle is not None:
            cycle.scope[READ_TIMED_OUT] = True  # type: ignore[literal-required]
        self.transport.write(_raw_json(408, "Request Timeout", {
            "error": f"the request did not arrive within {self.read_timeout:g} seconds"}))
        self.transport.close()


def uvicorn_config(app, host: str, port: int) -> uvicorn.Config:
    """uvicorn as `movierec serve` runs it: the guarded protocol, no access log of its own."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on",
        # SIGTERM: stop accepting, let in-flight requests finish (up to this long), then exit.
        timeout_graceful_shutdown=20,
        timeout_keep_alive=KEEP_ALIVE_TIMEOUT,
        http=GuardedHttpProtocol,
        server_header=False,
        proxy_headers=False,
    )


def serve(settings: Settings, host: str | None = None, port: int | None = None) -> int:
    host = host or settings.host
    port = port or settings.port
    configure_logging(settings.log_level)
    # The store is opened here, not in the app's lifespan: uvicorn would log an error raised
    # there as a traceback and exit 3, where a locked embedded store deserves one line and 1.
    try:
        store = open_reader(settings)
    except MovierecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if store.answers_in_process:
        # The embedded store's first answers would build its tables inside a person's request
        # (the first one on ml-1m: 130 ms instead of 3); a server store is left to its first
        # request, so that an unreachable Qdrant cannot hold up the start (readiness says so).
        warm(store)
    try:
        return _run(settings, store, host, port)
    finally:
        store.close()


def _run(settings: Settings, store, host: str, port: int) -> int:
    try:
        app = create_app(settings, store=store)
    except MovierecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    server = _Server(uvicorn_config(app, host, port),
                     f"movierec is serving on http://{host}:{port} (docs at /docs); "
                     f"try:\n  {curl_example(host, port)}")
    try:
        # Server.run, not asyncio.run(server.serve()): it runs on the loop the config chooses
        # (uvloop, installed with uvicorn[standard]; asyncio's own where it is missing).
        server.run()
    except MovierecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0 if server.started else 1
