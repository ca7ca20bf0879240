"""Item-item models: the closed forms solve the regressions they claim to, and a movie's
sparse vector gives the same score as the matrix product."""

import numpy as np
import pytest
import scipy.sparse as sp

from movierec.training import item as itemmodel


def _ratings(seed=0, n_users=30, n_movies=8) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    stars = rng.integers(3, 6, (n_users, n_movies)) * (rng.random((n_users, n_movies)) < 0.5)
    return sp.csr_matrix(stars.astype(np.float64))


def _ridge_without_self(x: np.ndarray, j: int, penalty: np.ndarray) -> np.ndarray:
    """Column j of a zero-diagonal model, solved directly: regress x_j on the other columns."""
    others = [i for i in range(x.shape[1]) if i != j]
    a = x[:, others]
    w = np.linalg.solve(a.T @ a + np.diag(penalty[others]), a.T @ x[:, j])
    out = np.zeros(x.shape[1])
    out[others] = w
    return out


def test_ease_columns_are_ridge_regressions_on_the_other_movies():
    r = _ratings()
    x = (r.toarray() > 0).astype(float)
    w = itemmodel.ease_weights(r, l2=3.0, dtype=np.float64)
    for j in range(x.shape[1]):
        np.testing.assert_allclose(w[:, j], _ridge_without_self(x, j, np.full(8, 3.0)), atol=1e-10)


def test_item_model_is_a_rating_weighted_user_normalized_edlae():
    r = _ratings(1)
    stars = r.toarray()
    weights = {3.0: 0.8, 4.0: 1.0, 5.0: 1.1}
    x = np.vectorize(lambda s: weights.get(s, 0.0))(stars)
    x = x / np.sqrt((stars > 0).sum(axis=1, keepdims=True)) ** 0.5  # |u|^-0.5 in the Gram matrix
    penalty = 2.0 + 0.3 / 0.7 * (x**2).sum(axis=0)  # l2 + p/(1-p) G_ii
    model = itemmodel.learn_item_weights(
        r, l2=2.0, dropout=0.3, user_norm=0.5, lowpass_weight=0.0, rating_weights=weights,
        dtype=np.float64,
    )
    for j in range(x.shape[1]):
        np.testing.assert_allclose(
            model.weights[:, j], _ridge_without_self(x, j, penalty), atol=1e-10
        )
    assert model.params["dropout"] == 0.3 and model.params["rating_weights"] == {
        "3.0": 0.8,
        "4.0": 1.0,
        "5.0": 1.1,
    }


def test_query_values_map_ratings_to_their_weights_half_stars_in_between():
    model = itemmodel.ItemWeights(np.zeros((1, 1)), {}, {3.0: 0.8, 4.0: 1.0, 5.0: 1.1})
    values = model.query_values(np.array([5.0, 3.0, 4.0, 3.5, 1.0]))
    np.testing.assert_allclose(values, [1.1, 0.8, 1.0, 0.9, 0.8])
    assert itemmodel.ItemWeights(np.zeros((1, 1)), {}).query_values(np.array([2.0])).tolist() == [
        1.0
    ]


def test_a_movies_sparse_vector_dotted_with_a_persons_query_gives_the_models_score():
    r = _ratings(2)
    model = itemmodel.learn_item_weights(r, l2=1.0, lowpass_rank=3, top_m=5)
    movie_ids = np.array([3, 5, 7, 11, 13, 17, 19, 23])
    person = sp.csr_matrix(([5.0, 3.0], ([0, 0], [1, 6])), shape=(1, 8))  # movie 5: 5 stars, 19: 3
    expected = model.scores(person)[0]
    query = dict(zip([5, 19], model.query_values(np.array([5.0, 3.0]))))
    vectors = list(model.movie_vectors(movie_ids))
    assert [movie for movie, _, _ in vectors] == movie_ids.tolist()
    for j, (movie, indices, values) in enumerate(vectors):
        assert indices.dtype == np.uint32 and values.dtype == np.float32
        assert (
            len(indices) <= 5 and np.all(np.diff(indices.astype(int)) > 0) and np.all(values != 0)
        )
        score = sum(v * query.get(int(i), 0.0) for i, v in zip(indices, values))
        assert score == pytest.approx(expected[j], rel=1e-5, abs=1e-6)


def test_keeping_the_top_m_weights_of_each_column_keeps_the_largest_in_magnitude():
    w = np.array([[0.0, 5.0, -1.0], [-3.0, 0.0, 2.0], [1.0, -4.0, 0.0]])
    kept = itemmodel.keep_top_per_column(w, 1).toarray()
    np.testing.assert_array_equal(kept, [[0, 5, 0], [-3, 0, 2], [0, 0, 0]])


def test_lowpass_filter_with_every_eigenvector_adds_nothing_off_the_diagonal():
    r = _ratings(3)
    np.testing.assert_allclose(itemmodel.lowpass_weights(r, rank=8), 0.0, atol=1e-10)
    assert np.abs(itemmodel.lowpass_weights(r, rank=2)).max() > 0.01


def test_item_knn_keeps_the_most_similar_movies_by_cosine():
    x = sp.csr_matrix(np.array([[1, 1, 0], [1, 1, 0], [1, 0, 1], [0, 0, 1]], dtype=float))
    w = itemmodel.cosine_knn_weights(x, neighbors=1).toarray()
    # cos(0,1) = 2 / sqrt(3 * 2) = 0.8165, cos(0,2) = 1 / sqrt(3 * 2) = 0.4082, cos(1,2) = 0
    np.testing.assert_allclose(
        w, [[0, 2 / 6**0.5, 1 / 6**0.5], [2 / 6**0.5, 0, 0], [0, 0, 0]], atol=1e-12
    )


def test_the_float32_solve_is_the_float64_one_to_float32_precision():
    r = _ratings(1)
    exact = itemmodel.learn_item_weights(r, l2=2.0, lowpass_weight=0.0, dtype=np.float64)
    fast = itemmodel.learn_item_weights(r, l2=2.0, lowpass_weight=0.0)
    np.testing.assert_allclose(fast.weights, exact.weights, rtol=0, atol=1e-5 * np.abs(
        exact.weights).max())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_inverse_is_made_in_place_and_its_rows_are_contiguous(dtype):
    # LAPACK handed a C-ordered matrix would copy it and return Fortran order: rows strided,
    # which made pruning the learned rows twice as slow.
    rng = np.random.default_rng(3)
    x = rng.random((40, 12))
    a = (x.T @ x + np.eye(12)).astype(dtype)
    expected = np.linalg.inv(a.astype(np.float64))
    p = itemmodel.spd_inverse(a.copy(order="C"))
    assert p.flags.c_contiguous
    np.testing.assert_allclose(p, expected, rtol=1e-4 if dtype == np.float32 else 1e-10)
    np.testing.assert_array_equal(p, p.T)
    given = a.copy(order="C")
    assert np.shares_memory(itemmodel.spd_inverse(given), given)
    rows = itemmodel.zero_diagonal_rows(a, np.zeros(12), dtype)
    assert rows.flags.c_contiguous
    np.testing.assert_allclose(rows, (-expected / np.diag(expected)[:, None]) * (1 - np.eye(12)),
                               rtol=1e-4 if dtype == np.float32 else 1e-10, atol=1e-6)


def test_subspace_iteration_spans_the_top_eigenvectors():
    rng = np.random.default_rng(4)
    q, _ = np.linalg.qr(rng.standard_normal((400, 400)))
    spectrum = np.concatenate([np.linspace(10, 5, 20), np.linspace(1, 0.01, 380)])
    s = (q * spectrum) @ q.T
    v = itemmodel.top_eigenvectors(s, 20, iterations=8)  # the default 4 stop near 1e-4
    top = q[:, :20]
    # The projector onto the found subspace equals the one onto the true top-20 eigenvectors.
    np.testing.assert_allclose(v @ v.T, top @ top.T, atol=1e-5)


def test_the_gram_matrix_is_x_transpose_x_whichever_users_go_through_blas():
    r = _ratings(5, n_users=60, n_movies=12).toarray()
    r[0] = 4.0  # one user with every movie
    expected = r.T @ r
    for share in (0.0, 0.5, 1.0):  # every user through BLAS, some, none
        got = itemmodel.gram_matrix(sp.csr_matrix(r), np.float64, dense_share=share)
        np.testing.assert_allclose(got, expected, atol=1e-9)


def test_pruning_keeps_the_weights_that_reach_most_people_and_their_reach_weighted_sum():
    rows = np.array([[0.0, 0.5, -0.4, 0.1], [0.3, 0.0, 0.2, -0.25]])
    reach = np.array([1.0, 1.0, 2.0, 1.0])  # movie 2 is popular: its weights count double
    pruned = itemmodel.prune_rows(rows, 2, reach).toarray()
    # row 0 keeps movies 1 and 2 (|w| * reach 0.5, 0.8); the dropped 0.1 is spread over them
    # so that sum(w * reach) stays 0.5 - 0.8 + 0.1 = -0.2
    np.testing.assert_allclose(pruned[0], [0.0, 0.5 + 0.1 / 3, -0.4 + 0.1 / 3, 0.0])
    # row 1 keeps movies 2 and 0 (0.4, 0.3) over 3 (0.25)
    np.testing.assert_allclose(pruned[1], [0.3 - 0.25 / 3, 0.0, 0.2 - 0.25 / 3, 0.0])
    np.testing.assert_allclose(pruned @ reach, rows @ reach)


def test_the_served_model_prunes_each_movie_vector_to_its_budget(monkeypatch):
    r = _ratings(6, n_users=80, n_movies=12)
    monkeypatch.setattr(itemmodel, "SERVED_PRUNE_M", 4)
    model = itemmodel.served_item_model(r)
    vectors = list(model.movie_vectors(np.arange(1, 13)))
    assert [len(indices) for _, indices, _ in vectors] == [4] * 12
    assert model.params["prune_m"] == 4 and model.params["top_m"] is None
    full = itemmodel.learn_item_weights(r, **itemmodel.ITEM_MODEL_DEFAULTS).weights
    x = itemmodel.weighted_interactions(r, itemmodel.RATING_WEIGHTS, 0.5).toarray()
    reach = np.sqrt((x**2).sum(axis=0))
    for j, (_, indices, _) in enumerate(vectors):
        # the kept weights are the movie's largest by |w| * sqrt(G_ii)
        key = np.abs(full[:, j]) * reach
        assert set((indices - 1).tolist()) == set(np.argsort(-key)[:4].tolist())


def test_a_large_catalog_gets_the_smaller_budget_pruned_the_same_way(monkeypatch):
    """Past SERVED_SMALL_UP_TO movies each vector keeps SERVED_PRUNE_M_LARGE weights, chosen
    as on a small catalog (prune_rows), not re-fitted."""
    r = _ratings(6, n_users=80, n_movies=12)
    monkeypatch.setattr(itemmodel, "SERVED_PRUNE_M", 6)
    monkeypatch.setattr(itemmodel, "SERVED_PRUNE_M_LARGE", 3)
    small = itemmodel.served_item_model(r)
    monkeypatch.setattr(itemmodel, "SERVED_SMALL_UP_TO", 11)
    large = itemmodel.served_item_model(r)
    assert [len(i) for _, i, _ in small.movie_vectors(np.arange(1, 13))] == [6] * 12
    assert [len(i) for _, i, _ in large.movie_vectors(np.arange(1, 13))] == [3] * 12
    assert large.params["prune_m"] == 3 and large.params["top_m"] is None
    direct = itemmodel.learn_item_weights(r, **itemmodel.ITEM_MODEL_DEFAULTS, prune_m=3)
    assert (large.weights != direct.weights).nnz == 0


def test_the_gram_matrix_split_over_two_threads_is_the_same_matrix(monkeypatch):
    """Large inputs compute the light users' product as two halves of its rows in two threads:
    the same entries, bit for bit, as one product (and as the dense X^T X, to rounding)."""
    rng = np.random.default_rng(11)
    light = sp.random(395, 60, density=0.08, random_state=rng, format="csr", dtype=np.float64)
    light.data = rng.choice([0.8, 1.0, 1.1], light.nnz)
    x = sp.vstack([sp.csr_matrix(rng.random((5, 60))), light], format="csr")  # 5 heavy users
    whole = itemmodel.gram_matrix(x, np.float32)
    monkeypatch.setattr(itemmodel, "SPLIT_SPARSE_NNZ", 0)
    split = itemmodel.gram_matrix(x, np.float32)
    assert split.tobytes() == whole.tobytes()
    dense = x.toarray()
    np.testing.assert_allclose(split, dense.T @ dense, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("ids", [
    np.array([7, 3, 3, 9, 0, 7, 3, 5, 9, 9, 1, 3]),  # dense: ranked through the table
    np.array([2**32 - 1, 12, 40_000_000, 12, 2**32 - 1]),  # sparse: np.unique
])
def test_the_learned_users_are_ranked_as_np_unique_ranks_them(ids):
    count, ranks = itemmodel._ranks(ids)
    distinct, inverse = np.unique(ids, return_inverse=True)
    assert count == distinct.size
    assert ranks.tolist() == inverse.tolist()
