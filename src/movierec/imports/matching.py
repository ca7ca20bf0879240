"""Matching exported rows to the live catalog: by IMDb id where the dataset links them, by
movie id for a plain csv, and otherwise by normalized title and year (one year either way).

MovieLens writes "Matrix, The (1999)" and "City of Lost Children, The (Cité des enfants perdus,
La) (1995)"; Letterboxd writes "The Matrix" and "The City of Lost Children". A title's key is its
words with accents, case, punctuation and one leading article (in any of the languages
MovieLens moves to the end) removed; each MovieLens title is indexed under its main name and its
alternative names in parentheses, and, as a fallback, under the parts around a colon or a dash
("Star Wars: Episode IV - A New Hope" is Letterboxd's "Star Wars", 1977).
"""

from __future__ import annotations

import re
import unicodedata
import weakref
from collections import defaultdict
from dataclasses import dataclass

from movierec.catalog import Movie, MovieCatalog
from movierec.imports.formats import ExportRow

# Articles MovieLens moves behind the title ("Matrix, The", "Grande illusion, La",
# "Blechtrommel, Die", "Vitelloni, I"), in the languages its titles use.
ARTICLES = frozenset("""
    the a an le la les l il lo gli i un une una uno el los las das der die den det de het een
    ein eine o os as um uma ta to hoi
""".split())

# "Twelve Monkeys" (MovieLens) is "12 Monkeys" (Letterboxd): number words count as digits.
_NUMBERS = {w: str(k) for k, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty".split())}

_YEAR_SUFFIX = re.compile(r"\s*\(\s*\d{4}(?:\s*[-–]\s*\d{0,4})?\s*\)\s*$")
_TRAILING_ARTICLE = re.compile(r"^(?P<body>.+?),\s*(?P<article>[^\s,]+['’]?)\s*$")
_ELISION = re.compile(r"\b([ldLD])['’]\s*")
_NOT_WORD = re.compile(r"[^0-9a-z]+")
_AKA = re.compile(r"^(?:a\.?k\.?a\.?|also known as)\s+", re.IGNORECASE)

# IMDb title types that are films; a TV series or episode is matched by its IMDb id only.
FILM_TYPES = frozenset({"movie", "tvmovie", "tv movie", "video", "short", "tvshort", "tv short",
                        "tvspecial", "tv special"})


def title_key(title: str, keep_article: bool = False) -> str:
    """"The Matrix", "Matrix, The" and "matrix" all give "matrix"; "Amélie" gives "amelie".
    keep_article: "the matrix" (to tell "Boys, Les" from "Boys, The" when both match)."""
    text = title.strip()
    moved = _TRAILING_ARTICLE.match(text)
    if moved and _plain_words(moved["article"]) in ARTICLES:
        text = f"{moved['article']} {moved['body']}"
    text = _ELISION.sub(r"\1 ", text)
    text = text.replace("&", " and ").replace("'", "").replace("’", "")
    words = [_NUMBERS.get(w, w) for w in _plain_words(text).split()]
    if len(words) > 1 and words[0] in ARTICLES and not keep_article:
        words = words[1:]
    return " ".join(words)


def _plain_words(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text.casefold())
    folded = "".join(c for c in folded if not unicodedata.combining(c))
    folded = folded.replace("ß", "ss").replace("æ", "ae").replace("ø", "o").replace("œ", "oe")
    return _NOT_WORD.sub(" ", folded).strip()


def title_names(title: str) -> tuple[list[str], list[str]]:
    """A MovieLens title's names: (the main one and the alternatives in parentheses, the parts
    around a colon or a dash of those, for the fallback)."""
    text = _YEAR_SUFFIX.sub("", title.strip())
    names: list[str] = []
    # Trailing parenthesized groups are alternative titles: "Seven Samurai (The Magnificent
    # Seven) (Shichinin no samurai)".
    while text.endswith(")"):
        depth, start = 0, -1
        for k in range(len(text) - 1, -1, -1):
            depth += {")": 1, "(": -1}.get(text[k], 0)
            if depth == 0:
                start = k
                break
        if start <= 0:
            break
        names.append(_AKA.sub("", text[start + 1:-1].strip()))
        text = text[:start].strip()
    names.insert(0, text)
    parts = []
    for name in names:
        for piece in re.split(r"\s*:\s+|\s+[-–—]\s+", name):
            if piece and piece != name:
                parts.append(piece)
    return [n for n in names if n], parts


@dataclass(frozen=True)
class Matched:
    line: int
    movie: Movie
    stars: float
    by: str  # "imdb id", "title", "movie id"
    title: str | None = None  # as the file names it
    year: int | None = None

    def to_dict(self) -> dict:
        return {"line": self.line, "movie_id": self.movie.movie_id, "title": self.movie.title,
                "year": self.movie.year, "genres": list(self.movie.genres), "stars": self.stars,
                "matched_by": self.by,
                "given": {"title": self.title, "year": self.year}}


@dataclass(frozen=True)
class Unmatched:
    line: int
    reason: str
    title: str | None = None
    year: int | None = None

    def to_dict(self) -> dict:
        return {"line": self.line, "title": self.title, "year": self.year, "reason": self.reason}


class TitleIndex:
    """The catalog by title key (main and alternative names; then the colon/dash parts), by
    IMDb id and by movie id."""

    def __init__(self, catalog: MovieCatalog):
        self.catalog = catalog
        self.names: dict[str, list[Movie]] = defaultdict(list)  # main titles
        self.alternatives: dict[str, list[Movie]] = defaultdict(list)  # "(a.k.a. ...)" etc.
        self.parts: dict[str, list[Movie]] = defaultdict(list)
        self.imdb: dict[int, Movie] = {}
        years = [m.year for m in catalog if m.year is not None]
        self.last_year = max(years) if years else None
        for movie in catalog:
            names, parts = title_names(movie.title)
            main = title_key(names[0]) if names else ""
            if main:
                self.names[main].append(movie)
            for key in dict.fromkeys(title_key(n) for n in names[1:]):
                if key and key != main:
                    self.alternatives[key].append(movie)
            for key in dict.fromkeys(title_key(p) for p in parts):
                if key:
                    self.parts[key].append(movie)
            if movie.imdb_id is not None:
                self.imdb.setdefault(movie.imdb_id, movie)

    def match(self, row: ExportRow) -> Matched | Unmatched:
        if row.movie_id is not None:
            movie = self.catalog.get(row.movie_id)
            if movie is None:
                return Unmatched(row.line, f"movie id {row.movie_id} is not in the catalog")
            return Matched(row.line, movie, row.stars, "movie id")
        if row.imdb_id is not None and self.imdb:
            movie = self.imdb.get(row.imdb_id)
            if movie is not None:
                return Matched(row.line, movie, row.stars, "imdb id", row.title, row.year)
            # The dataset links every movie it has: an id it lacks is a film it lacks.
            return Unmatched(row.line, f"tt{row.imdb_id:07d} is not in the catalog", row.title,
                             row.year)
        if row.title_type and row.title_type.casefold() not in FILM_TYPES:
            return Unmatched(row.line, f"a {row.title_type}, not a film: only films are matched "
                             "by title", row.title, row.year)
        if not row.title:
            return Unmatched(row.line, "no title to match", None, row.year)
        return self._by_title(row)

    def _by_title(self, row: ExportRow) -> Matched | Unmatched:
        key = title_key(row.title)
        if not key:
            return Unmatched(row.line, "the title has no letters or digits", row.title, row.year)
        for index in (self.names, self.alternatives, self.parts):
            found = _near(index.get(key, []), row.year)
            if len(found) > 1:
                found = _same_article(found, row.title) or found
            if len(found) == 1:
                return Matched(row.line, found[0], row.stars, "title", row.title, row.year)
            if len(found) > 1:
                shown = "; ".join(m.title for m in found[:3])
                more = f" and {len(found) - 3} more" if len(found) > 3 else ""
                hint = "" if row.year is None else f" from {row.year}"
                return Unmatched(row.line, f"ambiguous: {len(found)} movies{hint} match "
                                 f"({shown}{more})", row.title, row.year)
        return Unmatched(row.line, self._why_not(key, row), row.title, row.year)

    def _why_not(self, key: str, row: ExportRow) -> str:
        same = self.names.get(key, []) + self.alternatives.get(key, [])
        other_years = sorted({m.year for m in same if m.year is not None})
        if other_years:
            return (f"no movie of that title within a year of {row.year} (the catalog has one "
                    f"from {', '.join(str(y) for y in other_years[:3])})")
        if row.year is not None and self.last_year is not None and row.year > self.last_year:
            return f"no such movie in the catalog (its newest movies are from {self.last_year})"
        return "no movie of that title in the catalog"


def _same_article(movies: list[Movie], title: str) -> list[Movie]:
    """Of several matches, those whose title has the same article as `title` ("Les Boys")."""
    wanted = title_key(title, keep_article=True)
    return [m for m in movies
            if any(title_key(n, keep_article=True) == wanted for n in title_names(m.title)[0])]


def _near(movies: list[Movie], year: int | None) -> list[Movie]:
    """The movies of that year; failing that, a year either way; any year when none is given."""
    if year is None:
        return movies
    exact = [m for m in movies if m.year == year]
    if exact:
        return exact
    return [m for m in movies if m.year is not None and abs(m.year - year) <= 1]


_INDEXES: weakref.WeakKeyDictionary[MovieCatalog, TitleIndex] = weakref.WeakKeyDictionary()


def title_index(catalog: MovieCatalog) -> TitleIndex:
    """One index per live catalog (built on first use: about a second for 87k movies)."""
    index = _INDEXES.get(catalog)
    if index is None:
        index = _INDEXES[catalog] = TitleIndex(catalog)
    return index
