"""The server store: a Qdrant server through qdrant-client (REST or gRPC, URL + API key).

The same classes run on qdrant-client's local mode (`QDRANT_URL=local::memory:` or
`local:PATH`), which is how this code path is tested without a server. An ingest writes
collections `<alias>-<version>` and switches both aliases in one atomic alias operation.
"""

from __future__ import annotations

import atexit
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from movierec import schema
from movierec.catalog import MovieCatalog
from movierec.errors import ConfigError, NothingToRollBack, StoreUnavailable
from movierec.meta import IngestMeta
from movierec.store.base import (
    MovieFilter,
    MoviePoints,
    NeighborBlock,
    ScoredMovie,
    StoreReader,
    StoreStatus,
    StoreWriter,
    UserPoints,
    as_sparse,
    ids_and_scores,
    kept_history,
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


@dataclass(frozen=True)
class Replication:
    """QDRANT_SHARDS / QDRANT_REPLICATION_FACTOR / QDRANT_WRITE_CONSISTENCY (None: the default)."""

    shards: int | None = None
    replication_factor: int | None = None
    write_consistency: int | None = None

    def collection_params(self, peers: int | None, url: str) -> dict[str, int]:
        """create_collection's shard_number / replication_factor / write_consistency_factor for
        a cluster of `peers` (None: local mode, one copy). Refuses what the cluster cannot hold."""
        n = peers or 1
        factor = self.replication_factor or (2 if n >= 2 else 1)
        where = "qdrant-client local mode (one copy)" if peers is None else (
            f"the {n} Qdrant peer{'s' if n != 1 else ''} at {url}")
        if factor > n:
            raise ConfigError(
                f"QDRANT_REPLICATION_FACTOR={factor} is more copies than {where} can hold: "
                f"set it to {n} or less, or add Qdrant nodes")
        consistency = self.write_consistency or factor
        if consistency > factor:
            raise ConfigError(
                f"QDRANT_WRITE_CONSISTENCY={consistency} is more than the {factor} copies of "
                f"each shard (QDRANT_REPLICATION_FACTOR): set it to {factor} or less")
        params = {"replication_factor": factor, "write_consistency_factor": consistency}
        if self.shards:
            params["shard_number"] = self.shards
        return params


def peer_uris(client: QdrantClient) -> dict[int, str] | None:
    """{peer id: its p2p URI} of the Qdrant cluster; {} for a single node with clustering off;
    None for qdrant-client local mode, which has no cluster API."""
    try:
        status = client.cluster_status()
    except NotImplementedError:
        return None
    if getattr(status, "status", "disabled") != "enabled":
        return {}
    return {int(peer): info.uri for peer, info in status.peers.items()}


def peer_count(client: QdrantClient) -> int | None:
    uris = peer_uris(client)
    return None if uris is None else max(1, len(uris))


def cluster_of(client: QdrantClient, collections: dict[str, str]) -> dict[str, Any]:
    """Shards and replicas of each live collection, and the replicas that are not Active."""
    peers = peer_count(client)
    if peers is None:
        return {"mode": "local", "detail": "qdrant-client local mode keeps one copy: "
                "no shards, replicas or peers to report"}
    out: dict[str, Any] = {"mode": "server", "peers": peers, "collections": {}}
    inactive_total = 0
    for alias, name in collections.items():
        info = client.collection_cluster_info(name)
        replicas: dict[int, list[tuple[int, str]]] = {}
        for shard in info.local_shards:
            replicas.setdefault(shard.shard_id, []).append((info.peer_id, str(shard.state)))
        for shard in info.remote_shards:
            replicas.setdefault(shard.shard_id, []).append((shard.peer_id, str(shard.state)))
        inactive = [{"shard": shard_id, "peer": peer, "state": state}
                    for shard_id, copies in sorted(replicas.items())
                    for peer, state in copies if state != models.ReplicaState.ACTIVE.value]
        inactive_total += len(inactive)
        out["collections"][alias] = {
            "shards": info.shard_count,
            "replicas": min((len(c) for c in replicas.values()), default=0),
            "inactive": inactive,
        }
    out["all_active"] = inactive_total == 0
    return out


def describe_cluster(cluster: dict[str, Any]) -> str:
    """One line for `movierec check`."""
    if "collections" not in cluster:  # embedded, local mode, or the cluster did not say
        return cluster.get("detail", "no cluster information")
    parts = []
    for alias, c in cluster.get("collections", {}).items():
        state = "all active" if not c["inactive"] else "NOT ACTIVE: " + ", ".join(
            f"shard {i['shard']} on peer {i['peer']} {i['state']}" for i in c["inactive"])
        parts.append(f"{alias}: {c['shards']} shards x {c['replicas']} replicas, {state}")
    return f"{cluster['peers']} peers; " + "; ".join(parts)


# The aliases of our collections, and the versions they point at: the live one and the
# previous complete ones kept for rollback (schema.previous).
def _version_of(collection: str, alias: str) -> str:
    return collection.removeprefix(f"{alias}-")


def _history(aliases: dict[str, str]) -> tuple[str | None, list[str]]:
    live = aliases.get(schema.USERS)
    previous = []
    k = 1
    while schema.previous(schema.USERS, k) in aliases:
        previous.append(_version_of(aliases[schema.previous(schema.USERS, k)], schema.USERS))
        k += 1
    return (_version_of(live, schema.USERS) if live else None), previous


def _switch_operations(aliases: dict[str, str], live: str, previous: list[str]) -> list[Any]:
    """One atomic alias request: both live aliases to `live`, previous-k to previous[k-1]."""
    ours = [a for a in aliases if a in (schema.USERS, schema.MOVIES)
            or a.startswith((f"{schema.USERS}-previous-", f"{schema.MOVIES}-previous-"))]
    operations: list[Any] = [
        models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=a)) for a in ours
    ]
    for alias in (schema.USERS, schema.MOVIES):
        targets = [(alias, live)] + [(schema.previous(alias, k), v)
                                     for k, v in enumerate(previous, start=1)]
        operations += [
            models.CreateAliasOperation(create_alias=models.CreateAlias(
                collection_name=schema.versioned(alias, version), alias_name=name))
            for name, version in targets
        ]
    return operations


# After Qdrant fails to answer, every call fails at once for this long instead of each waiting
# out QDRANT_TIMEOUT again: in an outage requests get their 503 in milliseconds, not seconds,
# and do not pile up behind each other. Then the next call tries Qdrant again.
FAIL_FAST_SECONDS = 2.0
# Item vectors kept per reader (at most 768 weights each, so 2,000 of them take ~12 MB).
MOVIE_VECTOR_CACHE = 2_000


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
        self._movie_vectors: dict[int, SparseVector | None] = {}  # this version's, as fetched
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
                self._movie_vectors = {}
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
            self._movie_vectors = {}
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
        live = {alias: schema.versioned(alias, self._version or "")
                for alias in (schema.USERS, schema.MOVIES)}
        try:  # what the cluster says is reported, never a reason to stop serving
            cluster = self._call(cluster_of, self.client, live)
        except StoreUnavailable as exc:
            cluster = {"mode": "server", "detail": f"cluster information unavailable: {exc}"}
        ready = users > 0 and movies > 0
        return StoreStatus(ready, users, movies, self._version,
                           "" if ready else "a collection is empty", self._meta, cluster)

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

    def similar_users_block(self, query, limit, exclude_user=None, using=schema.RATINGS_VECTOR,
                            score_threshold=None) -> NeighborBlock:
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
            score_threshold=score_threshold,
        )
        points = answer.points
        vectors = [p.vector[schema.RATINGS_VECTOR] for p in points]
        return NeighborBlock.of([int(p.id) for p in points], [p.score for p in points],
                                [as_sparse(v.indices, v.values) for v in vectors])

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
        """The item vectors of these movies, each fetched from Qdrant once per live version and
        then kept (recommended movies repeat: the same few hundred answer most requests)."""
        self.refresh()
        version, wanted = self._version, [int(m) for m in movie_ids]
        cache = self._movie_vectors
        missing = [m for m in wanted if m not in cache]
        found: dict[int, SparseVector] = {}
        if missing:
            records = self._call(self.client.retrieve, schema.MOVIES, ids=missing,
                                 with_payload=False, with_vectors=[schema.ITEM_VECTOR])
            found = named_vectors(records, schema.ITEM_VECTOR)
            with self._mutex:
                if self._version == version and cache is self._movie_vectors:
                    if len(cache) + len(missing) > MOVIE_VECTOR_CACHE:
                        cache.clear()
                    cache.update({m: found.get(m) for m in missing})
        vectors = {m: found[m] if m in found else cache.get(m) for m in wanted}
        return {m: v for m, v in vectors.items() if v is not None}

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

    def similar_movie_ids_batch(self, queries, movie_filter) -> list[tuple[np.ndarray, np.ndarray]]:
        if len(queries) < 2:
            return super().similar_movie_ids_batch(queries, movie_filter)
        where = _movie_filter(movie_filter)
        answers = self._call(
            self.client.query_batch_points,
            schema.MOVIES,
            requests=[models.QueryRequest(query=_sparse(query), using=schema.ITEM_VECTOR,
                                          limit=limit, filter=where, with_payload=False,
                                          with_vector=False)
                      for query, limit in queries],
        )
        return [ids_and_scores(answer.points) for answer in answers]

    def close(self) -> None:
        # Local-mode clients are shared per path within the process and closed at exit.
        if not self.url.startswith("local:"):
            self.client.close()


class ServerWriter(StoreWriter):
    """Writes `<alias>-<version>` collections, then moves both aliases in one request."""

    def __init__(self, client: QdrantClient, url: str, batch_wait: bool = True,
                 replication: Replication | None = None, keep_previous: int = 1):
        self.client = client
        self.url = url
        self.version: str | None = None
        self._wait = batch_wait
        self.replication = replication or Replication()
        self.keep_previous = keep_previous

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
        # Checked before anything is created: a refused setting leaves nothing behind.
        params = self.replication.collection_params(self._call(peer_count, self.client), self.url)
        self.version = new_version()
        metadata = meta.with_version(self.version).to_dict()
        for name, vectors in ((self._users, user_vectors), (self._movies, movie_vectors)):
            self._call(
                self.client.create_collection,
                name,
                vectors_config={},
                sparse_vectors_config={v: models.SparseVectorParams() for v in vectors},
                metadata=metadata,
                **params,
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

    def update_meta(self, meta: IngestMeta) -> None:
        assert self.version
        # Every key of to_dict replaced (Qdrant merges a metadata update key by key); readers
        # see these collections only once the aliases move to them.
        metadata = meta.with_version(self.version).to_dict()
        for name in (self._users, self._movies):
            self._call(self.client.update_collection, name, metadata=metadata)

    def counts(self) -> tuple[int, int]:
        return (
            self._call(self.client.count, self._users, exact=True).count,
            self._call(self.client.count, self._movies, exact=True).count,
        )

    def commit(self) -> None:
        assert self.version
        switch_to(self.client, self.url, self.version, keep_previous=self.keep_previous)

    def abort(self) -> None:
        if self.version:
            for name in (self._users, self._movies):
                try:
                    self.client.delete_collection(name)
                except Exception:  # noqa: BLE001 (best effort; the next ingest removes it)
                    pass


def _aliases(client: QdrantClient, url: str) -> dict[str, str]:
    try:
        answer = client.get_aliases()
    except (*UNAVAILABLE, UnexpectedResponse) as exc:
        raise StoreUnavailable(_describe(exc, url)) from None
    return {a.alias_name: a.collection_name for a in answer.aliases}


def _apply(client: QdrantClient, url: str, aliases: dict[str, str], live: str,
           previous: list[str]) -> None:
    """Point the aliases at `live` and `previous` in one request (Qdrant applies all alias
    changes of a request atomically), then drop every other version of our collections."""
    try:
        client.update_collection_aliases(
            change_aliases_operations=_switch_operations(aliases, live, previous))
        keep = {schema.versioned(alias, v) for v in [live, *previous]
                for alias in (schema.USERS, schema.MOVIES)}
        prefixes = (f"{schema.USERS}-", f"{schema.MOVIES}-")
        for c in client.get_collections().collections:
            if c.name.startswith(prefixes) and c.name not in keep:
                client.delete_collection(c.name)
    except (*UNAVAILABLE, UnexpectedResponse) as exc:
        raise StoreUnavailable(_describe(exc, url)) from None


def switch_to(client: QdrantClient, url: str, version: str, keep_previous: int) -> None:
    """Make `version` (both collections complete) live; the one live until now becomes the
    first previous version. Versions beyond `keep_previous`, and killed ingests, are dropped."""
    aliases = _aliases(client, url)
    live, previous = _history(aliases)
    kept = [v for v in kept_history(live, previous, keep_previous) if v != version]
    _apply(client, url, aliases, version, kept)


def rollback(client: QdrantClient, url: str) -> tuple[str, str]:
    """Switch both aliases back to the previous complete version (one atomic alias request);
    the version rolled back from is dropped. Returns (from, to)."""
    aliases = _aliases(client, url)
    live, previous = _history(aliases)
    if not previous:
        raise NothingToRollBack(
            f"nothing to roll back to in Qdrant at {url}: no previous version is kept "
            "(KEEP_PREVIOUS_VERSIONS keeps them from the next ingest on)")
    _apply(client, url, aliases, previous[0], previous[1:])
    return live or "", previous[0]
