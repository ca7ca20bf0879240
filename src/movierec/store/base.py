"""The store interface: what recommendation needs to read, and what an ingest needs to write.

Readers have no write methods at all, so the service (which holds only a read-only API key)
structurally cannot modify Qdrant. Writers build a new version beside the live one and switch
it in atomically on commit.
"""

from __future__ import annotations

import datetime
import operator
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from movierec import schema
from movierec.catalog import MovieCatalog
from movierec.meta import IngestMeta
from movierec.vectors import SparseVector, UserVectors, ranges, weights_at


@dataclass(frozen=True)
class Neighbor:
    """A similar user: id, similarity, and the user's own rating vector."""

    user_id: int
    score: float
    vector: SparseVector


@dataclass(frozen=True)
class NeighborBlock:
    """The users one search found, as arrays instead of an object each (a search through ties
    returns thousands): row k is user `user_ids[k]` with the engine's score `scores[k]` and the
    rating vector `indices[starts[k]:stops[k]]`, `values[...]` -- ranges of the store's own
    arrays (the embedded store's memory-mapped users.csr), so nothing is copied per user."""

    user_ids: np.ndarray  # int64
    scores: np.ndarray  # float64, as the engine scored them (float32 sums)
    starts: np.ndarray  # int64
    stops: np.ndarray  # int64
    indices: np.ndarray  # uint32, each row's movie ids sorted
    values: np.ndarray  # float32
    # Each row's number of liked ratings (schema.LIKED_STARS up), where the store keeps it.
    liked: np.ndarray | None = None
    # Where the store keeps them, each row's liked movies: liked_indices[liked_starts[k]:
    # liked_starts[k] + liked[k]] (ranges of the store's own array, in the row's order).
    liked_starts: np.ndarray | None = None
    liked_indices: np.ndarray | None = None
    # Where the store keeps them too: each of liked_indices' movies as its row in the store's
    # catalog (`liked_catalog`, the catalog they index), so an answer need not look them up.
    liked_rows: np.ndarray | None = None
    liked_catalog: MovieCatalog | None = None

    def __len__(self) -> int:
        return int(self.user_ids.size)

    @classmethod
    def of(cls, user_ids, scores, vectors: list[SparseVector]) -> NeighborBlock:
        """A block from an engine's answer: its vectors laid end to end."""
        lengths = np.array([len(v) for v in vectors], dtype=np.int64)
        stops = np.cumsum(lengths)
        empty_i, empty_v = np.empty(0, np.uint32), np.empty(0, np.float32)
        return cls(np.asarray(user_ids, dtype=np.int64), np.asarray(scores, dtype=np.float64),
                   stops - lengths, stops,
                   np.concatenate([v.indices for v in vectors]) if vectors else empty_i,
                   np.concatenate([v.values for v in vectors]) if vectors else empty_v)

    def liked_catalog_rows(self, rows: np.ndarray, threshold: float, catalog: MovieCatalog
                           ) -> tuple[np.ndarray, np.ndarray]:
        """`likes` as rows of `catalog` (-1 for a movie it does not hold): the store's own rows
        of the liked movies where it keeps them for this catalog, else looked up."""
        if self.liked_rows is not None and self.liked_catalog is catalog \
                and self.liked is not None:
            starts, counts = self.liked_starts[rows], self.liked[rows]
            return self.liked_rows[ranges(starts, starts + counts)], counts
        liked, counts = self.likes(rows, threshold)
        return catalog.positions(liked), counts

    def likes(self, rows: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
        """The movies these rows liked (a value at least `threshold`), laid end to end in row
        order, and how many each row liked: from the store's liked arrays where it keeps them,
        else by reading the rows."""
        if self.liked_indices is not None and self.liked is not None:
            starts, counts = self.liked_starts[rows], self.liked[rows]
            return self.liked_indices[ranges(starts, starts + counts)], counts
        at = ranges(self.starts[rows], self.stops[rows])
        liked = self.values[at] >= threshold
        lengths = self.stops[rows] - self.starts[rows]
        counts = np.bincount(np.repeat(np.arange(rows.size), lengths)[liked],
                             minlength=rows.size)
        return self.indices[at][liked], counts

    def vector(self, k: int) -> SparseVector:
        a, b = int(self.starts[k]), int(self.stops[k])
        return SparseVector(self.indices[a:b], self.values[a:b])

    def neighbors(self, rows=None, scores=None) -> list[Neighbor]:
        """Neighbor objects for these rows (default: all, in order), with these scores (default:
        the engine's)."""
        rows = range(len(self)) if rows is None else rows
        scores = self.scores if scores is None else scores
        return [Neighbor(int(self.user_ids[k]), float(scores[k]), self.vector(k)) for k in rows]


@dataclass(frozen=True)
class ScoredMovie:
    """A movie found by the item model, with its item-model vector when asked for."""

    movie_id: int
    score: float
    vector: SparseVector | None = None


@dataclass(frozen=True)
class MovieFilter:
    """Payload filters for the item model's query, applied inside the same Qdrant query."""

    exclude_ids: tuple[int, ...] = ()
    genres: tuple[str, ...] = ()
    year_min: int | None = None
    year_max: int | None = None

    @property
    def filters_movies(self) -> bool:
        """True when a movie's payload (genres, year) decides whether it may be answered."""
        return bool(self.genres) or self.year_min is not None or self.year_max is not None


@dataclass
class StoreStatus:
    """Whether the store can serve: reachable, ingested, both collections non-empty."""

    ready: bool
    users: int = 0
    movies: int = 0
    version: str | None = None
    detail: str = ""
    meta: IngestMeta | None = None
    # Shards and replicas of the live collections, or why the store has none (see cluster_of).
    cluster: dict[str, Any] = field(default_factory=dict)


def kept_history(old_live: str | None, old_previous: list[str], keep: int) -> list[str]:
    """The previous versions to keep after a new version goes live: the one live until now
    first, then the ones before it, at most `keep`."""
    history = ([old_live] if old_live else []) + [v for v in old_previous if v != old_live]
    return history[:keep]


def new_version() -> str:
    """Sortable in creation order (UTC time to the microsecond: two ingests can finish within
    one second), then a random suffix for uniqueness across machines."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y%m%dt%H%M%S%f") + "-" + uuid.uuid4().hex[:8]


class StoreReader(ABC):
    """Read access to the live (aliased) users and movies collections."""

    kind: str
    # True when every call is a sub-millisecond computation in this process (the embedded
    # engine), so callers need not hand it to a thread; False when calls wait on a network.
    answers_in_process: bool = False

    @abstractmethod
    def status(self) -> StoreStatus:
        """Reachable, ingested and non-empty? Never raises for an unreachable store."""

    @abstractmethod
    def meta(self) -> IngestMeta:
        """The live ingest's metadata (dataset, rating stats, counts, models)."""

    @abstractmethod
    def catalog(self) -> MovieCatalog:
        """All movies, loaded once per live version."""

    @abstractmethod
    def similar_users_block(
        self,
        query: SparseVector,
        limit: int,
        exclude_user: int | None = None,
        using: str = "ratings",
        score_threshold: float | None = None,
    ) -> NeighborBlock:
        """Top `limit` users by dot product of `query` with their `using` vectors (the z-scored
        ratings, or the unit-length liked vectors), best first, with their rating vectors;
        with `score_threshold`, only those the engine scores at least that high."""

    def similar_users(
        self,
        query: SparseVector,
        limit: int,
        exclude_user: int | None = None,
        using: str = "ratings",
    ) -> list[Neighbor]:
        """similar_users_block as one Neighbor per user."""
        return self.similar_users_block(query, limit, exclude_user, using).neighbors()

    @abstractmethod
    def user_vector(self, user_id: int) -> SparseVector | None:
        """A user's rating vector, or None if there is no such user."""

    @abstractmethod
    def similar_movies(
        self, query: SparseVector, limit: int, movie_filter: MovieFilter, with_vectors: bool = False
    ) -> list[ScoredMovie]:
        """Top movies by dot product of `query` with their item-model vectors, filtered."""

    def similar_movie_ids(
        self, query: SparseVector, limit: int, movie_filter: MovieFilter
    ) -> tuple[np.ndarray, np.ndarray]:
        """similar_movies as two arrays, best first: movie ids (int64) and scores (float64)."""
        hits = self.similar_movies(query, limit, movie_filter)
        return (np.array([h.movie_id for h in hits], dtype=np.int64),
                np.array([h.score for h in hits], dtype=np.float64))

    def similar_movie_ids_batch(
        self, queries: list[tuple[SparseVector, int]], movie_filter: MovieFilter
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """similar_movie_ids of each (query, limit), with one filter, in their order: one call
        to the engine where it takes a batch (a server: one round trip instead of one each)."""
        return [self.similar_movie_ids(query, limit, movie_filter) for query, limit in queries]

    @abstractmethod
    def movie_vectors(self, movie_ids: list[int]) -> dict[int, SparseVector]:
        """The item-model vectors of these movies (those that have one)."""

    def movie_weights(self, movie_ids: list[int], movies) -> np.ndarray:
        """(len(movie_ids), len(movies)) float64: each movie's item-model weight for each of
        the sorted `movies`, 0 where it has none (or no vector): what an explanation reads."""
        vectors = self.movie_vectors(movie_ids)
        return weights_at([vectors.get(int(m)) for m in movie_ids],
                          np.asarray(movies, dtype=np.int64))

    def refresh(self) -> bool:
        """Pick up a newer ingest if one was switched in; True if the version changed."""
        return False

    def close(self) -> None:
        """Release the store."""

    def __enter__(self) -> StoreReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class UserPoints:
    """Users to write: payloads aligned with the user ids, and every named vector of theirs
    (schema.RATINGS_VECTOR always; others may have empty rows, which are not written)."""

    payloads: list[dict[str, Any]]
    vectors: dict[str, UserVectors]

    def __post_init__(self) -> None:
        ids = self.ratings.user_ids
        for name, v in self.vectors.items():
            if v.user_ids is not ids and not np.array_equal(v.user_ids, ids):
                raise ValueError(f"the {name!r} user vectors are not aligned with the ratings")
        if len(self.payloads) != ids.size:
            raise ValueError("one payload per user is needed")

    @property
    def ratings(self) -> UserVectors:
        return self.vectors[schema.RATINGS_VECTOR]

    def __len__(self) -> int:
        return len(self.ratings)


@dataclass
class MoviePoints:
    """Movies to write: payloads, and each named vector as one SparseVector or None per movie."""

    payloads: list[dict[str, Any]]
    vectors: dict[str, list[SparseVector | None]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.payloads)


class StoreWriter(ABC):
    """Writes one complete new version, then switches it in. Never touches the live version.

    The calls come in this order: begin, write_users and write_movies (each batch once, in any
    order; update_meta at any point among them; users_written once after the last write_users,
    when every user is written before the first write_movies), counts, then commit, or abort at
    any point. All of them from one thread.
    """

    user_batch: int = 1_000  # users per write_users call
    user_batch_beside: int = 1_000  # the same while the ingest learns in another thread

    @abstractmethod
    def begin(self, meta: IngestMeta, user_vectors: tuple[str, ...],
              movie_vectors: tuple[str, ...]) -> str:
        """Create empty staging collections with these named sparse vectors for a new version;
        returns the version id."""

    @abstractmethod
    def write_users(self, users: UserPoints, start: int, stop: int) -> None:
        """Write users [start, stop), each with all its vectors and its payload."""

    @abstractmethod
    def write_movies(self, movies: MoviePoints, start: int, stop: int) -> None:
        """Write movies [start, stop)."""

    def users_written(self) -> None:
        """Every user is written: a writer may finish their side now (the ingest calls it while
        it waits for the learning, before the movies). No more write_users calls follow."""

    @abstractmethod
    def update_meta(self, meta: IngestMeta) -> None:
        """Replace the metadata given to begin: the version goes live with this one (an ingest
        learns its models' parameters while the users are written)."""

    @abstractmethod
    def counts(self) -> tuple[int, int]:
        """(users, movies) now in the staging collections."""

    @abstractmethod
    def commit(self) -> None:
        """Make the staging version live atomically, then remove older versions."""

    @abstractmethod
    def abort(self) -> None:
        """Drop the staging version; the live one is untouched."""

    def close(self) -> None:
        """Release locks and handles."""


def user_rows(users: UserPoints, start: int, stop: int, views: bool = False):
    """(user_id, {vector name: (indices list, values list)}, payload) for users [start, stop);
    empty vectors are left out. views: memoryviews of the arrays instead of lists."""
    named = {name: rows(v, start, stop, views) for name, v in users.vectors.items()}
    ids = users.ratings.user_ids[start:stop].tolist()
    for k, user_id in enumerate(ids):
        vectors = {}
        for name, it in named.items():
            _, idx, val = next(it)
            if idx:
                vectors[name] = (idx, val)
        yield user_id, vectors, users.payloads[start + k]


def movie_rows(movies: MoviePoints, start: int, stop: int):
    """(movie_id, {vector name: SparseVector}, payload) for movies [start, stop)."""
    for k in range(start, stop):
        payload = movies.payloads[k]
        vectors = {}
        for name, column in movies.vectors.items():
            vector = column[k]
            if vector is not None and len(vector):
                vectors[name] = vector
        yield int(payload["movie_id"]), vectors, payload


def rows(vectors: UserVectors, start: int, stop: int, views: bool = False):
    """(user_id, indices, values) for users [start, stop): lists sliced from one list per
    array, or (views) memoryviews of the arrays themselves, sliced without copies."""
    a, b = int(vectors.indptr[start]), int(vectors.indptr[stop])
    if views:
        indices, values = memoryview(vectors.indices[a:b]), memoryview(vectors.values[a:b])
    else:
        indices, values = vectors.indices[a:b].tolist(), vectors.values[a:b].tolist()
    offsets = (vectors.indptr[start : stop + 1] - a).tolist()
    for k, user_id in enumerate(vectors.user_ids[start:stop].tolist()):
        lo, hi = offsets[k], offsets[k + 1]
        yield user_id, indices[lo:hi], values[lo:hi]


_ID = operator.attrgetter("id")
_SCORE = operator.attrgetter("score")


def ids_and_scores(points: list) -> tuple[np.ndarray, np.ndarray]:
    """Found points' ids (int64) and scores (float64), in their order (either engine's)."""
    n = len(points)
    return (np.fromiter(map(_ID, points), dtype=np.int64, count=n),
            np.fromiter(map(_SCORE, points), dtype=np.float64, count=n))


def named_vectors(records, name: str) -> dict[int, SparseVector]:
    """{point id: its `name` vector} for records of either engine (points without it skipped)."""
    out = {}
    for r in records:
        v = (r.vector or {}).get(name)
        if v is not None:
            out[int(r.id)] = as_sparse(v.indices, v.values)
    return out


def as_sparse(indices, values) -> SparseVector:
    """An engine's returned vector as our SparseVector (already valid: it came from us)."""
    return SparseVector(np.asarray(indices, dtype=np.uint32), np.asarray(values, dtype=np.float32))
