"""Errors a person can cause, each with a one-line message saying what is wrong and what to do."""


class MovierecError(Exception):
    """Base class: the CLI prints these as one line, the service maps them to 4xx/503."""


class DataError(MovierecError):
    """A dataset file is missing, malformed, or fails its checksum."""


class QueryError(MovierecError):
    """A recommendation request is invalid (unknown movie, empty, out of range); `field` names
    the part of the request at fault (the HTTP API's "field"), None when it is no one field."""

    def __init__(self, message: str, field: str | None = "ratings"):
        super().__init__(message)
        self.field = field


class NotFoundError(MovierecError):
    """A user or movie that does not exist."""


class NotServedError(MovierecError):
    """The live data lacks what the request needs: a model the ingest skipped, or a movie the
    model has no vector for."""


class StoreUnavailable(MovierecError):
    """Qdrant cannot be reached, or holds no ingested data yet."""


class StoreBusy(MovierecError):
    """The embedded store is locked by another process."""


class ConfigError(MovierecError):
    """A setting that cannot work with the store it points at (e.g. more replicas than peers)."""


class NothingToRollBack(MovierecError):
    """`movierec rollback` with no previous complete version kept."""
