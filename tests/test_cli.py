"""The CLI as people run it: real subprocesses, real ml-1m, one-line errors and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import DISLIKES, LIKES, REFERENCE, settings_for


def movierec(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "movierec.cli", *args],
        env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout,
    )


def tutorial_args() -> list[str]:
    args = []
    for m in LIKES:
        args += ["--like", str(m)]
    for m in DISLIKES:
        args += ["--dislike", str(m)]
    return args


@pytest.fixture(scope="module")
def cli_store(tmp_path_factory, ml1m_dir) -> dict:
    env = {"QDRANT_PATH": str(tmp_path_factory.mktemp("cli") / "q"), "QDRANT_URL": "",
           "MOVIELENS_DIR": str(ml1m_dir)}
    done = movierec("ingest", "--dataset", "ml-1m", "--no-item-model", env=env)
    assert done.returncode == 0, done.stderr
    assert "ingested ml-1m: 6040 users, 3883 movies, 1000209 ratings" in done.stdout
    return env


def test_recommend_prints_the_reference_table(cli_store):
    done = movierec("recommend", *tutorial_args(), "--limit", "5", env=cli_store)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 6
    for line, (movie_id, title, score) in zip(lines[1:], REFERENCE):
        assert title in line
        assert line.split()[-1] == str(movie_id)
        assert float(line.split()[0]) == pytest.approx(score, rel=1e-6)


def test_recommend_json_lists_movie_id_title_score(cli_store):
    done = movierec("recommend", *tutorial_args(), "--limit", "5", "--json", env=cli_store)
    items = json.loads(done.stdout)
    assert [(i["movie_id"], i["title"]) for i in items] == [(m, t) for m, t, _ in REFERENCE]
    assert [i["score"] for i in items] == pytest.approx([s for *_, s in REFERENCE], rel=1e-6)


def test_recommend_with_the_services_default_model_answers_as_the_service(cli_store):
    """--model blend: the answer a request without "model" gets (blend is what GET /models
    names on this store, which has no item model); without --model, the tutorial mode."""
    from movierec import recommend
    from movierec.store import open_reader

    with open_reader(settings_for(qdrant_path=cli_store["QDRANT_PATH"])) as store:
        default = recommend.available_models(store)[0]
        expected = [r.to_dict() for r in recommend.recommend(
            store, recommend.tutorial_query(LIKES, DISLIKES), limit=5).items]
    assert default == "blend"
    done = movierec("recommend", *tutorial_args(), "--limit", "5", "--json", "--model", default,
                    env=cli_store)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == json.loads(json.dumps(expected))
    assert [i["movie_id"] for i in json.loads(done.stdout)] != [m for m, *_ in REFERENCE]


def test_movies_search_finds_the_matrix_first(cli_store):
    done = movierec("movies", "search", "matrix", env=cli_store)
    assert done.returncode == 0
    assert done.stdout.splitlines()[0].split() == ["2571", "Matrix,", "The", "(1999)",
                                                   "[Action|Sci-Fi|Thriller]"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["recommend", "--like", "999999"], "error: unknown movie id: 999999"),
        (["recommend", "--like", "1", "--like", "999998", "--like", "999999"],
         "error: unknown movie ids: 999998, 999999"),
        (["recommend"], "error: an empty query: give at least one --like or --dislike movie id, "
         "or --ratings-file"),
        (["recommend", "--like", "1", "--dislike", "1"], "error: movie 1 is both liked and disliked"),
        (["recommend", "--like", "1", "--limit", "0"], "error: limit must be between 1 and 100, got 0"),
        (["recommend", "--like", "1", "--neighbors", "5000"],
         "error: neighbors must be between 1 and 1000, got 5000"),
    ],
)
def test_bad_queries_give_one_line_and_exit_1(cli_store, args, message):
    done = movierec(*args, env=cli_store)
    assert done.returncode == 1
    assert done.stderr.strip() == message


def test_missing_dataset_folder_gives_one_line_and_exit_1(tmp_path):
    done = movierec("ingest", "--data", str(tmp_path / "nope"),
                    env={"QDRANT_PATH": str(tmp_path / "q"), "QDRANT_URL": ""})
    assert done.returncode == 1
    assert done.stderr.strip() == f"error: {tmp_path / 'nope'}: no such dataset folder " \
                                  "(check MOVIELENS_DIR or --data)"
    assert not (tmp_path / "q" / "CURRENT").exists()


def test_malformed_file_fails_before_anything_is_written(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "ratings.dat").write_text("1::1::5::0\n1::2::five::0\n")
    (folder / "movies.dat").write_text("1::A (1990)::Drama\n2::B (1991)::Drama\n")
    done = movierec("ingest", "--data", str(folder),
                    env={"QDRANT_PATH": str(tmp_path / "q"), "QDRANT_URL": ""})
    assert done.returncode == 1
    assert done.stderr.strip() == f"error: {folder / 'ratings.dat'}:2: rating is not a number: 'five'"
    assert not (tmp_path / "q").exists() or not any((tmp_path / "q").rglob("meta.json"))


def test_unknown_dataset_name_lists_the_known_ones(tmp_path):
    done = movierec("ingest", "--dataset", "ml-2m", env={"QDRANT_PATH": str(tmp_path / "q"),
                                                         "QDRANT_URL": "", "MOVIELENS_DIR": ""})
    assert done.returncode == 1
    assert done.stderr.strip().startswith("error: unknown dataset 'ml-2m'; choose one of: ml-100k")


def test_recommend_before_any_ingest_says_to_ingest(tmp_path):
    done = movierec("recommend", "--like", "1", env={"QDRANT_PATH": str(tmp_path / "q"),
                                                     "QDRANT_URL": ""})
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"error: no data in the embedded store at {tmp_path / 'q'}: run `movierec ingest` first"
    )


def test_invalid_environment_is_a_one_line_configuration_error(tmp_path):
    done = movierec("check", env={"PORT": "eighty"})
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error: invalid configuration: PORT:")


def test_ingest_of_the_small_csv_and_100k_sets_works(tmp_path):
    from tests.conftest import dataset_dir

    for name, users, movies in (("ml-latest-small", 610, 9742), ("ml-100k", 943, 1682)):
        env = {"QDRANT_PATH": str(tmp_path / name), "QDRANT_URL": "",
               "MOVIELENS_DIR": str(dataset_dir(name))}
        done = movierec("ingest", "--dataset", name, "--no-item-model", env=env)
        assert done.returncode == 0, done.stderr
        assert f"{users} users, {movies} movies" in done.stdout
        found = movierec("movies", "search", "toy story", "--json", env=env)
        assert json.loads(found.stdout)[0]["title"] == "Toy Story (1995)"


def test_recommend_from_a_letterboxd_export_reports_what_did_not_match(cli_store, tmp_path):
    from tests.imports_helpers import letterboxd

    export = tmp_path / "ratings.csv"
    export.write_bytes(letterboxd([("The Matrix", 1999, 5), ("Star Wars", 1977, 4.5),
                                   ("Titanic", 1997, 1), ("Amélie", 2001, 4)]))
    done = movierec("recommend", "--ratings-file", str(export), "--model", "tutorial", "--json",
                    env=cli_store)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [
        f"{export}:5: 'Amélie' (2001) not used: no such movie in the catalog (its newest movies "
        "are from 2000)",
        f"{export}: letterboxd export, 3 of 4 rows matched",
    ]
    ids = [i["movie_id"] for i in json.loads(done.stdout)]
    assert len(ids) == 5 and not {2571, 260, 1721} & set(ids)
    # The same ratings given by hand, in stars, get the same answer.
    from movierec import recommend
    from movierec.config import Settings
    from movierec.store import open_reader

    with open_reader(Settings(qdrant_url=None, qdrant_path=cli_store["QDRANT_PATH"])) as store:
        same = recommend.recommend(store, {2571: 5.0, 260: 4.5, 1721: 1.0}, scale="stars",
                                   model="tutorial")
    assert ids == [r.movie.movie_id for r in same.items]


@pytest.mark.parametrize(("content", "fmt", "message"), [
    (b"", "auto", "error: the file is empty"),
    (b"Date,Name,Year,Letterboxd URI,Rating\n", "imdb", "error: not an IMDb ratings export: its "
     "first line has no 'Your Rating' and no 'Const or Title' column"),
])
def test_recommend_from_a_bad_export_gives_one_line(cli_store, tmp_path, content, fmt, message):
    export = tmp_path / "ratings.csv"
    export.write_bytes(content)
    done = movierec("recommend", "--ratings-file", str(export), "--format", fmt, env=cli_store)
    assert (done.returncode, done.stderr.strip()) == (1, message)
    missing = movierec("recommend", "--ratings-file", str(tmp_path / "nope.csv"), env=cli_store)
    assert (missing.returncode, missing.stderr.strip()) == (
        1, f"error: {tmp_path / 'nope.csv'}: No such file or directory")
