"""blend: the default for new people, who give a handful of ratings. A popularity prior (the
movies' rating_count and rating_mean payloads, which every reader's catalog holds) blended with
two personal parts: the item model (one sparse Qdrant query against the movies' item vectors)
and the likes of the person's 50 most similar users (one sparse Qdrant query against the users'
liked vectors). The prior's share is prior_ratings / (prior_ratings + n) for n ratings given, so
it leads with one rating and fades as ratings are added; dislikes lower the movies most like
them (a second item-vector query) and the users who liked them. Measured with
`movierec evaluate --protocol new-people` (README, Quality)."""

from __future__ import annotations

import weakref

import numpy as np

from movierec import schema
from movierec.catalog import MovieCatalog
from movierec.models.base import Answer, Ask, Model, Person, Recommendation
from movierec.models.item import explanations, query_weight
from movierec.models.neighbors import aggregate, similar_users
from movierec.models.user_knn import liked_query
from movierec.store import MovieFilter, StoreReader
from movierec.vectors import SparseVector

# The prior of each catalog (one per live version), computed once: (ids, prior by quality).
_PRIORS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class BlendModel(Model):
    name = "blend"
    description = ("for new people: a popularity prior that fades as ratings are added, "
                   "blended with the item model and 50 similar users' likes; dislikes push "
                   "similar movies down")
    # Chosen on the validation people of `movierec evaluate --protocol new-people` (ml-1m).
    params = {"prior_ratings": 2.0, "knn_share": 0.5, "neighbors": 50, "quality": 2.0,
              "mean_power": 1.0, "dislike_weight": 0.3, "candidates": 100}
    user_vectors = (schema.RATINGS_VECTOR, schema.LIKED_VECTOR)
    movie_vectors = (schema.ITEM_VECTOR,)

    def ingest_params(self) -> dict:
        return {"liked_stars": schema.LIKED_STARS}

    def answer(self, store: StoreReader, person: Person, ask: Ask) -> Answer:
        p = ask.params
        meta = store.meta()
        catalog = store.catalog()
        signed = person.signed(meta.rating_stats)
        movies = np.array(sorted(signed), dtype=np.int64)
        sign = np.array([signed[m] for m in movies.tolist()])
        excluded = np.union1d(person.movie_ids, np.asarray(ask.exclude, dtype=np.int64))
        fetch = int(p["candidates"]) + ask.limit + len(excluded)
        mf = ask.movie_filter
        search = MovieFilter(tuple(excluded.tolist()), mf.genres, mf.year_min, mf.year_max) \
            if mf.filters_movies else MovieFilter()
        ids, prior, order, mean = _prior(catalog, float(p["quality"]))
        if mf.filters_movies:
            ranked = ids[order[catalog.allowed(ids[order], mf.genres, mf.year_min, mf.year_max)]]
        else:
            ranked = ids[order[:fetch + len(excluded)]]
        parts = [ranked[~np.isin(ranked, excluded)][:fetch]]

        item_ids, item_scores = np.zeros(0, dtype=np.int64), np.zeros(0)
        has_item = "item" in meta.models
        likes = movies[sign > 0]
        if has_item and likes.size:
            weights = meta.models["item"].get("rating_weights")
            stars = person.stars(meta.rating_stats) if person.scale != "unit" else None
            values = [query_weight(stars[m], "stars", weights) if stars else 1.0
                      for m in likes.tolist()]
            item_ids, item_scores = _search(store, SparseVector.checked(likes.tolist(), values),
                                            fetch, search)
            parts.append(item_ids)

        found, knn_ids, knn_scores, knn_raters = [], np.zeros(0, dtype=np.int64), None, None
        if p["knn_share"] and likes.size:
            # Likes only: with a dislike at -1, the people who liked it drop out of the
            # neighbours (measured: recall@20 lower at every k, most with few ratings).
            found = similar_users(store, liked_query({m: 1.0 for m in likes.tolist()}),
                                  int(p["neighbors"]), person.user_id,
                                  using=schema.LIKED_VECTOR)
            if found:
                similarity = np.maximum(np.array([n.score for n in found]), 0.0)
                c = aggregate(found, similarity**2,
                              meta.rating_stats.z_at_least(schema.LIKED_STARS))
                top = np.flatnonzero(c.scores > 0)
                top = top[np.argsort(-c.scores[top], kind="stable")[:fetch]]
                likers = aggregate(found, np.ones(len(found)),
                                   meta.rating_stats.z_at_least(schema.LIKED_STARS)).scores
                knn_ids, knn_scores, knn_raters = c.movies[top], c.scores[top], likers[top]
                parts.append(knn_ids)

        candidates = np.unique(np.concatenate(parts))
        candidates = candidates[~np.isin(candidates, excluded) & (catalog.positions(candidates) >= 0)]
        if mf.filters_movies:
            candidates = candidates[catalog.allowed(candidates, mf.genres, mf.year_min,
                                                    mf.year_max)]
        item = _normalized(candidates, item_ids, item_scores, floor=len(item_ids) == fetch)
        knn = _normalized(candidates, knn_ids, knn_scores)
        share = float(p["prior_ratings"]) / (float(p["prior_ratings"]) + len(person.ratings))
        knn_share = float(p["knn_share"]) if found else 0.0
        if not item_ids.size and found:  # no item model (or no item answer): neighbours only
            knn_share = 1.0
        contributions = np.stack([
            share * prior[np.searchsorted(ids, candidates)],
            (1 - share) * (1 - knn_share) * item,
            (1 - share) * knn_share * knn,
        ])
        if p["mean_power"]:
            # Every part times ((rating_mean - 1) / 4) ** mean_power: among movies the person
            # would watch, the well-rated ones are the ones they are likely to like.
            contributions = contributions * mean[np.searchsorted(ids, candidates)] ** float(
                p["mean_power"])
        score = contributions.sum(axis=0)
        dislikes = movies[sign < 0]
        if has_item and dislikes.size and p["dislike_weight"] and score.size:
            # Movies most like the disliked ones lose up to dislike_weight of the best score.
            near_ids, near = _search(store, SparseVector.checked(dislikes.tolist(),
                                                                 [1.0] * dislikes.size),
                                     fetch, search)
            score = score - float(p["dislike_weight"]) * max(score.max(), 0.0) * _normalized(
                candidates, near_ids, near)
        best = np.lexsort((candidates, -score))[: ask.limit]
        return Answer(self.name, len(found), _explained(
            store, catalog, candidates[best], score[best], contributions[:, best],
            likes, item_ids, found, knn_ids, knn_raters))


def _prior(catalog: MovieCatalog, quality: float):
    """Each movie's popularity prior in [0, 1]: its rating count over the largest, times
    ((rating_mean - 1) / 4) ** quality (a well-rated movie is more likely liked than disliked),
    scaled so the best is 1; with the catalog's ids, their order by prior (ties by id) and
    (rating_mean - 1) / 4 itself."""
    cached = _PRIORS.setdefault(catalog, {})
    if quality not in cached:
        movies = catalog.take(catalog.ids)
        counts = np.array([m.rating_count for m in movies], dtype=np.float64)
        means = np.array([m.rating_mean if m.rating_mean is not None else 1.0 for m in movies])
        mean = np.clip((means - 1.0) / 4.0, 0.0, 1.0)
        prior = counts * mean**quality
        prior /= max(prior.max(), 1e-12)
        cached[quality] = (catalog.ids, prior, np.lexsort((catalog.ids, -prior)), mean)
    return cached[quality]


def _search(store: StoreReader, query: SparseVector, limit: int,
            search: MovieFilter) -> tuple[np.ndarray, np.ndarray]:
    """The movies' item-vector search: (ids sorted, scores)."""
    hits = store.similar_movies(query, limit, search)
    ids = np.array([h.movie_id for h in hits], dtype=np.int64)
    scores = np.array([h.score for h in hits], dtype=np.float64)
    order = np.argsort(ids)
    return ids[order], scores[order]


def _normalized(candidates: np.ndarray, ids: np.ndarray, scores: np.ndarray | None,
                floor: bool = False) -> np.ndarray:
    """`scores` of `ids` placed on `candidates` and divided by the best positive one; others 0,
    or (`floor`: the search was cut at its limit) the lowest score found, which bounds theirs."""
    out = np.zeros(len(candidates))
    if scores is None or not len(ids):
        return out
    scale = scores.max() if scores.max() > 0 else 1.0
    if floor:
        out[:] = max(scores.min(), 0.0) / scale
    order = np.argsort(ids)
    ids, scores = ids[order], scores[order]
    pos = np.minimum(np.searchsorted(ids, candidates), len(ids) - 1)
    hit = ids[pos] == candidates
    out[hit] = scores[pos[hit]] / scale
    return out


def _explained(store, catalog, movie_ids, scores, contributions, likes, item_ids, found,
               knn_ids, knn_raters) -> list[Recommendation]:
    """Each answer explained by its largest part: popular, the person's liked movies that
    pulled it up (item model), or how many of the similar users liked it."""
    lead = contributions.argmax(axis=0)
    by_item = [int(m) for m, part in zip(movie_ids, lead) if part == 1]
    vectors = store.movie_vectors(by_item) if by_item else {}
    query = SparseVector.checked(likes.tolist(), [1.0] * likes.size) if likes.size else None
    item_whys = dict(zip(by_item, explanations(catalog, query, [vectors.get(m) for m in by_item])
                         if query is not None else []))
    raters = dict(zip(knn_ids.tolist(), (knn_raters if knn_raters is not None else [])))
    out = []
    for movie_id, score, part, shares in zip(movie_ids.tolist(), scores.tolist(), lead.tolist(),
                                             contributions.T.tolist()):
        movie = catalog.get(movie_id)
        if movie is None:
            continue
        why: dict = {"parts": {"popularity": round(shares[0], 4), "item": round(shares[1], 4),
                               "neighbors": round(shares[2], 4)}}
        if part == 1 and query is not None:
            why.update(item_whys.get(movie_id, {}))
        if part == 2 or (part == 1 and not why.get("text")):
            if movie_id in raters:
                why["text"] = (f"liked by {int(raters[movie_id])} of your {len(found)} most "
                               "similar users")
        if not why.get("text"):
            mean = "" if movie.rating_mean is None else f", {movie.rating_mean:.2g} stars on average"
            why["text"] = f"popular: rated by {movie.rating_count:,} people{mean}"
        out.append(Recommendation(movie, float(score), why))
    return out
