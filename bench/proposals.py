"""A proposed change to recommend.py (not ours to edit), measured beside the library.

The text of the proposal is in /work/notes/perf-proposals.md. `make bench` patches it in
(`patched()`), measures recommend() with and without it in the same run, and checks that
every answer is identical (movies, scores and explanations) on the same queries.

Proposals A (_exact_scores vectorized) and B (_aggregate by a dense bincount) were adopted in
recommend.py (commits 1be5a71 and c9d31c4); what is left is C, the tie handling:
similar_users re-runs the search with limits x4 (25, 100, 400, 1,600, 4,000) while ties may
continue past the last neighbour; here at most two searches, the second bounded by score.
"""

from __future__ import annotations

from contextlib import contextmanager
from unittest import mock

import numpy as np

from movierec import recommend


def similar_users(store, query, neighbors: int, exclude_user: int | None = None,
                  using: str | None = None):
    """recommend.similar_users with at most two engine calls instead of up to five.

    The first call fetches a few extra users, as now. When ties may continue past the last
    neighbour, the second asks the engine for every user scoring at least the boundary minus
    the float32 margin (`score_threshold`), up to MAX_TIE_FETCH, instead of re-running the
    search with limits x4, x16, x64... The top `neighbors` are the same users in the same
    order: everyone who can tie with the boundary is fetched either way.

    The store interface has no score threshold yet (proposal: an optional `score_threshold`
    argument to StoreReader.similar_users); this prototype reaches the embedded engine
    directly, and defers to the library's function for other stores.
    """
    from movierec import schema

    using = using or schema.RATINGS_VECTOR
    original = _ORIGINAL["similar_users"]
    if getattr(store, "kind", "") != "embedded" or not hasattr(recommend, "_liked_threshold"):
        return original(store, query, neighbors, exclude_user, using=using)
    threshold = recommend._liked_threshold(store) if using == schema.LIKED_VECTOR else None
    fetch = neighbors + max(5, neighbors // 4)
    fetched = store.similar_users(query, fetch, exclude_user, using=using)
    if not fetched:
        return []
    exact = recommend._exact_scores(query, fetched, threshold)
    ids = np.array([n.user_id for n in fetched])
    order = np.lexsort((ids, -exact))
    if len(fetched) >= fetch and len(fetched) > neighbors:
        boundary = exact[order[neighbors - 1]]
        margin = 2e-5 * max(1.0, abs(boundary))
        lowest = min(p.score for p in fetched)
        if not lowest < boundary - margin:
            fetched = _embedded_at_least(store, query, boundary - margin, exclude_user, using)
            exact = recommend._exact_scores(query, fetched, threshold)
            ids = np.array([n.user_id for n in fetched])
            order = np.lexsort((ids, -exact))
    from movierec.store import Neighbor

    return [Neighbor(fetched[k].user_id, float(exact[k]), fetched[k].vector)
            for k in order[:neighbors]]


def _embedded_at_least(store, query, score: float, exclude_user, using):
    """Every user scoring >= `score` (at most MAX_TIE_FETCH), from the embedded engine."""
    import qdrant_edge as qe

    from movierec.store import Neighbor
    from movierec.store.embedded import _edge_vector

    live = store._live()  # noqa: SLF001 (prototype: the interface has no threshold yet)
    request = qe.QueryRequest(
        limit=recommend.MAX_TIE_FETCH,
        query=qe.Query.Nearest(_edge_vector(query), using=using),
        with_vector=False, with_payload=False, score_threshold=float(score),
        filter=None if exclude_user is None
        else qe.Filter(must_not=[qe.HasIdCondition({int(exclude_user)})]),
    )
    with store._mutex:  # noqa: SLF001
        points = live.users.query(request)
    ids = [int(p.id) for p in points]
    vectors = live.rows(ids) if ids else []
    return [Neighbor(i, float(p.score), v) for i, p, v in zip(ids, points, vectors)]


_ORIGINAL = {"similar_users": recommend.similar_users}


@contextmanager
def patched():
    """recommend.py with the proposed tie handling (C) in place of its similar_users."""
    with mock.patch.object(recommend, "similar_users", similar_users):
        yield
