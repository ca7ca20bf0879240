"""The server store: a Qdrant server through qdrant-client (REST or gRPC, URL + API key).

The same classes run on qdrant-client's local mode (`QDRANT_URL=local::memory:` or
`local:PATH`), which is how this code path is tested without a server. An ingest writes
collections `<alias>-<version>` and switches both aliases in one atomic alias operation.
"""

from __future__ import annotations

import atexit
import threading
import time
from typing import Any

from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from movierec import schema
from movierec.catalog import MovieCatalog
from movierec.errors import StoreUnavailable
from movierec.meta import IngestMeta
from movierec.store.base import (
    MovieFilter,
    MoviePoints,
    Neighbor,
    ScoredMovie,
    StoreReader,
    StoreStatus,
    StoreWriter,
    UserPoints,
    as_sparse,
    movie_rows,
    named_vectors,
    new_version,
    user_rows,
)
from movierec.vectors import SparseVector

# Failures that mean "Qdrant is not there or not answering", mapped to StoreUnavailable.
try:  # grpc is optional at run time (REST is the default)
    from grpc import RpcError as _RpcError
except ImportError:  # pragma: no cover
    _RpcError = ConnectionError  # type: ignore[assignment,misc]

UNAVAILABLE = (ResponseHandlingException, ConnectionError, TimeoutError, OSError, _RpcError)

_LOCAL_CLIENTS: dict[str, QdrantClient] = {}
_LOCAL_MUTEX = threading.Lock()


def make_client(url: str, api_key: str | None, prefer_grpc: bool, timeout: float) -> QdrantClient:
    """A client for a server URL, or for qdrant-client's local mode ("local:PATH")."""
    if url.startswith("local:"):
        location = url.removeprefix("local:")
        # Local mode allows one client per path in a process: share it between reader and writer.
        with _LOCAL_MUTEX:
            client = _LOCAL_CLIENTS.get(location)
            if client is None:
                try:
                    client = (
                        QdrantClient(location=":memory:")
                        if location == ":memory:"
                        else QdrantClient(path=location)
                    )
                except RuntimeError as exc:  # portalocker: path used by another process
                    raise StoreUnavailable(f"qdrant-client local mode at {location}: {exc}") from None
                _LOCAL_CLIENTS[location] = client
                atexit.register(client.close)
            return client
    return QdrantClient(
        url=url,
        api_key=api_key,
        prefer_grpc=prefer_grpc,
        timeout=int(max(1, timeout)),
        check_compatibility=False,
    )


def _describe(exc: BaseException, url: str) -> str:
    if isinstance(exc, UnexpectedResponse):
        if exc.status_code in (401, 403):
            return f"Qdrant at {url} refused the API key (HTTP {exc.status_code}); check QDRANT_API_KEY"
        return f"Qdrant at {url} answered HTTP {exc.status_code}"
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"cannot reach Qdrant at {url}: {reason[:200]}"


def _sparse(vector: SparseVector) -> models.SparseVector:
    return models.SparseVector(indices=vector.indices.tolist(), values=vector.values.tolist())


def _movie_filter(movie_filter: MovieFilter) -> models.Filter | None:
    must: list[Any] = []
    must_not: list[Any] = []
    if movie_filter.exclude_ids:
        must_not.append(models.HasIdCondition(has_id=list(movie_filter.exclude_ids)))
    if movie_filter.genres:
        must.append(
            models.FieldCondition(key="genres", match=models.MatchAny(any=list(movie_filter.genres)))
        )
    if movie_filter.year_min is not None or movie_filter.year_max is not None:
        must.append(
            models.FieldCondition(
                key="year", range=models.Range(gte=movie_filter.year_min, lte=movie_filter.year_max)
            )
        )
    if not must and not must_not:
        return None
    return models.Filter(must=must or None, must_not=must_not or None)


# After Qdrant fails to answer, every call fails at once for this long instead of each waiting
# out QDRANT_TIMEOUT again: in an outage requests get their 503 in milliseconds, not seconds,
# and do not pile up behind each other. Then the next call tries Qdrant again.
FAIL_FAST_SECONDS = 2.0


class ServerReader(StoreReader):
    """Reads through the aliases. Holds no write method: the service's key may be read-only."""

    kind = "server"

    def __init__(self, client: QdrantClient, url: str, refresh_interval: float = 5.0):
        self.client = client
        self.url = url
        self._mutex = threading.RLock()
        self._version: str | None = None
        self._meta: IngestMeta | None = None
        self._catalog: MovieCatalog | None = None
        self._checked_at = 0.0
        self._refresh_interval = refresh_interval
        self._down: tuple[float, str] | None = None  # (fail fast until, why)

    def _call(self, fn, *args, **kwargs):
        down = self._down
        if down is not None and time.monotonic() < down[0]:
            raise StoreUnavailable(down[1])
        try:
            result = fn(*args, **kwargs)
        except UNAVAILABLE as exc:
            message = _describe(exc, self.url)
            self._down = (time.monotonic() + FAIL_FAST_SECONDS, message)
            raise StoreUnavailable(message) from None
        except UnexpectedResponse as exc:
            if exc.status_code == 404:
                raise StoreUnavailable(
                    f"no movierec data in Qdrant at {self.url}: run `movierec ingest` first"
                ) from None
            raise StoreUnavailable(_describe(exc, self.url)) from None
        except ValueError as exc:  # local mode: "Collection ... not found"
            if "not found" in str(exc):
                raise StoreUnavailable(
                    f"no movierec data in Qdrant at {self.url}: run `movierec ingest` first"
                ) from None
            raise
        self._down = None
        return result

    def _aliases(self) -> dict[str, str]:
        answer = self._call(self.client.get_aliases)
        return {a.alias_name: a.collection_name for a in answer.aliases}

    def _fresh(self) -> bool:
        return (self._meta is not None
                and time.monotonic() - self._checked_at < self._refresh_interval)

    def refresh(self, force: bool = False) -> bool:
        if not force and self._fresh():
            return False
        with self._mutex:
            if not force and self._fresh():  # another request refreshed while this one waited
                return False
            now = time.monotonic()
            aliases = self._aliases()
            self._checked_at = now
            users = aliases.get(schema.USERS)
            if users is None or schema.MOVIES not in aliases:
                self._version, self._meta, self._catalog = None, None, None
                raise StoreUnavailable(
                    f"no movierec data in Qdrant at {self.url}: run `movierec ingest` first"
                )
            if self._meta is not None and users == self._collection_of_version():
                return False
            info = self._call(self.client.get_collection, users)
            self._meta = IngestMeta.from_dict(dict(info.config.metadata or {}),
                                              f"collection {users} at {self.url}")
            self._version = self._meta.version
            self._catalog = None
            return True

    def _collection_of_version(self) -> str | None:
        return schema.versioned(schema.USERS, self._version) if self._version else None

    def status(self) -> StoreStatus:
        try:
            self.refresh(force=True)
            users = self._call(self.client.count, schema.USERS, exact=True).count
            movies = self._call(self.client.count, schema.MOVIES, exact=True).count
        except StoreUnavailable as exc:
            return StoreStatus(ready=False, detail=str(exc))
        ready = users > 0 and movies > 0
        return StoreStatus(ready, users, movies, self._version,
                           "" if ready else "a collection is empty", self._meta)

    def meta(self) -> IngestMeta:
        self.refresh()
        assert self._meta is not None
        return self._meta

    def catalog(self) -> MovieCatalog:
        self.refresh()
        with self._mutex:
            if self._catalog is None:
                payloads: list[dict] = []
                offset = None
                while True:
                    records, offset = self._call(
                        self.client.scroll,
                        schema.MOVIES,
                        limit=10_000,
                        offset=offset,
                        with_payload=True,
                        with_vectors=False,
                    )
                    payloads.extend(r.payload for r in records)
                    if offset is None:
                        break
                self._catalog = MovieCatalog.from_payloads(payloads)
            return self._catalog

    def similar_users(self, query, limit, exclude_user=None,
                      using=schema.RATINGS_VECTOR) -> list[Neighbor]:
        query_filter = None
        if exclude_user is not None:
            query_filter = models.Filter(must_not=[models.HasIdCondition(has_id=[int(exclude_user)])])
        answer = self._call(
            self.client.query_points,
            schema.USERS,
            query=_sparse(query),
            using=using,
            limit=limit,
            with_vectors=[schema.RATINGS_VECTOR],
            with_payload=False,
            query_filter=query_filter,
        )
        out = []
        for p in answer.points:
            v = p.vector[schema.RATINGS_VECTOR]
            out.append(Neighbor(int(p.id), float(p.score), as_sparse(v.indices, v.values)))
        return out

    def user_vector(self, user_id: int) -> SparseVector | None:
        records = self._call(
            self.client.retrieve, schema.USERS, ids=[int(user_id)], with_payload=False,
            with_vectors=[schema.RATINGS_VECTOR],
        )
        if not records:
            return None
        v = records[0].vector[schema.RATINGS_VECTOR]
        return as_sparse(v.indices, v.values)

    def movie_vectors(self, movie_ids) -> dict[int, SparseVector]:
        records = self._call(self.client.retrieve, schema.MOVIES, ids=[int(m) for m in movie_ids],
                             with_payload=False, with_vectors=[schema.ITEM_VECTOR])
        return named_vectors(records, schema.ITEM_VECTOR)

    def similar_movies(self, query, limit, movie_filter, with_vectors=False) -> list[ScoredMovie]:
        answer = self._call(
            self.client.query_points,
            schema.MOVIES,
            query=_sparse(query),
            using=schema.ITEM_VECTOR,
            limit=limit,
            with_vectors=[schema.ITEM_VECTOR] if with_vectors else False,
            with_payload=False,
            query_filter=_movie_filter(movie_filter),
        )
        out = []
        for p in answer.points:
            v = (p.vector or {}).get(schema.ITEM_VECTOR) if with_vectors else None
            out.append(ScoredMovie(int(p.id), float(p.score),
                                   as_sparse(v.indices, v.values) if v is not None else None))
        return out

    def close(self) -> None:
        # Local-mode clients are shared per path within the process and closed at exit.
        if not self.url.startswith("local:"):
            self.client.close()


class ServerWriter(StoreWriter):
    """Writes `<alias>-<version>` collections, then moves both aliases in one request."""

    def __init__(self, client: QdrantClient, url: str, batch_wait: bool = True):
        self.client = client
        self.url = url
        self.version: str | None = None
        self._wait = batch_wait

    def _call(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (*UNAVAILABLE, UnexpectedResponse) as exc:
            raise StoreUnavailable(_describe(exc, self.url)) from None

    @property
    def _users(self) -> str:
        assert self.version
        return schema.versioned(schema.USERS, self.version)

    @property
    def _movies(self) -> str:
        assert self.version
        return schema.versioned(schema.MOVIES, self.version)

    def begin(self, meta: IngestMeta, user_vectors: tuple[str, ...],
              movie_vectors: tuple[str, ...]) -> str:
        self.version = new_version()
        metadata = meta.with_version(self.version).to_dict()
        for name, vectors in ((self._users, user_vectors), (self._movies, movie_vectors)):
            self._call(
                self.client.create_collection,
                name,
                vectors_config={},
                sparse_vectors_config={v: models.SparseVectorParams() for v in vectors},
                metadata=metadata,
            )
        if not self.url.startswith("local:"):  # local mode has no payload indexes
            for field, kind in schema.MOVIE_INDEXES.items():
                self._call(
                    self.client.create_payload_index, self._movies, field_name=field,
                    field_schema=kind, wait=True,
                )
        return self.version

    def write_users(self, users: UserPoints, start: int, stop: int) -> None:
        points = [
            models.PointStruct(
                id=user_id,
                vector={name: models.SparseVector(indices=idx, values=val)
                        for name, (idx, val) in vectors.items()},
                payload=payload,
            )
            for user_id, vectors, payload in user_rows(users, start, stop)
        ]
        self._call(self.client.upsert, self._users, points=points, wait=self._wait)

    def write_movies(self, movies: MoviePoints, start: int, stop: int) -> None:
        points = [
            models.PointStruct(id=movie_id, vector={n: _sparse(v) for n, v in vectors.items()},
                               payload=payload)
            for movie_id, vectors, payload in movie_rows(movies, start, stop)
        ]
        self._call(self.client.upsert, self._movies, points=points, wait=self._wait)

    def counts(self) -> tuple[int, int]:
        return (
            self._call(self.client.count, self._users, exact=True).count,
            self._call(self.client.count, self._movies, exact=True).count,
        )

    def commit(self) -> None:
        answer = self._call(self.client.get_aliases)
        previous = {a.alias_name: a.collection_name for a in answer.aliases}
        operations: list[Any] = []
        for alias, target in ((schema.USERS, self._users), (schema.MOVIES, self._movies)):
            if alias in previous:
                operations.append(
                    models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias))
                )
            operations.append(
                models.CreateAliasOperation(
                    create_alias=models.CreateAlias(collection_name=target, alias_name=alias)
                )
            )
        # One request: Qdrant applies all alias changes atomically.
        self._call(self.client.update_collection_aliases, change_aliases_operations=operations)
        self._drop_stale(keep={self._users, self._movies})

    def _drop_stale(self, keep: set[str]) -> None:
        """Remove older versions of our collections (the previous live one, killed ingests)."""
        names = [c.name for c in self._call(self.client.get_collections).collections]
        prefixes = (f"{schema.USERS}-", f"{schema.MOVIES}-")
        for name in names:
            if name.startswith(prefixes) and name not in keep:
                self._call(self.client.delete_collection, name)

    def abort(self) -> None:
        if self.version:
            for name in (self._users, self._movies):
                try:
                    self.client.delete_collection(name)
                except Exception:  # noqa: BLE001 (best effort; the next ingest removes it)
                    pass
