"""The default for new people (blend), on the real embedded store with ml-1m: the popularity
prior leads with one rating and fades as ratings are added, a dislike sinks the movies most like
it, and every answer says which part put it there."""

from __future__ import annotations

import numpy as np
import pytest

from movierec import recommend
from movierec.models import REGISTRY

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


def test_one_rating_is_answered_mostly_by_the_prior_and_many_by_the_person(store):
    one = recommend.recommend(store, {2571: 5.0}, limit=10, scale="stars", model="blend")
    parts = _parts(one)
    # prior share 2 / (2 + 1): popularity is the largest part of every answer
    assert (parts[:, 0] > parts[:, 1:].sum(axis=1)).all()
    popular = [r for r in one.items if r.why["text"].startswith("popular: rated by ")]
    assert len(popular) == 10
    star_wars = {260: 5.0, 1196: 5.0, 1210: 4.0, 1198: 5.0, 2571: 5.0, 1240: 4.0, 589: 5.0,
                 1097: 4.0, 1270: 4.0, 2028: 4.0, 110: 4.0, 480: 4.0, 1580: 4.0, 1214: 5.0,
                 1200: 5.0, 541: 5.0, 1036: 4.0, 2916: 4.0, 1527: 3.0, 1291: 4.0}
    many = recommend.recommend(store, star_wars, limit=10, scale="stars", model="blend")
    parts = _parts(many)
    # prior share 2 / 22: the person's own parts lead
    assert (parts[:, 1:].sum(axis=1) > parts[:, 0]).all()
    for r in many.items:  # each explained by its leading part: the person's movies or peers
        assert r.why["text"].startswith(("because you liked ", "liked by ")), r.why
        assert r.why["text"].endswith(" of your 50 most similar users") or "movies" in r.why
    assert many.neighbors == 50


def test_a_dislike_sinks_the_movies_most_like_it(store):
    liked = {260: 5.0, 2571: 5.0}
    base = {r.movie.movie_id: r.score for r in recommend.recommend(
        store, liked, limit=100, scale="stars", model="blend").items}
    disliked = {r.movie.movie_id: r.score for r in recommend.recommend(
        store, {**liked, 1196: 1.0}, limit=100, scale="stars", model="blend").items}
    assert 1210 in base  # Return of the Jedi, for a Star Wars fan
    assert disliked.get(1210, -np.inf) < base[1210]


def test_only_dislikes_get_well_rated_popular_movies_unlike_them(store):
    answer = recommend.recommend(store, {1196: 1.0}, limit=10, scale="stars", model="blend")
    ids = [r.movie.movie_id for r in answer.items]
    assert len(ids) == 10 and 1196 not in ids
    assert all(r.why["text"].startswith("popular: rated by ") for r in answer.items)
    assert answer.neighbors == 0  # no likes: no similar users asked
