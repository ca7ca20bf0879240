"""Fast parsers for every MovieLens format: ml-100k (tab/pipe files), ml-1m and ml-10m
("::"-separated .dat, latin-1), and the csv sets (ml-20m, ml-25m, ml-32m, ml-latest-small).
Every parser returns the same `Dataset`; a malformed file raises DataError("file:line: what is
wrong") before anything is written anywhere."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from movierec.errors import DataError
from movierec.schema import MAX_ID

# MovieLens ids fit in u32 (schema.MAX_ID: Qdrant sparse indices are u32); ratings 0.5..5 stars.
MIN_RATING, MAX_RATING = 0.5, 5.0


@dataclass
class Dataset:
    """A parsed MovieLens dataset: ratings as flat numpy arrays, movies and users as frames."""

    name: str
    user_ids: np.ndarray  # int64, one per rating
    movie_ids: np.ndarray  # int64, one per rating
    ratings: np.ndarray  # float64 stars, one per rating
    movies: pd.DataFrame  # movie_id, title, year (Int64, may be <NA>), genres (list[str]), and
    # imdb_id (Int64, may be <NA>) where the dataset has links.csv
    users: pd.DataFrame  # user_id and, where the format has them, gender, age, occupation, zip
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def n_ratings(self) -> int:
        return int(self.ratings.size)



def load(folder: Path, name: str | None = None) -> Dataset:
    """Parse the dataset in `folder`, recognising its format by the files it holds."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such dataset folder (check MOVIELENS_DIR or --data)")
    label = name or folder.name
    if (folder / "ratings.dat").exists():
        return _load_dat(folder, label)
    if (folder / "u.data").exists():
        return _load_100k(folder, label)
    if (folder / "ratings.csv").exists():
        return _load_csv(folder, label)
    raise DataError(
        f"{folder}: no MovieLens ratings file found (expected ratings.dat, u.data or ratings.csv)"
    )


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file is missing") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None


_FIELDS_RE = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")

# Rows per chunk of the fast ratings reader: bounds its working memory beside the result.
FAST_CHUNK_ROWS = 4_000_000


def _count_lines(path: Path) -> int:
    lines, last = 0, b"\n"
    with open(path, "rb") as fh:
        while block := fh.read(1 << 24):
            lines += block.count(b"\n")
            last = block[-1:]
    return lines + (last != b"\n")


def _fast_ratings(
    path: Path, sep: str, names: list[str], header: bool, columns: tuple[str, str, str, str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Ratings read straight from disk, in chunks, into arrays sized by a line count.

    Only for well-formed files: every column typed (ids and timestamps integer, rating float),
    and every column named "_" must be empty (ml-1m's '::' read as two ':' separators). On
    anything else it returns None and the careful `_table` path finds the line and says what is
    wrong. Peak memory is the result plus one chunk, never a copy of the file.
    """
    user, movie, rating, timestamp = columns
    try:
        rows = _count_lines(path) - (1 if header else 0)
    except OSError:
        return None
    if rows <= 0:
        return None
    user_ids = np.empty(rows, dtype=np.int64)
    movie_ids = np.empty(rows, dtype=np.int64)
    stars = np.empty(rows, dtype=np.float64)
    dtype = {c: np.float64 for c in names}
    dtype.update({user: np.int64, movie: np.int64, timestamp: np.int64})
    done = 0
    try:
        with pd.read_csv(
            path, sep=sep, header=0 if header else None, names=names, dtype=dtype, engine="c",
            encoding="latin-1", skip_blank_lines=False, keep_default_na=False, na_values=[""],
            chunksize=FAST_CHUNK_ROWS,
        ) as chunks:
            for chunk in chunks:
                end = done + len(chunk)
                if end > rows or chunk[rating].isna().any():
                    return None
                if any(chunk[c].notna().any() for c in names if c.startswith("_")):
                    return None
                user_ids[done:end] = chunk[user].to_numpy()
                movie_ids[done:end] = chunk[movie].to_numpy()
                stars[done:end] = chunk[rating].to_numpy()
                done = end
    except (ValueError, OverflowError, pd.errors.ParserError, UnicodeDecodeError):
        return None
    if done != rows:
        return None
    return user_ids, movie_ids, stars


def _table(
    path: Path,
    data: bytes,
    sep: str,
    names: list[str],
    header: bool,
    numeric: list[str],
    encoding: str = "latin-1",
) -> pd.DataFrame:
    """Read a delimited table with the C engine; map every failure to `file:line: problem`."""
    data = data.rstrip(b"\r\n\t ")
    if not data:
        raise DataError(f"{path}:1: file is empty")
    first = 2 if header else 1  # file line number of the first data row
    try:
        frame = pd.read_csv(
            io.BytesIO(data),
            sep=sep,
            header=0 if header else None,
            names=names,
            engine="c",
            encoding=encoding,
            skip_blank_lines=False,
            dtype={c: "string" for c in names if c not in numeric} or None,
            na_filter=bool(numeric),
            keep_default_na=False,
            na_values=[""],
        )
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not {encoding} text") from None
    except pd.errors.ParserError as exc:
        found = _FIELDS_RE.search(str(exc))
        if found:
            want, line, saw = found.groups()
            raise DataError(f"{path}:{line}: expected {want} fields, found {saw}") from None
        raise DataError(f"{path}: cannot parse ({str(exc).splitlines()[-1]})") from None
    if frame.empty:
        raise DataError(f"{path}:{first}: no data rows")
    for column in numeric:
        values = frame[column]
        if values.dtype.kind not in "if" or values.isna().any():
            as_number = pd.to_numeric(values, errors="coerce")
            bad = int(np.flatnonzero(as_number.isna().to_numpy())[0])
            shown = values.iloc[bad]
            line = data.split(b"\n")[bad + first - 1].rstrip(b"\r")
            fields = len(line.split(sep.encode())) if line else 0
            if line and fields != len(names):
                raise DataError(
                    f"{path}:{bad + first}: expected {len(names)} fields, found {fields}"
                )
            what = "missing" if pd.isna(shown) or str(shown) == "" else f"not a number: {shown!r}"
            raise DataError(f"{path}:{bad + first}: {column} is {what}")
    return frame


def _check_ids(path: Path, values: np.ndarray, column: str, first: int) -> np.ndarray:
    if values.dtype.kind in "iu" and values.size:
        # Integers need only a range check: min/max make no temporary arrays at 100M ratings.
        if values.min() >= 0 and values.max() <= MAX_ID:
            return values.astype(np.int64, copy=False)
    bad = (values < 0) | (values > MAX_ID) | (values != np.floor(values))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{path}:{row + first}: {column} must be an integer in 0..{MAX_ID}, got {values[row]}"
        )
    return values.astype(np.int64)


def _ratings(path: Path, frame: pd.DataFrame, user: str, movie: str, rating: str, first: int):
    return _checked_ratings(path, frame[user].to_numpy(), frame[movie].to_numpy(),
                            frame[rating].to_numpy(dtype=np.float64), user, movie, first)


def _checked_ratings(path: Path, users: np.ndarray, movies: np.ndarray, stars: np.ndarray,
                     user: str, movie: str, first: int):
    user_ids = _check_ids(path, users, user, first)
    movie_ids = _check_ids(path, movies, movie, first)
    bad = ~((stars >= MIN_RATING) & (stars <= MAX_RATING))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{path}:{row + first}: rating must be between {MIN_RATING} and {MAX_RATING}, "
            f"got {stars[row]}"
        )
    # A second rating of the same movie by the same user would become a duplicate sparse index.
    # Both ids are u32, so (user, movie) packs into one u64: one vectorized sort finds a repeat,
    # and the slower lexsort runs only to name its line.
    pairs = np.sort(pair_keys(user_ids, movie_ids))
    if pairs.size > 1 and np.any(pairs[1:] == pairs[:-1]):
        order = np.lexsort((movie_ids, user_ids))
        same = (np.diff(user_ids[order]) == 0) & (np.diff(movie_ids[order]) == 0)
        dup = order[np.flatnonzero(same) + 1]
        row = int(dup.min())
        raise DataError(
            f"{path}:{row + first}: user {user_ids[row]} rated movie {movie_ids[row]} twice"
        )
    return user_ids, movie_ids, stars


def pair_keys(user_ids: np.ndarray, movie_ids: np.ndarray) -> np.ndarray:
    """(user, movie) ids in 0..MAX_ID as one u64 each, ordered like the pair (user first)."""
    keys = user_ids.astype(np.uint64) << np.uint64(32)
    keys |= movie_ids.astype(np.uint64)
    return keys


_YEAR = r"\((\d{4})\)\s*$"


def _movies_frame(path: Path, ids: pd.Series, titles: pd.Series, genres: pd.Series, first: int):
    movie_ids = _check_ids(path, pd.to_numeric(ids, errors="coerce").to_numpy(), "movie_id", first)
    titles = titles.astype("string").str.strip()
    years = titles.str.extract(_YEAR, expand=False).astype("Int64")
    genre_lists = [
        [] if g in ("(no genres listed)", "") else g.split("|")
        for g in genres.fillna("").astype(str).tolist()
    ]
    frame = pd.DataFrame(
        {"movie_id": movie_ids, "title": titles.astype(object), "year": years, "genres": genre_lists}
    )
    duplicated = frame["movie_id"].duplicated()
    if duplicated.any():
        row = int(np.flatnonzero(duplicated.to_numpy())[0])
        raise DataError(f"{path}:{row + first}: movie {movie_ids[row]} is listed twice")
    return frame


def _split_dat(path: Path, data: bytes, n_fields: int) -> pd.DataFrame:
    """Split a '::' file whose text fields may hold ':' (titles), vectorized with pandas."""
    text = data.decode("latin-1").rstrip("\r\n\t ")
    if not text:
        raise DataError(f"{path}:1: file is empty")
    lines = pd.Series(text.splitlines(), dtype="string")
    parts = lines.str.split("::", n=n_fields - 1, expand=True, regex=False)
    if parts.shape[1] < n_fields or parts[n_fields - 1].isna().any():
        row = int(np.flatnonzero(parts[parts.shape[1] - 1].isna().to_numpy())[0]) if (
            parts.shape[1] == n_fields
        ) else 0
        found = int(lines.iloc[row].count("::")) + 1
        raise DataError(f"{path}:{row + 1}: expected {n_fields} '::'-separated fields, found {found}")
    return parts


def _load_dat(folder: Path, name: str) -> Dataset:
    ratings_path = folder / "ratings.dat"
    # Ratings are digits only: read with ':' as the separator, '::' is two fields with an empty
    # one between them, so the C parser reads the file from disk as it is.
    fast = _fast_ratings(
        ratings_path, ":", ["user_id", "_1", "movie_id", "_2", "rating", "_3", "timestamp"],
        header=False, columns=("user_id", "movie_id", "rating", "timestamp"),
    )
    if fast is not None:
        user_ids, movie_ids, stars = _checked_ratings(ratings_path, *fast, "user_id", "movie_id", 1)
    else:
        # Ratings are digits only, so '::' can safely become a one-byte separator for the C parser.
        table = _table(
            ratings_path,
            _read_bytes(ratings_path).replace(b"::", b"\t"),
            "\t",
            ["user_id", "movie_id", "rating", "timestamp"],
            header=False,
            numeric=["user_id", "movie_id", "rating", "timestamp"],
        )
        user_ids, movie_ids, stars = _ratings(ratings_path, table, "user_id", "movie_id", "rating",
                                              1)

    movies_path = folder / "movies.dat"
    parts = _split_dat(movies_path, _read_bytes(movies_path), 3)
    movies = _movies_frame(movies_path, parts[0], parts[1], parts[2], 1)

    users_path = folder / "users.dat"
    if users_path.exists():
        users = _table(
            users_path,
            _read_bytes(users_path).replace(b"::", b"\t"),
            "\t",
            ["user_id", "gender", "age", "occupation", "zip"],
            header=False,
            numeric=["user_id", "age", "occupation"],
        )
        users["user_id"] = _check_ids(users_path, users["user_id"].to_numpy(), "user_id", 1)
        users["gender"] = users["gender"].astype(object)
        users["zip"] = users["zip"].astype(object)
    else:  # ml-10m has no users file
        users = pd.DataFrame({"user_id": np.unique(user_ids)})
    return Dataset(name, user_ids, movie_ids, stars, movies, users,
                   {"ratings": ratings_path, "movies": movies_path})


def _load_100k(folder: Path, name: str) -> Dataset:
    ratings_path = folder / "u.data"
    table = _table(
        ratings_path,
        _read_bytes(ratings_path),
        "\t",
        ["user_id", "movie_id", "rating", "timestamp"],
        header=False,
        numeric=["user_id", "movie_id", "rating", "timestamp"],
    )
    user_ids, movie_ids, stars = _ratings(ratings_path, table, "user_id", "movie_id", "rating", 1)

    genre_path = folder / "u.genre"
    genre_table = _table(genre_path, _read_bytes(genre_path), "|", ["genre", "index"], False,
                         ["index"])
    genre_names = genre_table.sort_values("index")["genre"].astype(str).to_numpy()

    items_path = folder / "u.item"
    flags = [f"g{i}" for i in range(len(genre_names))]
    items = _table(
        items_path,
        _read_bytes(items_path),
        "|",
        ["movie_id", "title", "released", "video", "url", *flags],
        header=False,
        numeric=["movie_id", *flags],
    )
    flag_matrix = items[flags].to_numpy(dtype=bool)
    genres = pd.Series(["|".join(genre_names[row]) for row in flag_matrix])
    movies = _movies_frame(items_path, items["movie_id"], items["title"], genres, 1)

    users_path = folder / "u.user"
    users = _table(
        users_path,
        _read_bytes(users_path),
        "|",
        ["user_id", "age", "gender", "occupation", "zip"],
        header=False,
        numeric=["user_id", "age"],
    )
    users["user_id"] = _check_ids(users_path, users["user_id"].to_numpy(), "user_id", 1)
    for column in ("gender", "occupation", "zip"):
        users[column] = users[column].astype(object)
    users = users[["user_id", "gender", "age", "occupation", "zip"]]
    return Dataset(name, user_ids, movie_ids, stars, movies, users,
                   {"ratings": ratings_path, "movies": items_path})


def _load_csv(folder: Path, name: str) -> Dataset:
    ratings_path = folder / "ratings.csv"
    columns = ("userId", "movieId", "rating", "timestamp")
    fast = _fast_ratings(ratings_path, ",", list(columns), header=True, columns=columns)
    if fast is not None:
        user_ids, movie_ids, stars = _checked_ratings(ratings_path, *fast, "userId", "movieId", 2)
    else:
        table = _table(
            ratings_path,
            _read_bytes(ratings_path),
            ",",
            list(columns),
            header=True,
            numeric=list(columns),
        )
        user_ids, movie_ids, stars = _ratings(ratings_path, table, "userId", "movieId", "rating",
                                              2)

    movies_path = folder / "movies.csv"
    # The csv sets are UTF-8 (their README says so; "Cité des enfants perdus"), the older latin-1.
    movie_table = _table(
        movies_path,
        _read_bytes(movies_path),
        ",",
        ["movieId", "title", "genres"],
        header=True,
        numeric=["movieId"],
        encoding="utf-8",
    )
    movies = _movies_frame(
        movies_path, movie_table["movieId"], movie_table["title"], movie_table["genres"], 2
    )
    files = {"ratings": ratings_path, "movies": movies_path}
    links_path = folder / "links.csv"
    if links_path.exists():
        movies["imdb_id"] = _imdb_ids(links_path, movies["movie_id"])
        files["links"] = links_path
    users = pd.DataFrame({"user_id": np.unique(user_ids)})
    return Dataset(name, user_ids, movie_ids, stars, movies, users, files)


def _imdb_ids(path: Path, movie_ids: pd.Series) -> pd.Series:
    """Each movie's IMDb id (the number of its tt-id) from links.csv, <NA> where it has none."""
    links = _table(path, _read_bytes(path), ",", ["movieId", "imdbId", "tmdbId"], header=True,
                   numeric=["movieId"])
    imdb = pd.to_numeric(links["imdbId"], errors="coerce").astype("Int64")
    by_movie = pd.Series(imdb.to_numpy(), index=links["movieId"].astype(np.int64).to_numpy())
    by_movie = by_movie[~by_movie.index.duplicated()]
    return by_movie.reindex(movie_ids.to_numpy()).reset_index(drop=True).astype("Int64")


def check_movies_known(dataset: Dataset) -> None:
    """Every rated movie must be in the movies file: otherwise it could never get a title."""
    known = dataset.movies["movie_id"].to_numpy()
    missing = ~np.isin(dataset.movie_ids, known)
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        first = 2 if dataset.files.get("ratings", Path()).suffix == ".csv" else 1
        raise DataError(
            f"{dataset.files.get('ratings')}:{row + first}: movie {dataset.movie_ids[row]} "
            "is not in the movies file"
        )
