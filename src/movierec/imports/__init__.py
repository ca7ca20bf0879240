"""Bring your own ratings: a Letterboxd, IMDb or movie_id,rating export (formats.py), matched
to the live catalog (matching.py), as star ratings ready for recommend(), with every row that
did not make it named with its reason."""

from __future__ import annotations

from dataclasses import dataclass

from movierec.catalog import MovieCatalog
from movierec.imports.formats import FORMATS, MAX_ROWS, ExportError, parse
from movierec.imports.matching import Matched, Unmatched, title_index, title_key

__all__ = ["FORMATS", "MAX_ROWS", "ExportError", "ImportResult", "Matched", "Unmatched",
           "read_ratings", "title_key"]


@dataclass(frozen=True)
class ImportResult:
    format: str
    rows: int
    matched: list[Matched]
    unmatched: list[Unmatched]

    @property
    def ratings(self) -> dict[int, float]:
        """Movie id -> stars, for recommend(..., scale="stars")."""
        return {m.movie.movie_id: m.stars for m in self.matched}

    def to_dict(self) -> dict:
        return {"format": self.format, "rows": self.rows,
                "ratings": {str(k): v for k, v in self.ratings.items()},
                "matched": [m.to_dict() for m in self.matched],
                "unmatched": [u.to_dict() for u in self.unmatched]}


def read_ratings(catalog: MovieCatalog, data: bytes, format: str = "auto",  # noqa: A002
                 max_ratings: int | None = None) -> ImportResult:
    """An export's rows matched to `catalog`. A file that is no export raises ExportError; a row
    that cannot be used is in `unmatched` with its reason (never dropped). One movie named by two
    rows keeps the first; past `max_ratings` matched movies, the most recently rated are kept."""
    parsed = parse(data, format)
    index = title_index(catalog)
    unmatched = [Unmatched(p.line, p.reason, p.title, p.year) for p in parsed.problems]
    matched: list[Matched] = []
    first_line: dict[int, int] = {}
    dates: dict[int, str] = {}
    for row in parsed.rows:
        outcome = index.match(row)
        if isinstance(outcome, Unmatched):
            unmatched.append(outcome)
            continue
        movie_id = outcome.movie.movie_id
        if movie_id in first_line:
            unmatched.append(Unmatched(row.line, f"the same movie as line {first_line[movie_id]} "
                                       f"({outcome.movie.title}); that rating is kept",
                                       row.title, row.year))
            continue
        first_line[movie_id] = row.line
        dates[row.line] = row.date or ""
        matched.append(outcome)
    if max_ratings is not None and len(matched) > max_ratings:
        # ISO dates sort as text; the newest first, then the file's order.
        newest = sorted(matched, key=lambda m: dates[m.line], reverse=True)
        kept = {m.line for m in newest[:max_ratings]}
        unmatched += [Unmatched(m.line, f"over the {max_ratings:,} ratings a recommendation can "
                                "use (the most recently rated are kept)", m.title or m.movie.title,
                                m.year) for m in matched if m.line not in kept]
        matched = [m for m in matched if m.line in kept]
    unmatched.sort(key=lambda u: u.line)
    return ImportResult(parsed.format, len(parsed.rows) + len(parsed.problems), matched,
                        unmatched)
