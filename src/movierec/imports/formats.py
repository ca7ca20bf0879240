"""Rating exports people already have, read by their documented columns: Letterboxd's
ratings.csv (Date, Name, Year, Letterboxd URI, Rating on 0.5-5), IMDb's ratings export (Const
tt-id, Your Rating on 1-10, Title, Year, Title Type, ...) and a plain movie_id,rating csv. Every
row becomes one ExportRow on the star scale, or a RowProblem saying why not; a file that is none
of these is one ExportError line."""

from __future__ import annotations

import codecs
import csv
import io
import math
import re
from dataclasses import dataclass

from movierec.errors import QueryError

FORMATS = ("auto", "letterboxd", "imdb", "csv")

# Far more than anyone rates (Letterboxd's keenest members log a few thousand films), few enough
# that matching and the answer stay small.
MAX_ROWS = 10_000


class ExportError(QueryError):
    """The file cannot be read as any rating export: one line saying why."""


@dataclass(frozen=True)
class ExportRow:
    """One rated movie as the export names it, its rating already in stars (0.5-5)."""

    line: int
    stars: float
    title: str | None = None
    year: int | None = None
    imdb_id: int | None = None  # the number of the tt-id
    movie_id: int | None = None  # a plain csv names MovieLens ids
    title_type: str | None = None  # IMDb's "Title Type": movie, tvSeries, ...
    date: str | None = None  # when it was rated (ISO date), where the export says


@dataclass(frozen=True)
class RowProblem:
    line: int
    reason: str
    title: str | None = None
    year: int | None = None


@dataclass(frozen=True)
class ParsedExport:
    format: str
    rows: list[ExportRow]
    problems: list[RowProblem]


def decode(data: bytes) -> str:
    """The file's text: UTF-8 (with or without a BOM) or UTF-16 with a BOM (a spreadsheet's
    "Unicode text"); anything else is refused rather than guessed."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise ExportError("the file starts like UTF-16 but is not valid UTF-16 text") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ExportError(f"line {line}: the file is not UTF-8 text (byte 0x{data[exc.start]:02x}"
                          "): export it again, or save it as UTF-8") from None


def parse(data: bytes, format: str = "auto") -> ParsedExport:  # noqa: A002 (the CLI's word)
    """Rows of a Letterboxd, IMDb or movie_id,rating export (`format`, or recognised by its
    header), on the star scale."""
    if format not in FORMATS:
        raise ExportError(f"unknown format {format!r}: use one of {', '.join(FORMATS)}")
    text = decode(data)
    if not text.strip():
        raise ExportError("the file is empty")
    if "\x00" in text:
        raise ExportError("the file holds NUL bytes: it is not a csv text file")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
        while not any(cell.strip() for cell in header):
            header = next(reader)
    except StopIteration:
        raise ExportError("the file is empty") from None
    except csv.Error as exc:
        raise ExportError(f"line 1: not a csv file ({exc})") from None
    columns = {_column_key(c): k for k, c in enumerate(header)}
    found = _recognise(columns, header) if format == "auto" else format
    if found is None:
        shown = ",".join(header)[:80]
        raise ExportError("the file is neither a Letterboxd ratings.csv (Name, Year, Rating), "
                          "an IMDb ratings export (Const, Your Rating, Title, Year) nor a "
                          f"movie_id,rating csv: its first line is {shown!r}")
    read = {"letterboxd": _letterboxd, "imdb": _imdb, "csv": _plain}[found]
    if found == "csv" and _is_number(header[0]):
        columns = {"movie_id": 0, "rating": 1}
        records = _records(reader, first_line=1, first=header)
    else:
        _require(found, columns)
        records = _records(reader, first_line=2)
    rows: list[ExportRow] = []
    problems: list[RowProblem] = []
    for line, cells in records:
        if len(rows) + len(problems) >= MAX_ROWS:
            raise ExportError(f"the file has more than {MAX_ROWS:,} rows: export fewer ratings "
                              "(Letterboxd and IMDb exports are far smaller)")
        if isinstance(cells, RowProblem):
            problems.append(cells)
            continue
        if not any(c.strip() for c in cells):
            continue
        outcome = read(line, cells, columns)
        (rows if isinstance(outcome, ExportRow) else problems).append(outcome)
    if not rows and not problems:
        raise ExportError(f"the file has a {found} header but no rows")
    return ParsedExport(found, rows, problems)


_REQUIRED = {
    "letterboxd": ("name", "year", "rating"),
    "imdb": ("your rating",),
    "csv": ("movie_id", "rating"),
}


def _column_key(name: str) -> str:
    key = name.strip().strip('"').casefold()
    return {"movieid": "movie_id", "movie id": "movie_id", "const": "const"}.get(key, key)


def _recognise(columns: dict[str, int], header: list[str]) -> str | None:
    if {"name", "rating"} <= columns.keys() and ("letterboxd uri" in columns or "year" in columns):
        return "letterboxd"
    if {"const", "your rating"} <= columns.keys():
        return "imdb"
    if {"movie_id", "rating"} <= columns.keys():
        return "csv"
    if len(header) == 2 and _is_number(header[0]) and _is_number(header[1]):
        return "csv"  # movie_id,rating with no header line
    return None


_LABELS = {"letterboxd": "a Letterboxd ratings.csv", "imdb": "an IMDb ratings export",
           "csv": "a movie_id,rating csv"}
_SHOWN = {"name": "Name", "year": "Year", "rating": "Rating", "your rating": "Your Rating",
          "movie_id": "movie_id"}


def _require(found: str, columns: dict[str, int]) -> None:
    missing = [_SHOWN[c] for c in _REQUIRED[found] if c not in columns]
    if found == "imdb" and "const" not in columns and "title" not in columns:
        missing.append("Const or Title")
    if missing:
        raise ExportError(f"not {_LABELS[found]}: its first line has no "
                          f"{' and no '.join(repr(m) for m in missing)} column")


def _records(reader, first_line: int, first: list[str] | None = None):
    """(line number, cells) per record; a record csv cannot read becomes a RowProblem (one
    broken quote would swallow the rest of the file, so that ends the reading)."""
    if first is not None:
        yield first_line, first
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield reader.line_num, RowProblem(reader.line_num, f"not readable as csv ({exc})")
            return
        yield reader.line_num, cells


def _cell(cells: list[str], columns: dict[str, int], name: str) -> str:
    k = columns.get(name)
    return cells[k].strip() if k is not None and k < len(cells) else ""


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _year(text: str) -> int | None:
    return int(text) if re.fullmatch(r"\d{4}", text) else None


def _stars(text: str, scale_max: float, line: int, title: str | None, year: int | None):
    """A rating on 0.5..scale_max as stars, or a RowProblem."""
    if not text:
        return RowProblem(line, "no rating", title, year)
    try:
        value = float(text)
    except ValueError:
        return RowProblem(line, f"rating {text[:20]!r} is not a number", title, year)
    low = 1 if scale_max == 10 else 0.5
    if not (math.isfinite(value) and low <= value <= scale_max):
        return RowProblem(line, f"rating {text[:20]} is not between {low:g} and {scale_max:g}",
                          title, year)
    return value / 2 if scale_max == 10 else value


def _letterboxd(line: int, cells: list[str], columns: dict[str, int]):
    title = _cell(cells, columns, "name") or None
    year = _year(_cell(cells, columns, "year"))
    if title is None:
        return RowProblem(line, "no film name", None, year)
    stars = _stars(_cell(cells, columns, "rating"), 5, line, title, year)
    if isinstance(stars, RowProblem):
        return stars
    return ExportRow(line, stars, title=title, year=year,
                     date=_cell(cells, columns, "date") or None)


_TT = re.compile(r"tt0*(\d{1,10})")


def _imdb(line: int, cells: list[str], columns: dict[str, int]):
    title = _cell(cells, columns, "title") or _cell(cells, columns, "original title") or None
    year = _year(_cell(cells, columns, "year"))
    const = _cell(cells, columns, "const")
    found = _TT.fullmatch(const)
    if const and not found:
        return RowProblem(line, f"Const {const[:20]!r} is not an IMDb tt-id", title, year)
    if found is None and title is None:
        return RowProblem(line, "no Const and no Title", None, year)
    stars = _stars(_cell(cells, columns, "your rating"), 10, line, title, year)
    if isinstance(stars, RowProblem):
        return stars
    return ExportRow(line, stars, title=title, year=year,
                     imdb_id=int(found.group(1)) if found else None,
                     title_type=_cell(cells, columns, "title type") or None,
                     date=_cell(cells, columns, "date rated") or None)


def _plain(line: int, cells: list[str], columns: dict[str, int]):
    movie = _cell(cells, columns, "movie_id")
    if not re.fullmatch(r"\d{1,10}", movie):
        return RowProblem(line, f"movie_id {movie[:20]!r} is not a MovieLens movie id")
    stars = _stars(_cell(cells, columns, "rating"), 5, line, None, None)
    if isinstance(stars, RowProblem):
        return stars
    return ExportRow(line, stars, movie_id=int(movie))
