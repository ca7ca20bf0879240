"""blend: the default for new people, who give a handful of ratings. A popularity prior (the
movies' rating_count and rating_mean payloads, which every reader's catalog holds) blended with
two personal parts: the item model (one sparse Qdrant query against the movies' item vectors)
and the likes of the person's 50 most similar users (one sparse Qdrant query against the users'
liked vectors). How much each part weighs depends on how many ratings were given (`schedule`,
chosen on validation people at each count): the prior leads with one rating and fades as
ratings are added, the similar users lead with a few and the item model gains with many;
dislikes lower the movies most like them (a second item-vector query). Measured with
`movierec evaluate --protocol new-people` (README, Quality)."""

from __future__ import annotations

import functools
import weakref

import numpy as np

from movierec import schema
from movierec.catalog import MovieCatalog
from movierec.errors import QueryError
from movierec.models.base import Answer, Ask, Model, Person, Recommendation
from movierec.models.item import like_weights, liked_reasons
from movierec.models.neighbors import nearest
from movierec.store import MovieFilter, StoreReader
from movierec.vectors import SparseVector

# The prior of each catalog (one per live version), computed once: (ids, prior by quality).
_PRIORS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


SCHEDULE = ((1, 0.33, 0.75, 1.0), (2, 0.15, 0.9, 2.0), (3, 0.15, 0.9, 1.0), (5, 0.05, 0.75, 2.0),
            (10, 0.01, 0.6, 1.0), (20, 0.01, 0.4, 1.0), (50, 0.01, 0.4, 1.0))


class BlendModel(Model):
    name = "blend"
    description = ("for new people: a popularity prior that fades as ratings are added, "
                   "blended with the item model and 50 similar users' likes; dislikes push "
                   "similar movies down")
    # schedule: (ratings given, the prior's share, the similar users' share of the rest, the
    # power of the rating-mean factor), one row per count; between counts interpolated in
    # log(count), outside them the nearest row. Chosen at each count on the validation people
    # of `movierec evaluate --protocol new-people` (ml-1m): the best recall@20 among the
    # settings recommending fewer disliked movies than popularity does. candidates: how many
    # movies beyond the answer and the person's own each item-vector search fetches, for the
    # likes and (dislike_candidates) for the dislikes. Only the movies most like a dislike lose
    # enough to leave the answer: on the validation people, 20 dislike candidates instead of
    # 100 changed recall@20 by at most 0.001 at any k, disliked@10 by -0.013 to +0.002.
    params = {"schedule": SCHEDULE, "neighbors": 50, "quality": 2.0, "dislike_weight": 0.3,
              "candidates": 100, "dislike_candidates": 20}
    user_vectors = (schema.RATINGS_VECTOR, schema.LIKED_VECTOR)
    movie_vectors = (schema.ITEM_VECTOR,)

    def ingest_params(self) -> dict:
        return {"liked_stars": schema.LIKED_STARS}

    def answer(self, store: StoreReader, person: Person, ask: Ask) -> Answer:
        # Every part is scored over the whole catalog at once (catalog order, a few thousand
        # floats): no candidate lists to merge, one array operation per step.
        p = ask.params
        meta = store.meta()
        catalog = store.catalog()
        prior, mean = _prior(catalog, float(p["quality"]))
        # The person's likes and dislikes by movie id, sorted (in Python: a few dozen at most,
        # where each numpy step would cost more than the sort).
        signed = sorted(person.signed(meta.rating_stats).items())
        movies = np.array([m for m, _ in signed], dtype=np.int64)
        # As search queries' indices (the ratings were checked: known movies, unique ids).
        likes = np.array([m for m, sign in signed if sign > 0], dtype=np.uint32)
        dislikes = np.array([m for m, sign in signed if sign < 0], dtype=np.uint32)
        # The person's movies, sorted: `movies` itself unless a unit rating of 0 was dropped.
        excluded = movies if movies.size == len(person.ratings) else np.sort(person.movie_ids)
        if ask.exclude:
            excluded = np.union1d(excluded, np.asarray(ask.exclude, dtype=np.int64))
        mf = ask.movie_filter
        rows = catalog.positions(excluded)
        rows = rows[rows >= 0]  # the person's movies' rows (unique: `excluded` is)
        # Without a genre/year filter only the person's own rows are barred: no mask over the
        # catalog (one fewer pass over it at every step that would read the mask).
        allowed = catalog.mask(mf.genres, mf.year_min, mf.year_max) if mf.filters_movies \
            else None
        if allowed is not None:
            allowed[rows] = False
        any_allowed = bool(allowed.any()) if allowed is not None else rows.size < len(catalog)
        fetch = ask.limit + len(excluded)
        # Without a payload filter the searches fetch more and the person's movies are dropped
        # here (a must_not filter costs qdrant-edge a filtered scan); with one, all in the query.
        search = MovieFilter(tuple(excluded.tolist()), mf.genres, mf.year_min, mf.year_max) \
            if mf.filters_movies else MovieFilter()

        item = np.zeros(len(catalog))
        has_item = "item" in meta.models
        # The item-vector searches, for the likes and for the dislikes, in one batch.
        queries: dict[str, tuple[SparseVector, int]] = {}
        if has_item and likes.size:
            if person.scale == "unit":
                values = np.ones(likes.size, dtype=np.float32)
            else:
                stars = person.stars(meta.rating_stats)
                values = like_weights(np.array([stars[m] for m in likes.tolist()]),
                                      meta.models["item"].get("rating_weights"))
            # The ratings were checked (recommend.check_ratings): sorted unique ids.
            queries["likes"] = (SparseVector(likes, values), fetch + int(p["candidates"]))
        if has_item and dislikes.size and p["dislike_weight"] and any_allowed:
            queries["dislikes"] = (SparseVector(dislikes,
                                                np.ones(dislikes.size, dtype=np.float32)),
                                   fetch + int(p["dislike_candidates"]))
        found_movies = dict(zip(queries, store.similar_movie_ids_batch(
            list(queries.values()), search))) if queries else {}
        item_found = 0
        if "likes" in found_movies:
            ids, scores = found_movies["likes"]
            item_found = ids.size
            # Cut at its limit, the search bounds every movie it did not return by its last.
            _place(item, catalog, ids, scores, floor=ids.size == queries["likes"][1])

        knn = None  # zeros unless the similar users are found
        liked_rows = None  # the catalog row of every like of the similar users
        found = 0
        share, knn_share, mean_power = shares(p["schedule"], len(person.ratings))
        if knn_share and likes.size:
            # Likes only: with a dislike at -1, the people who liked it drop out of the
            # neighbours (measured: recall@20 lower at every k, most with few ratings).
            unit = np.full(likes.size, 1.0 / np.sqrt(likes.size), dtype=np.float32)
            block, top, exact = nearest(store, SparseVector(likes, unit),
                                        int(p["neighbors"]), person.user_id,
                                        using=schema.LIKED_VECTOR)
            found = int(top.size)
            if found:
                # Each neighbour adds similarity^2 to every movie they liked.
                row, counts = block.liked_catalog_rows(
                    top, meta.rating_stats.z_at_least(schema.LIKED_STARS), catalog)
                weight = np.repeat(np.maximum(exact[top], 0.0) ** 2, counts)
                if row.size and row.min() < 0:  # a movie the catalog does not hold
                    known = row >= 0
                    row, weight = row[known], weight[known]
                knn = np.bincount(row, weights=weight, minlength=len(catalog))
                liked_rows = row
                top_knn = knn.max()
                if top_knn > 0:
                    knn /= top_knn

        if not found:
            knn_share = 0.0
            knn = np.zeros(len(catalog))
        if not item_found and found:  # no item model (or no item answer): neighbours only
            knn_share = 1.0
        quality = _powered(catalog, mean, mean_power)
        # Every part times ((rating_mean - 1) / 4) ** mean_power: among movies the person
        # would watch, the well-rated ones are the ones they are likely to like.
        parts = np.empty((3, len(catalog)))  # one row per part, one column per movie
        np.multiply(share * quality, prior, out=parts[0])
        np.multiply(((1 - share) * (1 - knn_share)) * quality, item, out=parts[1])
        np.multiply(((1 - share) * knn_share) * quality, knn, out=parts[2])
        score = parts[0] + parts[1]
        score += parts[2]
        if allowed is None:
            score[rows] = -np.inf
        else:
            np.copyto(score, -np.inf, where=~allowed)
        if "dislikes" in found_movies:
            # Movies most like the disliked ones lose up to dislike_weight of the best score
            # allowed (the barred ones are at -inf, which nothing lifts): each found movie's
            # penalty is its dislike score over the best one's, the others' none.
            at, near = _found_rows(catalog, *found_movies["dislikes"])
            if at.size:
                top = float(near[0])
                penalty = near / (top if top > 0 else 1.0)
                score[at] -= float(p["dislike_weight"]) * max(score.max(), 0.0) * penalty
        best = _best(score, catalog.ids, ask.limit)
        movies = [catalog.movie_at(row) for row in best.tolist()]
        whys = _explained(store, catalog, best, movies, parts[:, best], likes, found, liked_rows)
        return Answer(self.name, found, [Recommendation(movie, value, why) for movie, value, why
                                         in zip(movies, score[best].tolist(), whys)])


def shares(schedule, given: int) -> tuple[float, float, float]:
    """(the prior's share, the similar users' share of the personal parts, the rating-mean
    factor's power) for `given` ratings: the schedule's rows interpolated in log(count), the
    nearest row outside them."""
    try:
        return _shares_of(schedule, int(given))  # a tuple of tuples (the default): cached as is
    except TypeError:
        return _shares_of(_rows(schedule), int(given))


@functools.lru_cache(maxsize=1024)
def _shares_of(schedule, given: int) -> tuple[float, float, float]:
    return _shares(_rows(schedule), given)


def _rows(schedule) -> tuple[tuple[float, ...], ...]:
    try:
        return tuple(tuple(float(x) for x in row) for row in schedule)
    except (TypeError, ValueError):
        return ()


@functools.lru_cache(maxsize=1024)
def _shares(schedule: tuple[tuple[float, ...], ...], given: int) -> tuple[float, float, float]:
    rows = sorted(schedule)
    if not rows or any(len(row) != 4 or row[0] < 1 or not (0 <= row[1] <= 1 and 0 <= row[2] <= 1
                                                           and 0 <= row[3] <= 8) for row in rows):
        raise QueryError("schedule: rows of (ratings given >= 1, the prior's share and the "
                         "similar users' share, each between 0 and 1, the mean factor's power "
                         "between 0 and 8)", field=None)
    at = np.log(np.array([row[0] for row in rows]))
    n = np.log(max(given, 1))
    return tuple(float(np.interp(n, at, [row[c] for row in rows])) for c in (1, 2, 3))


def _cache_of(catalog: MovieCatalog) -> dict:
    # get, then setdefault on a miss: setdefault makes a weak reference at every call.
    cached = _PRIORS.get(catalog)
    return cached if cached is not None else _PRIORS.setdefault(catalog, {})


def _powered(catalog: MovieCatalog, mean: np.ndarray, power: float) -> np.ndarray:
    """((rating_mean - 1) / 4) ** power in catalog order, cached per power."""
    cached = _cache_of(catalog)
    key = ("mean", round(power, 6))
    if key not in cached:
        cached[key] = mean ** power if power else np.ones_like(mean)
    return cached[key]


def _prior(catalog: MovieCatalog, quality: float) -> tuple[np.ndarray, np.ndarray]:
    """Each movie's popularity prior in [0, 1], in catalog order: its rating count over the
    largest, times ((rating_mean - 1) / 4) ** quality (a well-rated movie is more likely liked
    than disliked), scaled so the best is 1; and (rating_mean - 1) / 4 itself."""
    cached = _cache_of(catalog)
    if quality not in cached:
        movies = catalog.take(catalog.ids)
        counts = np.array([m.rating_count for m in movies], dtype=np.float64)
        means = np.array([m.rating_mean if m.rating_mean is not None else 1.0 for m in movies])
        mean = np.clip((means - 1.0) / 4.0, 0.0, 1.0)
        prior = counts * mean**quality
        prior /= max(prior.max(), 1e-12)
        cached[quality] = (prior, mean)
    return cached[quality]


def _found_rows(catalog: MovieCatalog, ids: np.ndarray, scores: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """The catalog rows of a search's found movies and their scores, best first as the search
    returned them, without any the catalog does not hold (never, once ingested)."""
    rows = catalog.positions(ids)
    if rows.size and rows.min() < 0:
        known = rows >= 0
        rows, scores = rows[known], scores[known]
    return rows, scores


def _place(out: np.ndarray, catalog: MovieCatalog, ids: np.ndarray, scores: np.ndarray,
           floor: bool = False) -> None:
    """`scores` of `ids` (a search's, best first) written into `out` (catalog order), divided
    by the best one where it is positive; with `floor` (the search was cut at its limit), every
    other movie gets the lowest score found, which bounds theirs."""
    rows, scores = _found_rows(catalog, ids, scores)
    if not rows.size:
        return
    top = float(scores[0])
    scale = top if top > 0 else 1.0
    if floor:
        out[:] = max(float(scores[-1]), 0.0) / scale
    out[rows] = scores / scale


# _best bounds the limit-th best score from below by the limit-th best of every this many (a
# sample's), then selects among the few scores reaching that bound: one partition of a few
# thousand floats took 33 us of a 0.9 ms answer, the sample's and the few's 13 us together.
BEST_SAMPLE_STRIDE = 16


def _best(score: np.ndarray, ids: np.ndarray, limit: int) -> np.ndarray:
    """The rows of the `limit` best finite scores, best first, ties by movie id."""
    if score.size > limit:
        sample = score[::BEST_SAMPLE_STRIDE]
        bound = np.partition(sample, sample.size - limit)[sample.size - limit] \
            if sample.size > limit else -np.inf
        rows = np.flatnonzero(score >= bound)  # every one of the best among them
        if rows.size > limit:
            # Everything at least as good as the limit-th score, ties included, then the order.
            found = score[rows]
            rows = rows[found >= np.partition(found, found.size - limit)[found.size - limit]]
    else:
        rows = np.arange(score.size)
    rows = rows[np.isfinite(score[rows])]
    return rows[np.lexsort((ids[rows], -score[rows]))][:limit]


def _explained(store, catalog, best, movies, parts, likes, found, liked_rows) -> list[dict]:
    """Each answer's `why`, from its largest part (`parts`: one row per part, one column per
    answer, the rows of `best` and their `movies`): popular, the person's liked movies that
    pulled it up (item model), or how many of the similar users liked it (`liked_rows`: the
    catalog row of each of their likes, counted only for the answers that say it)."""
    if not best.size:
        return []
    lead = parts.argmax(axis=0).tolist()
    # The item model's reasons (text, movies) for the answers it leads, by answer.
    by_item = [k for k, part in enumerate(lead) if part == 1]
    reasons = dict(zip(by_item, liked_reasons(store, catalog, likes,
                                              [movies[k].movie_id for k in by_item]))) \
        if by_item and likes.size else {}  # the likes (sorted), each 1 in the item query
    # The rows of the answers that say how many of the similar users liked them: led by a
    # personal part without an item reason.
    counted = {}
    if liked_rows is not None:
        rows = best.tolist()
        counted = _raters(liked_rows, {k: rows[k] for k, part in enumerate(lead)
                                       if part and not reasons.get(k, ("",))[0]}, len(catalog))
    out = []
    for k, (movie, (popularity, item, neighbors)) in enumerate(
            zip(movies, parts.round(4).T.tolist())):
        why = {"parts": {"popularity": popularity, "item": item, "neighbors": neighbors}}
        text, top = reasons.get(k, ("", None))
        if not text and counted.get(k):
            text = f"liked by {counted[k]} of your {found} most similar users"
        if not text:
            mean = "" if movie.rating_mean is None else f", {movie.rating_mean:.2g} stars on average"
            text = f"popular: rated by {movie.rating_count:,} people{mean}"
        why["text"] = text
        if top is not None:
            why["movies"] = top
        out.append(why)
    return out


# Past this many answers to count, one bincount over the catalog costs less than a pass over
# the similar users' likes for each.
COUNT_EACH_MAX = 2


def _raters(liked_rows: np.ndarray, rows: dict[int, int], size: int) -> dict[int, int]:
    """{k: how many of the similar users liked the catalog row rows[k]} (`liked_rows`: the
    catalog row of each of their likes): a pass over their likes for each of a few rows, one
    bincount for more."""
    if len(rows) <= COUNT_EACH_MAX:
        return {k: int(np.count_nonzero(liked_rows == row)) for k, row in rows.items()}
    counts = np.bincount(liked_rows, minlength=size)
    return dict(zip(rows, counts[list(rows.values())].tolist()))
