"""The movie catalog held in memory by every reader: titles, years and genres by id, title search.

Movies are few (3,883 in ml-1m, 87k in ml-32m), so lookups are numpy searches over sorted ids
rather than a round-trip to Qdrant per recommendation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from movierec.vectors import IdPositions


@dataclass(frozen=True)
class Movie:
    movie_id: int
    title: str
    year: int | None
    genres: list[str]
    rating_count: int = 0
    rating_mean: float | None = None
    imdb_id: int | None = None  # the number of its IMDb tt-id, where the dataset links one

    def to_dict(self) -> dict:
        return {
            "movie_id": self.movie_id,
            "title": self.title,
            "year": self.year,
            "genres": list(self.genres),
            "rating_count": self.rating_count,
            "rating_mean": self.rating_mean,
        }


class MovieCatalog:
    """Movies sorted by id, with vectorized membership tests and a case-insensitive title search."""

    def __init__(self, movies: list[Movie]):
        movies = sorted(movies, key=lambda m: m.movie_id)
        self._movies = movies
        self.ids = np.array([m.movie_id for m in movies], dtype=np.int64)
        self._folded = [m.title.casefold() for m in movies]
        self._popularity = np.array([m.rating_count for m in movies], dtype=np.int64)
        self._by_popularity = np.lexsort((self.ids, -self._popularity))
        self._years = np.array([m.year if m.year is not None else -1 for m in movies],
                               dtype=np.int64)
        self.genres = sorted({g for m in movies for g in m.genres})
        # One boolean column per genre: filters are vectorized over any candidate set.
        self._genre_matrix = np.zeros((len(movies), len(self.genres)), dtype=bool)
        column = {g: k for k, g in enumerate(self.genres)}
        for row, m in enumerate(movies):
            for g in m.genres:
                self._genre_matrix[row, column[g]] = True
        self._position_of: IdPositions | None = None
        self._by_id: dict[int, Movie] | None = None
        self.titles = {m.movie_id: m.title for m in movies}  # what explanations name

    @classmethod
    def from_payloads(cls, payloads: list[dict]) -> MovieCatalog:
        return cls(
            [
                Movie(
                    movie_id=int(p["movie_id"]),
                    title=str(p["title"]),
                    year=None if p.get("year") is None else int(p["year"]),
                    genres=list(p.get("genres") or []),
                    rating_count=int(p.get("rating_count") or 0),
                    rating_mean=p.get("rating_mean"),
                    imdb_id=None if p.get("imdb_id") is None else int(p["imdb_id"]),
                )
                for p in payloads
            ]
        )

    def __len__(self) -> int:
        return len(self._movies)

    def __iter__(self):
        return iter(self._movies)

    def positions(self, movie_ids: np.ndarray) -> np.ndarray:
        """Index of each id in the catalog, -1 where unknown: one lookup in a table indexed by
        movie id where the ids allow it (vectors.IdPositions, built on first use; an answer
        looks up thousands of ids)."""
        if self._position_of is None:
            self._position_of = IdPositions(self.ids)
        return self._position_of(movie_ids)

    def unknown(self, movie_ids) -> list[int]:
        ids = np.asarray(list(movie_ids), dtype=np.int64)
        return ids[self.positions(ids) < 0].tolist()

    def get(self, movie_id: int) -> Movie | None:
        if self._by_id is None:
            self._by_id = {m.movie_id: m for m in self._movies}
        return self._by_id.get(int(movie_id))

    def take(self, movie_ids) -> list[Movie]:
        return [self._movies[p] for p in self.positions(np.asarray(movie_ids)) if p >= 0]

    def mask(self, genres=(), year_min=None, year_max=None) -> np.ndarray:
        """`allowed` for every movie of the catalog, in catalog order."""
        ok = np.ones(len(self._movies), dtype=bool)
        if genres:
            columns = [self.genres.index(g) for g in genres if g in self.genres]
            ok &= self._genre_matrix[:, columns].any(axis=1) if columns else False
        if year_min is not None:
            ok &= self._years >= year_min
        if year_max is not None:
            ok &= (self._years <= year_max) & (self._years >= 0)
        return ok

    def movie_at(self, row: int) -> Movie:
        return self._movies[row]

    def allowed(self, movie_ids, genres=(), year_min=None, year_max=None) -> np.ndarray:
        """Mask of the movies that have one of `genres` (if any) and a year in the range."""
        pos = self.positions(np.asarray(movie_ids))
        ok = pos >= 0
        pos = np.where(ok, pos, 0)
        if genres:
            columns = [self.genres.index(g) for g in genres if g in self.genres]
            ok &= self._genre_matrix[pos][:, columns].any(axis=1) if columns else False
        if year_min is not None:
            ok &= self._years[pos] >= year_min
        if year_max is not None:
            ok &= (self._years[pos] <= year_max) & (self._years[pos] >= 0)
        return ok

    def most_rated(self, limit: int = 10, exclude=(), genres=(), year_min=None,
                   year_max=None) -> list[Movie]:
        """The `limit` movies with the most ratings (ties by id), but the excluded ones, among
        those passing the genre/year filters."""
        order = self._by_popularity
        if genres or year_min is not None or year_max is not None:
            order = order[self.allowed(self.ids[order], genres, year_min, year_max)]
        out: list[Movie] = []
        skip = {int(m) for m in np.asarray(exclude).ravel().tolist()}
        # Walk the popularity order: a person's few rated movies cost a few extra steps.
        for row in order[: limit + len(skip)].tolist():
            movie = self._movies[row]
            if movie.movie_id not in skip:
                out.append(movie)
                if len(out) == limit:
                    break
        return out

    def search(self, text: str, limit: int = 10) -> list[Movie]:
        """Titles containing `text` (case-insensitive); prefix matches first, then most rated."""
        needle = text.casefold().strip()
        if not needle:
            return []
        hits = [i for i, title in enumerate(self._folded) if needle in title]
        if not hits:
            return []
        hits_arr = np.array(hits)
        # "matrix" should find "Matrix, The (1999)" first: a match at the start of the title,
        # or right after "The "/"A ", ranks above one in the middle; then popularity; then id.
        starts = np.array(
            [0 if self._folded[i].startswith(needle) else 1 for i in hits], dtype=np.int64
        )
        order = np.lexsort((self.ids[hits_arr], -self._popularity[hits_arr], starts))
        return [self._movies[i] for i in hits_arr[order][:limit]]
