"""The served models behind one seam: every list of models (the API schema, GET /models, the CLI's
choices, the ingest's vectors, the evaluation) derives from REGISTRY.

To add a model: write one module here with a `Model` subclass (models/base.py says what it
declares), and add one line to REGISTRY below. Its position is its rank: when a request names no
model, the first one the live data holds answers.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from movierec.errors import QueryError
from movierec.meta import IngestMeta
from movierec.models.base import Answer, Ask, Model, Person, Recommendation
from movierec.models.blend import BlendModel
from movierec.models.item import ItemModel
from movierec.models.popular import PopularModel
from movierec.models.tutorial import TutorialModel
from movierec.models.user_knn import UserKnnModel

__all__ = ["REGISTRY", "Answer", "Ask", "Model", "Person", "Recommendation", "Registry"]


class Registry:
    """The registered models, best first for a new person."""

    def __init__(self, models: Iterable[Model], for_users: tuple[str, ...], for_no_ratings: str):
        self._models = {m.name: m for m in models}
        # What answers an existing user (GET /users/{id}/recommendations) when none is named:
        # the first of these the live data holds (the best on the existing-users protocol).
        self.for_users = tuple(self.get(name).name for name in for_users)
        # What answers a person who has rated nothing yet, whichever model they named: the
        # others need at least one rating to answer from.
        self.for_no_ratings = self.get(for_no_ratings).name

    def __iter__(self) -> Iterator[Model]:
        return iter(self._models.values())

    def names(self) -> list[str]:
        return list(self._models)

    def unlearned(self) -> list[str]:
        """The models that learn nothing at ingest (a quick ingest prepares only these)."""
        return [m.name for m in self if m.trainer is None]

    def get(self, name: str) -> Model:
        try:
            return self._models[name]
        except KeyError:
            raise QueryError(f"unknown model {name!r}: choose one of "
                             f"{', '.join(self._models)}", field="model") from None

    def available(self, meta: IngestMeta) -> list[str]:
        """The models the live data holds (the ingest recorded them), best first."""
        return [name for name in self._models if name in meta.models]

    def default(self, meta: IngestMeta) -> str:
        available = self.available(meta)
        if not available:
            raise QueryError("the live data holds no model: run `movierec ingest` again",
                             field=None)
        return available[0]

    def users_default(self, meta: IngestMeta) -> str:
        """The model for an existing user when none is named: the first of `for_users` the
        live data holds, else the default."""
        return next((name for name in self.for_users if name in meta.models), None) \
            or self.default(meta)

    def resolve(self, name: str | None, meta: IngestMeta) -> Model:
        """The model to answer with: `name`, or the default; one the live data holds."""
        if name is None:
            return self.get(self.default(meta))
        model = self.get(name)
        if name not in meta.models:
            raise QueryError(f"model {name!r} is not in the live data: ingest it (it is "
                             "learned at ingest unless the ingest was told to skip it)",
                             field="model")
        return model

    def user_vector_names(self, names: Iterable[str] | None = None) -> tuple[str, ...]:
        """The named sparse vectors of the users collection, for these models (default all)."""
        return _union(m.user_vectors for m in self._select(names))

    def movie_vector_names(self, names: Iterable[str] | None = None) -> tuple[str, ...]:
        return _union(m.movie_vectors for m in self._select(names))

    def _select(self, names: Iterable[str] | None) -> list[Model]:
        return list(self) if names is None else [self.get(n) for n in names]


def _union(groups: Iterable[tuple[str, ...]]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for group in groups:
        seen.update(dict.fromkeys(group))
    return tuple(seen)


REGISTRY = Registry(
    [
        BlendModel(),
        ItemModel(),
        UserKnnModel(),
        TutorialModel(),
        PopularModel(),
    ],
    for_users=("item", "tutorial"),
    for_no_ratings="popular",
)
