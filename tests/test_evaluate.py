"""The evaluation protocol: k-core filtering, the per-user random split, and the metrics,
checked against values computed by hand."""

import json
import math

import numpy as np
import pytest
import scipy.sparse as sp

from movierec import evaluate, synthetic


def _matrix(rows: list[list[int]], n_items: int) -> sp.csr_matrix:
    r = [u for u, items in enumerate(rows) for _ in items]
    c = [i for items in rows for i in items]
    return sp.csr_matrix((np.ones(len(r)), (r, c)), shape=(len(rows), n_items))


# Five users, six movies (columns 0..5). Each user's train set is distinct, so the fixed
# ranker below can tell them apart; valid items are excluded at test time.
TRAIN = [[0], [1], [2], [3], [4, 5]]
VALID = [[], [3], [5], [], []]
TEST = [[1, 3], [4], [0, 3, 4], [], [2]]
TOP3 = {  # the lists the "model" returns, by train set
    (0,): [1, 2, 3],  # hits at ranks 1 and 3
    (1,): [0, 2, 4],  # hit at rank 3
    (2,): [1, 0, 3],  # hits at ranks 2 and 3
    (3,): [5, 0, 1],  # user without test items: not averaged, not in coverage
    (4, 5): [0, 1, 3],  # no hit
}


def _fixture_split() -> evaluate.Split:
    train = _matrix(TRAIN, 6)
    return evaluate.Split(
        user_ids=np.arange(1, 6),
        movie_ids=np.array([10, 20, 30, 40, 50, 60]),
        train=train,
        valid=_matrix(VALID, 6),
        test=_matrix(TEST, 6),
        ratings=(train + _matrix(VALID, 6) + _matrix(TEST, 6)) * 4.0,
    )


def _fixed_ranker(history: sp.csr_matrix, excluded: sp.csr_matrix, k: int) -> np.ndarray:
    return np.array([TOP3[tuple(history[r].indices)][:k] for r in range(history.shape[0])])


def test_metrics_on_hand_built_fixture_match_hand_computed_values():
    m = evaluate.evaluate_ranker(_fixed_ranker, _fixture_split(), "test", k=3)
    # Users with test items: u0, u1, u2, u4 (u3 has none) -> averages over 4 users.
    assert m.users == 4
    # recall: u0 2/2, u1 1/1, u2 2/3, u4 0/1 -> (1 + 1 + 2/3 + 0) / 4 = 2/3
    assert m.recall == pytest.approx(2 / 3, abs=1e-12)
    # precision (k = 3): 2/3, 1/3, 2/3, 0 -> (5/3) / 4 = 5/12
    assert m.precision == pytest.approx(5 / 12, abs=1e-12)
    # hit: 1, 1, 1, 0 -> 3/4
    assert m.hit == pytest.approx(0.75, abs=1e-12)
    # mrr: first hit at rank 1, 3, 2, none -> (1 + 1/3 + 1/2 + 0) / 4 = 11/24
    assert m.mrr == pytest.approx(11 / 24, abs=1e-12)
    # ndcg, binary gains, discount 1/log2(rank + 1), ideal over min(|test|, k) items:
    #   u0: (1 + 1/log2 4) / (1 + 1/log2 3)              = 1.5 / 1.6309298 = 0.9197208
    #   u1: (1/log2 4) / 1                               = 0.5
    #   u2: (1/log2 3 + 1/log2 4) / (1 + 1/log2 3 + 1/2) = 1.1309298 / 2.1309298 = 0.5307213
    #   u4: 0
    l3 = 1 / math.log2(3)
    ndcg = (1.5 / (1 + l3) + 0.5 + (l3 + 0.5) / (1.5 + l3) + 0.0) / 4
    assert ndcg == pytest.approx(0.4876105, abs=1e-7)  # (0.9197208 + 0.5 + 0.5307213 + 0) / 4
    assert m.ndcg == pytest.approx(ndcg, abs=1e-12)
    # coverage: u0..u4 lists except u3's cover movies {0, 1, 2, 3, 4} of 6 -> 5/6
    assert m.coverage == pytest.approx(5 / 6, abs=1e-12)


def test_user_metrics_count_a_padded_list_as_shorter_and_leave_users_without_targets_out():
    recommended = np.array([[2, -1, -1], [0, 1, 2]])
    targets = _matrix([[2, 0], []], 3)
    out = evaluate.user_metrics(recommended, targets)
    assert out["recall"][0] == 0.5 and out["precision"][0] == pytest.approx(1 / 3)
    assert out["ndcg"][0] == pytest.approx(1 / (1 + 1 / math.log2(3)))
    assert all(np.isnan(values[1]) for values in out.values())


def test_valid_phase_excludes_train_only_and_test_phase_excludes_train_and_valid():
    split = _fixture_split()
    assert split.excluded("valid")[1].indices.tolist() == [1]
    assert sorted(split.excluded("test")[1].indices.tolist()) == [1, 3]
    # the model sees the training items (with ratings) in both phases, as in RecBole
    assert split.history("test")[1].toarray().tolist() == [[0, 4.0, 0, 0, 0, 0]]


def test_a_ranker_that_recommends_an_excluded_item_is_rejected():
    def careless(history, excluded, k):
        return np.tile(np.arange(k), (history.shape[0], 1))  # item 0 is u0's train item

    with pytest.raises(ValueError, match="excluded"):
        evaluate.evaluate_ranker(careless, _fixture_split(), "test", k=3)


def test_top_k_skips_excluded_items_breaks_ties_by_index_and_pads_with_minus_one():
    scores = np.array([[0.5, 0.9, 0.9, 0.1], [1.0, 2.0, 3.0, 4.0]])
    excluded = sp.csr_matrix(np.array([[0, 0, 0, 1], [1, 1, 1, 0]]))
    assert evaluate.top_k(scores, excluded, 3).tolist() == [[1, 2, 0], [3, -1, -1]]


def test_filtering_repeats_until_every_user_and_movie_has_enough_interactions():
    # min 2 per user and per movie. Ratings below 3 go first (user 4's rating 2 of movie 30).
    # Pass 1: user 3 has 1 interaction -> dropped, and with it movie 30's second one.
    # Pass 2: movie 30 now has 1 interaction (user 1) -> dropped; user 1 keeps 10, 20.
    # Stable: users 1, 2 with movies 10, 20.
    users = np.array([1, 1, 1, 2, 2, 3, 4])
    movies = np.array([10, 20, 30, 10, 20, 30, 30])
    ratings = np.array([5, 4, 3, 3, 5, 4, 2])
    keep = evaluate.filter_interactions(
        users, movies, ratings, min_user_interactions=2, min_item_interactions=2
    )
    assert keep.tolist() == [True, True, False, True, True, False, False]


def test_part_sizes_follow_recbole_rounding():
    # floor(0.1 n) for valid and test, the rest for train; tiny users still get one of each
    # while train keeps more than one.
    sizes = evaluate.part_counts(np.array([10, 19, 20, 3, 2]), (0.8, 0.1, 0.1))
    assert sizes.tolist() == [[8, 1, 1], [17, 1, 1], [16, 2, 2], [1, 1, 1], [1, 0, 1]]


def _random_interactions(seed: int = 0, n_users: int = 40, n_movies: int = 30):
    rng = np.random.default_rng(seed)
    pairs = np.argwhere(rng.random((n_users, n_movies)) < 0.6)
    return pairs[:, 0] + 1, pairs[:, 1] * 10 + 1, rng.integers(3, 6, len(pairs))


def test_split_is_reproducible_with_a_seed_and_partitions_each_users_interactions():
    users, movies, ratings = _random_interactions()
    a = evaluate.split_interactions(users, movies, ratings, seed=7)
    b = evaluate.split_interactions(users, movies, ratings, seed=7)
    c = evaluate.split_interactions(users, movies, ratings, seed=8)
    for part in ("train", "valid", "test"):
        assert (getattr(a, part) != getattr(b, part)).nnz == 0
    assert (a.test != c.test).nnz > 0
    total = a.train + a.valid + a.test
    assert total.max() == 1.0 and total.nnz == len(users)
    counts = np.diff(total.indptr)
    expected = evaluate.part_counts(counts, evaluate.SPLIT_RATIOS)
    assert np.diff(a.valid.indptr).tolist() == expected[:, 1].tolist()
    assert np.diff(a.test.indptr).tolist() == expected[:, 2].tolist()
    assert a.movie_ids.tolist() == sorted(set(movies.tolist()))


def test_whole_run_tunes_on_valid_reports_test_and_writes_results(tmp_path):
    # Two taste groups over two halves of the catalog: item models must beat popularity.
    rng = np.random.default_rng(3)
    group = np.arange(120) % 2
    likes = rng.random((120, 40)) < np.where(
        (np.arange(40) // 20)[None, :] == group[:, None], 0.7, 0.08
    )
    u, m = np.nonzero(likes)
    results = evaluate.run_evaluation(u + 1, m + 1, rng.integers(3, 6, len(u)), output_dir=tmp_path)
    by_name = {r.model: r for r in results}
    assert list(by_name) == ["popularity", "item-knn", "ease", "item-numpy"]
    assert by_name["ease"].test.ndcg > by_name["popularity"].test.ndcg + 0.1
    assert by_name["item-numpy"].test.ndcg > by_name["popularity"].test.ndcg + 0.1
    assert by_name["ease"].params in [dict(p) for p in evaluate.baseline_models()[2].grid]
    rows = json.loads((tmp_path / "results.json").read_text())
    assert [r["model"] for r in rows] == list(by_name)
    assert set(rows[0]) == {
        "model",
        "engine",
        "params",
        "users",
        "seconds",
        "recall@10",
        "ndcg@10",
        "mrr@10",
        "hit@10",
        "precision@10",
        "coverage@10",
        "popularity@10",
        "long_tail@10",
        "gini@10",
    }
    assert rows[2]["ndcg@10"] == by_name["ease"].test.ndcg
    md = (tmp_path / "results.md").read_text()
    assert "| ease |" in md and "xychart-beta" in md
    assert "ease" in evaluate.format_table(results)


# ---------------------------------------------------------------------------------------------
# The Qdrant-served models, end to end through a real embedded store


def _rows(m: sp.csr_matrix, r: int) -> tuple[np.ndarray, np.ndarray]:
    return m.indices[m.indptr[r] : m.indptr[r + 1]], m.data[m.indptr[r] : m.indptr[r + 1]]


def _tutorial_reference(split: evaluate.Split, phase: str, k: int = 10) -> dict[int, list[int]]:
    """The tutorial's definition computed in numpy from the split alone: train stars z-scored
    with their mean and sample std (float32, as stored), similarity = dot product (float64 of
    the float32 values), the 20 most similar other users (ties: lower user id), each movie
    scored by the sum of their z-scores in that order, excluded movies dropped, ties by movie
    id. Returns movie ids per row with targets."""
    history, excluded = split.history(phase), split.excluded(phase)
    stars = history.data
    mean, std = float(np.mean(stars)), float(np.std(stars, ddof=1))
    z = history.copy()
    z.data = ((stars.astype(np.float64) - mean) / std).astype(np.float32).astype(np.float64)
    movie_ids = split.movie_ids
    out = {}
    for u in np.flatnonzero(np.diff(split.targets(phase).indptr) > 0):
        q_cols, q_vals = _rows(z, u)
        sims = []
        for v in range(split.n_users):
            v_cols, v_vals = _rows(z, v)
            common, qi, vi = np.intersect1d(q_cols, v_cols, return_indices=True)
            if v != u and common.size:
                sims.append((-float(np.dot(q_vals[qi], v_vals[vi])), int(split.user_ids[v]), v))
        neighbours = [v for _, _, v in sorted(sims)[:20]]
        scores = np.zeros(split.n_items)
        rated = np.zeros(split.n_items, dtype=bool)
        for v in neighbours:  # summed neighbour by neighbour, in order
            cols, vals = _rows(z, v)
            scores[cols] += vals
            rated[cols] = True
        rated[_rows(excluded, u)[0]] = False
        cols = np.flatnonzero(rated)
        best = cols[np.lexsort((movie_ids[cols], -scores[cols]))[:k]]
        out[int(u)] = movie_ids[best].tolist()
    return out


def _served_lists(store, split, model, phase, **params) -> dict[int, list[int]]:
    ranker = evaluate.store_ranker(store, split.movie_ids, model, **params)
    users = np.flatnonzero(np.diff(split.targets(phase).indptr) > 0)
    history, excluded = split.history(phase), split.excluded(phase)
    ranked = ranker(history[users], excluded[users], 10, users=split.user_ids[users])
    return {
        int(u): [int(split.movie_ids[c]) for c in row if c >= 0] for u, row in zip(users, ranked)
    }


@pytest.fixture(scope="module")
def served():
    data = synthetic.generate(n_users=150, n_movies=120, n_ratings=12_000, seed=1)
    split = evaluate.prepare_split(data.user_ids, data.movie_ids, data.ratings)
    with evaluate.served_store(evaluate.train_dataset(split, data)) as store:
        yield data, split, store


def test_served_store_holds_the_train_part_only(served):
    data, split, store = served
    meta = store.meta()
    assert (meta.users, meta.movies, meta.ratings) == (150, 120, split.train.nnz)
    train_stars = split.history("test").data
    assert meta.rating_stats.mean == pytest.approx(np.mean(train_stars), rel=1e-12)
    from movierec.models import REGISTRY

    assert set(meta.models) == set(REGISTRY.names())  # every registered model, as ingest does
    titles = dict(zip(data.movies["movie_id"], data.movies["title"]))
    movie = store.catalog().get(int(split.movie_ids[0]))
    assert movie.title == titles[int(split.movie_ids[0])]


@pytest.mark.parametrize("phase", ["valid", "test"])
def test_served_tutorial_ranks_exactly_as_its_numpy_definition(served, phase):
    _, split, store = served
    assert _served_lists(store, split, "tutorial", phase) == _tutorial_reference(split, phase)


@pytest.mark.parametrize("model", evaluate.SERVED_MODELS)
def test_served_lists_never_hold_excluded_or_unknown_movies(served, model):
    _, split, store = served
    lists = _served_lists(store, split, model, "test")
    excluded = split.excluded("test")
    catalog = set(split.movie_ids.tolist())
    assert len(lists) == 150
    for u, movies in lists.items():
        banned = set(split.movie_ids[_rows(excluded, u)[0]].tolist())
        assert len(movies) == len(set(movies)) == 10
        assert not banned & set(movies) and set(movies) <= catalog


def test_served_item_model_returns_the_numpy_top_10_up_to_float32(served):
    # The item model as ingest learns it (movies with >= 10 liked ratings in train), computed
    # in numpy: the store's top 10 must be the true top 10 of the allowed movies.
    from movierec import recommend
    from movierec.training import item as itemmodel

    _, split, store = served
    train = split.history("test")
    eligible = np.flatnonzero(np.diff(train.tocsc().indptr) >= itemmodel.SERVED_MIN_LIKES)
    model = itemmodel.served_item_model(train[:, eligible])
    scores = model.scores(train[:, eligible])
    excluded = split.excluded("test")
    banned = excluded[:, eligible].toarray() > 0
    for u in range(0, 150, 7):
        cols, stars = _rows(train, u)
        answer = recommend.recommend(
            store, dict(zip(split.movie_ids[cols].tolist(), stars.tolist())), limit=10,
            scale="stars", model="item", exclude=tuple(split.movie_ids[_rows(excluded, u)[0]]),
        )
        expected = np.sort(np.where(banned[u], -np.inf, scores[u]))[::-1][:10]
        got = [r.score for r in answer.items]
        assert len(got) == 10
        found = [r.movie.movie_id for r in answer.items]
        position = np.searchsorted(split.movie_ids[eligible], found)
        tol = 1e-5 * np.abs(scores[u]).max()
        assert got == pytest.approx(scores[u][position].tolist(), abs=tol)
        assert got == pytest.approx(expected[: len(got)].tolist(), abs=tol)


def test_served_evaluation_tunes_user_knn_on_valid_and_writes_results(served, tmp_path):
    _, split, store = served
    models = [
        evaluate.ServedModel("tutorial", ({"neighbors": 20},)),
        evaluate.ServedModel(
            "user-knn", [{"neighbors": n, "knn_power": 2.0} for n in (10, 40)], "neighbors"
        ),
        evaluate.ServedModel("item"),
    ]
    results = evaluate.evaluate_served(store, split, models, tuning_users=60)
    by_name = {r.model: r for r in results}
    assert list(by_name) == ["tutorial", "user-knn", "item"]
    knn = by_name["user-knn"]
    assert [m.users for _, m in knn.tuning] == [60, 60]
    assert knn.valid.ndcg == max(m.ndcg for _, m in knn.tuning)
    assert knn.params == max(knn.tuning, key=lambda pair: pair[1].ndcg)[0]
    assert by_name["tutorial"].valid is None and by_name["tutorial"].test.users == 150
    assert by_name["item"].params["l2"] == 30.0
    # the metrics of the lists above, recomputed from them
    lists = _served_lists(store, split, "tutorial", "test")
    column = {m: c for c, m in enumerate(split.movie_ids.tolist())}
    recommended = np.array([[column[m] for m in lists[u]] for u in sorted(lists)])
    ndcg = evaluate.user_metrics(recommended, split.test[sorted(lists)])["ndcg"]
    assert by_name["tutorial"].test.ndcg == pytest.approx(float(np.mean(ndcg)), abs=1e-12)
    evaluate.write_results(results, tmp_path, split, notes=["a note"])
    rows = json.loads((tmp_path / "results.json").read_text())
    assert [(r["model"], r["engine"]) for r in rows] == [
        ("tutorial", "qdrant"), ("user-knn", "qdrant"), ("item", "qdrant")
    ]
    assert set(rows[0]) == {"model", "engine", "params", "users", "seconds"} | {
        f"{name}@10" for name in evaluate.METRICS + evaluate.BEYOND
    }
    assert [t["params"]["neighbors"] for t in rows[1]["tuning"]] == [10, 40]
    md = (tmp_path / "results.md").read_text()
    assert "| user-knn | qdrant |" in md and "a note" in md
