"""Parsers for every MovieLens format, their error messages, and the checksum-verified download."""

from __future__ import annotations

import hashlib
import http.server
import io
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from movierec import movielens
from movierec.errors import DataError
from tests.conftest import dataset_dir


def write(folder: Path, name: str, text: str, encoding: str = "latin-1") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(text.encode(encoding))
    return path


@pytest.fixture
def dat_folder(tmp_path) -> Path:
    folder = tmp_path / "dat"
    write(folder, "ratings.dat", "1::10::5::978300760\n1::20::3::978302109\n2::10::4::0\n")
    write(
        folder,
        "movies.dat",
        "10::Star Wars: Episode IV - A New Hope (1977)::Action|Adventure|Sci-Fi\n"
        "20::Amélie (Fabuleux destin d'Amélie Poulain, Le) (2001)::Comedy|Romance\n"
        "30::Never Rated (1990)::Drama\n",
    )
    write(folder, "users.dat", "1::F::1::10::48067\n2::M::56::16::70072-1234\n")
    return folder


def test_dat_format_parses_ids_ratings_titles_with_colons_and_latin1(dat_folder):
    d = movielens.load(dat_folder)
    assert d.user_ids.tolist() == [1, 1, 2]
    assert d.movie_ids.tolist() == [10, 20, 10]
    assert d.ratings.tolist() == [5.0, 3.0, 4.0]
    movies = d.movies.set_index("movie_id")
    assert movies.loc[10, "title"] == "Star Wars: Episode IV - A New Hope (1977)"
    assert movies.loc[10, "genres"] == ["Action", "Adventure", "Sci-Fi"]
    assert movies.loc[20, "title"].startswith("Amélie")
    assert movies.loc[20, "year"] == 2001
    assert d.users.to_dict("records") == [
        {"user_id": 1, "gender": "F", "age": 1, "occupation": 10, "zip": "48067"},
        {"user_id": 2, "gender": "M", "age": 56, "occupation": 16, "zip": "70072-1234"},
    ]


def test_100k_format_parses_tab_ratings_pipe_items_and_genre_flags(tmp_path):
    folder = tmp_path / "100k"
    write(folder, "u.data", "1\t10\t5\t881250949\n2\t20\t1\t891717742\n")
    write(folder, "u.genre", "unknown|0\nAction|1\nComedy|2\n\n")
    write(
        folder,
        "u.item",
        "10|Toy Story (1995)|01-Jan-1995||http://x|0|0|1\n"
        "20|GoldenEye (1995)|01-Jan-1995||http://y|0|1|0\n"
        "30|unknown||||1|0|0\n",
    )
    write(folder, "u.user", "1|24|M|technician|85711\n2|53|F|other|94043\n")
    d = movielens.load(folder)
    assert d.ratings.tolist() == [5.0, 1.0]
    movies = d.movies.set_index("movie_id")
    assert movies.loc[10, "genres"] == ["Comedy"]
    assert movies.loc[20, "genres"] == ["Action"]
    assert movies.loc[30, "genres"] == ["unknown"]
    assert movies.loc[30, "year"] is np.nan or str(movies.loc[30, "year"]) == "<NA>"
    assert d.users.iloc[0].to_dict() == {
        "user_id": 1, "gender": "M", "age": 24, "occupation": "technician", "zip": "85711"
    }


def test_csv_format_parses_header_quoted_titles_half_stars_and_no_genres(tmp_path):
    folder = tmp_path / "csv"
    write(folder, "ratings.csv", "userId,movieId,rating,timestamp\r\n1,1,4.5,964982703\r\n"
          "2,3,0.5,964981247\r\n")
    write(
        folder,
        "movies.csv",
        'movieId,title,genres\r\n1,"American President, The (1995)",Comedy|Drama|Romance\r\n'
        "3,Pulse (2006–2007),(no genres listed)\r\n",
        encoding="utf-8",
    )
    d = movielens.load(folder)
    assert d.ratings.tolist() == [4.5, 0.5]
    movies = d.movies.set_index("movie_id")
    assert movies.loc[1, "title"] == "American President, The (1995)"
    assert movies.loc[1, "year"] == 1995
    assert movies.loc[3, "genres"] == []
    assert d.users["user_id"].tolist() == [1, 2]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("1::10::5::1\n1::20::3\n", "ratings.dat:2: expected 4 fields, found 3"),
        ("1::10::5::1\n1::20::3::1::9\n", "ratings.dat:2: expected 4 fields, found 5"),
        ("1::10::5::1\n1::x::3::1\n", "ratings.dat:2: movie_id is not a number: 'x'"),
        ("1::10::5::1\n2::20::::1\n", "ratings.dat:2: rating is missing"),
        ("1::10::5::1\n2::20::9::1\n", "ratings.dat:2: rating must be between 0.5 and 5.0, got 9.0"),
        ("1::10::5::1\n-2::20::3::1\n", "ratings.dat:2: user_id must be an integer in 0..4294967295"),
        ("1::10::5::1\n2::4294967296::3::1\n", "ratings.dat:2: movie_id must be an integer"),
        ("1::10::5::1\n2::20::3::1\n1::10::4::1\n", "ratings.dat:3: user 1 rated movie 10 twice"),
        ("1::10::5::1\n\n2::20::3::1\n", "ratings.dat:2: user_id is missing"),
        ("", "ratings.dat:1: file is empty"),
    ],
)
def test_malformed_ratings_fail_with_file_line_and_what_is_wrong(dat_folder, content, message):
    (dat_folder / "ratings.dat").write_text(content)
    with pytest.raises(DataError) as err:
        movielens.load(dat_folder)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_malformed_movies_file_names_its_line(dat_folder):
    (dat_folder / "movies.dat").write_text("10::Star Wars (1977)::Action\n20 Amelie (2001) Comedy\n")
    with pytest.raises(DataError, match=r"movies.dat:2: expected 3 '::'-separated fields, found 1"):
        movielens.load(dat_folder)


def test_rated_movie_missing_from_movies_file_is_rejected(dat_folder):
    (dat_folder / "movies.dat").write_text("10::Star Wars (1977)::Action\n")
    d = movielens.load(dat_folder)
    with pytest.raises(DataError, match=r"ratings.dat:2: movie 20 is not in the movies file"):
        movielens.check_movies_known(d)


def test_missing_folder_and_missing_files_give_one_line_errors(tmp_path):
    with pytest.raises(DataError, match="no such dataset folder"):
        movielens.load(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no MovieLens ratings file found"):
        movielens.load(tmp_path / "empty")


@pytest.mark.parametrize(
    ("name", "ratings", "users", "movies", "mean"),
    [
        ("ml-1m", 1_000_209, 6_040, 3_883, 3.581564),
        ("ml-100k", 100_000, 943, 1_682, 3.529860),
        ("ml-latest-small", 100_836, 610, 9_742, 3.501557),
    ],
)
def test_shared_datasets_parse_with_their_published_counts(name, ratings, users, movies, mean):
    d = movielens.load(dataset_dir(name), name)
    assert d.n_ratings == ratings
    assert np.unique(d.user_ids).size == users
    assert len(d.movies) == movies
    assert d.ratings.mean() == pytest.approx(mean, abs=1e-6)
    movielens.check_movies_known(d)


def test_every_dataset_has_an_official_url_and_a_well_formed_checksum():
    assert set(movielens.DATASETS) == {
        "ml-100k", "ml-1m", "ml-10m", "ml-20m", "ml-25m", "ml-32m", "ml-latest-small"
    }
    for source in movielens.DATASETS.values():
        assert source.url == f"https://files.grouplens.org/datasets/movielens/{source.name}.zip"
        movielens.parse_checksum(source.checksum)
    assert movielens.DATASETS["ml-1m"].checksum == "md5:c4d9eecfca2ab87c1945afe126590906"


# --- download over real HTTP on loopback ---------------------------------------------------


@pytest.fixture
def http_root(tmp_path):
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(root), **kw)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def small_zip(folder: str = "ml-latest-small") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(f"{folder}/ratings.csv", "userId,movieId,rating,timestamp\n1,1,4.0,0\n2,1,3.0,0\n")
        zf.writestr(f"{folder}/movies.csv", "movieId,title,genres\n1,Toy Story (1995),Comedy\n")
    return buf.getvalue()


def test_download_verifies_checksum_caches_and_unzips(http_root, tmp_path):
    root, base = http_root
    data = small_zip()
    (root / "ml-latest-small.zip").write_bytes(data)
    md5 = hashlib.md5(data).hexdigest()
    cache = tmp_path / "cache"
    folder = movielens.fetch("ml-latest-small", cache, f"{base}/ml-latest-small.zip", md5,
                             progress=False)
    assert folder == cache / "ml-latest-small" / "ml-latest-small"
    assert movielens.load(folder).n_ratings == 2
    # Cached: the server's file can disappear, the second fetch does not download.
    (root / "ml-latest-small.zip").unlink()
    assert movielens.fetch("ml-latest-small", cache, f"{base}/ml-latest-small.zip", md5,
                           progress=False) == folder


def test_corrupted_or_truncated_download_fails_its_checksum_and_writes_nothing(http_root, tmp_path):
    root, base = http_root
    data = small_zip()
    md5 = hashlib.md5(data).hexdigest()
    (root / "ml-latest-small.zip").write_bytes(data[: len(data) // 2])
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="checksum mismatch .* nothing was written"):
        movielens.fetch("ml-latest-small", cache, f"{base}/ml-latest-small.zip", md5,
                        progress=False)
    assert not (cache / "ml-latest-small").exists()
    assert not (cache / "ml-latest-small.zip").exists()
    assert [p.name for p in cache.iterdir()] == []


def test_unreachable_download_says_to_use_movielens_dir(tmp_path):
    with pytest.raises(DataError, match="cannot download .* set MOVIELENS_DIR"):
        movielens.fetch("ml-1m", tmp_path, "http://127.0.0.1:9/ml-1m.zip",
                        "c4d9eecfca2ab87c1945afe126590906", progress=False)


def test_url_override_without_checksum_is_refused(tmp_path):
    with pytest.raises(DataError, match="MOVIELENS_URL needs MOVIELENS_MD5"):
        movielens.fetch("ml-1m", tmp_path, "http://127.0.0.1:9/x.zip", None, progress=False)
