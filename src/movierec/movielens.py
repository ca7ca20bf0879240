"""MovieLens datasets: where to download them (with checksums), and fast parsers for every format.

Three on-disk formats exist: ml-100k (tab/pipe files), ml-1m and ml-10m ("::"-separated .dat,
latin-1), and the csv sets (ml-20m, ml-25m, ml-32m, ml-latest-small). Every parser returns the
same `Dataset`; a malformed file raises DataError("file:line: what is wrong") before anything is
written anywhere.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from movierec.errors import DataError

GROUPLENS = "https://files.grouplens.org/datasets/movielens"

# MovieLens ids fit in u32 (Qdrant sparse indices are u32); ratings are 0.5..5 stars.
MAX_ID = 2**32 - 1
MIN_RATING, MAX_RATING = 0.5, 5.0


@dataclass(frozen=True)
class DatasetSource:
    """An official MovieLens archive: its URL, checksum ("md5:..." or "sha256:...") and folder."""

    name: str
    url: str
    checksum: str
    folder: str
    redistributable: bool = False


# Checksums: the publisher's `<zip>.md5` files, as quoted by public code (sources in
# docs/datasets.md). ml-latest-small's .md5 was not found in any public copy; it changes with
# each release, so it is pinned by the SHA-256 of the 2018-09 release instead.
DATASETS: dict[str, DatasetSource] = {
    s.name: s
    for s in [
        DatasetSource("ml-100k", f"{GROUPLENS}/ml-100k.zip",
                      "md5:0e33842e24a9c977be4e0107933c0723", "ml-100k"),
        DatasetSource("ml-1m", f"{GROUPLENS}/ml-1m.zip",
                      "md5:c4d9eecfca2ab87c1945afe126590906", "ml-1m"),
        DatasetSource("ml-10m", f"{GROUPLENS}/ml-10m.zip",
                      "md5:ce571fd55effeba0271552578f2648bd", "ml-10M100K"),
        DatasetSource("ml-20m", f"{GROUPLENS}/ml-20m.zip",
                      "md5:cd245b17a1ae2cc31bb14903e1204af3", "ml-20m"),
        DatasetSource("ml-25m", f"{GROUPLENS}/ml-25m.zip",
                      "md5:6b51fb2759a8657d3bfcbfc42b592ada", "ml-25m"),
        DatasetSource("ml-32m", f"{GROUPLENS}/ml-32m.zip",
                      "md5:d472be332d4daa821edc399621853b57", "ml-32m"),
        DatasetSource(
            "ml-latest-small",
            f"{GROUPLENS}/ml-latest-small.zip",
            "sha256:696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436",
            "ml-latest-small",
            redistributable=True,
        ),
    ]
}


@dataclass
class Dataset:
    """A parsed MovieLens dataset: ratings as flat numpy arrays, movies and users as frames."""

    name: str
    user_ids: np.ndarray  # int64, one per rating
    movie_ids: np.ndarray  # int64, one per rating
    ratings: np.ndarray  # float64 stars, one per rating
    movies: pd.DataFrame  # movie_id, title, year (Int64, may be <NA>), genres (list[str])
    users: pd.DataFrame  # user_id and, where the format has them, gender, age, occupation, zip
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def n_ratings(self) -> int:
        return int(self.ratings.size)


# ---------------------------------------------------------------------------------------------
# Download, checksum, unzip


def parse_checksum(checksum: str) -> tuple[str, str]:
    """'md5:HEX' or 'sha256:HEX' (a bare 32-hex string is md5) -> (algorithm, lowercase hex)."""
    algorithm, _, digest = checksum.strip().rpartition(":")
    algorithm = (algorithm or "md5").lower()
    digest = digest.lower()
    width = {"md5": 32, "sha256": 64}.get(algorithm)
    if width is None or len(digest) != width or any(c not in "0123456789abcdef" for c in digest):
        raise DataError(f"invalid checksum {checksum!r}: expected md5:<32 hex> or sha256:<64 hex>")
    return algorithm, digest


def checksum_of(path: Path, algorithm: str = "md5", chunk: int = 1 << 20) -> str:
    digest = hashlib.new(algorithm, usedforsecurity=False)
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def download(
    url: str, dest: Path, checksum: str, progress: bool = True, timeout: float = 60.0
) -> Path:
    """Download url to dest (atomically), verifying its checksum. A verified cache is reused."""
    from tqdm import tqdm

    algorithm, expected = parse_checksum(checksum)
    if dest.exists():
        if checksum_of(dest, algorithm) == expected:
            return dest
        dest.unlink()  # a stale or corrupted cache entry: fetch it again
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                response = urllib.request.urlopen(url, timeout=timeout)  # noqa: S310 (https URL)
            except (urllib.error.URLError, OSError) as exc:
                raise DataError(
                    f"cannot download {url}: {getattr(exc, 'reason', exc)}; "
                    "set MOVIELENS_DIR to a local copy of the dataset instead"
                ) from None
            total = int(response.headers.get("Content-Length") or 0) or None
            with response, tqdm(
                total=total, unit="B", unit_scale=True, desc=dest.name, disable=not progress
            ) as bar:
                received = 0
                try:
                    while block := response.read(1 << 20):
                        out.write(block)
                        received += len(block)
                        bar.update(len(block))
                except (http.client.HTTPException, OSError):
                    pass  # reported just below, as a short download
                if total is not None and received < total:
                    raise DataError(
                        f"cannot download {url}: the connection was cut off after {received} of "
                        f"{total} bytes; nothing was written: try again, or set MOVIELENS_DIR to "
                        "a local copy"
                    )
        actual = checksum_of(tmp, algorithm)
        if actual != expected:
            raise DataError(
                f"{url}: checksum mismatch ({algorithm} {actual}, expected {expected}); "
                "the download is corrupted or truncated, nothing was written"
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def unpack(archive: Path, target: Path) -> None:
    """Unzip into target atomically: a partial extraction is never mistaken for a dataset."""
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        try:
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(staging)
        except zipfile.BadZipFile as exc:
            raise DataError(f"{archive}: not a valid zip archive ({exc})") from None
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def fetch(
    name: str,
    cache: Path,
    url: str | None = None,
    md5: str | None = None,
    progress: bool = True,
) -> Path:
    """Return the folder holding dataset `name`'s files, downloading and verifying it if needed."""
    source = dataset_source(name)
    if url and not md5:
        raise DataError("MOVIELENS_URL needs MOVIELENS_MD5: a download is always checksum-verified")
    url = url or source.url
    checksum = ":".join(parse_checksum(md5 if md5 else source.checksum))
    cache = Path(cache)
    extracted = cache / name
    marker = extracted / ".checksum"
    folder = extracted / source.folder
    if marker.exists() and marker.read_text().strip() == checksum and folder.is_dir():
        return folder
    archive = download(url, cache / f"{name}.zip", checksum, progress=progress)
    cache.mkdir(parents=True, exist_ok=True)
    unpack(archive, extracted)
    if not folder.is_dir():
        raise DataError(f"{archive}: expected a folder {source.folder}/ inside the archive")
    marker.write_text(checksum + "\n")
    return folder


def dataset_source(name: str) -> DatasetSource:
    try:
        return DATASETS[name]
    except KeyError:
        known = ", ".join(DATASETS)
        raise DataError(f"unknown dataset {name!r}; choose one of: {known}") from None


# ---------------------------------------------------------------------------------------------
# Parsers


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
            encoding="latin-1",
            skip_blank_lines=False,
            dtype={c: "string" for c in names if c not in numeric} or None,
            na_filter=bool(numeric),
            keep_default_na=False,
            na_values=[""],
        )
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
    movie_table = _table(
        movies_path,
        _read_bytes(movies_path),
        ",",
        ["movieId", "title", "genres"],
        header=True,
        numeric=["movieId"],
    )
    movies = _movies_frame(
        movies_path, movie_table["movieId"], movie_table["title"], movie_table["genres"], 2
    )
    users = pd.DataFrame({"user_id": np.unique(user_ids)})
    return Dataset(name, user_ids, movie_ids, stars, movies, users,
                   {"ratings": ratings_path, "movies": movies_path})


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


def dataset_folder(settings, name: str | None = None, data_dir: Path | str | None = None,
                   progress: bool = True) -> Path:
    """The folder holding dataset `name`'s files: `data_dir` (or MOVIELENS_DIR) when given, else
    the checksum-verified download in MOVIELENS_CACHE (fetched once, then reused)."""
    name = name or settings.movielens_dataset
    folder = data_dir or settings.movielens_dir
    if folder is None:
        return fetch(name, settings.movielens_cache, settings.movielens_url,
                     settings.movielens_md5, progress=progress)
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such dataset folder (check MOVIELENS_DIR or --data)")
    return folder
