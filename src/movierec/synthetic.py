"""MovieLens-shaped synthetic ratings: power-law movie popularity, heavy-tailed ratings per user.

Used by the tests (small, exact) and the scale benchmarks (25M, 100M ratings), with a fixed seed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from movierec.movielens import Dataset

GENRES = ["Action", "Adventure", "Comedy", "Drama", "Horror", "Romance", "Sci-Fi", "Thriller"]


def generate(
    n_users: int, n_movies: int, n_ratings: int, seed: int = 0, name: str = "synthetic"
) -> Dataset:
    """About n_ratings ratings (exactly, unless users would exceed the catalog), no duplicates."""
    rng = np.random.default_rng(seed)
    # Ratings per user: log-normal like ML-1M (min 20, median ~96, long tail), scaled to the total.
    raw = rng.lognormal(mean=4.6, sigma=0.9, size=n_users)
    per_user = np.maximum(1, np.round(raw / raw.sum() * n_ratings)).astype(np.int64)
    per_user = np.minimum(per_user, n_movies)
    # Movie popularity: Zipf-like weights over a random permutation of ids.
    popularity = 1.0 / np.arange(1, n_movies + 1) ** 0.9
    popularity /= popularity.sum()
    movie_of_rank = rng.permutation(n_movies) + 1
    user_ids = np.repeat(np.arange(1, n_users + 1, dtype=np.int64), per_user)
    # Draw with replacement, then drop repeats within a user; vectorized over all users.
    draws = rng.choice(n_movies, size=user_ids.size, p=popularity)
    movie_ids = movie_of_rank[draws].astype(np.int64)
    pairs = np.unique(user_ids * (n_movies + 1) + movie_ids)
    user_ids, movie_ids = pairs // (n_movies + 1), pairs % (n_movies + 1)
    # Stars: a per-user bias plus a per-movie quality, rounded to 1..5 like ML-1M's distribution.
    user_bias = rng.normal(0, 0.4, size=n_users + 1)
    movie_quality = rng.normal(0, 0.6, size=n_movies + 1)
    noise = rng.normal(0, 0.9, size=user_ids.size)
    stars = np.clip(np.round(3.6 + user_bias[user_ids] + movie_quality[movie_ids] + noise), 1, 5)
    ids = np.arange(1, n_movies + 1)
    movies = pd.DataFrame(
        {
            "movie_id": ids,
            "title": [f"Movie {i} ({1950 + i % 70})" for i in ids],
            "year": pd.array(1950 + ids % 70, dtype="Int64"),
            "genres": [[GENRES[i % len(GENRES)], GENRES[(i * 7) % len(GENRES)]] for i in ids],
        }
    )
    movies["genres"] = [sorted(set(g)) for g in movies["genres"]]
    users = pd.DataFrame({"user_id": np.unique(user_ids)})
    return Dataset(name, user_ids, movie_ids, stars.astype(np.float64), movies, users)


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
