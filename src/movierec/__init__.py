"""movierec: movie recommendations from MovieLens ratings, served from Qdrant sparse vectors."""

__version__ = "0.1.0"
