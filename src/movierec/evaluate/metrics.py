"""Top-k metrics of ranked lists: accuracy against held-out movies (recall, NDCG, MRR, hit,
precision) and beyond accuracy (catalog coverage, popularity, long tail, Gini of exposure)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from movierec.evaluate.protocol import K, METRICS, Split
from movierec.evaluate.rankers import Ranker

# Beyond accuracy: the long tail is every movie outside the most popular LONG_TAIL_HEAD share of
# the catalog (by training interactions), the usual 20/80 cut.
LONG_TAIL_HEAD = 0.2
BEYOND = ("popularity", "long_tail", "gini")


@dataclass(frozen=True)
class Metrics:
    """Top-k metrics averaged over the users that have at least one target item."""

    recall: float
    ndcg: float
    mrr: float
    hit: float
    precision: float
    coverage: float
    users: int
    k: int = K
    popularity: float = float("nan")  # mean share of train users who had a recommended movie
    long_tail: float = float("nan")  # share of recommended slots given to long-tail movies
    gini: float = float("nan")  # Gini coefficient of how often each movie is recommended

    def as_dict(self) -> dict[str, float]:
        return {f"{name}@{self.k}": getattr(self, name) for name in METRICS + BEYOND}

    def tuning_dict(self) -> dict[str, float]:
        """What results.json keeps of a validation run: the metric tuned on."""
        return {f"ndcg@{self.k}": self.ndcg, "users": self.users}


def user_metrics(recommended: np.ndarray, targets: sp.csr_matrix) -> dict[str, np.ndarray]:
    """Per-user recall, ndcg (binary gains), mrr, hit and precision of top-k lists.

    recommended: (n, k) column indices best first (-1 = no item); targets: (n, items) nonzero
    where the item is relevant. Users without targets get NaN.
    """
    k = recommended.shape[1]
    relevant = targets.toarray() > 0
    valid = recommended >= 0
    hits = np.take_along_axis(relevant, np.where(valid, recommended, 0), axis=1) & valid
    n_relevant = relevant.sum(axis=1)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.concatenate(([0.0], np.cumsum(discounts)))[np.minimum(n_relevant, k)]
    first = np.where(hits.any(axis=1), hits.argmax(axis=1) + 1, 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = {
            "recall": hits.sum(axis=1) / n_relevant,
            "ndcg": (hits * discounts).sum(axis=1) / ideal,
            "mrr": np.where(first > 0, 1.0 / np.maximum(first, 1), 0.0),
            "hit": hits.any(axis=1).astype(np.float64),
            "precision": hits.sum(axis=1) / k,
        }
    without = n_relevant == 0
    for values in out.values():
        values[without] = np.nan
    return out


def evaluate_ranker(
    ranker: Ranker,
    split: Split,
    phase: str = "test",
    *,
    k: int = K,
    batch_size: int = 1024,
    progress: bool | str = False,
    users: np.ndarray | None = None,
) -> Metrics:
    """Rank the whole catalog for every user with target items and average the metrics.

    Coverage@k = distinct items in those users' top-k lists / movies in the split; popularity,
    long tail and Gini as in `exposure_metrics`.
    `users`: only these rows (those among them with target items), e.g. a tuning sample.
    """
    targets = split.targets(phase)
    with_targets = np.diff(targets.indptr) > 0
    if users is None:
        users = np.flatnonzero(with_targets)
    else:
        users = np.unique(np.asarray(users, dtype=np.int64))
        users = users[with_targets[users]]
    takes_users = bool(getattr(ranker, "takes_users", False))
    history, excluded = split.history(phase), split.excluded(phase)
    sums = dict.fromkeys(("recall", "ndcg", "mrr", "hit", "precision"), 0.0)
    exposure = np.zeros(split.n_items, dtype=np.int64)
    batches = range(0, len(users), batch_size)
    bar = progress_bar(len(users), progress)
    for start in batches:
        rows = users[start : start + batch_size]
        if takes_users:
            recommended = np.asarray(
                ranker(history[rows], excluded[rows], k, users=split.user_ids[rows])
            )
        else:
            recommended = np.asarray(ranker(history[rows], excluded[rows], k))
        if recommended.shape != (len(rows), k):
            raise ValueError(
                f"ranker returned shape {recommended.shape}, expected {(len(rows), k)}"
            )
        _check_exclusions(recommended, excluded[rows])
        for name, values in user_metrics(recommended, targets[rows]).items():
            sums[name] += float(np.sum(values))
        exposure += np.bincount(recommended[recommended >= 0], minlength=split.n_items)
        if bar is not None:
            bar.update(len(rows))
    if bar is not None:
        bar.close()
    n = max(len(users), 1)
    return Metrics(
        **{name: total / n for name, total in sums.items()},
        coverage=float((exposure > 0).sum()) / split.n_items,
        users=len(users),
        k=k,
        **exposure_metrics(exposure, np.diff(split.train.tocsc().indptr), split.n_users),
    )


def exposure_metrics(exposure: np.ndarray, train_counts: np.ndarray, n_users: int) -> dict:
    """Beyond-accuracy metrics of how often each movie was recommended (`exposure`), given how
    many training users had each movie (`train_counts`): popularity = mean over recommended
    slots of the movie's train count / users; long_tail = share of slots given to movies
    outside the LONG_TAIL_HEAD most popular; gini = Gini coefficient of the exposure over the
    whole catalog (0: every movie recommended equally often, 1: one movie takes every slot)."""
    exposure = np.asarray(exposure, dtype=np.float64)
    slots = exposure.sum()
    if slots == 0:
        return {"popularity": float("nan"), "long_tail": float("nan"), "gini": float("nan")}
    n = len(exposure)
    head = np.zeros(n, dtype=bool)
    head[np.lexsort((np.arange(n), -np.asarray(train_counts)))[: int(round(LONG_TAIL_HEAD * n))]] = True
    ordered = np.sort(exposure)
    gini = float((2 * np.arange(1, n + 1) - n - 1) @ ordered / (n * slots))
    return {
        "popularity": float(exposure @ np.asarray(train_counts, dtype=np.float64)) / slots / n_users,
        "long_tail": float(exposure[~head].sum() / slots),
        "gini": gini,
    }


def _check_exclusions(recommended: np.ndarray, excluded: sp.csr_matrix) -> None:
    valid = recommended >= 0
    rows = np.broadcast_to(np.arange(len(recommended))[:, None], recommended.shape)
    if valid.any() and np.asarray(excluded[rows[valid], recommended[valid]]).any():
        raise ValueError("ranker recommended an excluded item")


def progress_bar(total: int, progress: bool | str):
    if not progress:
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # progress is a nicety; the numbers do not need it
        return None
    return tqdm(
        total=total, desc=progress if isinstance(progress, str) else None, unit="user", leave=False
    )


