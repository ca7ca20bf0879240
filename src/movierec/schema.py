"""The Qdrant schema, in one place: collection (alias) names, vector names, payload fields.

The ingest Job, the service, the chart's tests and the benchmarks all import these names.
"""

from __future__ import annotations

SCHEMA_VERSION = 1

# The largest movie or user id: sparse vector indices are u32 in Qdrant, and so are our ids.
MAX_ID = 2**32 - 1

# Aliases served to readers; each ingest writes new collections `<alias>-<version>` beside them.
USERS = "movielens"
MOVIES = "movies"

# Sparse vectors: a user's z-scored ratings (indices = movie ids), and a movie's learned
# item-item weights (indices = movie ids) for the item model.
RATINGS_VECTOR = "ratings"
ITEM_VECTOR = "item"
# The user-knn model's vector: the movies a user liked (rated at least LIKED_STARS), as a binary
# vector scaled to unit length, so that a dot product is the cosine similarity.
LIKED_VECTOR = "liked"
# From how many stars a rating is a like, everywhere: user-knn's liked vectors, the item model's
# training data and query, the web page (which reads it from GET /models).
LIKED_STARS = 3.0

USER_FIELDS = ("user_id", "gender", "age", "occupation", "zip")
MOVIE_FIELDS = ("movie_id", "title", "year", "genres", "rating_count", "rating_mean", "imdb_id")

# Payload fields the item model filters on, indexed on the server.
MOVIE_INDEXES = {"genres": "keyword", "year": "integer"}


def versioned(alias: str, version: str) -> str:
    """The physical collection an ingest writes for `alias`."""
    return f"{alias}-{version}"


def previous(alias: str, k: int) -> str:
    """The alias of the k-th previous complete version (k = 1: the one live before), kept for
    `movierec rollback`."""
    return f"{alias}-previous-{k}"
