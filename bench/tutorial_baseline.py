"""The reference tutorial's pipeline as it is written, kept as the benchmarks' baseline.

Re-implemented from the tutorial's description (Qdrant's "collaborative filtering" tutorial on
MovieLens-1M): pandas with the python engine for the '::' files, z-scored ratings, an
itertuples loop building one sparse vector per user, qdrant-client in local mode, one
query_points call with vectors, and a Python loop summing the neighbours' ratings. Nothing here
is optimised on purpose: it is what the speed-ups are measured against.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pandas as pd
from qdrant_client import QdrantClient, models

COLLECTION = "movielens"


def load(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """users, movies, ratings, read with the python engine ('::' is a multi-char separator)."""
    folder = Path(folder)
    users = pd.read_csv(
        folder / "users.dat", sep="::", engine="python", encoding="latin-1",
        names=["user_id", "gender", "age", "occupation", "zip"],
    )
    movies = pd.read_csv(
        folder / "movies.dat", sep="::", engine="python", encoding="latin-1",
        names=["movie_id", "title", "genres"],
    )
    ratings = pd.read_csv(
        folder / "ratings.dat", sep="::", engine="python", encoding="latin-1",
        names=["user_id", "movie_id", "rating", "timestamp"],
    )
    # The tutorial's normalization: global mean and (pandas' default, sample) standard deviation.
    ratings["rating"] = (ratings.rating - ratings.rating.mean()) / ratings.rating.std()
    return users, movies, ratings


def user_sparse_vectors(ratings: pd.DataFrame) -> dict[int, dict[str, list]]:
    """One {"indices": [...], "values": [...]} per user, appended row by row."""
    vectors: dict[int, dict[str, list]] = defaultdict(lambda: {"indices": [], "values": []})
    for row in ratings.itertuples():
        vectors[row.user_id]["indices"].append(row.movie_id)
        vectors[row.user_id]["values"].append(row.rating)
    return vectors


def upload(client: QdrantClient, users: pd.DataFrame, vectors: dict[int, dict[str, list]]) -> None:
    client.create_collection(
        COLLECTION,
        vectors_config={},
        sparse_vectors_config={"ratings": models.SparseVectorParams()},
    )

    def points():
        for user in users.itertuples():
            vector = vectors[user.user_id]
            yield models.PointStruct(
                id=user.user_id,
                vector={"ratings": models.SparseVector(indices=vector["indices"],
                                                      values=vector["values"])},
                payload=user._asdict(),
            )

    client.upload_points(COLLECTION, points())


def ingest(folder: Path, client: QdrantClient | None = None):
    """The whole tutorial ingest; returns (client, movies) ready to query."""
    users, movies, ratings = load(folder)
    vectors = user_sparse_vectors(ratings)
    client = client or QdrantClient(":memory:")
    upload(client, users, vectors)
    return client, movies


def to_vector(my_ratings: dict[int, float]) -> models.SparseVector:
    vector = models.SparseVector(indices=[], values=[])
    for movie_id, rating in my_ratings.items():
        vector.indices.append(movie_id)
        vector.values.append(rating)
    return vector


def recommend(client: QdrantClient, movies: pd.DataFrame, my_ratings: dict[int, float],
              limit: int = 5, neighbors: int = 20) -> list[tuple[str, float]]:
    """Top-20 similar users with their vectors, then a Python loop summing their ratings."""
    results = client.query_points(
        COLLECTION, query=to_vector(my_ratings), using="ratings", with_vectors=True,
        limit=neighbors,
    ).points
    movie_scores: dict[int, float] = defaultdict(lambda: 0.0)
    for user in results:
        user_ratings = user.vector["ratings"]
        for movie_id, rating in zip(user_ratings.indices, user_ratings.values):
            if movie_id in my_ratings:
                continue
            movie_scores[movie_id] += rating
    top = sorted(movie_scores.items(), key=lambda item: item[1], reverse=True)[:limit]
    return [(movies[movies.movie_id == movie_id].title.values[0], score) for movie_id, score in top]
