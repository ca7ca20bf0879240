"""The reference tutorial result on ml-1m, on both stores, and the two stores agreeing."""

from __future__ import annotations

import numpy as np
import pytest
from harness.queries import popular_pool, random_people

from movierec import recommend
from movierec.models import neighbors
from tests.conftest import DISLIKES, LIKES, REFERENCE

pytestmark = pytest.mark.ml1m


def assert_reference(answer: recommend.Answer) -> None:
    got = [(r.movie.movie_id, r.movie.title, r.score) for r in answer.items]
    assert [(m, t) for m, t, _ in got] == [(m, t) for m, t, _ in REFERENCE]
    for (_, _, score), (_, _, ref) in zip(got, REFERENCE):
        assert score == pytest.approx(ref, rel=1e-6)
    assert answer.neighbors == 20
    assert answer.model == "tutorial"


def test_tutorial_query_gives_the_reference_top5_on_the_embedded_store(ml1m_embedded):
    answer = recommend.recommend(
        ml1m_embedded, recommend.tutorial_query(LIKES, DISLIKES), limit=5, neighbors=20,
        model="tutorial",
    )
    assert_reference(answer)


def test_tutorial_query_gives_the_reference_top5_on_qdrant_client_local_mode(ml1m_local):
    answer = recommend.recommend(
        ml1m_local, recommend.tutorial_query(LIKES, DISLIKES), limit=5, neighbors=20,
        model="tutorial",
    )
    assert_reference(answer)


def test_reference_matches_a_plain_numpy_computation(ml1m):
    """An independent check of the numbers: dense numpy, no Qdrant, same definition."""
    r = ml1m.ratings
    z = (r - r.mean()) / r.std(ddof=1)
    users, u = np.unique(ml1m.user_ids, return_inverse=True)
    movies, m = np.unique(ml1m.movie_ids, return_inverse=True)
    dense = np.zeros((users.size, movies.size))
    dense[u, m] = z
    q = np.zeros(movies.size)
    q[np.searchsorted(movies, LIKES)] = 1
    q[np.searchsorted(movies, DISLIKES)] = -1
    top = np.argsort(-(dense @ q), kind="stable")[:20]
    scores = dense[top].sum(axis=0)
    scores[np.searchsorted(movies, LIKES + DISLIKES)] = -np.inf
    best = np.argsort(-scores, kind="stable")[:5]
    assert movies[best].tolist() == [m for m, _, _ in REFERENCE]
    # The published scores came from float32 storage: they agree to ~4e-8 relative.
    assert scores[best] == pytest.approx([s for _, _, s in REFERENCE], rel=1e-6)


def test_both_stores_give_identical_neighbours_and_scores_on_50_random_queries(
    ml1m_embedded, ml1m_local
):
    pool = popular_pool(ml1m_embedded.catalog())
    for ratings in random_people(pool, 50, np.random.default_rng(7), most=11):
        query = recommend.validate_ratings(ml1m_embedded, ratings, "unit")
        a = recommend.similar_users(ml1m_embedded, query, 20)
        b = recommend.similar_users(ml1m_local, query, 20)
        assert [x.user_id for x in a] == [x.user_id for x in b], ratings
        assert [x.score for x in a] == pytest.approx([x.score for x in b], rel=1e-9)
        # The same aggregation on each store's neighbours (local mode is slow: one query each).
        exclude = query.indices.astype(np.int64)
        ma, sa = neighbors.movie_scores(a, exclude, 10)
        mb, sb = neighbors.movie_scores(b, exclude, 10)
        assert ma.tolist() == mb.tolist()
        assert sa == pytest.approx(sb, rel=1e-9)


def test_existing_user_is_not_its_own_neighbour_and_gets_no_movie_it_rated(ml1m_embedded, ml1m):
    answer = recommend.recommend_for_user(ml1m_embedded, 1, limit=10, neighbors=20)
    rated = set(ml1m.movie_ids[ml1m.user_ids == 1].tolist())
    assert len(answer.items) == 10
    assert not rated & {r.movie.movie_id for r in answer.items}
    vector = ml1m_embedded.user_vector(1)
    found = recommend.similar_users(ml1m_embedded, vector, 20, exclude_user=1)
    assert 1 not in [n.user_id for n in found]
    assert len(found) == 20


def test_both_stores_give_identical_liked_neighbours_and_exact_scores(ml1m_embedded, ml1m_local):
    """user-knn's and blend's search (the liked vectors): the embedded store rebuilds each exact
    score from the engine's and the user's liked count, local mode from the rows it returns;
    the two agree, neighbours, order (ties by user id) and scores."""
    from movierec import schema
    from movierec.models.user_knn import liked_query

    pool = popular_pool(ml1m_embedded.catalog())
    people = random_people(pool, 20, np.random.default_rng(11), most=11)
    for ratings in people + [{2571: 1.0}, {260: 1.0, 1196: 1.0, 1210: -1.0}]:
        query = liked_query({m: (1.0 if r > 0 else -1.0) for m, r in ratings.items()})
        (block_a, rows_a, exact_a), (block_b, rows_b, exact_b) = (
            neighbors.nearest(store, query, 50, using=schema.LIKED_VECTOR)
            for store in (ml1m_embedded, ml1m_local))
        assert block_a.liked is not None and block_b.liked is None  # the two ways, both taken
        assert block_a.user_ids[rows_a].tolist() == block_b.user_ids[rows_b].tolist(), ratings
        assert exact_a[rows_a] == pytest.approx(exact_b[rows_b], rel=1e-12)
