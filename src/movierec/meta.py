"""What an ingest records about the data it wrote, stored with it (the embedded store's meta.json,
a server collection's metadata) and read back by every reader as one typed object."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

from movierec import schema
from movierec.errors import StoreUnavailable
from movierec.vectors import RatingStats


@dataclass(frozen=True)
class IngestMeta:
    """One ingested version: the dataset, its counts, the rating statistics the vectors were
    normalized with, and each model's ingest parameters (a model is served when it is here)."""

    dataset: str
    users: int
    movies: int
    ratings: int
    rating_stats: RatingStats
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    created_at: str = field(
        default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    schema_version: int = schema.SCHEMA_VERSION
    version: str | None = None

    def with_version(self, version: str) -> IngestMeta:
        return replace(self, version=version)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "dataset": self.dataset,
            "users": self.users,
            "movies": self.movies,
            "ratings": self.ratings,
            "rating_stats": self.rating_stats.to_dict(),
            "models": self.models,
            "created_at": self.created_at,
            "version": self.version,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str) -> IngestMeta:
        """Read back what to_dict wrote; anything else is a store to re-ingest, said in one line."""
        try:
            stats = data["rating_stats"]
            return cls(
                dataset=str(data["dataset"]),
                users=int(data["users"]),
                movies=int(data["movies"]),
                ratings=int(data["ratings"]),
                rating_stats=RatingStats(float(stats["mean"]), float(stats["std"])),
                models={str(k): dict(v or {}) for k, v in (data.get("models") or {}).items()},
                created_at=str(data.get("created_at", "")),
                schema_version=int(data.get("schema_version", 0)),
                version=data.get("version"),
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            raise StoreUnavailable(
                f"the metadata of {where} is missing or damaged; run `movierec ingest` again"
            ) from None
