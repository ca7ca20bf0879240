"""Sparse vectors by point id as flat CSR arrays in one file (a JSON header, then each array
64-byte aligned), memory-mapped by readers: users.csr (every user's ratings) and
movies.<vector>.csr (every movie's item-model weights), beside the shards that hold the same
vectors.

Qdrant finds the neighbours (or the movies); the vectors a model then reads come from these
files. Asking the engine for them instead returns Python lists: turning ~10k list items into
arrays costs about 0.4 ms a query, four times the search itself, and an item-model answer's
explanations (ten movies of ~3,000 weights, before they were pruned to 1,024) cost 2.3 ms.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from movierec.vectors import IdPositions, SparseVector, UserVectors, cell_keys, values_at_cells

ARRAYS = ("user_ids", "indptr", "indices", "values")
HEADER = 4096


def save(path: Path, vectors: UserVectors) -> None:
    """The user vectors in one file (one fsync): a JSON header, then each array 64-byte aligned."""
    layout: dict[str, dict[str, Any]] = {}
    offset = HEADER
    for name in ARRAYS:
        array = getattr(vectors, name)
        layout[name] = {"dtype": array.dtype.str, "count": int(array.size), "offset": offset}
        offset += -(-array.nbytes // 64) * 64
    header = json.dumps(layout).encode()
    with open(path, "wb") as fh:
        fh.write(header.ljust(HEADER, b" "))
        for name in ARRAYS:
            fh.seek(layout[name]["offset"])
            np.ascontiguousarray(getattr(vectors, name)).tofile(fh)
        fh.truncate(offset)
        fh.flush()
        os.fsync(fh.fileno())


def load(path: Path, users: int | None) -> UserVectors | None:
    """The vectors memory-mapped, or None when absent or not matching the expected count."""
    try:
        with open(path, "rb") as fh:
            layout = json.loads(fh.read(HEADER))
        data = np.memmap(path, dtype=np.uint8, mode="r").view(np.ndarray)  # plain views: faster
        arrays = {}
        for name in ARRAYS:
            spec = layout[name]
            dtype = np.dtype(spec["dtype"])
            start, stop = spec["offset"], spec["offset"] + spec["count"] * dtype.itemsize
            arrays[name] = data[start:stop].view(dtype)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    vectors = UserVectors(**arrays)
    users = len(vectors) if users is None else users
    if (len(vectors) != users or vectors.indptr.size != users + 1
            or vectors.indices.dtype != np.uint32 or vectors.values.dtype != np.float32
            or vectors.indices.size != vectors.values.size
            or int(vectors.indptr[-1]) != vectors.indices.size):
        return None
    return vectors


def positions(vectors: UserVectors, ids) -> np.ndarray | None:
    """The row numbers of these ids, in their order; None if one is missing."""
    known = vectors.user_ids
    if not known.size:
        return None
    ids = np.asarray(ids, dtype=np.int64)
    first, last = int(known[0]), int(known[-1])
    if last - first == known.size - 1:  # ids first..last, every one (MovieLens users): no search
        if ids.size and (ids.min() < first or ids.max() > last):
            return None
        return ids - first
    pos = np.minimum(np.searchsorted(known, ids), known.size - 1)
    return pos if np.array_equal(known[pos], ids) else None


def rows_of(vectors: UserVectors, ids) -> list[SparseVector] | None:
    """The vectors of these ids (views, no copies), in their order; None if one is missing."""
    pos = positions(vectors, ids)
    if pos is None:
        return None
    starts = vectors.indptr[pos].tolist()
    ends = vectors.indptr[pos + 1].tolist()
    indices, values = vectors.indices, vectors.values
    return [SparseVector(indices[a:b], values[a:b]) for a, b in zip(starts, ends)]


# Cells keeps a dense float32 table of the weights while it takes at most this many bytes
# (ml-1m's item weights: 3,124 x 3,124 cells, 39 MB), else the cell keys (8 bytes a stored
# value): a table read is one cache line a cell where a search among the keys is several, and
# within an answer the searches had just evicted them (the default answer 5% faster, its
# explanations 13% of it instead of 15%, ml-1m).
DENSE_CELLS_MAX_BYTES = 64 << 20


class Cells:
    """Every stored value of the vectors found by (row id, column), kept by a reader beside its
    memory-mapped file: a dense table (a row per vector, a column per distinct column, a last
    row and column of zeros for the rest) while it fits DENSE_CELLS_MAX_BYTES, else one binary
    search among the cells' keys (vectors.cell_keys). Either replaced copying the rows out
    (rows_of, then weights_at), which reads every one of their weights."""

    def __init__(self, vectors: UserVectors, keys: np.ndarray | None = None,
                 table: np.ndarray | None = None):
        self.vectors = vectors
        self.keys = keys
        self.table = table
        self.row_of = dict(zip(vectors.user_ids.tolist(), range(len(vectors))))
        if table is not None:
            columns = np.unique(vectors.indices).tolist()
            self.column_of = dict(zip(columns, range(len(columns))))

    @classmethod
    def of(cls, vectors: UserVectors,
           dense_max_bytes: int = DENSE_CELLS_MAX_BYTES) -> Cells | None:
        """The cells of `vectors`; None when a row's columns are not sorted and unique."""
        keys = cell_keys(vectors.indptr, vectors.indices)
        if keys.size > 2 and not (keys[1:-1] > keys[:-2]).all():
            return None
        columns = np.unique(vectors.indices)
        if (len(vectors) + 1) * (columns.size + 1) * 4 > dense_max_bytes:
            return cls(vectors, keys=keys)
        del keys
        table = np.zeros((len(vectors) + 1, columns.size + 1), dtype=np.float32)
        rows = np.repeat(np.arange(len(vectors)), np.diff(vectors.indptr))
        table[rows, IdPositions(columns)(vectors.indices)] = vectors.values
        return cls(vectors, table=table)

    def values_at(self, ids, columns) -> np.ndarray:
        """(len(ids), len(columns)) float64: the row of each id at each of the `columns`, 0
        where it has none (and for an id without a row), read in place. An explanation reads a
        few dozen cells: their positions are found in dicts (a numpy lookup's steps cost more
        for so few)."""
        if self.table is not None:
            # An id or a column the table does not hold: its last row or column, zeros.
            last_row, last_column = self.table.shape[0] - 1, self.table.shape[1] - 1
            rows = np.array([self.row_of.get(i, last_row) for i in ids], dtype=np.intp)
            at = np.array([self.column_of.get(c, last_column) for c in columns], dtype=np.intp)
            return self.table[rows[:, None], at].astype(np.float64)
        rows = np.array([self.row_of.get(i, -1) for i in ids], dtype=np.int64)
        return values_at_cells(self.keys, self.vectors.values, rows,
                               np.asarray(columns, dtype=np.int64))


def liked_rows(vectors: UserVectors, threshold: float, chunk: int = 1 << 22,
               max_liked: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """(indptr, indices): each row's columns whose value is at least `threshold` (the liked
    ratings, as vectors.liked_vectors keeps them), in their order, as CSR arrays, made in
    chunks of rows so no temporary is as large as the ratings: a pass to count them, then one
    to copy them into their array. 4 bytes a liked rating (ml-1m: 2.3 MB). Past `max_liked` of
    them, only the counts (indices None): an answer then filters its neighbours' ratings as it
    did before, instead of holding a copy of most ratings (83M of 100M synthetic ones: 330 MB
    for a few percent of a blend answer)."""
    indptr = vectors.indptr
    bounds = []  # (first row, row after, first value, value after) of each chunk
    start = 0
    while start < len(vectors):
        # Rows from `start` holding about `chunk` values (at least one row).
        stop = max(int(np.searchsorted(indptr, indptr[start] + chunk, side="right")) - 1,
                   start + 1)
        stop = min(stop, len(vectors))
        bounds.append((start, stop, int(indptr[start]), int(indptr[stop])))
        start = stop
    counts = np.zeros(len(vectors), dtype=np.int64)
    for start, stop, a, b in bounds:
        kept = np.concatenate([[0], np.cumsum(vectors.values[a:b] >= threshold, dtype=np.int64)])
        counts[start:stop] = kept[indptr[start + 1:stop + 1] - a] - kept[indptr[start:stop] - a]
    out_indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    if max_liked is not None and int(out_indptr[-1]) > max_liked:
        return out_indptr, None
    indices = np.empty(int(out_indptr[-1]), dtype=vectors.indices.dtype)
    for start, stop, a, b in bounds:
        indices[out_indptr[start]:out_indptr[stop]] = \
            vectors.indices[a:b][vectors.values[a:b] >= threshold]
    return out_indptr, indices


def from_rows(rows: list[tuple[int, SparseVector]]) -> UserVectors:
    """CSR arrays of (id, vector) rows, sorted by id."""
    rows = sorted(rows, key=lambda row: row[0])
    lengths = np.array([len(v) for _, v in rows], dtype=np.int64)
    return UserVectors(
        user_ids=np.array([i for i, _ in rows], dtype=np.int64),
        indptr=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        indices=np.concatenate([v.indices for _, v in rows]) if rows else np.empty(0, np.uint32),
        values=np.concatenate([v.values for _, v in rows]) if rows else np.empty(0, np.float32),
    )
