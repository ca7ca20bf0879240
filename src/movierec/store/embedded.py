"""The embedded store: the real Qdrant engine in-process (qdrant-edge), the default.

Layout under QDRANT_PATH:
    CURRENT                 {"version": ..., "previous": [...]}: the live version and the previous
                            complete ones kept for rollback, replaced atomically (the "alias")
    versions/<version>/     users/ and movies/ (one EdgeShard each), meta.json, .lock,
                            users.csr (the same user rating vectors as flat arrays: store/csr.py)
    .ingest.lock            held by the one ingest that may run at a time

A process that opens a version holds an exclusive lock on its `.lock`: a second process gets a
clear StoreBusy error instead of a corrupted shard (qdrant-edge allows one process per shard).
Versions that are neither live nor locked are garbage, left by a finished or killed ingest.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import qdrant_edge as qe

from movierec import schema
from movierec.catalog import MovieCatalog
from movierec.errors import NothingToRollBack, StoreBusy, StoreUnavailable
from movierec.meta import IngestMeta
from movierec.store import csr
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
from movierec.store.files import FileLock, write_atomic
from movierec.vectors import SparseVector, UserVectors

CURRENT = "CURRENT"
VERSIONS = "versions"
INGEST_LOCK = ".ingest.lock"
VERSION_LOCK = ".lock"
META = "meta.json"
CSR = "users.csr"


def movies_csr(vector: str) -> str:
    return f"movies.{vector}.csr"


def _read_current(root: Path) -> str | None:
    return read_history(root)[0]


def read_history(root: Path) -> tuple[str | None, list[str]]:
    """(the live version, the previous complete versions kept for rollback, newest first)."""
    try:
        current = json.loads((root / CURRENT).read_text())
        previous = [str(v) for v in current.get("previous", [])]
        return current["version"], previous
    except FileNotFoundError:
        return None, []
    except (ValueError, KeyError, TypeError, AttributeError):
        raise StoreUnavailable(f"{root / CURRENT} is damaged; run `movierec ingest` again") from None


def write_current(root: Path, version: str, previous: list[str]) -> None:
    """The switch: one atomic rename. Readers see the old version or the new one, never a mix."""
    write_atomic(root / CURRENT, json.dumps({"version": version, "previous": previous}).encode())


def _complete(root: Path, version: str) -> bool:
    return (root / VERSIONS / version / META).is_file()


def rollback(root: Path) -> tuple[str, str]:
    """Make the previous complete version live again (one atomic rename of CURRENT); the
    version rolled back from is removed once no process has it open. Returns (from, to)."""
    root = Path(root)
    (root / VERSIONS).mkdir(parents=True, exist_ok=True)
    lock = FileLock(root / INGEST_LOCK, f"an ingest is writing to {root}; wait for it, then roll back")
    try:
        live, previous = read_history(root)
        previous = [v for v in previous if _complete(root, v)]
        if not previous:
            raise NothingToRollBack(
                f"nothing to roll back to in the embedded store at {root}: no previous version "
                "is kept (KEEP_PREVIOUS_VERSIONS keeps them from the next ingest on)")
        write_current(root, previous[0], previous[1:])
        collect_garbage_locked(root)
        return live or "", previous[0]
    finally:
        lock.release()


def collect_garbage(root: Path) -> list[str]:
    """Remove versions that are neither live nor open, unless an ingest is running right now."""
    versions = root / VERSIONS
    if not versions.is_dir():
        return []
    ingest = FileLock.try_acquire(root / INGEST_LOCK)
    if ingest is None:
        return []
    try:
        return collect_garbage_locked(root)
    finally:
        ingest.release()


# One search thread per shard (persisted with the shard, so readers get it too). A query
# searches one segment: extra pool threads only add a hand-off, and on a busy machine waiting
# for the pool's thread to be scheduled took query p99 from 33 us to 1.6 ms (ml-1m, 2 cores).
# Each user's liked movies are kept in memory (csr.liked_rows) up to this many liked ratings
# (64 MB; ml-1m holds 834k). Above, answers filter their neighbours' ratings instead: at 100M
# synthetic ratings the copy held 330 MB and the answers' process grew by 0.6 GB.
LIKED_ROWS_MAX = 16_000_000
SEARCH_THREADS = 1


def _shard_config(vector_names: tuple[str, ...]) -> qe.EdgeConfig:
    return qe.EdgeConfig(
        sparse_vectors={name: qe.EdgeSparseVectorParams() for name in vector_names},
        wal_enabled=False,
        max_search_threads=SEARCH_THREADS,
    )


def _movie_request(query: SparseVector, limit: int, where: qe.Filter | None,
                   with_vectors: bool) -> qe.QueryRequest:
    return qe.QueryRequest(
        limit=limit,
        query=qe.Query.Nearest(_edge_vector(query), using=schema.ITEM_VECTOR),
        with_vector=[schema.ITEM_VECTOR] if with_vectors else False,
        with_payload=False,
        filter=where,
    )


def _edge_vector(vector: SparseVector) -> qe.SparseVector:
    # Lists: qdrant-edge reads a numpy array item by item, 4x slower than a list.
    return qe.SparseVector(vector.indices.tolist(), vector.values.tolist())


def _written_vector(vector: SparseVector) -> qe.SparseVector:
    # Memoryviews of the arrays: qdrant-edge reads them as fast as lists, and making the lists
    # (tolist) costs more than that reading (ml-1m's 3.2M item weights: 0.28 s against 0.51 s).
    return qe.SparseVector(memoryview(vector.indices), memoryview(vector.values))


def _movie_filter(movie_filter: MovieFilter) -> qe.Filter | None:
    must: list = []
    must_not: list = []
    if movie_filter.exclude_ids:
        must_not.append(qe.HasIdCondition(set(movie_filter.exclude_ids)))
    if movie_filter.genres:
        must.append(qe.FieldCondition("genres", match=qe.MatchAny(list(movie_filter.genres))))
    if movie_filter.year_min is not None or movie_filter.year_max is not None:
        must.append(
            qe.FieldCondition(
                "year", range=qe.RangeFloat(gte=movie_filter.year_min, lte=movie_filter.year_max)
            )
        )
    if not must and not must_not:
        return None
    return qe.Filter(must=must or None, must_not=must_not or None)


class _OpenVersion:
    """One live version opened by this process: its lock, shards, metadata and catalog."""

    def __init__(self, root: Path, version: str):
        self.version = version
        self.path = root / VERSIONS / version
        if not (self.path / META).exists():
            raise StoreUnavailable(
                f"{self.path} is incomplete; run `movierec ingest` again"
            )
        self.lock = FileLock(
            self.path / VERSION_LOCK,
            f"the embedded store {root} is in use by another process; stop it first, or "
            "point QDRANT_URL at a Qdrant server to share data between processes",
        )
        try:
            self.meta = IngestMeta.from_dict(json.loads((self.path / META).read_text()),
                                             str(self.path))
            self.users = qe.EdgeShard.load(str(self.path / "users"))
            self.movies = qe.EdgeShard.load(str(self.path / "movies"))
        except Exception as exc:
            self.lock.release()
            raise StoreUnavailable(f"cannot open the embedded store at {self.path}: {exc}") from None
        self.vectors = csr.load(self.path / CSR, self.meta.users)
        # Each user's liked movies (users.csr's rows: starts, counts, movie ids, their rows in
        # the catalog), on first use.
        self._liked: tuple | None = None
        self._movie_vectors: dict[str, UserVectors | None] = {}
        self._movie_cells: dict[str, csr.Cells | None] = {}
        self._catalog: MovieCatalog | None = None

    def rows(self, user_ids: list[int]) -> list[SparseVector] | None:
        """The users' vectors from users.csr (views, no copies); None if one is missing."""
        if self.vectors is None or not len(self.vectors):
            return None
        return csr.rows_of(self.vectors, user_ids)

    def block(self, user_ids, scores) -> NeighborBlock | None:
        """These users' rows of users.csr as one NeighborBlock (ranges, no copies); None if one
        is missing."""
        pos = csr.positions(self.vectors, user_ids) if self.vectors is not None else None
        if pos is None:
            return None
        indptr = self.vectors.indptr
        if self._liked is None:
            liked_indptr, liked_indices = csr.liked_rows(
                self.vectors, self.meta.rating_stats.z_at_least(schema.LIKED_STARS),
                max_liked=LIKED_ROWS_MAX)
            self._liked = (liked_indptr[:-1], np.diff(liked_indptr), liked_indices,
                           self._catalog_rows(liked_indices))
        liked_starts, liked_counts, liked_indices, liked_rows = self._liked
        return NeighborBlock(np.asarray(user_ids, dtype=np.int64),
                             np.asarray(scores, dtype=np.float64),
                             indptr[pos].astype(np.int64), indptr[pos + 1].astype(np.int64),
                             self.vectors.indices, self.vectors.values, liked_counts[pos],
                             liked_starts[pos], liked_indices, liked_rows,
                             self._catalog if liked_rows is not None else None)

    def _catalog_rows(self, movie_ids: np.ndarray | None) -> np.ndarray | None:
        """Each movie's row in this version's catalog, int16 where the catalog allows (2 bytes a
        liked rating; ml-1m: 1.7 MB); None without the ids or when one is not in the catalog
        (never, once ingested: the answers then look the rows up)."""
        if movie_ids is None:
            return None
        catalog = self.catalog()
        rows = catalog.positions(movie_ids)
        if rows.size and rows.min() < 0:
            return None
        return rows.astype(np.int16 if len(catalog) < 2**15 else np.int32)

    def movie_vectors(self, name: str) -> UserVectors | None:
        """Every movie's `name` vector from movies.<name>.csr, memory-mapped on first use."""
        if name not in self._movie_vectors:
            self._movie_vectors[name] = csr.load(self.path / movies_csr(name), None)
        return self._movie_vectors[name]

    def movie_cells(self, name: str) -> csr.Cells | None:
        """csr.Cells of movies.<name>.csr, made on first use; None without the file."""
        if name not in self._movie_cells:
            stored = self.movie_vectors(name)
            self._movie_cells[name] = None if stored is None else csr.Cells.of(stored)
        return self._movie_cells[name]

    def catalog(self) -> MovieCatalog:
        if self._catalog is None:
            payloads = []
            offset = None
            while True:
                records, offset = self.movies.scroll(
                    qe.ScrollRequest(offset=offset, limit=10_000, with_payload=True,
                                     with_vector=False)
                )
                payloads.extend(r.payload for r in records)
                if offset is None:
                    break
            self._catalog = MovieCatalog.from_payloads(payloads)
        return self._catalog

    def close(self) -> None:
        for shard in (self.users, self.movies):
            try:
                shard.close()
            except Exception:  # noqa: BLE001 (closing twice or a dead shard is harmless here)
                pass
        self.lock.release()


# What /readyz and `movierec check` say about shards and replicas here: there are none.
EMBEDDED_CLUSTER = {"mode": "embedded", "detail": "the embedded engine is one process on one "
                    "disk: no shards or replicas (back it up with `movierec snapshot`)"}


class EmbeddedReader(StoreReader):
    kind = "embedded"
    answers_in_process = True

    def __init__(self, root: Path, refresh_interval: float = 1.0):
        self.root = Path(root)
        self._mutex = threading.RLock()
        self._open: _OpenVersion | None = None
        self._current_stamp: tuple[int, int] | None = None
        self._checked_at = 0.0
        self._refresh_interval = refresh_interval
        self.refresh(force=True)

    def _stamp(self) -> tuple[int, int] | None:
        try:
            st = (self.root / CURRENT).stat()
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns)

    def refresh(self, force: bool = False) -> bool:
        """Cheap (one stat, at most once a second): reopen when CURRENT points elsewhere."""
        now = time.monotonic()
        if not force and now - self._checked_at < self._refresh_interval:
            return False
        with self._mutex:
            self._checked_at = now
            stamp = self._stamp()
            if stamp == self._current_stamp and (self._open or stamp is None):
                return False
            version = _read_current(self.root)
            if self._open and self._open.version == version:
                self._current_stamp = stamp
                return False
            fresh = _OpenVersion(self.root, version) if version else None
            old, self._open = self._open, fresh
            self._current_stamp = stamp
        if old:
            old.close()
            collect_garbage(self.root)
        return True

    def _live(self) -> _OpenVersion:
        self.refresh()
        if self._open is None:
            raise StoreUnavailable(
                f"no data in the embedded store at {self.root}: run `movierec ingest` first"
            )
        return self._open

    def status(self) -> StoreStatus:
        try:
            live = self._live()
        except (StoreUnavailable, StoreBusy) as exc:
            return StoreStatus(ready=False, detail=str(exc))
        with self._mutex:
            users = live.users.count(qe.CountRequest(exact=True))
            movies = live.movies.count(qe.CountRequest(exact=True))
        ready = users > 0 and movies > 0
        return StoreStatus(ready, users, movies, live.version,
                           "" if ready else "a collection is empty", live.meta, EMBEDDED_CLUSTER)

    def meta(self) -> IngestMeta:
        return self._live().meta

    def catalog(self) -> MovieCatalog:
        live = self._live()
        with self._mutex:
            return live.catalog()

    def similar_users_block(self, query, limit, exclude_user=None, using=schema.RATINGS_VECTOR,
                            score_threshold=None) -> NeighborBlock:
        live = self._live()

        def request(with_vector: bool) -> qe.QueryRequest:
            return qe.QueryRequest(
                limit=limit,
                query=qe.Query.Nearest(_edge_vector(query), using=using),
                with_vector=[schema.RATINGS_VECTOR] if with_vector else False,
                with_payload=False,
                score_threshold=None if score_threshold is None else float(score_threshold),
                filter=None
                if exclude_user is None
                else qe.Filter(must_not=[qe.HasIdCondition({int(exclude_user)})]),
            )

        with self._mutex:
            if live.vectors is not None:
                block = live.block(*ids_and_scores(live.users.query(request(False))))
                if block is not None:
                    return block
            # No users.csr (or it lacks a user): the engine returns the vectors itself.
            points = live.users.query(request(True))
        vectors = [p.vector[schema.RATINGS_VECTOR] for p in points]
        return NeighborBlock.of([int(p.id) for p in points], [p.score for p in points],
                                [as_sparse(v.indices, v.values) for v in vectors])

    def user_vector(self, user_id: int) -> SparseVector | None:
        live = self._live()
        found = live.rows([int(user_id)]) if 0 <= user_id < 2**63 else None
        if found:
            return found[0]
        with self._mutex:
            records = live.users.retrieve([int(user_id)], with_payload=False, with_vector=True)
        if not records:
            return None
        v = records[0].vector[schema.RATINGS_VECTOR]
        return as_sparse(v.indices, v.values)

    def movie_vectors(self, movie_ids) -> dict[int, SparseVector]:
        live = self._live()
        ids = sorted({int(m) for m in movie_ids})
        stored = live.movie_vectors(schema.ITEM_VECTOR)
        found = csr.rows_of(stored, ids) if stored is not None and ids else None
        if found is not None:
            return dict(zip(ids, found))
        with self._mutex:
            records = live.movies.retrieve([int(m) for m in movie_ids], with_payload=False,
                                           with_vector=[schema.ITEM_VECTOR])
        return named_vectors(records, schema.ITEM_VECTOR)

    def movie_weights(self, movie_ids, movies) -> np.ndarray:
        cells = self._live().movie_cells(schema.ITEM_VECTOR)
        if cells is None:  # no movies.item.csr: the vectors from the engine
            return super().movie_weights(movie_ids, movies)
        return cells.values_at(movie_ids, movies)

    def _movie_search(self, query, limit, movie_filter, with_vectors: bool) -> list:
        live = self._live()
        request = _movie_request(query, limit, _movie_filter(movie_filter), with_vectors)
        with self._mutex:
            return live.movies.query(request)

    def similar_movie_ids(self, query, limit, movie_filter) -> tuple[np.ndarray, np.ndarray]:
        return ids_and_scores(self._movie_search(query, limit, movie_filter, False))

    def similar_movie_ids_batch(self, queries, movie_filter) -> list[tuple[np.ndarray, np.ndarray]]:
        if len(queries) < 2:
            return super().similar_movie_ids_batch(queries, movie_filter)
        live = self._live()
        where = _movie_filter(movie_filter)
        batch = qe.QueryBatchRequest(
            queries=[_movie_request(query, limit, where, False) for query, limit in queries])
        with self._mutex:
            found = live.movies.query_batch(batch)
        return [ids_and_scores(points) for points in found]

    def similar_movies(self, query, limit, movie_filter, with_vectors=False) -> list[ScoredMovie]:
        points = self._movie_search(query, limit, movie_filter, with_vectors)
        if not with_vectors:
            return [ScoredMovie(int(p.id), float(p.score)) for p in points]
        out = []
        for p in points:
            v = (p.vector or {}).get(schema.ITEM_VECTOR)
            out.append(ScoredMovie(int(p.id), float(p.score),
                                   as_sparse(v.indices, v.values) if v is not None else None))
        return out

    def close(self) -> None:
        with self._mutex:
            if self._open:
                self._open.close()
                self._open = None


class EmbeddedWriter(StoreWriter):
    # qdrant-edge holds the GIL for a whole upsert: short ones let the ingest's learning thread
    # run between them (1,000 users of ml-1m hold it ~0.08 s; at ml-1m's size 100 cost the
    # same per user).
    user_batch_beside = 100

    def __init__(self, root: Path, keep_previous: int = 1):
        self.root = Path(root)
        self.keep_previous = keep_previous
        self.version: str | None = None
        self._ingest_lock: FileLock | None = None
        self._version_lock: FileLock | None = None
        self._users: qe.EdgeShard | None = None
        self._movies: qe.EdgeShard | None = None
        self._meta: IngestMeta | None = None
        # The rating vectors written so far, for users.csr: saved only if every user of one
        # UserPoints was written once.
        self._ratings: UserVectors | None = None
        self._written = 0
        # The movies' vectors written, by vector name, for movies.<name>.csr.
        self._movie_rows: dict[str, list[tuple[int, SparseVector]]] = {}
        self._user_count: int | None = None  # once the users' shard is flushed and closed

    @property
    def _path(self) -> Path:
        assert self.version
        return self.root / VERSIONS / self.version

    def begin(self, meta: IngestMeta, user_vectors: tuple[str, ...],
              movie_vectors: tuple[str, ...]) -> str:
        (self.root / VERSIONS).mkdir(parents=True, exist_ok=True)
        self._ingest_lock = FileLock(
            self.root / INGEST_LOCK, f"another ingest is writing to {self.root}; wait for it"
        )
        collect_garbage_locked(self.root)
        self.version = new_version()
        self._path.mkdir()
        self._version_lock = FileLock(self._path / VERSION_LOCK, "")
        # No WAL: a staging version is only made live after flush(), and a crash before that
        # leaves garbage that the next ingest removes, never a half-written live version.
        self._users = qe.EdgeShard.create(str(self._path / "users"), _shard_config(user_vectors))
        self._movies = qe.EdgeShard.create(str(self._path / "movies"),
                                           _shard_config(movie_vectors))
        # Indexed payload: a genre filter in the item query costs 0.1 ms instead of 3 ms.
        kinds = {"keyword": qe.PayloadSchemaType.Keyword, "integer": qe.PayloadSchemaType.Integer}
        for field_name, kind in schema.MOVIE_INDEXES.items():
            self._movies.update(qe.UpdateOperation.create_field_index(field_name, kinds[kind]))
        self._meta = meta.with_version(self.version)
        return self.version

    def write_users(self, users: UserPoints, start: int, stop: int) -> None:
        assert self._users is not None
        # All of a user's vectors in one upsert (10-15% cheaper than an upsert plus an
        # update_vectors). Memoryviews of the arrays: qdrant-edge reads them as fast as lists
        # (a numpy array itself 4x slower), without making the lists (ml-1m: 0.2 s of points
        # built in 0.4 s before).
        points = [
            qe.Point(user_id, {name: qe.SparseVector(idx, val)
                               for name, (idx, val) in vectors.items()}, payload)
            for user_id, vectors, payload in user_rows(users, start, stop, views=True)
        ]
        self._users.update(qe.UpdateOperation.upsert_points(points))
        if self._ratings is None or self._ratings is users.ratings:
            self._ratings = users.ratings
            self._written += stop - start
        else:
            self._written = -1  # vectors from two sources: no users.csr for this version

    def write_movies(self, movies: MoviePoints, start: int, stop: int) -> None:
        assert self._movies is not None
        points = []
        for movie_id, vectors, payload in movie_rows(movies, start, stop):
            points.append(qe.Point(movie_id, {n: _written_vector(v) for n, v in vectors.items()},
                                   payload))
            for name, vector in vectors.items():
                self._movie_rows.setdefault(name, []).append((movie_id, vector))
        self._movies.update(qe.UpdateOperation.upsert_points(points))

    def users_written(self) -> None:
        """The users' shard flushed, counted and closed, and users.csr saved: off the ingest's
        critical path, while the learning runs (ml-1m: ~0.2 s of the commit)."""
        assert self._users is not None and self._meta is not None
        self._users.flush()
        self._user_count = self._users.count(qe.CountRequest(exact=True))
        self._users.close()
        self._users = None
        if self._ratings is not None and self._written == len(self._ratings) == self._meta.users:
            csr.save(self._path / CSR, self._ratings)

    def update_meta(self, meta: IngestMeta) -> None:
        assert self.version
        self._meta = meta.with_version(self.version)  # written at commit

    def counts(self) -> tuple[int, int]:
        assert self._movies is not None
        users = self._user_count
        if users is None:
            assert self._users is not None
            users = self._users.count(qe.CountRequest(exact=True))
        return users, self._movies.count(qe.CountRequest(exact=True))

    def commit(self) -> None:
        assert self._movies is not None and self._meta is not None
        if self._users is not None:
            self.users_written()
        self._movies.flush()
        self._movies.close()
        self._movies = None
        for name, found in self._movie_rows.items():
            ids = [movie_id for movie_id, _ in found]
            if len(set(ids)) == len(ids):  # each movie written once: the file is the shard's
                csr.save(self._path / movies_csr(name), csr.from_rows(found))
        write_atomic(self._path / META, json.dumps(self._meta.to_dict(), indent=2).encode())
        try:
            live, previous = read_history(self.root)
        except StoreUnavailable:
            live, previous = None, []  # a damaged pointer: this version replaces it
        kept = [v for v in kept_history(live, previous, self.keep_previous)
                if _complete(self.root, v)]
        write_current(self.root, self.version, kept)
        self._release_version()
        collect_garbage_locked(self.root)
        self._release_ingest()

    def abort(self) -> None:
        for shard in (self._users, self._movies):
            if shard is not None:
                try:
                    shard.close()
                except Exception:  # noqa: BLE001
                    pass
        self._users = self._movies = None
        if self.version:
            shutil.rmtree(self._path, ignore_errors=True)
        self.close()

    def _release_version(self) -> None:
        if self._version_lock:
            self._version_lock.release()
            self._version_lock = None

    def _release_ingest(self) -> None:
        if self._ingest_lock:
            self._ingest_lock.release()
            self._ingest_lock = None

    def close(self) -> None:
        self._release_version()
        self._release_ingest()


def collect_garbage_locked(root: Path) -> list[str]:
    """Garbage collection by the ingest that already holds the ingest lock."""
    versions = root / VERSIONS
    try:
        live, previous = read_history(root)
    except StoreUnavailable:
        # A damaged pointer serves nothing; the ingest about to commit rewrites it.
        live, previous = None, []
    keep = {live, *previous}
    removed = []
    for entry in versions.iterdir():
        if entry.name in keep or not entry.is_dir():
            continue
        lock = FileLock.try_acquire(entry / VERSION_LOCK)
        if lock is None:
            continue
        try:
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry.name)
        finally:
            lock.release()
    return removed
