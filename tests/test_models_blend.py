"""The default for new people (blend), on the real embedded store with ml-1m: the popularity
prior leads with one rating and fades as ratings are added, a dislike sinks the movies most like
it, and every answer says which part put it there."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from movierec import recommend
from movierec.errors import QueryError
from movierec.models import REGISTRY
from movierec.models.blend import _best, shares
from movierec.store import MovieFilter
from movierec.vectors import SparseVector

pytestmark = pytest.mark.ml1m


@pytest.fixture(scope="module")
def store(ml1m_full_embedded):
    return ml1m_full_embedded


def _parts(answer):
    return np.array([[r.why["parts"][p] for p in ("popularity", "item", "neighbors")]
                     for r in answer.items])


def test_blend_is_the_default_for_a_new_person(store):
    assert REGISTRY.default(store.meta()) == "blend"
    assert recommend.recommend(store, {2571: 5.0}, scale="stars").model == "blend"


def test_the_schedule_gives_each_count_its_shares_interpolated_in_log_count():
    schedule = ((1, 0.5, 0.8, 1.0), (10, 0.1, 0.4, 2.0))
    assert shares(schedule, 1) == (0.5, 0.8, 1.0)
    assert shares(schedule, 10) == (0.1, 0.4, 2.0)
    # halfway in log(count) between 1 and 10: sqrt(10) ratings
    prior, knn, power = shares(schedule, 3)
    t = np.log(3) / np.log(10)
    assert (prior, knn, power) == pytest.approx((0.5 - 0.4 * t, 0.8 - 0.4 * t, 1.0 + t))
    assert shares(schedule, 0) == shares(schedule, 1)  # outside the rows: the nearest row
    assert shares(schedule, 500) == (0.1, 0.4, 2.0)
    for bad in ((), ((1, 1.5, 0.5, 1.0),), ((0, 0.5, 0.5, 1.0),), ((1, 0.5, 0.5),), "x"):
        with pytest.raises(QueryError, match="schedule: rows of"):
            shares(bad, 3)


def test_the_prior_leads_with_one_rating_and_fades_as_ratings_are_added(store):
    schedule = REGISTRY.get("blend").params["schedule"]
    assert shares(schedule, 1)[0] > shares(schedule, 5)[0] > shares(schedule, 50)[0]
    one = recommend.recommend(store, {2571: 5.0}, limit=10, scale="stars", model="blend")
    star_wars = {260: 5.0, 1196: 5.0, 1210: 4.0, 1198: 5.0, 2571: 5.0, 1240: 4.0, 589: 5.0,
                 1097: 4.0, 1270: 4.0, 2028: 4.0, 110: 4.0, 480: 4.0, 1580: 4.0, 1214: 5.0,
                 1200: 5.0, 541: 5.0, 1036: 4.0, 2916: 4.0, 1527: 3.0, 1291: 4.0}
    many = recommend.recommend(store, star_wars, limit=10, scale="stars", model="blend")
    prior_of = [(_parts(a)[:, 0] / _parts(a).sum(axis=1)).mean() for a in (one, many)]
    assert prior_of[0] > 3 * prior_of[1]
    # With 20 ratings the person's own parts lead every answer, each explained by its leading
    # part: the person's movies or the similar users.
    parts = _parts(many)
    assert (parts[:, 1:].sum(axis=1) > parts[:, 0]).all()
    for r in many.items:
        assert r.why["text"].startswith(("because you liked ", "liked by ")), r.why
        assert r.why["text"].endswith(" of your 50 most similar users") or "movies" in r.why
    assert many.neighbors == 50
    for r in one.items:  # whichever part leads, it is named
        lead = int(np.argmax([r.why["parts"][p] for p in ("popularity", "item", "neighbors")]))
        assert r.why["text"].startswith(("popular: rated by ", "because you liked ",
                                         "liked by ")[lead]), r.why


def test_a_dislike_sinks_the_movies_most_like_it(store):
    liked = {260: 5.0, 2571: 5.0}
    base = {r.movie.movie_id: r.score for r in recommend.recommend(
        store, liked, limit=100, scale="stars", model="blend").items}
    disliked = {r.movie.movie_id: r.score for r in recommend.recommend(
        store, {**liked, 1196: 1.0}, limit=100, scale="stars", model="blend").items}
    assert 1210 in base  # Return of the Jedi, for a Star Wars fan
    assert disliked.get(1210, -np.inf) < base[1210]


def test_a_dislike_lowers_only_the_movies_its_search_returns(store):
    # The penalty comes from one item-vector search of dislike_candidates + limit + rated movies.
    ratings = {260: 5.0, 2571: 5.0, 1196: 1.0}

    def scores(**params):
        return {r.movie.movie_id: r.score for r in recommend.recommend(
            store, ratings, limit=100, scale="stars", model="blend", **params).items}

    unpenalized = scores(dislike_weight=0.0)
    dislike = SparseVector(np.array([1196], dtype=np.uint32), np.ones(1, dtype=np.float32))
    lowered = {}
    for extra in (0, 20, 100):
        got = scores(dislike_candidates=extra)
        fetched, _ = store.similar_movie_ids(dislike, extra + 100 + len(ratings), MovieFilter())
        lowered[extra] = {m for m in set(got) & set(unpenalized) if got[m] < unpenalized[m]}
        assert lowered[extra] and lowered[extra] <= set(fetched.tolist())
    assert lowered[0] < lowered[20] < lowered[100]
    assert REGISTRY.get("blend").params["dislike_candidates"] == 20


def test_only_dislikes_get_well_rated_popular_movies_unlike_them(store):
    answer = recommend.recommend(store, {1196: 1.0}, limit=10, scale="stars", model="blend")
    ids = [r.movie.movie_id for r in answer.items]
    assert len(ids) == 10 and 1196 not in ids
    assert all(r.why["text"].startswith("popular: rated by ") for r in answer.items)
    assert answer.neighbors == 0  # no likes: no similar users asked


def test_a_movie_rated_0_on_the_unit_scale_is_never_answered(store):
    # Rated 0, a movie is neither liked nor disliked, but it was seen: never an answer.
    fan = {260: 1.0, 1196: 1.0}
    first = recommend.recommend(store, fan, limit=1, model="blend").items[0].movie.movie_id
    answer = recommend.recommend(store, {**fan, first: 0.0}, limit=10, model="blend")
    assert len(answer.items) == 10 and first not in [r.movie.movie_id for r in answer.items]


def test_filters_bar_movies_and_a_filter_nothing_passes_gets_no_answer(store):
    """With a genre/year filter blend scores only the movies passing it (a mask over the
    catalog); without one only the person's own movies are barred. Nothing passing the filter:
    an empty answer, the dislike search not even made (nothing it could lower)."""
    ratings = {260: 5.0, 2571: 4.0, 1: 5.0, 1196: 1.0, 296: 2.0}
    comedies = recommend.recommend(store, ratings, limit=20, scale="stars", model="blend",
                                   movie_filter=MovieFilter(genres=("Comedy",), year_min=1990))
    assert len(comedies.items) == 20
    assert all("Comedy" in r.movie.genres and r.movie.year >= 1990 for r in comedies.items)
    assert not set(ratings) & {r.movie.movie_id for r in comedies.items}
    scores = [r.score for r in comedies.items]
    assert scores == sorted(scores, reverse=True) and all(np.isfinite(scores))
    unfiltered = recommend.recommend(store, ratings, limit=20, scale="stars", model="blend")
    assert len(unfiltered.items) == 20
    assert not set(ratings) & {r.movie.movie_id for r in unfiltered.items}
    assert len(recommend.recommend(store, ratings, limit=10, scale="stars", model="blend",
                                   movie_filter=MovieFilter(year_min=2100)).items) == 0


@settings(max_examples=200, deadline=None)
@given(size=st.integers(0, 2000), limit=st.integers(1, 40), levels=st.sampled_from([0, 3, 50]),
       unallowed=st.floats(0.0, 1.0), seed=st.integers(0, 2**32 - 1))
def test_the_best_rows_are_those_of_a_full_sort_ties_by_movie_id(size, limit, levels, unallowed,
                                                                  seed):
    # _best selects through a sample's bound; a full sort of (-score, id) is the definition.
    # levels: 0 for continuous scores, else that many distinct values (ties); unallowed: the
    # share of movies at -inf (filtered out).
    rng = np.random.default_rng(seed)
    score = rng.integers(0, levels, size) / 7.0 if levels else rng.random(size) ** 8
    score[rng.random(size) < unallowed] = -np.inf
    ids = rng.permutation(size).astype(np.int64) * 7  # ids not in row order
    expected = [r for r in sorted(range(size), key=lambda r: (-score[r], ids[r]))
                if np.isfinite(score[r])][:limit]
    assert _best(score, ids, limit).tolist() == expected
