"""Item-item models: weights W learned from user x movie interactions so that a person's score
for movie j is sum over their movies i of W[i, j] -- one sparse dot product per movie."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def _binary(interactions: sp.spmatrix) -> sp.csr_matrix:
    x = sp.csr_matrix(interactions, dtype=np.float64, copy=True)
    x.data[:] = 1.0
    x.eliminate_zeros()
    return x


def gram(interactions: sp.spmatrix) -> np.ndarray:
    """Dense item x item co-occurrence counts X^T X of the binary interactions."""
    x = _binary(interactions)
    return np.asarray((x.T @ x).toarray(), dtype=np.float64)


def ease_weights(interactions: sp.spmatrix, l2: float) -> np.ndarray:
    """EASE (Steck 2019): argmin ||X - XW||^2 + l2 ||W||^2 with diag(W) = 0, closed form."""
    g = gram(interactions)
    g[np.diag_indices_from(g)] += l2
    p = np.linalg.inv(g)
    w = -p / np.diag(p)[None, :]
    np.fill_diagonal(w, 0.0)
    return w


def cosine_knn_weights(interactions: sp.spmatrix, neighbors: int) -> sp.csr_matrix:
    """Item-kNN: cosine similarity of the items' user sets, each movie j keeping its
    `neighbors` most similar movies i (column j of the result)."""
    g = gram(interactions)
    norms = np.sqrt(np.diag(g))
    norms[norms == 0] = 1.0
    sim = g / norms[:, None] / norms[None, :]
    np.fill_diagonal(sim, 0.0)
    return keep_top_per_column(sim, neighbors, by_magnitude=False)


def keep_top_per_column(weights: np.ndarray, m: int, *, by_magnitude: bool = True) -> sp.csr_matrix:
    """Sparse copy of `weights` keeping the m largest entries (by |w|, or by w) of each column,
    so that each movie's vector has at most m nonzeros."""
    n_rows, n_cols = weights.shape
    if m >= n_rows:
        return sp.csr_matrix(weights)
    key = np.abs(weights) if by_magnitude else weights
    rows = np.argpartition(-key, m - 1, axis=0)[:m]  # (m, n_cols)
    cols = np.broadcast_to(np.arange(n_cols), rows.shape)
    values = weights[rows, cols]
    nonzero = values != 0
    return sp.csr_matrix((values[nonzero], (rows[nonzero], cols[nonzero])), shape=weights.shape)
