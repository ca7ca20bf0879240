"""MovieLens-shaped synthetic ratings: power-law movie popularity, heavy-tailed ratings per user.

Used by the tests (small, exact) and the scale benchmarks (1M to 100M ratings), with a fixed seed.
The shape follows MovieLens (`make bench` prints it beside ML-1M's):
- ratings per user: at least 20 (as in every MovieLens set), log-normal above that, scaled to
  the requested total, at most 60% of the catalog (ML-1M's heaviest user rated 62%);
- movie popularity: Zipf-Mandelbrot, weight 1 / (rank + q), with q set so the most popular
  movie gets 0.6% of the draws; once each user's repeats are skipped it is rated by 54% of the
  users at ML-1M's size and 51% at ML-25M's (MovieLens: 57% and 50%); ids are a random
  permutation of ranks;
- each user's movies: drawn by popularity without replacement (successive draws, repeats
  skipped), in draw order, like MovieLens files (sorted by user, not by movie);
- stars: 3.6 + user bias + movie quality + noise, rounded to 1..5 (ML-1M: mean 3.58, sd 1.12).
Everything is vectorized (sorts of packed u64 keys), so 100M ratings take about a minute.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from movierec.movielens import Dataset

GENRES = ["Action", "Adventure", "Comedy", "Drama", "Horror", "Romance", "Sci-Fi", "Thriller"]

MIN_PER_USER = 20
MAX_CATALOG_SHARE = 0.6
PER_USER_SIGMA = 1.0
TOP_MOVIE_SHARE = 0.006  # of the draws, before repeats are skipped


def generate(
    n_users: int, n_movies: int, n_ratings: int, seed: int = 0, name: str = "synthetic"
) -> Dataset:
    """n_ratings ratings (exactly, unless users would exceed the catalog), no duplicates."""
    rng = np.random.default_rng(seed)
    counts = ratings_per_user(rng, n_users, n_movies, n_ratings)
    popularity = movie_popularity(n_movies)
    movie_of_rank = rng.permutation(n_movies) + 1
    users, ranks = _draw_without_replacement(rng, counts, popularity)
    user_ids = users.astype(np.int64) + 1
    del users
    movie_ids = movie_of_rank[ranks].astype(np.int64)
    del ranks
    # Stars: a per-user bias plus a per-movie quality, rounded to 1..5 like ML-1M's distribution.
    user_bias = rng.normal(0, 0.4, size=n_users + 1)
    movie_quality = rng.normal(0, 0.6, size=n_movies + 1)
    stars = rng.normal(3.6, 0.9, size=user_ids.size)
    stars += user_bias[user_ids]
    stars += movie_quality[movie_ids]
    np.clip(np.round(stars, out=stars), 1, 5, out=stars)
    ids = np.arange(1, n_movies + 1)
    movies = pd.DataFrame(
        {
            "movie_id": ids,
            "title": [f"Movie {i} ({1950 + i % 70})" for i in ids],
            "year": pd.array(1950 + ids % 70, dtype="Int64"),
            "genres": [sorted({GENRES[i % len(GENRES)], GENRES[(i * 7) % len(GENRES)]})
                       for i in ids],
        }
    )
    users_frame = pd.DataFrame({"user_id": np.unique(user_ids)})
    return Dataset(name, user_ids, movie_ids, stars, movies, users_frame)


def ratings_per_user(rng: np.random.Generator, n_users: int, n_movies: int,
                     n_ratings: int) -> np.ndarray:
    """How many movies each user rates: a floor, a log-normal tail, summing to n_ratings."""
    cap = max(1, int(MAX_CATALOG_SHARE * n_movies))
    floor = int(min(MIN_PER_USER, max(1, n_ratings // max(n_users, 1) // 2), cap))
    weight = rng.lognormal(0.0, PER_USER_SIGMA, size=n_users)
    budget = max(0, n_ratings - floor * n_users)
    counts = np.minimum(floor + np.floor(weight / weight.sum() * budget).astype(np.int64), cap)
    # Rounding and the cap leave a remainder: one more rating each for users with room, picked
    # by the same weights, until the total is exact or every user is at the cap.
    missing = n_ratings - int(counts.sum())
    while missing > 0:
        room = counts < cap
        if not room.any():
            break
        take = min(missing, int(room.sum()))
        p = np.where(room, weight, 0.0)
        chosen = rng.choice(n_users, size=take, replace=False, p=p / p.sum())
        counts[chosen] += 1
        missing -= take
    return counts


def movie_popularity(n_movies: int) -> np.ndarray:
    """Draw probabilities by popularity rank: 1 / (rank + q), the top one TOP_MOVIE_SHARE."""
    ranks = np.arange(1, n_movies + 1, dtype=np.float64)

    def top_share(q: float) -> float:
        return (1.0 / (1.0 + q)) / float(np.sum(1.0 / (ranks + q)))

    low, high = 0.0, 10.0 * n_movies
    if top_share(high) > TOP_MOVIE_SHARE:  # a small catalog: as flat as it can be
        low = high
    else:
        for _ in range(60):  # bisection: top_share falls as q grows
            mid = (low + high) / 2
            low, high = (mid, high) if top_share(mid) > TOP_MOVIE_SHARE else (low, mid)
    weights = 1.0 / (ranks + low)
    return weights / weights.sum()


def _draw_without_replacement(
    rng: np.random.Generator, counts: np.ndarray, popularity: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(user, movie rank) pairs: counts[u] distinct movies per user, drawn by popularity.

    Successive draws with repeats skipped, done for all users at once: oversample, keep each
    user's first `counts[u]` distinct draws, and draw again only for users left short.
    """
    n_users, n_movies = counts.size, popularity.size
    cdf = np.cumsum(popularity)
    cdf /= cdf[-1]
    done_users: list[np.ndarray] = []
    done_movies: list[np.ndarray] = []
    # int32 ids: half the memory of int64 at 100M ratings.
    pending = np.flatnonzero(counts > 0).astype(np.int32)
    kept_users = np.empty(0, dtype=np.int32)  # what pending users already have, user-major
    kept_movies = np.empty(0, dtype=np.int32)
    factor = 1.1
    for _ in range(12):
        if not pending.size:
            break
        target = counts[pending]
        have = np.bincount(np.searchsorted(pending, kept_users), minlength=pending.size)
        fresh = np.ceil((target - have) * factor).astype(np.int64) + 2
        new_users = np.repeat(pending, fresh)
        new_movies = np.searchsorted(cdf, rng.random(new_users.size), side="right")
        new_movies = np.minimum(new_movies, n_movies - 1).astype(np.int32)
        if kept_users.size:
            # Each user's sequence: what it already has first, then the new draws.
            users = np.concatenate([kept_users, new_users])
            movies = np.concatenate([kept_movies, new_movies])
            order = np.argsort(users, kind="stable")
            users, movies = users[order], movies[order]
            del order
        else:
            users, movies = new_users, new_movies
        del new_users, new_movies
        users, movies = _first_distinct(users, movies, n_users, n_movies)
        got = np.bincount(np.searchsorted(pending, users), minlength=pending.size)
        # Keep each user's first `target` distinct movies (in draw order).
        starts = np.concatenate([[0], np.cumsum(got)[:-1]])
        rank_in_user = np.arange(users.size) - np.repeat(starts, got)
        keep = rank_in_user < np.repeat(target, got)
        users, movies = users[keep], movies[keep]
        full = np.repeat(got >= target, np.minimum(got, target))
        done_users.append(users[full])
        done_movies.append(movies[full])
        kept_users, kept_movies = users[~full], movies[~full]
        pending = pending[got < target]
        factor *= 2
    # Users still short (heavy users of a small catalog) keep what they have: the catalog's
    # tail is too unlikely to reach by sampling; their count is a little under the target.
    done_users.append(kept_users)
    done_movies.append(kept_movies)
    users = np.concatenate(done_users)
    movies = np.concatenate(done_movies)
    order = np.argsort(users, kind="stable")
    return users[order], movies[order]


def _first_distinct(users: np.ndarray, movies: np.ndarray, n_users: int, n_movies: int):
    """Per user (users sorted, stable), each movie's first draw, still in draw order."""
    position = np.arange(users.size, dtype=np.int64)
    ub, mb, pb = (int(n).bit_length() for n in (n_users, n_movies, users.size))
    if ub + mb + pb <= 63:
        # Pack (user, movie, position) in one u64: one unstable SIMD sort orders by pair then
        # position; the first of each pair is its first draw; a second sort restores draw order.
        keys = (users.astype(np.uint64) << np.uint64(mb + pb)) | (
            movies.astype(np.uint64) << np.uint64(pb)) | position.astype(np.uint64)
        keys.sort()
        pair = keys >> np.uint64(pb)
        first = np.concatenate([[True], pair[1:] != pair[:-1]])
        del pair
        keys = keys[first]
        pos = keys & np.uint64((1 << pb) - 1)
        pos.sort()
        pos = pos.astype(np.int64)
    else:
        pair = users.astype(np.int64) * n_movies + movies
        _, first_index = np.unique(pair, return_index=True)
        pos = np.sort(first_index)
    return users[pos], movies[pos]


def write_dat(dataset: Dataset, folder: Path) -> Path:
    """Write `dataset` in the ml-1m '::' format (ratings.dat, movies.dat), fast."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ratings = np.column_stack(
        [dataset.user_ids, dataset.movie_ids, dataset.ratings.astype(np.int64),
         np.zeros(dataset.user_ids.size, dtype=np.int64)]
    )
    frame = pd.DataFrame(ratings)
    text = frame.to_csv(sep="\t", header=False, index=False).replace("\t", "::")
    (folder / "ratings.dat").write_text(text)
    lines = [
        f"{m}::{t}::{'|'.join(g)}"
        for m, t, g in zip(dataset.movies["movie_id"], dataset.movies["title"], dataset.movies["genres"])
    ]
    (folder / "movies.dat").write_text("\n".join(lines) + "\n", encoding="latin-1")
    return folder


def write_csv(dataset: Dataset, folder: Path, chunk: int = 5_000_000) -> Path:
    """Write `dataset` in the ml-25m csv format (ratings.csv, movies.csv), vectorized.

    Ratings are whole stars written as "4.0"; timestamps are made up (ten digits, like
    MovieLens'), so the file parses at a realistic number of bytes per rating.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stamps_rng = np.random.default_rng(0)
    with open(folder / "ratings.csv", "wb") as out:
        out.write(b"userId,movieId,rating,timestamp\n")
        for start in range(0, dataset.n_ratings, chunk):
            stop = min(start + chunk, dataset.n_ratings)
            stamps = stamps_rng.integers(1_000_000_000, 1_600_000_000, size=stop - start)
            out.write(_csv_lines([
                dataset.user_ids[start:stop], dataset.movie_ids[start:stop],
                dataset.ratings[start:stop].astype(np.int64), stamps,
            ], suffixes=[b"", b"", b".0", b""]))
    movies = dataset.movies
    lines = [
        f'{m},"{t}",{"|".join(g) or "(no genres listed)"}'
        for m, t, g in zip(movies["movie_id"], movies["title"], movies["genres"])
    ]
    (folder / "movies.csv").write_text("movieId,title,genres\n" + "\n".join(lines) + "\n",
                                       encoding="utf-8")
    return folder


def _csv_lines(columns: list[np.ndarray], suffixes: list[bytes]) -> bytes:
    """Non-negative integer columns as comma-separated decimal lines, without a Python loop."""
    n = columns[0].size
    parts, keep = [], []
    for k, (values, suffix) in enumerate(zip(columns, suffixes)):
        values = values.astype(np.int64)
        width = max(1, len(str(int(values.max())))) if n else 1
        digits = np.empty((n, width), dtype=np.uint8)
        rest = values.copy()
        for j in range(width - 1, -1, -1):
            digits[:, j] = rest % 10 + 48
            rest //= 10
        # Leading zeros are dropped (a value's own digits, and at least one).
        length = np.ones(n, dtype=np.int64)
        for j in range(1, width):
            length += values >= 10**j
        parts.append(digits)
        keep.append(np.arange(width)[None, :] >= (width - length)[:, None])
        tail = suffix + (b"\n" if k == len(columns) - 1 else b",")
        fixed = np.frombuffer(tail, dtype=np.uint8)
        parts.append(np.broadcast_to(fixed, (n, fixed.size)))
        keep.append(np.ones((n, fixed.size), dtype=bool))
    table = np.concatenate(parts, axis=1)
    mask = np.concatenate(keep, axis=1)
    return table[mask].tobytes()
