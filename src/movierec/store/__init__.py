"""Qdrant access behind one small interface: `open_reader` for serving, `open_writer` for ingest.

QDRANT_URL unset: the embedded engine (qdrant-edge) under QDRANT_PATH. QDRANT_URL=http(s)://...:
a Qdrant server through qdrant-client. QDRANT_URL=local:PATH or local::memory:: qdrant-client's
local mode (the server code path, without a server).
"""

from __future__ import annotations

import time

from movierec.config import Settings
from movierec.errors import StoreUnavailable
from movierec.store.base import (
    MovieFilter,
    MoviePoints,
    Neighbor,
    ScoredMovie,
    StoreReader,
    StoreStatus,
    StoreWriter,
    UserPoints,
)

__all__ = [
    "MovieFilter",
    "MoviePoints",
    "Neighbor",
    "ScoredMovie",
    "StoreReader",
    "StoreStatus",
    "StoreWriter",
    "UserPoints",
    "open_reader",
    "open_writer",
    "rollback",
    "wait_until_reachable",
]


def _client(settings: Settings):
    from movierec.store.server import make_client

    key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
    return make_client(settings.qdrant_url, key, settings.qdrant_prefer_grpc, settings.qdrant_timeout)


def open_reader(settings: Settings) -> StoreReader:
    """A read-only handle on the live collections (one per process)."""
    if settings.store_kind == "embedded":
        from movierec.store.embedded import EmbeddedReader

        return EmbeddedReader(settings.qdrant_path)
    from movierec.store.server import ServerReader

    return ServerReader(_client(settings), settings.qdrant_url)


def open_writer(settings: Settings) -> StoreWriter:
    if settings.store_kind == "embedded":
        from movierec.store.embedded import EmbeddedWriter

        return EmbeddedWriter(settings.qdrant_path, keep_previous=settings.keep_previous_versions)
    from movierec.store.server import Replication, ServerWriter

    replication = Replication(settings.qdrant_shards, settings.qdrant_replication_factor,
                              settings.qdrant_write_consistency)
    return ServerWriter(_client(settings), settings.qdrant_url, replication=replication,
                        keep_previous=settings.keep_previous_versions)


def rollback(settings: Settings) -> tuple[str, str]:
    """Make the previous complete version live again, atomically; (from, to) versions. Running
    services pick it up as they pick up a new ingest."""
    if settings.store_kind == "embedded":
        from movierec.store import embedded

        return embedded.rollback(settings.qdrant_path)
    from movierec.store import server

    return server.rollback(_client(settings), settings.qdrant_url)


def wait_until_reachable(settings: Settings, seconds: float, log=print) -> None:
    """Bounded retries with backoff until a Qdrant server answers (embedded: always reachable)."""
    if settings.store_kind == "embedded":
        return
    from qdrant_client.http.exceptions import UnexpectedResponse

    from movierec.store.server import UNAVAILABLE, _describe

    client = _client(settings)
    deadline = time.monotonic() + seconds
    delay = 0.5
    while True:
        try:
            client.get_collections()
            return
        except UNAVAILABLE as exc:
            message = _describe(exc, settings.qdrant_url)
            if time.monotonic() + delay > deadline:
                raise StoreUnavailable(f"{message} (gave up after {seconds:g}s)") from None
            log(f"waiting for Qdrant: {message}; retrying in {delay:.1f}s")
            time.sleep(delay)
            delay = min(delay * 2, 10.0)
        except UnexpectedResponse as exc:  # answered, but refused: retrying will not help
            raise StoreUnavailable(_describe(exc, settings.qdrant_url)) from None
