"""Settings from the environment (12-factor). Every variable the code reads is declared here."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Typed settings. Unset QDRANT_URL means the embedded engine under QDRANT_PATH."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    # Where the data lives. QDRANT_URL: http(s)://host:6333 for a server; "local:PATH" or
    # "local::memory:" for qdrant-client's local mode (the server code path without a server).
    qdrant_url: str | None = None
    qdrant_api_key: SecretStr | None = None
    qdrant_path: Path = Path(".movierec/qdrant")
    qdrant_prefer_grpc: bool = False
    qdrant_timeout: float = Field(default=10.0, gt=0)
    # Distributed Qdrant (a server with several peers): shards per collection, copies of each
    # shard, and how many copies must confirm a write. Unset: one shard per peer (Qdrant's own
    # default), 2 copies when there are 2 or more peers (so one peer can be lost), and writes
    # confirmed by every copy. Ignored by the embedded store, which is one process.
    qdrant_shards: int | None = Field(default=None, ge=1, le=1024)
    qdrant_replication_factor: int | None = Field(default=None, ge=1, le=64)
    qdrant_write_consistency: int | None = Field(default=None, ge=1, le=64)
    # Complete versions kept besides the live one, for `movierec rollback` (both stores).
    keep_previous_versions: int = Field(default=1, ge=0, le=20)

    # Which dataset and where to find it.
    movielens_dataset: str = "ml-1m"
    movielens_dir: Path | None = None
    movielens_cache: Path = Path(".movierec/cache")
    movielens_url: str | None = None
    movielens_md5: str | None = None

    # The HTTP service.
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    log_level: str = "info"
    service_api_key: SecretStr | None = None
    cors_origins: str = ""

    @field_validator("qdrant_shards", "qdrant_replication_factor", "qdrant_write_consistency",
                     mode="before")
    @classmethod
    def _empty_number_is_unset(cls, value: object) -> object:
        # `QDRANT_SHARDS=` (the chart's default) means "let Qdrant decide".
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("qdrant_url", "movielens_url", "movielens_md5", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # `QDRANT_URL=` in a shell or a ConfigMap means "not set", not "empty URL".
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("qdrant_api_key", "service_api_key", mode="before")
    @classmethod
    def _empty_secret_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("movielens_dir", mode="before")
    @classmethod
    def _empty_dir_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def store_kind(self) -> str:
        """'embedded' (qdrant-edge), 'local' (qdrant-client local mode) or 'server'."""
        if not self.qdrant_url:
            return "embedded"
        if self.qdrant_url.startswith("local:"):
            return "local"
        return "server"

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
