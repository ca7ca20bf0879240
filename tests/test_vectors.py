"""Normalization, sparse user vectors, and the validation that guards the engine."""

from __future__ import annotations

import numpy as np
import pytest

from movierec.errors import QueryError
from movierec.vectors import RatingStats, SparseVector, UserVectors, query_vector, user_vectors


def test_stats_are_the_global_mean_and_sample_standard_deviation():
    stats = RatingStats.of(np.array([1.0, 2.0, 3.0, 4.0]))
    assert stats.mean == 2.5
    assert stats.std == pytest.approx(np.sqrt(5 / 3))  # ddof=1
    assert stats.normalize(np.array([2.5]))[0] == 0.0


def test_user_vectors_are_sorted_csr_rows_of_z_scores():
    users = np.array([2, 1, 2, 1, 3])
    movies = np.array([30, 20, 10, 5, 7])
    stars = np.array([5.0, 1.0, 3.0, 4.0, 2.0])
    stats = RatingStats.of(stars)
    v = user_vectors(users, movies, stars, stats)
    assert v.user_ids.tolist() == [1, 2, 3]
    assert v.indptr.tolist() == [0, 2, 4, 5]
    assert v.row(0).indices.tolist() == [5, 20]
    assert v.row(1).indices.tolist() == [10, 30]
    assert v.row(0).values.tolist() == pytest.approx(stats.normalize(np.array([4.0, 1.0])), rel=1e-6)
    assert v.indices.dtype == np.uint32 and v.values.dtype == np.float32


@pytest.mark.parametrize(
    ("indices", "values", "message"),
    [
        ([1, 1], [0.5, 0.5], "index 1 appears more than once"),
        ([-1], [1.0], "index -1 is outside 0..4294967295"),
        ([2**32], [1.0], "index 4294967296 is outside"),
        ([1, 2], [1.0], "2 indices but 1 values"),
        ([1], [float("nan")], "values must be finite"),
        ([1], [float("inf")], "values must be finite"),
        ([1.5], [1.0], "indices must be integers"),
        ([1], [1e300], "values must fit in float32"),
        ([1], ["x"], "values must be numbers"),
    ],
)
def test_invalid_vectors_are_rejected_with_a_clear_message(indices, values, message):
    with pytest.raises(ValueError, match=message):
        SparseVector.checked(indices, values)


def test_checked_vector_is_sorted_and_typed():
    v = SparseVector.checked([30, 10, 20], [3, 1, 2])
    assert v.indices.tolist() == [10, 20, 30]
    assert v.values.tolist() == [1.0, 2.0, 3.0]
    v.validate()


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        ("unsorted", "sorted and unique within each user"),
        ("duplicate", "sorted and unique within each user"),
        ("nan", "values must be finite"),
        ("dtype", "uint32 indices and float32 values"),
        ("empty_user", "at least one rating"),
    ],
)
def test_user_vector_validation_catches_each_corruption(breakage, message):
    indptr = np.array([0, 2, 4])
    indices = np.array([1, 5, 2, 3], dtype=np.uint32)
    values = np.ones(4, dtype=np.float32)
    if breakage == "unsorted":
        indices = np.array([5, 1, 2, 3], dtype=np.uint32)
    elif breakage == "duplicate":
        indices = np.array([1, 1, 2, 3], dtype=np.uint32)
    elif breakage == "nan":
        values[2] = np.nan
    elif breakage == "dtype":
        indices = indices.astype(np.int64)
    elif breakage == "empty_user":
        indptr = np.array([0, 0, 4])
    with pytest.raises(ValueError, match=message):
        UserVectors(np.array([1, 2]), indptr, indices, values).validate()


def test_rows_may_repeat_an_index_across_users():
    # Movie 3 in both users is fine: uniqueness is per user.
    UserVectors(np.array([1, 2]), np.array([0, 2, 4]), np.array([1, 3, 3, 4], dtype=np.uint32),
                np.ones(4, dtype=np.float32)).validate()


def test_query_vector_rejects_empty_and_invalid_ratings():
    with pytest.raises(QueryError, match="ratings are empty"):
        query_vector({})
    with pytest.raises(QueryError, match="invalid ratings: values must be finite"):
        query_vector({1: float("nan")})


def test_liked_rows_match_the_liked_vectors_in_any_chunk_size():
    from movierec.store import csr
    from movierec.vectors import liked_vectors

    rng = np.random.default_rng(4)
    users = rng.integers(1, 60, 2_000)
    movies = rng.integers(1, 400, 2_000)
    stars = rng.integers(1, 6, 2_000).astype(np.float64)
    keep = np.unique(users * 1_000 + movies, return_index=True)[1]  # one rating per pair
    stats = RatingStats.of(stars[keep])
    v = user_vectors(users[keep], movies[keep], stars[keep], stats)
    want = liked_vectors(v, stats, 3.0)
    assert np.diff(want.indptr).sum() == int((stars[keep] >= 3).sum())
    for chunk in (1, 7, 100, 1 << 22):
        indptr, indices = csr.liked_rows(v, stats.z_at_least(3.0), chunk=chunk)
        assert indptr.tolist() == want.indptr.tolist()
        assert indices.dtype == np.uint32 and indices.tolist() == want.indices.tolist()
    liked = int(want.indptr[-1])
    assert csr.liked_rows(v, stats.z_at_least(3.0), max_liked=liked)[1].size == liked
    indptr, indices = csr.liked_rows(v, stats.z_at_least(3.0), chunk=7, max_liked=liked - 1)
    assert indices is None and indptr.tolist() == want.indptr.tolist()  # past it: counts only


@pytest.mark.parametrize("known", [
    np.array([3953, 1, 17, 2, 260]),  # dense: a table by id
    np.array([2**32 - 1, 12, 40_000_000, 7]),  # a table would take 32 GiB: a binary search
])
def test_id_positions_find_each_id_in_any_order_and_minus_one_for_the_rest(known):
    from movierec.vectors import IdPositions

    positions = IdPositions(known)
    assert (positions.table is None) == (known.max() > 2**20)
    asked = np.concatenate([known[::-1], [0, 5, 2**32 - 2, 3954]])
    want = [known.tolist().index(i) if i in known else -1 for i in asked.tolist()]
    assert positions(asked).tolist() == want
    assert positions(asked.astype(np.uint32)).tolist() == want  # a vector's indices
    assert positions(np.array([-1, 2**40])).tolist() == [-1, -1]
    assert positions([]).tolist() == [] and IdPositions(np.empty(0))([3]).tolist() == [-1]
    assert IdPositions(known, np.int32)(asked).dtype == np.int32


def test_a_catalog_holding_movie_id_2_32_minus_1_finds_its_movies_without_a_huge_table():
    from movierec.catalog import Movie, MovieCatalog

    movies = [Movie(movie_id=m, title=str(m), year=None, genres=[], rating_count=1,
                    rating_mean=4.0, imdb_id=None) for m in (2**32 - 1, 1, 50)]
    catalog = MovieCatalog(movies)
    found = catalog.positions([1, 2**32 - 1, 2]).tolist()
    assert found[2] == -1 and [catalog.movie_at(p).movie_id for p in found[:2]] == [1, 2**32 - 1]
    assert catalog.unknown([50, 3]) == [3]
