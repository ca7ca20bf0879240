"""Normalization and sparse vectors: z-scored ratings, one sparse vector per user, and the
validation every vector passes before it reaches an engine (qdrant-edge checks nothing itself).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from movierec.errors import QueryError
from movierec.schema import MAX_ID as MAX_INDEX

FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True)
class RatingStats:
    """Global mean and sample standard deviation of all ratings, as the tutorial uses them."""

    mean: float
    std: float

    @classmethod
    def of(cls, ratings: np.ndarray) -> RatingStats:
        if ratings.size < 2:
            raise ValueError("normalization needs at least two ratings")
        std = float(np.std(ratings, ddof=1))
        if not std > 0:
            raise ValueError("all ratings are equal: their standard deviation is 0")
        return cls(mean=float(np.mean(ratings)), std=std)

    def normalize(self, stars: np.ndarray) -> np.ndarray:
        return (np.asarray(stars, dtype=np.float64) - self.mean) / self.std

    def z_at_least(self, stars: float) -> float:
        """The z-score from which a rating counts as at least `stars` (a little slack below:
        stored z-scores are float32)."""
        return (stars - self.mean) / self.std - 1e-6

    def to_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "std": self.std}


@dataclass(frozen=True)
class SparseVector:
    """Sorted unique u32 indices with finite float32 values."""

    indices: np.ndarray  # uint32
    values: np.ndarray  # float32

    def __len__(self) -> int:
        return int(self.indices.size)

    @classmethod
    def checked(cls, indices, values) -> SparseVector:
        """Build a vector from untrusted input, sorting it, or raise ValueError saying why."""
        idx = np.asarray(indices)
        val = np.asarray(values)
        if idx.ndim != 1 or val.ndim != 1:
            raise ValueError("indices and values must be flat lists")
        if idx.size != val.size:
            raise ValueError(f"{idx.size} indices but {val.size} values: lengths must be equal")
        if idx.size and idx.dtype.kind not in "iu":
            if idx.dtype.kind == "f" and np.all(np.isfinite(idx)) and np.all(idx == np.floor(idx)):
                if idx.min() < 0 or idx.max() > MAX_INDEX:
                    bad = idx[(idx < 0) | (idx > MAX_INDEX)][0]
                    raise ValueError(f"index {bad:g} is outside 0..{MAX_INDEX}")
                idx = idx.astype(np.int64)
            else:
                raise ValueError("indices must be integers")
        if idx.size and (idx.min() < 0 or idx.max() > MAX_INDEX):
            bad = idx[(idx < 0) | (idx > MAX_INDEX)][0]
            raise ValueError(f"index {bad} is outside 0..{MAX_INDEX}")
        if val.size and val.dtype.kind not in "iuf":
            raise ValueError("values must be numbers")
        val = val.astype(np.float64)
        # One pass for both checks (this runs on every query): NaN and inf propagate to the max.
        largest = float(np.max(np.abs(val))) if val.size else 0.0
        if not math.isfinite(largest):
            raise ValueError("values must be finite (no NaN or infinity)")
        if largest > FLOAT32_MAX:
            raise ValueError("values must fit in float32")
        order = np.argsort(idx, kind="stable")
        idx = idx[order]
        if idx.size > 1 and np.any(idx[1:] == idx[:-1]):
            dup = idx[1:][idx[1:] == idx[:-1]][0]
            raise ValueError(f"index {dup} appears more than once")
        return cls(idx.astype(np.uint32), val[order].astype(np.float32))

    def validate(self) -> None:
        """Assert the engine invariants; cheap enough to run on every vector written."""
        idx, val = self.indices, self.values
        if idx.dtype != np.uint32 or val.dtype != np.float32:
            raise ValueError("sparse vector must hold uint32 indices and float32 values")
        if idx.shape != val.shape or idx.ndim != 1:
            raise ValueError("sparse vector indices and values must have equal lengths")
        if idx.size > 1 and not np.all(idx[1:] > idx[:-1]):
            raise ValueError("sparse vector indices must be sorted and unique")
        if not np.all(np.isfinite(val)):
            raise ValueError("sparse vector values must be finite")


@dataclass(frozen=True)
class UserVectors:
    """All users' vectors in CSR form: user_ids[k]'s ratings are indices/values[indptr[k]:indptr[k+1]]."""

    user_ids: np.ndarray  # int64, sorted unique
    indptr: np.ndarray  # int64, len(user_ids) + 1
    indices: np.ndarray  # uint32 movie ids, sorted within each user
    values: np.ndarray  # float32 normalized ratings

    def __len__(self) -> int:
        return int(self.user_ids.size)

    def row(self, k: int) -> SparseVector:
        a, b = self.indptr[k], self.indptr[k + 1]
        return SparseVector(self.indices[a:b], self.values[a:b])

    def validate(self) -> None:
        """Check every row at once, vectorized: unique sorted u32 indices, finite values."""
        if self.indices.dtype != np.uint32 or self.values.dtype != np.float32:
            raise ValueError("user vectors must hold uint32 indices and float32 values")
        if self.indices.shape != self.values.shape:
            raise ValueError("user vectors: indices and values have different lengths")
        if self.indptr[0] != 0 or self.indptr[-1] != self.indices.size:
            raise ValueError("user vectors: indptr does not span the data")
        if np.any(np.diff(self.indptr) <= 0):
            raise ValueError("user vectors: every user needs at least one rating")
        if not np.all(np.isfinite(self.values)):
            raise ValueError("user vectors: values must be finite")
        # Compared in u32 in place (no int64 copy: this runs on 100M ratings at scale); where a
        # new user starts, the order does not matter.
        increasing = self.indices[1:] > self.indices[:-1]
        increasing[self.indptr[1:-1] - 1] = True
        if not increasing.all():
            raise ValueError("user vectors: indices must be sorted and unique within each user")


def user_vectors(
    user_ids: np.ndarray, movie_ids: np.ndarray, ratings: np.ndarray, stats: RatingStats
) -> UserVectors:
    """One sparse vector per user: indices = movie ids, values = z-scored ratings."""
    order = _user_movie_order(user_ids, movie_ids)
    users_sorted = user_ids[order]
    # Sorted, so each user's rows start where the id changes: no second sort (np.unique).
    starts = np.flatnonzero(np.diff(users_sorted, prepend=users_sorted[:1] - 1))
    users = users_sorted[starts]
    del users_sorted
    indptr = np.append(starts, order.size).astype(np.int64)
    values = ratings[order].astype(np.float64)
    values -= stats.mean
    values /= stats.std
    vectors = UserVectors(
        user_ids=users.astype(np.int64),
        indptr=indptr,
        indices=movie_ids[order].astype(np.uint32),
        values=values.astype(np.float32),
    )
    vectors.validate()
    return vectors


def _user_movie_order(user_ids: np.ndarray, movie_ids: np.ndarray) -> np.ndarray:
    """The permutation sorting ratings by (user, movie), as np.lexsort would give it.

    Ids that fit in u32 (all MovieLens ids) pack into one u64 key, and one stable argsort of
    it (vectorized radix/SIMD sort) is several times faster than a two-key lexsort.
    """
    if user_ids.size and all(
        ids.dtype.kind in "iu" and ids.min() >= 0 and ids.max() <= MAX_INDEX
        for ids in (user_ids, movie_ids)
    ):
        keys = user_ids.astype(np.uint64) << np.uint64(32)
        keys |= movie_ids.astype(np.uint64)
        return np.argsort(keys, kind="stable")
    return np.lexsort((movie_ids, user_ids))


# An id table costs (largest id + 1) entries: kept while that is at most this many times the
# ids it holds, plus a floor (MovieLens' movie ids: 3,953 for 3,883 movies, 209,171 for 62,423).
ID_TABLE_FACTOR = 64
ID_TABLE_FLOOR = 1 << 20


class IdPositions:
    """Each id's position in `known` (unique ids, in any order), -1 where it is not one of them:
    one lookup in a table indexed by id while the ids are dense enough (the largest below
    ID_TABLE_FACTOR times their count, or ID_TABLE_FLOOR), else a binary search -- ids go up
    to 2^32 - 1, whose table would take 16-32 GiB."""

    def __init__(self, known: np.ndarray, dtype: type = np.int64):
        known = np.asarray(known, dtype=np.int64)
        self.size = known.size
        self.dtype = dtype
        top = int(known.max()) + 1 if known.size else 0
        self.table = self.order = self.sorted = None
        if top <= max(ID_TABLE_FACTOR * known.size, ID_TABLE_FLOOR):
            self.table = np.full(top, -1, dtype=dtype)
            self.table[known] = np.arange(known.size, dtype=dtype)
        else:
            self.order = np.argsort(known, kind="stable").astype(dtype)
            self.sorted = known[self.order]

    def __call__(self, ids) -> np.ndarray:
        ids = np.asarray(ids)
        if ids.dtype.kind not in "iu":
            ids = ids.astype(np.int64)
        if not self.size:
            return np.full(ids.shape, -1, dtype=self.dtype)
        if self.table is not None:
            # Seen as unsigned, a negative id is above every table position too: one pass
            # checks both ends.
            if ids.size and ids.view(ids.dtype.str.replace("i", "u")).max() < self.table.size:
                return self.table[ids]
            size = self.table.size
            inside = (ids >= 0) & (ids < size)
            return np.where(inside, self.table[np.where(inside, ids, 0)], -1).astype(self.dtype)
        at = np.minimum(np.searchsorted(self.sorted, ids), self.size - 1)
        return np.where(self.sorted[at] == ids, self.order[at], -1).astype(self.dtype)


def ranges(starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """The positions starts[k]:stops[k] of every k, laid end to end (one gather, no loop)."""
    lengths = stops - starts
    total = int(lengths.sum())
    return np.arange(total) + np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)


def cell_keys(indptr: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Each stored value's key in CSR arrays, row << 32 | column (columns are u32), then one key
    above every cell: rows in order and each row's columns sorted and unique (as SparseVector
    holds them) make the keys ascending, so one binary search finds any (row, column)."""
    keys = np.repeat(np.arange(indptr.size - 1, dtype=np.int64) << 32, np.diff(indptr))
    keys |= indices
    return np.append(keys, np.iinfo(np.int64).max)


def values_at_cells(keys: np.ndarray, values: np.ndarray, rows: np.ndarray,
                    columns: np.ndarray) -> np.ndarray:
    """(rows.size, columns.size) float64: the value at each (row, column), 0 where there is
    none (and for a row of -1), by one binary search of their keys among `keys` (cell_keys)."""
    columns = np.asarray(columns, dtype=np.int64)
    if not rows.size or not columns.size or not values.size:
        return np.zeros((rows.size, columns.size))
    wanted = ((rows << 32)[:, None] | columns[None, :]).ravel()  # row -1: below every key
    at = keys.searchsorted(wanted)
    found = np.where(keys[at] == wanted, values.take(at, mode="clip"),
                     np.float64(0.0))  # (clip: the last key is above every cell)
    return found.reshape(rows.size, columns.size)


def weights_at(vectors: list[SparseVector | None], columns: np.ndarray) -> np.ndarray:
    """(len(vectors), columns.size) float64: each vector's value at each of the `columns`, 0
    where it has none (None: a row of zeros): the vectors laid end to end as CSR arrays, then
    one binary search for every (vector, column) among their cell keys."""
    lengths = np.fromiter((len(v) if v is not None else 0 for v in vectors), dtype=np.int64,
                          count=len(vectors))
    held = [v for v in vectors if v is not None]
    indices = np.concatenate([v.indices for v in held]) if held else np.empty(0, np.uint32)
    values = np.concatenate([v.values for v in held]) if held else np.empty(0, np.float32)
    indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return values_at_cells(cell_keys(indptr, indices), values,
                           np.arange(len(vectors), dtype=np.int64), columns)


def query_vector(ratings: dict[int, float]) -> SparseVector:
    """A person's ratings (movie id -> weight) as a validated sparse query."""
    if not ratings:
        raise QueryError("ratings are empty: rate at least one movie")
    try:
        return SparseVector.checked(list(ratings.keys()), list(ratings.values()))
    except ValueError as exc:
        raise QueryError(f"invalid ratings: {exc}") from None


def liked_vectors(vectors: UserVectors, stats: RatingStats, min_stars: float) -> UserVectors:
    """Each user's liked movies (z-scored rating >= min_stars') as a unit-length binary vector.

    Rows may be empty (a user who liked nothing); such users get no liked vector.
    """
    keep = vectors.values >= stats.z_at_least(min_stars)
    kept_before = np.concatenate([[0], np.cumsum(keep, dtype=np.int64)])
    indptr = kept_before[vectors.indptr]
    counts = np.diff(indptr)
    norms = np.repeat(1.0 / np.sqrt(np.maximum(counts, 1)), counts).astype(np.float32)
    return UserVectors(vectors.user_ids, indptr, vectors.indices[keep], norms)
