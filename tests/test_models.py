"""Every registered model passes the same contract, on the real embedded store with ml-1m (the
way implicit's RecommenderBaseTestMixin gives every model one suite); then what each model does
of its own: explanations, filters, dislikes, parameters. No HTTP here: that is test_service.py."""

from __future__ import annotations

import numpy as np
import pytest

from movierec import recommend, schema
from movierec.errors import NotFoundError, NotServedError, QueryError
from movierec.models import REGISTRY
from movierec.models.tutorial import EXAMPLE_DISLIKES, EXAMPLE_LIKES, example_ratings
from movierec.store import MovieFilter

pytestmark = pytest.mark.ml1m

MATRIX_FANS = {2571: 1.0, 260: 1.0, 1196: 1.0, 296: -1.0}


@pytest.fixture(scope="module")
def store(ml1m_full_embedded):
    return ml1m_full_embedded


@pytest.fixture(params=REGISTRY.names())
def model(request):
    return request.param


class TestEveryModel:
    """The contract: what any model answers, whichever it is."""

    def test_it_is_served_by_an_ingest_with_no_flags(self, store, model):
        assert model in recommend.available_models(store)

    def test_answers_unrated_catalog_movies_best_first(self, store, model):
        answer = recommend.recommend(store, example_ratings(), limit=10, model=model)
        assert answer.model == model
        ids = [r.movie.movie_id for r in answer.items]
        assert len(ids) == 10 and len(set(ids)) == 10
        assert not set(ids) & set(example_ratings())
        assert store.catalog().unknown(ids) == []
        scores = [r.score for r in answer.items]
        assert scores == sorted(scores, reverse=True)
        assert all(np.isfinite(scores))
        assert all(r.why["text"] for r in answer.items)

    def test_the_same_question_gets_the_same_answer(self, store, model):
        def ask():
            answer = recommend.recommend(store, MATRIX_FANS, limit=20, model=model)
            return [(r.movie.movie_id, r.score) for r in answer.items]

        assert ask() == ask()

    def test_excluded_movies_are_never_answered(self, store, model):
        first = recommend.recommend(store, MATRIX_FANS, limit=5, model=model)
        banned = tuple(r.movie.movie_id for r in first.items)
        again = recommend.recommend(store, MATRIX_FANS, limit=5, model=model, exclude=banned)
        assert not set(banned) & {r.movie.movie_id for r in again.items}

    def test_genre_and_year_filters_hold(self, store, model):
        only = MovieFilter(genres=("Comedy", "Romance"), year_min=1990, year_max=1995)
        answer = recommend.recommend(store, {2571: 1, 260: 1, 1: 1}, limit=10, model=model,
                                     movie_filter=only)
        assert len(answer.items) == 10
        for r in answer.items:
            assert {"Comedy", "Romance"} & set(r.movie.genres), r.movie
            assert 1990 <= r.movie.year <= 1995, r.movie

    def test_star_ratings_are_accepted(self, store, model):
        stars = {2571: 5.0, 260: 4.5, 1196: 4.0, 296: 1.0}
        answer = recommend.recommend(store, stars, limit=5, scale="stars", model=model)
        assert len(answer.items) == 5 and not set(stars) & {r.movie.movie_id for r in answer.items}

    def test_an_existing_user_never_gets_a_movie_they_rated(self, store, model, ml1m):
        rated = set(ml1m.movie_ids[ml1m.user_ids == 1].tolist())
        answer = recommend.recommend_for_user(store, 1, limit=10, model=model)
        assert answer.model == model
        ids = {r.movie.movie_id for r in answer.items}
        assert len(ids) == 10 and not rated & ids

    def test_an_unknown_parameter_is_refused_in_one_line(self, store, model):
        with pytest.raises(QueryError, match=f"model '{model}' takes no parameter 'colour'"):
            recommend.recommend(store, MATRIX_FANS, model=model, colour="red")

    def test_no_ratings_get_the_popular_answer_with_the_filters(self, store, model):
        only = MovieFilter(genres=("Horror",), year_min=1980, year_max=1989)
        answer = recommend.recommend(store, {}, limit=5, model=model, movie_filter=only)
        assert answer.model == REGISTRY.for_no_ratings == "popular"
        expected = store.catalog().most_rated(5, genres=("Horror",), year_min=1980, year_max=1989)
        assert [r.movie for r in answer.items] == expected
        assert [r.score for r in answer.items] == [float(m.rating_count) for m in expected]
        for r in answer.items:
            assert r.why["text"].startswith(f"popular: rated by {r.movie.rating_count:,} people")

    def test_no_ratings_still_get_the_named_models_errors(self, store, model):
        with pytest.raises(QueryError, match=f"model '{model}' takes no parameter 'colour'"):
            recommend.recommend(store, {}, model=model, colour="red")
        with pytest.raises(QueryError, match="limit must be between 1 and 100, got 0"):
            recommend.recommend(store, {}, model=model, limit=0)


def test_the_registry_is_every_list_of_models():
    from movierec.cli import build_parser
    from movierec.service.schemas import RecommendationRequest

    names = REGISTRY.names()
    assert names == ["blend", "item", "user-knn", "tutorial", "popular"]
    enum = RecommendationRequest.model_json_schema()["properties"]["model"]["anyOf"][0]["enum"]
    assert enum == names
    recommend_cmd = build_parser()._subparsers._group_actions[0].choices["recommend"]
    model_arg = next(a for a in recommend_cmd._actions if a.dest == "model")
    assert list(model_arg.choices) == names
    assert REGISTRY.user_vector_names() == (schema.RATINGS_VECTOR, schema.LIKED_VECTOR)
    assert REGISTRY.movie_vector_names() == (schema.ITEM_VECTOR,)


def test_an_unknown_model_is_refused_naming_the_registered_ones(store):
    with pytest.raises(QueryError, match="unknown model 'svd': choose one of blend, item, "
                                         "user-knn, tutorial, popular"):
        recommend.recommend(store, MATRIX_FANS, model="svd")


def test_the_default_for_a_new_person_is_the_first_registered_model_in_the_data(store):
    assert recommend.default_model(store) == "blend"
    assert recommend.recommend(store, MATRIX_FANS).model == "blend"


def test_no_ratings_get_the_most_rated_movies_whatever_the_default(store, ml1m):
    counts = np.bincount(ml1m.movie_ids)
    most = np.lexsort((np.arange(counts.size), -counts))[:5].tolist()
    answer = recommend.recommend(store, {}, limit=5)
    assert answer.model == "popular" and answer.neighbors == 0
    assert [r.movie.movie_id for r in answer.items] == most == [2858, 260, 1196, 1210, 480]
    excluded = recommend.recommend(store, {}, limit=3, exclude=(2858, 260))
    assert [r.movie.movie_id for r in excluded.items] == [1196, 1210, 480]


def test_the_default_for_an_existing_user_is_the_best_for_them_the_item_model(store):
    # the item model is the best served model on the existing-users protocol (README, Quality)
    assert REGISTRY.for_users == ("item", "tutorial")
    answer = recommend.recommend_for_user(store, 1, limit=10)
    assert answer.model == "item" and len(answer.items) == 10
    assert all(r.why["text"].startswith("because you liked ") for r in answer.items)


def test_an_existing_user_gets_the_tutorial_where_the_item_model_is_not_ingested(ml1m_embedded):
    assert "item" not in ml1m_embedded.meta().models
    assert recommend.recommend_for_user(ml1m_embedded, 1).model == "tutorial"


def test_an_unknown_user_is_not_found(store):
    with pytest.raises(NotFoundError, match="no user 999999 in the dataset"):
        recommend.recommend_for_user(store, 999_999)


# --- the item model --------------------------------------------------------------------------


def test_item_model_explains_with_the_persons_liked_movies(store):
    answer = recommend.recommend(store, MATRIX_FANS, limit=5, model="item")
    assert answer.neighbors == 0
    liked = {m for m, r in MATRIX_FANS.items() if r > 0}
    titles = {m.movie_id: m.title for m in store.catalog().take(sorted(liked))}
    for r in answer.items:
        assert r.score > 0
        assert r.why["movies"] and set(r.why["movies"]) <= liked
        assert r.why["text"] == "because you liked " + _joined([titles[m] for m in r.why["movies"]])


def test_explanations_name_the_liked_movies_adding_most_to_each_answers_score(store):
    """Each answer's `movies` are the (up to) three liked movies whose weight in its vector adds
    most, best first, read from the vectors themselves; the embedded store reads the weights in
    place (movies.item.csr) and gets what the generic path gets from the vector objects; a movie
    without a vector: zeros."""
    from movierec.store import StoreReader

    answer = recommend.recommend(store, MATRIX_FANS, limit=10, model="item")
    liked = np.array(sorted(m for m, r in MATRIX_FANS.items() if r > 0), dtype=np.uint32)
    ids = [r.movie.movie_id for r in answer.items]
    vectors = store.movie_vectors(ids)
    for r in answer.items:
        v = vectors[r.movie.movie_id]
        weight = dict(zip(v.indices.tolist(), v.values.astype(np.float64).tolist()))
        adds = sorted((-weight.get(m, 0.0), m) for m in liked.tolist())
        assert r.why["movies"] == [m for w, m in adds[:3] if w < 0]
    weights = store.movie_weights([*ids, 999_999], liked)
    assert weights.shape == (11, liked.size) and not weights[-1].any()
    assert weights.tolist() == StoreReader.movie_weights(store, [*ids, 999_999], liked).tolist()


def test_a_neighbour_blocks_likes_from_the_stores_liked_rows_equal_reading_the_rows(store):
    """The embedded store keeps each user's liked movies (csr.liked_rows); a block's likes come
    from them and equal what reading the rows' ratings against the threshold gives."""
    import dataclasses

    from movierec.vectors import SparseVector

    threshold = store.meta().rating_stats.z_at_least(schema.LIKED_STARS)
    query = SparseVector(np.array([260, 1196, 2571], np.uint32), np.ones(3, np.float32))
    block = store.similar_users_block(query, 60, using=schema.LIKED_VECTOR)
    assert block.liked_indices is not None and len(block) == 60
    rows = np.array([5, 0, 59, 17])
    kept, counts = block.likes(rows, threshold)
    read, read_counts = dataclasses.replace(block, liked_indices=None).likes(rows, threshold)
    assert kept.tolist() == read.tolist() and counts.tolist() == read_counts.tolist()
    first = block.vector(5)
    assert kept[:counts[0]].tolist() == first.indices[first.values >= threshold].tolist()
    assert counts.sum() == kept.size > 0
    # The same likes as rows of the store's catalog: kept by the store for its catalog, looked
    # up for any other catalog object (another version's), the same rows either way.
    catalog = store.catalog()
    assert block.liked_catalog is catalog and block.liked_rows.dtype == np.int16
    rows_kept, kept_counts = block.liked_catalog_rows(rows, threshold, catalog)
    assert rows_kept.tolist() == catalog.positions(kept).tolist()
    assert kept_counts.tolist() == counts.tolist()
    other = type(catalog)(list(catalog))
    looked_up, _ = block.liked_catalog_rows(rows, threshold, other)
    assert looked_up.dtype == np.int64 and looked_up.tolist() == rows_kept.tolist()
    assert catalog.ids[rows_kept].tolist() == kept.tolist()


def test_item_model_dislike_pushes_similar_movies_down(store):
    """Disliking The Empire Strikes Back sinks Return of the Jedi for a Star Wars fan."""
    liked = {260: 1.0, 2571: 1.0}
    base = {r.movie.movie_id: r.score for r in
            recommend.recommend(store, liked, limit=100, model="item").items}
    disliked = {r.movie.movie_id: r.score for r in
                recommend.recommend(store, {**liked, 1196: -1.0}, limit=100, model="item").items}
    assert 1210 in base
    assert disliked.get(1210, -np.inf) < base[1210]


def test_item_model_stars_below_three_are_dislikes_and_three_up_are_weighted_likes(store):
    from movierec.models.item import query_weight

    weights = store.meta().models["item"]["rating_weights"]
    assert [query_weight(s, "stars", weights) for s in (1, 2.5, 3, 4, 4.5, 5)] == [
        -1.0, -1.0, 0.8, 1.0, pytest.approx(1.05), 1.1]
    assert query_weight(-0.5, "unit", weights) == -0.5


def test_item_model_query_weights_at_once_are_each_ratings_weight(store):
    from movierec.models.item import query_weight, query_weights

    weights = store.meta().models["item"]["rating_weights"]
    stars = np.arange(1, 11) / 2  # 0.5 .. 5 stars
    for scale, ratings, w in (("stars", stars, weights), ("stars", stars, None),
                              ("unit", np.array([-1.0, -0.5, 0.5, 1.0]), weights)):
        assert query_weights(ratings, scale, w).tolist() == [
            query_weight(float(r), scale, w) for r in ratings]


def test_weights_at_and_query_values_at_read_each_vectors_value_or_zero():
    """The lookups against a dense copy: vectors of every size (none, one weight, many; the
    largest u32 id; None: a movie without one), movies present in some, none or all of them;
    weights_at from vector objects and csr.Cells in place in the CSR arrays (ids without a row:
    zeros; a CSR with unsorted rows gets no cells);
    query_values_at by its table and by its binary search."""
    from movierec.models.neighbors import query_values_at
    from movierec.store import csr
    from movierec.vectors import SparseVector, UserVectors, weights_at

    rng = np.random.default_rng(5)
    top = 5_000
    vectors = [SparseVector(np.sort(rng.choice(top, n, replace=False)).astype(np.uint32),
                            rng.standard_normal(n).astype(np.float32)) for n in (1_024, 0, 1, 300)]
    vectors.append(SparseVector(np.array([7, 2**32 - 1], dtype=np.uint32),
                                np.array([0.5, -2.0], dtype=np.float32)))
    dense = np.zeros((len(vectors), top + 1))
    for row, v in zip(dense, vectors[:-1]):
        row[v.indices] = v.values
    movies = np.unique(np.concatenate([vectors[0].indices[::97], [7, 11, top]])).astype(np.uint32)
    expected = dense[:, movies]
    expected[-1] = np.where(movies == 7, 0.5, 0.0)
    got = weights_at(vectors, movies)
    assert got.dtype == np.float64 and got.shape == (5, movies.size)
    assert got.tolist() == expected.tolist()
    assert weights_at([vectors[1]], movies).tolist() == [[0.0] * movies.size]
    assert weights_at(vectors, np.empty(0, np.uint32)).shape == (5, 0)
    assert weights_at([None, vectors[3]], movies).tolist() == [[0.0] * movies.size,
                                                               expected[3].tolist()]
    stored = csr.from_rows([(10 * (k + 1), v) for k, v in enumerate(vectors)])  # ids 10..50
    searched = csr.Cells.of(stored, dense_max_bytes=0)  # the cell keys
    assert searched.table is None and searched.keys.size == stored.values.size + 1
    assert (np.diff(searched.keys) > 0).all()
    tabled = csr.Cells.of(stored)  # a dense table: a row per vector, a column per distinct id,
    distinct = np.unique(np.concatenate([v.indices for v in vectors])).size  # and one of zeros
    assert tabled.keys is None and tabled.table.shape == (6, distinct + 1) == (6, 1_263)
    for cells in (searched, tabled):
        assert cells.values_at([50, 10, 20, 40, 30], movies).tolist() == [
            expected[k].tolist() for k in (4, 0, 1, 3, 2)]
        assert cells.values_at([5, 10, 55], movies).tolist() == [
            [0.0] * movies.size, expected[0].tolist(), [0.0] * movies.size]
        assert cells.values_at(np.array([40]), movies[::-1]).tolist() == [
            expected[3][::-1].tolist()]
        assert cells.values_at([], movies).shape == (0, movies.size)
        assert cells.values_at([50], movies).dtype == np.float64
        outside = np.array([2**32 - 1, 3, 6, top + 7], dtype=np.uint32)  # held by one row, none
        assert cells.values_at([50, 30], outside).tolist() == [[-2.0, 0.0, 0.0, 0.0],
                                                               [0.0] * 4]
    backwards = UserVectors(stored.user_ids, stored.indptr, stored.indices[::-1].copy(),
                            stored.values)
    assert csr.Cells.of(backwards) is None  # rows out of order: no cells, and no wrong answer
    big = rng.integers(0, top + 1, 2_000).astype(np.uint32)  # the table's side
    for v, row in zip(vectors[:-1], dense):
        for at in (movies, big):
            assert query_values_at(v, at).tolist() == row[at].tolist()
    assert query_values_at(vectors[-1], np.array([7, 2**32 - 1, 3], np.uint32)).tolist() == [
        0.5, -2.0, 0.0]


# --- user-knn --------------------------------------------------------------------------------


def test_user_knn_explains_with_its_hundred_similar_users(store):
    answer = recommend.recommend(store, MATRIX_FANS, limit=3, model="user-knn")
    assert answer.neighbors == 100
    for r in answer.items:
        why = r.why
        assert why["text"] == (f"rated by {why['neighbors']} of your 100 most similar users, "
                               f"{why['mean_rating']:g} stars on average")
        assert 0 < why["neighbors"] <= 100 and 1 <= why["mean_rating"] <= 5


def test_user_knn_neighbours_and_power_are_parameters(store):
    few = recommend.recommend(store, MATRIX_FANS, limit=5, model="user-knn", neighbors=10,
                              knn_power=1.0)
    assert few.neighbors == 10
    with pytest.raises(QueryError, match="neighbors must be between 1 and 1000, got 0"):
        recommend.recommend(store, MATRIX_FANS, model="user-knn", neighbors=0)


def test_user_knn_counts_three_stars_as_a_like_everywhere(store):
    """The liked threshold is one number: the stored liked vectors and the query agree."""
    from movierec.models.base import Person

    stats = store.meta().rating_stats
    person = Person({1: 3.0, 2: 2.5}, "stars")
    assert person.signed(stats) == {1: 1.0, 2: -1.0}
    assert stats.z_at_least(schema.LIKED_STARS) < stats.normalize(np.array(3.0))


# --- the tutorial ----------------------------------------------------------------------------


def test_tutorial_example_is_the_reference_query():
    assert example_ratings() == recommend.tutorial_query(EXAMPLE_LIKES, EXAMPLE_DISLIKES)
    assert len(EXAMPLE_LIKES) == 6 and len(EXAMPLE_DISLIKES) == 5


def _joined(titles: list[str]) -> str:
    return titles[0] if len(titles) == 1 else ", ".join(titles[:-1]) + " and " + titles[-1]


# --- popular ---------------------------------------------------------------------------------


def test_popular_answers_the_most_rated_unrated_movies_with_filters(store, ml1m):
    counts = np.bincount(ml1m.movie_ids)
    most = np.lexsort((np.arange(counts.size), -counts))[:6].tolist()
    assert most[0] == 2858  # American Beauty (1999), 3,428 ratings
    answer = recommend.recommend(store, {most[0]: 1.0}, limit=5, model="popular")
    assert [r.movie.movie_id for r in answer.items] == most[1:]
    assert [r.score for r in answer.items] == [float(counts[m]) for m in most[1:]]
    assert answer.items[0].why["text"].startswith(f"popular: rated by {counts[most[1]]:,} people")


# --- more like this (the item model's movie vectors) -----------------------------------------


def test_similar_movies_are_scored_by_the_dot_product_of_item_vectors(store):
    answer = recommend.similar_movies(store, 1, limit=10)  # Toy Story (1995)
    assert answer.model == "item"
    ids = [r.movie.movie_id for r in answer.items]
    assert len(ids) == 10 and 1 not in ids
    assert ids[0] == 3114  # Toy Story 2 (1999)
    vectors = store.movie_vectors([1, *ids])
    own = dict(zip(vectors[1].indices.tolist(), vectors[1].values.astype(np.float64).tolist()))
    for r in answer.items:
        other = vectors[r.movie.movie_id]
        dot = sum(own.get(i, 0.0) * v for i, v in zip(other.indices.tolist(),
                                                        other.values.astype(np.float64).tolist()))
        assert r.score == pytest.approx(dot, rel=1e-4)
    scores = [r.score for r in answer.items]
    assert scores == sorted(scores, reverse=True) and scores[-1] > 0


def test_similar_movies_are_explained_by_the_movies_that_predict_both(store):
    catalog = store.catalog()
    for r in recommend.similar_movies(store, 2571, limit=5).items:
        why = r.why
        assert 1 <= len(why["movies"]) <= 3 and 2571 not in why["movies"]
        names = [catalog.get(m).title for m in why["movies"]]
        assert why["text"] == f"people who liked {_joined(names)} like both"


def test_similar_movies_honour_genre_and_year_filters(store):
    only = MovieFilter(genres=("Comedy", "Romance"), year_min=1990, year_max=1995)
    answer = recommend.similar_movies(store, 1, limit=10, movie_filter=only)
    assert len(answer.items) == 10
    for r in answer.items:
        assert r.movie.movie_id != 1
        assert {"Comedy", "Romance"} & set(r.movie.genres) and 1990 <= r.movie.year <= 1995
    unfiltered = [r.movie.movie_id for r in recommend.similar_movies(store, 1, limit=100).items]
    kept = [m for m in unfiltered if store.catalog().allowed([m], only.genres, 1990, 1995)[0]]
    assert [r.movie.movie_id for r in answer.items] == kept[:10]


def test_similar_movies_of_an_unknown_or_unlearned_movie_say_why(store):
    with pytest.raises(NotFoundError, match="no movie 999999 in the dataset"):
        recommend.similar_movies(store, 999_999)
    rare = store.catalog().get(51)
    assert rare.rating_count == 0
    with pytest.raises(NotServedError, match="movie 51 has too few ratings for the item model"):
        recommend.similar_movies(store, 51)
    with pytest.raises(QueryError, match="limit must be between 1 and 100, got 101"):
        recommend.similar_movies(store, 1, limit=101)


def test_similar_movies_need_the_item_model_in_the_live_data(ml1m_embedded):
    assert "item" not in recommend.available_models(ml1m_embedded)
    with pytest.raises(NotServedError, match="the live data has no item model"):
        recommend.similar_movies(ml1m_embedded, 1)


def test_warm_answers_with_every_available_model_and_waits_for_data(store, tmp_path):
    """What `movierec serve` runs before it listens: every model answers once (so the first
    person's request finds the reader's tables built); a store without data is left alone."""
    from movierec.store import open_reader
    from tests.conftest import settings_for

    names = recommend.available_models(store)
    assert names == ["blend", "item", "user-knn", "tutorial", "popular"]
    assert recommend.warm(store) == 5
    with open_reader(settings_for(qdrant_path=tmp_path / "empty")) as empty:
        assert recommend.warm(empty) == 0
