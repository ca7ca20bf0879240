"""The existing-users protocol's data side: RecBole's ML-1M setup (ratings >= 3, users and
movies with fewer than 10 interactions dropped until none is left, each user's interactions
split 80/10/10 at random)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

# The protocol, as RecBole's ml-1m config states it (val_interval rating "[3,inf)",
# user/item_inter_num_interval "[10,inf)", split RS [0.8, 0.1, 0.1], order RO, group_by user,
# mode full). On ML-1M it leaves 6,033 users, 3,123 movies and 834,449 interactions, the same
# counts RecBole reports (it adds one padding id to each).
MIN_RATING = 3
MIN_USER_INTERACTIONS = 10
MIN_ITEM_INTERACTIONS = 10
SPLIT_RATIOS = (0.8, 0.1, 0.1)
SEED = 2020
K = 10
PHASES = ("valid", "test")
METRICS = ("recall", "ndcg", "mrr", "hit", "precision", "coverage")
PROTOCOL = (
    "Protocol (RecBole ML-1M): ratings >= 3; users and movies with fewer than 10 interactions "
    "dropped until none is left; each user's interactions split 80/10/10 at random (fixed "
    "seed); models fit on train, tuned by NDCG on valid, reported on test; every movie ranked "
    "except the user's train + valid movies; metrics averaged over users with test movies; "
    "coverage = distinct recommended movies / movies in the catalog. Validation scores are "
    "lower than test scores because the test movies are still unlabelled candidates then."
)



def filter_interactions(
    user_ids: np.ndarray,
    movie_ids: np.ndarray,
    ratings: np.ndarray,
    *,
    min_rating: float = MIN_RATING,
    min_user_interactions: int = MIN_USER_INTERACTIONS,
    min_item_interactions: int = MIN_ITEM_INTERACTIONS,
) -> np.ndarray:
    """Boolean mask of the interactions the protocol keeps.

    Ratings below `min_rating` go first; then users and movies with too few interactions are
    dropped together, again and again, until every remaining user and movie has enough (one
    pass can push others below the threshold).
    """
    user_ids = np.asarray(user_ids)
    movie_ids = np.asarray(movie_ids)
    keep = np.asarray(ratings) >= min_rating
    _, users = np.unique(user_ids, return_inverse=True)
    _, movies = np.unique(movie_ids, return_inverse=True)
    n_users, n_movies = users.max(initial=-1) + 1, movies.max(initial=-1) + 1
    while True:
        user_counts = np.bincount(users[keep], minlength=n_users)
        movie_counts = np.bincount(movies[keep], minlength=n_movies)
        banned = keep & (
            (user_counts[users] < min_user_interactions)
            | (movie_counts[movies] < min_item_interactions)
        )
        if not banned.any():
            return keep
        keep &= ~banned


@dataclass(frozen=True)
class Split:
    """A user x movie split. Rows are users, columns are movies (`movie_ids[c]` is the movie
    of column c). `train`, `valid`, `test` hold 1.0 where the interaction is in that part;
    `ratings` holds the rating of every kept interaction (all three parts)."""

    user_ids: np.ndarray
    movie_ids: np.ndarray
    train: sp.csr_matrix
    valid: sp.csr_matrix
    test: sp.csr_matrix
    ratings: sp.csr_matrix

    @property
    def n_users(self) -> int:
        return self.train.shape[0]

    @property
    def n_items(self) -> int:
        return self.train.shape[1]

    def targets(self, phase: str) -> sp.csr_matrix:
        """What a model must find: the validation items, or the test items."""
        return {"valid": self.valid, "test": self.test}[_check_phase(phase)]

    def history(self, phase: str) -> sp.csr_matrix:
        """What a model knows of each user: the training items, with their ratings as values.

        As in RecBole, models are fit on the training part only and users are represented by
        their training items in both phases; validation items are only excluded at test time.
        """
        _check_phase(phase)
        return self.ratings.multiply(self.train).tocsr()

    def excluded(self, phase: str) -> sp.csr_matrix:
        """Items never recommended: train items (valid phase), train + valid items (test)."""
        if _check_phase(phase) == "valid":
            return self.train
        return (self.train + self.valid).tocsr()


def _check_phase(phase: str) -> str:
    if phase not in PHASES:
        raise ValueError(f"phase must be one of {PHASES}, not {phase!r}")
    return phase


def split_interactions(
    user_ids: np.ndarray,
    movie_ids: np.ndarray,
    ratings: np.ndarray | None = None,
    *,
    ratios: Sequence[float] = SPLIT_RATIOS,
    seed: int = SEED,
) -> Split:
    """Split each user's interactions at random into train / valid / test parts.

    Counts follow RecBole: each part after the first gets floor(ratio * n) interactions, the
    first part gets the rest; a part whose share is between 0 and 1 interaction gets one,
    taken from the first part while it keeps more than one. The same seed gives the same split.
    """
    user_ids = np.asarray(user_ids)
    movie_ids = np.asarray(movie_ids)
    ratings = np.ones(len(user_ids)) if ratings is None else np.asarray(ratings, dtype=np.float64)
    uniq_users, rows = np.unique(user_ids, return_inverse=True)
    uniq_movies, cols = np.unique(movie_ids, return_inverse=True)
    shape = (len(uniq_users), len(uniq_movies))

    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(len(rows)), rows))  # users in turn, shuffled inside each
    counts = np.bincount(rows, minlength=shape[0])
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    position = np.empty(len(rows), dtype=np.int64)
    position[order] = np.arange(len(rows)) - np.repeat(starts, counts)

    part_sizes = part_counts(counts, ratios)
    boundaries = np.cumsum(part_sizes, axis=1)  # per user: end of train, end of valid, ...
    part = (position[:, None] >= boundaries[rows][:, :-1]).sum(axis=1)

    def part_matrix(p: int) -> sp.csr_matrix:
        chosen = part == p
        m = sp.csr_matrix(
            (np.ones(chosen.sum()), (rows[chosen], cols[chosen])), shape=shape, dtype=np.float64
        )
        m.data[:] = 1.0  # a duplicated (user, movie) pair counts once
        return m

    rating_matrix = sp.csr_matrix((ratings, (rows, cols)), shape=shape)
    train, valid, test = (part_matrix(p) for p in range(3))
    return Split(uniq_users, uniq_movies, train, valid, test, rating_matrix)


def part_counts(totals: np.ndarray, ratios: Sequence[float]) -> np.ndarray:
    """(n_users, n_parts) number of interactions per part, RecBole's rounding rule."""
    ratios = np.asarray(ratios, dtype=np.float64) / np.sum(ratios)
    totals = np.asarray(totals, dtype=np.int64)
    shares = ratios[None, :] * totals[:, None]
    cnt = np.floor(shares).astype(np.int64)
    cnt[:, 0] = totals - cnt[:, 1:].sum(axis=1)
    for p in range(len(ratios) - 1, 0, -1):  # last part first, as RecBole does
        bump = (cnt[:, 0] > 1) & (shares[:, p] > 0) & (shares[:, p] < 1)
        cnt[bump, p] += 1
        cnt[bump, 0] -= 1
    return cnt


def prepare_split(
    user_ids: np.ndarray, movie_ids: np.ndarray, ratings: np.ndarray, *, seed: int = SEED
) -> Split:
    """The whole protocol's data side: filter, then split."""
    keep = filter_interactions(user_ids, movie_ids, ratings)
    if not keep.any():
        raise ValueError("no interactions left after filtering (ratings >= 3, 10-core)")
    return split_interactions(
        np.asarray(user_ids)[keep],
        np.asarray(movie_ids)[keep],
        np.asarray(ratings)[keep],
        seed=seed,
    )

