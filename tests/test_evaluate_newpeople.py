"""The new-people protocol: people held out of a real store, each giving k of their ratings;
exact counts of who is held out and what is given, and metrics on hand-computed answers."""

import json
import math

import numpy as np
import pytest

from movierec import movielens
from movierec.evaluate import exposure_metrics, newpeople, report
from tests.conftest import dataset_dir


@pytest.fixture(scope="module")
def small() -> movielens.Dataset:
    return movielens.load(dataset_dir("ml-latest-small"), "ml-latest-small")


def test_hold_out_takes_exactly_n_people_half_validation_and_keeps_everyone_else(small):
    people, rest = newpeople.hold_out(small, 21, seed=5)
    assert len(people) == 21
    assert len(people.rows("valid")) == 10 and len(people.rows("test")) == 11
    assert not set(people.rows("valid")) & set(people.rows("test"))
    held = set(people.user_ids.tolist())
    assert len(held) == 21 and not held & set(rest.user_ids.tolist())
    assert not held & set(rest.users["user_id"].tolist())
    assert rest.n_ratings + len(people.movie_ids) == small.n_ratings == 100_836
    assert len(rest.movies) == len(small.movies)  # every movie stays in the catalog
    for row in (0, 20):  # a person's ratings, shuffled: the same set with the same stars
        user = people.user_ids[row]
        mine = small.user_ids == user
        movies, stars = people.ratings(row)
        expected = dict(zip(small.movie_ids[mine].tolist(), small.ratings[mine].tolist()))
        assert dict(zip(movies.tolist(), stars.tolist())) == expected
        assert movies.tolist() != sorted(movies.tolist())
    again, _ = newpeople.hold_out(small, 21, seed=5)
    other, _ = newpeople.hold_out(small, 21, seed=6)
    assert again.user_ids.tolist() == people.user_ids.tolist()
    assert np.array_equal(again.movie_ids, people.movie_ids)
    assert set(other.user_ids.tolist()) != held


def test_person_metrics_match_hand_computed_values():
    liked = np.array([10, 20, 30])
    disliked = np.array([40, 50])
    answer = [20, 40, 99, 30, 50] + list(range(100, 115))  # 20 movies
    recall, ndcg, bad = newpeople.person_metrics(answer, liked, disliked)
    assert recall == pytest.approx(2 / 3)  # 2 of min(20, 3) liked movies found
    # hits at ranks 1 and 4; ideal: 3 hits at ranks 1-3
    ideal = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert ndcg == pytest.approx((1 + 1 / math.log2(5)) / ideal)
    assert bad == 2.0  # 40 and 50 are in the top 10
    many = np.arange(1000, 1030)  # 30 liked movies: recall is over min(20, 30) = 20
    recall, _, bad = newpeople.person_metrics(list(range(1000, 1010)), many, disliked)
    assert recall == 0.5 and bad == 0.0


def test_each_person_gives_exactly_k_ratings_and_is_judged_on_the_rest(small):
    people, _ = newpeople.hold_out(small, 6, seed=1)
    asked = []

    def recording(movies, stars, limit, exclude):
        asked.append((movies.copy(), stars.copy(), limit))
        return []

    rows = people.rows("test")
    curve = newpeople.judge(recording, people, rows, ks=(1, 3, 50))
    expected = [(row, k) for row in rows for k in (1, 3, 50)
                if len(people.ratings(row)[0]) > k
                and (people.ratings(row)[1][k:] >= newpeople.TARGET_STARS).any()]
    assert len(asked) == len(expected) == len(curve.k)
    for (movies, stars, limit), (row, k) in zip(asked, expected):
        all_movies, all_stars = people.ratings(row)
        assert limit == 20 and len(movies) == k
        assert movies.tolist() == all_movies[:k].tolist()
        assert stars.tolist() == all_stars[:k].tolist()
    assert curve.k.tolist() == [k for _, k in expected]
    assert curve.recall.tolist() == [0.0] * len(expected)

    def cheating(movies, stars, limit, exclude):
        return movies.tolist()

    with pytest.raises(ValueError, match="gave"):
        newpeople.judge(cheating, people, rows, ks=(1,))


def test_without_dislikes_asks_with_likes_only_and_never_returns_the_dislikes(small):
    people, rest = newpeople.hold_out(small, 4, seed=2)
    fold = newpeople.Fold(2, people, None, rest)
    fold.cache["popular"] = np.array([7, 8, 9, 10, 11])
    asked = []

    def inner(movies, stars, limit, exclude):
        asked.append((movies.tolist(), list(exclude)))
        return [5]

    ranker = newpeople.without_dislikes(inner, fold)
    assert ranker(np.array([1, 2, 3]), np.array([4.0, 2.0, 3.0]), 3, ()) == [5]
    assert asked == [([1, 3], [2])]
    # only dislikes: nothing to ask with, the popular movies answer (the disliked ones left out)
    assert ranker(np.array([8, 2]), np.array([1.0, 2.5]), 3, ()) == [7, 9, 10]


def test_exposure_metrics_match_hand_computed_values():
    # 5 movies; train counts 50, 40, 30, 20, 10 of 100 users; the head is the top 20% = movie 0
    exposure = np.array([3, 1, 0, 0, 0])  # 4 slots: movie 0 three times, movie 1 once
    m = exposure_metrics(exposure, np.array([50, 40, 30, 20, 10]), 100)
    assert m["popularity"] == pytest.approx((3 * 0.5 + 0.4) / 4)
    assert m["long_tail"] == pytest.approx(1 / 4)
    # Gini of (0, 0, 0, 1, 3): sum |x_i - x_j| / (2 n^2 mean) = 28 / (2 * 25 * 0.8) = 0.7
    assert m["gini"] == pytest.approx(0.7)
    assert exposure_metrics(np.ones(5), np.arange(5), 10)["gini"] == pytest.approx(0.0)


def test_a_small_run_tunes_on_validation_people_and_reports_test_people(tmp_path):
    ml100k = movielens.load(dataset_dir("ml-100k"), "ml-100k")
    models = [m for m in newpeople.people_models(quick=True)
              if m.name in ("popularity", "item")]
    models.append(newpeople.PeopleModel("ease", newpeople.ease_ranker,
                                        [{"l2": 100.0}, {"l2": 3000.0}], "l2", engine="numpy"))
    results, withheld, info = newpeople.evaluate_new_people(
        ml100k, models=models, seeds=(1,), people=16, ks=(1, 5))
    assert [r.model for r in results] == ["item", "popularity", "ease"]
    assert (info["valid_people"], info["test_people"]) == (8, 8)
    ease = results[2]
    assert [c.users for _, c in ease.tuning] == [8, 8]  # tuned on the 8 validation people
    assert ease.params == max(ease.tuning, key=lambda t: t[1].mean_recall())[0]
    tuned_on = {p for _, c in ease.tuning for p in c.person.tolist()}
    assert not tuned_on & set(ease.test.person.tolist())  # never the same people
    for r in results:
        assert r.test.users <= 8 and r.test.people_at().max() <= 8
        assert np.all((r.test.recall >= 0) & (r.test.recall <= 1))
    paths = report.write_people_results(results, withheld, tmp_path, title="test")
    rows = json.loads(paths[0].read_text())
    assert [row["model"] for row in rows] == ["item", "popularity", "ease"]
    assert rows[0]["k"] == [1, 5] and "dislikes_withheld" in rows[0]
    assert paths[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "![recall@20 against k](recall_vs_k.png)" in paths[1].read_text()


def _curve(recall: list[float], disliked: list[float]) -> newpeople.Curve:
    """One person's curve at k = 1, 5 with these metrics."""
    return newpeople.Curve(np.array([1, 5]), np.array(recall), np.zeros(2), np.array(disliked),
                           np.zeros(2, dtype=np.int64), ks=(1, 5))


def test_each_count_takes_the_best_recall_that_recommends_no_more_disliked_than_popularity():
    a = ({"schedule": ((1, 0.1, 0.5, 1.0),)}, _curve([0.40, 0.50], [0.30, 0.20]))
    b = ({"schedule": ((1, 0.3, 0.5, 1.0),)}, _curve([0.38, 0.49], [0.20, 0.24]))
    c = ({"schedule": ((1, 0.6, 0.9, 2.0),)}, _curve([0.35, 0.30], [0.10, 0.10]))
    tuning = [a, b, c]
    # k=1, popularity 0.25: a recommends more disliked movies; b is the best of the rest, and
    # 0.02 under popularity (c is safer but costs 0.03 of recall, more than SAFETY_RECALL)
    assert newpeople._chosen_at(tuning, 0, 0.25) == b[0]
    # k=5, popularity 0.21: a is fine but within the margin; b is over popularity; c is safe
    # but costs 0.20 of recall: a
    assert newpeople._chosen_at(tuning, 1, 0.21) == a[0]
    # a safe setting within SAFETY_RECALL of the best wins over the best
    d = ({"schedule": ((1, 0.2, 0.6, 1.0),)}, _curve([0.397, 0.5], [0.17, 0.2]))
    assert newpeople._chosen_at([*tuning, d], 0, 0.31) == d[0]
    # nobody under popularity: the best recall among those within 0.01 of the fewest disliked
    e = ({"schedule": ((1, 0.2, 0.6, 1.0),)}, _curve([0.36, 0.5], [0.105, 0.2]))
    assert newpeople._chosen_at([*tuning, e], 0, 0.05) == e[0]


def test_the_default_is_tuned_at_each_count_and_tested_with_that_schedule():
    ml100k = movielens.load(dataset_dir("ml-100k"), "ml-100k")
    from movierec.models import REGISTRY

    base = dict(REGISTRY.get("blend").params)
    grid = [dict(base, schedule=((1, prior, 0.6, 1.0),)) for prior in (0.05, 0.6)]
    blend = newpeople.PeopleModel("blend", lambda fold, **p: newpeople.served_ranker(
        fold, "blend", **p), grid, by_count=True)
    popularity = next(m for m in newpeople.people_models(quick=True) if m.name == "popularity")
    results, withheld, _ = newpeople.evaluate_new_people(
        ml100k, models=[blend, popularity], seeds=(1,), people=16, ks=(1, 5))
    result = results[0]
    assert [p for p, _ in result.tuning] == grid
    schedule = result.params["schedule"]
    assert [row[0] for row in schedule] == [1, 5]
    assert all(tuple(row[1:]) in {(0.05, 0.6, 1.0), (0.6, 0.6, 1.0)} for row in schedule)
    tuned_on = {p for _, c in result.tuning for p in c.person.tolist()}
    assert not tuned_on & set(result.test.person.tolist())
    text = report.format_people_markdown(results, withheld)
    assert "blend's shares chosen at each k on validation people:" in text
    assert "| k | blend recall@20 | best other |" in text
