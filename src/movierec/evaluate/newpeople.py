"""The new-people protocol: people held out of the store, each giving k of their own ratings.

For each seed, a random set of people is held out; everyone else goes through the real ingest
into a scratch embedded store. Each held-out person's ratings are shuffled (seeded); for every
k in K_GIVEN they give the first k (stars as they rated them, likes and dislikes), and the rest
of their ratings are what the answer is judged by: recall@20 of the movies they rated 4-5
stars, NDCG@10 of the same, and disliked@10, how many of the top 10 they rated 2 stars or less.
Half of each seed's people tune the models (validation), the other half are reported (test).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from movierec import schema
from movierec.evaluate.metrics import progress_bar
from movierec.evaluate.tuning import ModelResult, tune_then_test

K_GIVEN = (1, 2, 3, 5, 10, 20, 50)
SEEDS = (1, 2, 3)
PEOPLE_PER_SEED = 300  # held out per seed: half validation, half test
TARGET_STARS = 4.0  # a held-back rating this high is a movie the person liked
DISLIKED_STARS = 2.0  # ... this low, one they disliked
RECALL_AT = 20
NDCG_AT = 10
DISLIKED_AT = 10
ROLES = ("valid", "test")

# A ranker for new people: (given movie ids, their stars, how many to return, movies never to
# return) -> recommended movie ids, best first. The given movies are never returned either.
RankPeople = Callable[[np.ndarray, np.ndarray, int, Sequence[int]], Sequence[int]]

PROTOCOL = (
    "Protocol (new people): per seed, a random set of people is held out of the store; "
    "everyone else is ingested by the real ingest into a scratch embedded store. Each held-out "
    "person's ratings are shuffled; for each k they give the first k (their stars, likes and "
    "dislikes) and are judged on the rest: recall@20 of the movies they rated 4-5 stars "
    "(divided by min(20, how many there are)), NDCG@10 of the same, and disliked@10 = how many "
    "of the top 10 they rated 2 stars or less. People with no 4-5 star movie left at a k (or "
    "no more than k ratings) are not counted at that k. Half of each seed's people tune each "
    "model's settings (mean recall@20 over k), the other half are reported; never the same "
    "people."
)


# ---------------------------------------------------------------------------------------------
# Held-out people


@dataclass(frozen=True)
class People:
    """Held-out people and their ratings, each person's in a seeded random order (row i's
    ratings are `movie_ids[indptr[i]:indptr[i+1]]`): the first k are what they give."""

    user_ids: np.ndarray
    roles: np.ndarray  # "valid" or "test", one per person
    indptr: np.ndarray
    movie_ids: np.ndarray
    stars: np.ndarray

    def __len__(self) -> int:
        return len(self.user_ids)

    def ratings(self, row: int) -> tuple[np.ndarray, np.ndarray]:
        a, b = self.indptr[row], self.indptr[row + 1]
        return self.movie_ids[a:b], self.stars[a:b]

    def rows(self, role: str) -> np.ndarray:
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, not {role!r}")
        return np.flatnonzero(self.roles == role)


def hold_out(dataset: Any, n_people: int, seed: int) -> tuple[People, Any]:
    """`n_people` random people of `dataset` (half validation, half test: the extra one, if odd,
    is a test person) and the dataset without them (all movies kept)."""
    from movierec import movielens

    users = np.unique(dataset.user_ids)
    if not 2 <= n_people < len(users):
        raise ValueError(f"hold out between 2 and {len(users) - 1} people, not {n_people}")
    rng = np.random.default_rng(seed)
    chosen = rng.choice(users, n_people, replace=False)
    roles = np.where(np.arange(n_people) < n_people // 2, "valid", "test")
    held = np.isin(dataset.user_ids, chosen)
    row_of = {int(u): r for r, u in enumerate(chosen)}
    rows = np.array([row_of[int(u)] for u in dataset.user_ids[held]], dtype=np.int64)
    order = np.lexsort((rng.random(len(rows)), rows))  # person by person, shuffled inside
    counts = np.bincount(rows, minlength=n_people)
    people = People(
        chosen.astype(np.int64), roles, np.concatenate(([0], np.cumsum(counts))),
        dataset.movie_ids[held][order].astype(np.int64),
        dataset.ratings[held][order].astype(np.float64),
    )
    rest = movielens.Dataset(
        f"{dataset.name}-without-{n_people}-seed-{seed}",
        dataset.user_ids[~held], dataset.movie_ids[~held], dataset.ratings[~held],
        dataset.movies,
        dataset.users[~dataset.users["user_id"].isin(chosen)].reset_index(drop=True),
    )
    return people, rest


@dataclass
class Fold:
    """One seed: its held-out people and the store holding everyone else."""

    seed: int
    people: People
    store: Any
    rest: Any  # the dataset the store was built from (the numpy baselines learn from it)
    cache: dict[str, Any] = field(default_factory=dict)  # per-fold fitted baselines


# ---------------------------------------------------------------------------------------------
# Metrics


@dataclass
class Curve:
    """Metrics against k: one entry per (person, k) judged, pooled over seeds."""

    k: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    recall: np.ndarray = field(default_factory=lambda: np.zeros(0))
    ndcg: np.ndarray = field(default_factory=lambda: np.zeros(0))
    disliked: np.ndarray = field(default_factory=lambda: np.zeros(0))
    person: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # seed*1e6+row
    ks: tuple[int, ...] = K_GIVEN

    def __add__(self, other: Curve) -> Curve:
        return Curve(*(np.concatenate([getattr(self, f), getattr(other, f)])
                       for f in ("k", "recall", "ndcg", "disliked", "person")), ks=self.ks)

    def at(self, metric: str) -> np.ndarray:
        """The metric's mean at each k of `ks` (NaN where nobody was judged)."""
        values = getattr(self, metric)
        out = np.full(len(self.ks), np.nan)
        for i, k in enumerate(self.ks):
            chosen = self.k == k
            if chosen.any():
                out[i] = float(values[chosen].mean())
        return out

    def interval(self, metric: str) -> np.ndarray:
        """Half-width of the 95% normal interval of the mean at each k."""
        values = getattr(self, metric)
        out = np.full(len(self.ks), np.nan)
        for i, k in enumerate(self.ks):
            chosen = values[self.k == k]
            if len(chosen) > 1:
                out[i] = 1.96 * float(chosen.std(ddof=1)) / np.sqrt(len(chosen))
        return out

    def people_at(self) -> np.ndarray:
        return np.array([int((self.k == k).sum()) for k in self.ks])

    @property
    def users(self) -> int:
        return len(np.unique(self.person))

    def mean_recall(self) -> float:
        """What tuning maximizes: recall@20 averaged over the k values (each k counts once)."""
        return float(np.nanmean(self.at("recall")))

    def as_dict(self) -> dict[str, Any]:
        return {
            "k": list(self.ks),
            f"recall@{RECALL_AT}": _rounded(self.at("recall")),
            f"recall@{RECALL_AT}_ci95": _rounded(self.interval("recall")),
            f"ndcg@{NDCG_AT}": _rounded(self.at("ndcg")),
            f"disliked@{DISLIKED_AT}": _rounded(self.at("disliked")),
            "people": self.people_at().tolist(),
        }

    def tuning_dict(self) -> dict[str, Any]:
        return {f"recall@{RECALL_AT}": _rounded(self.at("recall")),
                f"disliked@{DISLIKED_AT}": _rounded(self.at("disliked")), "people": self.users}


def _rounded(values: np.ndarray) -> list[float | None]:
    return [None if np.isnan(v) else round(float(v), 4) for v in values]


def person_metrics(
    recommended: Sequence[int], liked: np.ndarray, disliked: np.ndarray
) -> tuple[float, float, float]:
    """(recall@20, NDCG@10, disliked@10) of one answer: recall is the liked movies found in the
    top 20 over min(20, how many liked movies there are); NDCG uses binary gains and the ideal
    list of min(10, liked) hits; disliked@10 counts the top 10's disliked movies."""
    top = np.asarray(list(recommended)[:RECALL_AT], dtype=np.int64)
    hits = np.isin(top, liked)
    recall = float(hits.sum()) / min(RECALL_AT, len(liked))
    discounts = 1.0 / np.log2(np.arange(2, NDCG_AT + 2))
    gains = hits[:NDCG_AT]
    ideal = discounts[: min(NDCG_AT, len(liked))].sum()
    ndcg = float((gains * discounts[: len(gains)]).sum() / ideal)
    return recall, ndcg, float(np.isin(top[:DISLIKED_AT], disliked).sum())


def judge(
    rank: RankPeople, people: People, rows: Iterable[int], *, ks: Sequence[int] = K_GIVEN,
    person_base: int = 0, progress: bool | str = False,
) -> Curve:
    """Ask `rank` for every person of `rows` at every k and score the answers."""
    rows = list(rows)
    k_, recall_, ndcg_, disliked_, person_ = [], [], [], [], []
    bar = progress_bar(len(rows), progress)
    for row in rows:
        movies, stars = people.ratings(row)
        for k in ks:
            rest_movies, rest_stars = movies[k:], stars[k:]
            liked = rest_movies[rest_stars >= TARGET_STARS]
            if len(movies) <= k or not len(liked):
                continue
            answer = rank(movies[:k], stars[:k], RECALL_AT, ())
            if set(answer) & set(movies[:k].tolist()):
                raise ValueError("a ranker recommended one of the movies the person gave")
            r, n, d = person_metrics(answer, liked, rest_movies[rest_stars <= DISLIKED_STARS])
            k_.append(k)
            recall_.append(r)
            ndcg_.append(n)
            disliked_.append(d)
            person_.append(person_base + row)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return Curve(np.array(k_, dtype=np.int64), np.array(recall_), np.array(ndcg_),
                 np.array(disliked_), np.array(person_, dtype=np.int64), tuple(ks))


# ---------------------------------------------------------------------------------------------
# Rankers: the served models through recommend(), and the numpy baselines


def popular_movies(store: Any) -> np.ndarray:
    """The store's movies, most rated first (the catalog's rating_count), ties by id."""
    catalog = store.catalog()
    counts = np.array([m.rating_count for m in catalog.take(catalog.ids)], dtype=np.int64)
    return catalog.ids[np.lexsort((catalog.ids, -counts))]


def first_allowed(ordered: np.ndarray, banned: Iterable[int], limit: int) -> list[int]:
    """The first `limit` of `ordered` that are not banned."""
    banned = np.asarray(list(banned), dtype=np.int64)
    head = ordered[: limit + len(banned)]
    return head[~np.isin(head, banned)][:limit].tolist()


def popularity_ranker(fold: Fold) -> RankPeople:
    """The most rated movies of the store the person has not given."""
    if "popular" not in fold.cache:
        fold.cache["popular"] = popular_movies(fold.store)
    ordered = fold.cache["popular"]

    def rank(movies, stars, limit, exclude):
        return first_allowed(ordered, [*movies.tolist(), *exclude], limit)

    return rank


def served_ranker(fold: Fold, model: str, **params: Any) -> RankPeople:
    """`model` asked through recommend() exactly as the service asks it (scale "stars")."""
    from movierec import recommend

    def rank(movies, stars, limit, exclude):
        answer = recommend.recommend(
            fold.store, dict(zip(movies.tolist(), stars.tolist())), limit=limit,
            scale="stars", model=model, exclude=tuple(exclude), **params,
        )
        return [r.movie.movie_id for r in answer.items]

    return rank


def ease_ranker(fold: Fold, l2: float) -> RankPeople:
    """EASE fold-in: learned (numpy) from the store's people's likes (>= 3 stars, binary) of the
    movies with enough likes for the item model; a new person's likes count +1 and dislikes -1
    in the query."""
    import scipy.sparse as sp

    from movierec.training import item as itemmodel

    key = f"ease-{l2:g}"
    if key not in fold.cache:
        rest = fold.rest
        liked = rest.ratings >= schema.LIKED_STARS
        # The movies the served item model learns (enough likes): a dense solve over every
        # movie of ml-latest-small (9,724) would take minutes and add only movies nobody knows.
        movie_ids, counts = np.unique(rest.movie_ids[liked], return_counts=True)
        movie_ids = movie_ids[counts >= itemmodel.SERVED_MIN_LIKES]
        liked &= np.isin(rest.movie_ids, movie_ids)
        _, rows = np.unique(rest.user_ids[liked], return_inverse=True)
        cols = np.searchsorted(movie_ids, rest.movie_ids[liked])
        x = sp.csr_matrix((np.ones(len(rows)), (rows, cols)),
                          shape=(rows.max() + 1, len(movie_ids)))
        fold.cache = {k: v for k, v in fold.cache.items() if not k.startswith("ease-")}
        fold.cache[key] = (movie_ids, itemmodel.ease_weights(x, l2))
    movie_ids, weights = fold.cache[key]

    def rank(movies, stars, limit, exclude):
        pos = np.searchsorted(movie_ids, movies)
        pos = np.minimum(pos, len(movie_ids) - 1)
        known = movie_ids[pos] == movies
        signs = np.where(stars[known] >= schema.LIKED_STARS, 1.0, -1.0)
        scores = signs @ weights[pos[known]]
        banned = np.isin(movie_ids, [*movies.tolist(), *exclude])
        scores[banned] = -np.inf
        best = np.lexsort((movie_ids, -scores))[:limit]
        return movie_ids[best[np.isfinite(scores[best])]].tolist()

    return rank


def without_dislikes(rank: RankPeople, fold: Fold) -> RankPeople:
    """The same ranker, told only the person's likes (>= 3 stars, as the models count them);
    the disliked movies are still never recommended. Nothing left: the popular movies."""
    popular = popularity_ranker(fold)

    def ranked(movies, stars, limit, exclude):
        liked = stars >= schema.LIKED_STARS
        exclude = [*exclude, *movies[~liked].tolist()]
        if not liked.any():
            return popular(movies, stars, limit, exclude)
        return rank(movies[liked], stars[liked], limit, exclude)

    return ranked


# ---------------------------------------------------------------------------------------------
# Models and the whole run


@dataclass(frozen=True)
class PeopleModel:
    """A model in this protocol: `make(fold, **params)` gives its ranker for one seed's store;
    every setting of `grid` is tried on validation people."""

    name: str
    make: Callable[..., RankPeople]
    grid: Sequence[Mapping[str, Any]] = ({},)
    main_param: str | None = None
    engine: str = "qdrant"
    by_count: bool = False  # tuned at each k (evaluate_by_count), not once for all k


def _score(folds: Sequence[Fold], make: Callable[[Fold], RankPeople], role: str,
           label: str | bool, ks: Sequence[int]) -> Curve:
    curve = Curve(ks=tuple(ks))
    for fold in folds:
        rows = fold.people.rows(role)
        shown = f"{label} seed {fold.seed}" if label else False
        curve = curve + judge(make(fold), fold.people, rows, ks=ks,
                              person_base=fold.seed * 1_000_000, progress=shown)
    return curve


def evaluate_people_model(
    model: PeopleModel, folds: Sequence[Fold], *, ks: Sequence[int] = K_GIVEN,
    progress: bool = False,
) -> ModelResult:
    """Tune on every seed's validation people, report on every seed's test people."""

    def build(**params: Any) -> Callable[[Fold], RankPeople]:
        return lambda fold: model.make(fold, **params)

    return tune_then_test(
        model.name, model.grid, build,
        lambda make, label: _score(folds, make, "valid", label, ks),
        lambda make, label: _score(folds, make, "test", label, ks),
        main_param=model.main_param, engine=model.engine, key=Curve.mean_recall,
        progress=progress,
    )


def evaluate_by_count(
    model: PeopleModel, folds: Sequence[Fold], *, ks: Sequence[int] = K_GIVEN,
    progress: bool = False,
) -> ModelResult:
    """A model whose shares depend on how many ratings were given (blend's schedule): every
    setting of the grid (one pair of shares each) scored on every seed's validation people; at
    each k the setting with the best recall@20 among those recommending fewer disliked movies
    than popularity does there (`_chosen_at`) gives that k's row; the schedule of those rows is
    scored on the test people."""
    import time

    started = time.perf_counter()
    if len(model.grid) == 1:
        return evaluate_people_model(model, folds, ks=ks, progress=progress)
    popular = _score(folds, popularity_ranker, "valid", False, ks).at("disliked")
    tuning = []
    for params in model.grid:
        label = f"{model.name} {_row_label(params)} (valid)" if progress else False
        tuning.append((dict(params), _score(folds, lambda fold, p=params: model.make(fold, **p),
                                            "valid", label, ks)))
    rows = []
    for i, k in enumerate(ks):
        rows.append((int(k), *_chosen_at(tuning, i, popular[i])["schedule"][0][1:]))
    params = dict(model.grid[0], schedule=tuple(rows))
    make = lambda fold: model.make(fold, **params)  # noqa: E731
    valid = _score(folds, make, "valid", False, ks)
    test = _score(folds, make, "test", f"{model.name} (test)" if progress else False, ks)
    return ModelResult(model.name, params, test, valid, time.perf_counter() - started, None,
                       tuning, model.engine)


def _chosen_at(tuning: list[tuple[dict[str, Any], Curve]], i: int, popular: float
               ) -> dict[str, Any]:
    """At the i-th k: the setting with the best recall@20 among those recommending no more
    disliked movies than popularity (`popular`); but one DISLIKED_MARGIN under popularity
    instead when it costs at most SAFETY_RECALL of recall (validation and test people differ
    by about that much in disliked@10). With none under popularity, the best recall among the
    settings within 0.01 of the fewest disliked."""
    def recall(pc):
        return float(np.nan_to_num(pc[1].at("recall")[i], nan=-1.0))

    disliked = [float(np.nan_to_num(c.at("disliked")[i], nan=np.inf)) for _, c in tuning]
    fine = [pc for pc, d in zip(tuning, disliked) if d <= popular]
    if not fine:
        fewest = min(disliked)
        return max((pc for pc, d in zip(tuning, disliked) if d <= fewest + 0.01), key=recall)[0]
    best = max(fine, key=recall)
    safe = [pc for pc, d in zip(tuning, disliked)
            if d <= popular - DISLIKED_MARGIN and recall(pc) >= recall(best) - SAFETY_RECALL]
    return max(safe, key=recall)[0] if safe else best[0]


def _row_label(params: Mapping[str, Any]) -> str:
    _, prior, knn, power = params["schedule"][0]
    return f"prior share {prior:g}, similar users' share {knn:g}, mean power {power:g}"


def dislikes_withheld(
    result: ModelResult, model: PeopleModel, folds: Sequence[Fold], *,
    ks: Sequence[int] = K_GIVEN,
) -> Curve:
    """The chosen setting of `model` on the test people, told their likes only."""
    return _score(folds, lambda fold: without_dislikes(model.make(fold, **result.params), fold),
                  "test", False, ks)


def people_models(quick: bool = False) -> list[PeopleModel]:
    """The served models through recommend() (the default, blend, first), and the popularity
    and EASE fold-in baselines."""
    from movierec.models import REGISTRY

    knn_grid = (dict(REGISTRY.get("user-knn").params),)
    blend = dict(REGISTRY.get("blend").params)
    blend_grid = [dict(blend, schedule=((1, prior, knn, power),)) for power in BLEND_MEAN_POWERS
                  for prior in BLEND_PRIOR_SHARES for knn in BLEND_KNN_SHARES]
    return [
        PeopleModel("blend", lambda fold, **p: served_ranker(fold, "blend", **p),
                    [blend] if quick else blend_grid, by_count=True),
        PeopleModel("tutorial", lambda fold: served_ranker(fold, "tutorial")),
        PeopleModel("user-knn", lambda fold, **p: served_ranker(fold, "user-knn", **p),
                    knn_grid if quick else USER_KNN_PEOPLE_GRID, "neighbors"),
        PeopleModel("item", lambda fold: served_ranker(fold, "item")),
        PeopleModel("popularity", popularity_ranker, engine="numpy"),
        PeopleModel("ease", ease_ranker,
                    [{"l2": 800.0}] if quick else [{"l2": v} for v in EASE_GRID], "l2",
                    engine="numpy"),
    ]


EASE_GRID = (200.0, 800.0, 3200.0)
# The default's grid, tuned at each k on validation people (evaluate_by_count): the popularity
# prior's share of the score, and the similar users' share of the personal parts (the item
# model has the rest).
BLEND_PRIOR_SHARES = (0.01, 0.05, 0.15, 0.33, 0.6)
BLEND_KNN_SHARES = (0.4, 0.6, 0.75, 0.9)
# ... and the power of its rating-mean factor (higher: fewer disliked answers, lower recall).
BLEND_MEAN_POWERS = (1.0, 2.0)
# On validation, the default's disliked@10 is kept this much under popularity's at each k
# where that costs at most SAFETY_RECALL of recall@20 (see _chosen_at).
DISLIKED_MARGIN = 0.02
SAFETY_RECALL = 0.005
# user-knn for new people: its served power, neighbours tuned (each setting costs a query per
# person and k, and power 1 lost to 2 in every earlier run).
USER_KNN_PEOPLE_GRID = tuple({"neighbors": n, "knn_power": 2.0} for n in (50, 100, 200))


def make_folds(dataset: Any, stack: ExitStack, *, seeds: Sequence[int] = SEEDS,
               people: int = PEOPLE_PER_SEED, progress: bool = False) -> list[Fold]:
    """One scratch store per seed (closed when `stack` closes), everyone else ingested."""
    from movierec.evaluate.served import served_store

    folds = []
    for seed in seeds:
        held, rest = hold_out(dataset, people, seed)
        store = stack.enter_context(served_store(rest, progress=progress))
        folds.append(Fold(seed, held, store, rest))
    return folds


def evaluate_new_people(
    dataset: Any, *, models: Iterable[PeopleModel] | None = None, seeds: Sequence[int] = SEEDS,
    people: int = PEOPLE_PER_SEED, ks: Sequence[int] = K_GIVEN, quick: bool = False,
    progress: bool = False,
) -> tuple[list[ModelResult], dict[str, Curve], dict[str, Any]]:
    """Every model on new people from `dataset`: (results, each model's test curve with
    dislikes withheld, facts about the run)."""
    import time

    started = time.perf_counter()
    models = list(people_models(quick) if models is None else models)
    with ExitStack() as stack:
        folds = make_folds(dataset, stack, seeds=seeds, people=people, progress=progress)
        built = time.perf_counter() - started
        results, withheld = [], {}
        for model in models:
            tune = evaluate_by_count if model.by_count else evaluate_people_model
            result = tune(model, folds, ks=ks, progress=progress)
            withheld[model.name] = dislikes_withheld(result, model, folds, ks=ks)
            results.append(result)
    info = {
        "dataset": dataset.name,
        "seeds": list(seeds),
        "people": people,
        "valid_people": sum(len(f.people.rows("valid")) for f in folds),
        "test_people": sum(len(f.people.rows("test")) for f in folds),
        "store_seconds": round(built, 1),
        "seconds": round(time.perf_counter() - started, 1),
    }
    return results, withheld, info
