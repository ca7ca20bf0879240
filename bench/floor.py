"""The physical floor: the tutorial's neighbour search and aggregation in plain numpy/scipy.

No store, no validation, no tie handling: the ratings as one sparse matrix in memory, and the
fewest array operations that answer the same question. Two searches:
- brute force: one CSR matrix-vector product over every rating (what a scan costs);
- inverted index: only the postings of the query's movies (CSC columns), which is what a
  sparse-vector engine does.
Aggregation sums the top neighbours' CSR rows with one bincount.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from movierec.vectors import UserVectors


class Floor:
    def __init__(self, vectors: UserVectors):
        self.user_ids = np.asarray(vectors.user_ids)
        self.n_movies = int(np.max(vectors.indices)) + 1 if len(vectors.indices) else 0
        self.csr = sp.csr_matrix(
            (np.asarray(vectors.values), np.asarray(vectors.indices).astype(np.int32),
             np.asarray(vectors.indptr)),
            shape=(self.user_ids.size, self.n_movies),
        )
        self.csc = self.csr.tocsc()
        self.csc.sort_indices()

    def scores_brute(self, q_idx: np.ndarray, q_val: np.ndarray) -> np.ndarray:
        dense = np.zeros(self.n_movies, dtype=np.float32)
        dense[q_idx] = q_val
        return self.csr @ dense

    def scores_inverted(self, q_idx: np.ndarray, q_val: np.ndarray) -> np.ndarray:
        indptr, rows, data = self.csc.indptr, self.csc.indices, self.csc.data
        starts, ends = indptr[q_idx], indptr[q_idx + 1]
        postings = np.concatenate([rows[a:b] for a, b in zip(starts.tolist(), ends.tolist())])
        weights = np.concatenate([data[a:b] * w for a, b, w in
                                  zip(starts.tolist(), ends.tolist(), q_val.tolist())])
        return np.bincount(postings, weights=weights, minlength=self.user_ids.size)

    def recommend(self, q_idx: np.ndarray, q_val: np.ndarray, neighbors: int = 20,
                  limit: int = 5, inverted: bool = True) -> tuple[np.ndarray, np.ndarray]:
        q_idx = np.asarray(q_idx, dtype=np.int64)
        q_val = np.asarray(q_val, dtype=np.float32)
        scores = (self.scores_inverted if inverted else self.scores_brute)(q_idx, q_val)
        k = min(neighbors, scores.size)
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.lexsort((self.user_ids[top], -scores[top]))]
        indptr, cols, data = self.csr.indptr, self.csr.indices, self.csr.data
        movies = np.concatenate([cols[indptr[r]:indptr[r + 1]] for r in top.tolist()])
        ratings = np.concatenate([data[indptr[r]:indptr[r + 1]] for r in top.tolist()])
        totals = np.bincount(movies, weights=ratings, minlength=self.n_movies)
        present = np.zeros(self.n_movies, dtype=bool)
        present[movies] = True
        present[q_idx[q_idx < self.n_movies]] = False
        candidates = np.flatnonzero(present)
        if candidates.size > limit:
            kth = np.partition(totals[candidates], candidates.size - limit)[candidates.size - limit]
            candidates = candidates[totals[candidates] >= kth]
        best = candidates[np.lexsort((candidates, -totals[candidates]))[:limit]]
        return best, totals[best]
