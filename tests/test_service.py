"""The HTTP API over real HTTP: a real server process on loopback, real embedded ml-1m store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import httpx
import pytest

from tests.conftest import REFERENCE
from tests.service_helpers import TUTORIAL_BODY, running, serve_prepared

pytestmark = pytest.mark.ml1m


@pytest.fixture(scope="module")
def api(tmp_path_factory, ml1m_prepared_full):
    """ml-1m ingested once (every model) into an embedded store, served by `movierec serve`."""
    service = serve_prepared(ml1m_prepared_full, tmp_path_factory.mktemp("api"))
    yield service
    service.stop()


def assert_reference(body: dict) -> None:
    items = body["items"]
    assert [(i["movie_id"], i["title"]) for i in items] == [(m, t) for m, t, _ in REFERENCE]
    assert [i["score"] for i in items] == pytest.approx([s for *_, s in REFERENCE], rel=1e-6)


def test_tutorial_query_returns_the_reference_top5_with_scores(api):
    r = api.client.post("/recommendations", json=TUTORIAL_BODY)
    assert r.status_code == 200
    body = r.json()
    assert body["model"] == "tutorial"
    assert body["neighbors"] == 20
    assert_reference(body)
    first = body["items"][0]
    assert first["year"] == 1980
    assert first["genres"] == ["Action", "Adventure", "Drama", "Sci-Fi", "War"]


def test_star_ratings_are_normalized_with_the_stored_statistics(api, ml1m):
    stars = {"2571": 5, "260": 4.5, "296": 1}
    r = api.client.post("/recommendations", json={"ratings": stars, "scale": "stars", "limit": 3,
                                                  "model": "tutorial"})
    assert r.status_code == 200
    mean, std = ml1m.ratings.mean(), ml1m.ratings.std(ddof=1)
    unit = {k: (v - mean) / std for k, v in stars.items()}
    same = api.client.post("/recommendations", json={"ratings": unit, "limit": 3,
                                                     "model": "tutorial"})
    # z-scores of 5, 4.5 and 1 stars are outside [-1, 1]: the unit scale refuses them.
    assert same.status_code == 422
    assert "between -1 and 1" in same.json()["error"]
    items = r.json()["items"]
    assert len(items) == 3
    assert all(i["movie_id"] not in (2571, 260, 296) for i in items)
    assert [i["score"] for i in items] == sorted([i["score"] for i in items], reverse=True)


def test_existing_user_gets_recommendations_without_movies_they_rated(api, ml1m):
    r = api.client.get("/users/1/recommendations", params={"limit": 10})
    assert r.status_code == 200
    ids = [i["movie_id"] for i in r.json()["items"]]
    assert len(ids) == 10
    rated = set(ml1m.movie_ids[ml1m.user_ids == 1].tolist())
    assert not rated & set(ids)


def test_title_search_and_movie_lookup(api):
    r = api.client.get("/movies", params={"search": "matrix", "limit": 10})
    assert r.status_code == 200
    items = r.json()["items"]
    assert items[0] == {"movie_id": 2571, "title": "Matrix, The (1999)", "year": 1999,
                        "genres": ["Action", "Sci-Fi", "Thriller"], "rating_count": 2590,
                        "rating_mean": 4.3158}
    assert api.client.get("/movies/1196").json()["title"] == (
        "Star Wars: Episode V - The Empire Strikes Back (1980)")
    assert api.client.get("/movies", params={"search": "zzzzqqq"}).json() == {"items": []}


@pytest.mark.parametrize(
    ("body", "status", "error", "field"),
    [
        ({"ratings": {"999999": 1}}, 422, "unknown movie id: 999999", "ratings"),
        ({"ratings": {}, "limit": 0}, 422, "limit: Input should be greater than or equal to 1",
         "limit"),
        ({"ratings": {}, "model": "svd"}, 422, "model: Input should be 'blend', 'item', "
         "'user-knn', 'tutorial' or 'popular'", "model"),
        ({"ratings": {"abc": 1}}, 422, "ratings: movie id 'abc' is not an integer in "
         "0..4294967295", "ratings"),
        ({"ratings": {"1": 1}, "limit": 0}, 422, "limit: Input should be greater than or equal "
         "to 1", "limit"),
        ({"ratings": {"1": 1}, "limit": 101}, 422, "limit: Input should be less than or equal "
         "to 100", "limit"),
        ({"ratings": {"1": 1}, "neighbors": 1001}, 422, "neighbors: Input should be less than or "
         "equal to 1000", "neighbors"),
        ({"ratings": {"1": 1}, "neighbors": 0}, 422, "neighbors: Input should be greater than or "
         "equal to 1", "neighbors"),
        ({"ratings": {str(i): 1 for i in range(1, 1002)}}, 422, "ratings: too many ratings: 1001 "
         "(at most 1000)", "ratings"),
        ({"ratings": {"1": "good"}}, 422, "ratings.1: Input should be a valid number, unable to "
         "parse string as a number", "ratings.1"),
        ({"ratings": {"1": 6}, "scale": "stars"}, 422, "movie 1: star ratings must be between 0.5 "
         "and 5", "ratings"),
        ({"ratings": {"1": 1}, "scale": "percent"}, 422, "scale: Input should be 'unit' or "
         "'stars'", "scale"),
        ({"ratings": {"1": 1}, "colour": "red"}, 422, "colour: Extra inputs are not permitted",
         "colour"),
        ({"limit": 5}, 422, "ratings: Field required", "ratings"),
    ],
)
def test_bad_bodies_get_422_naming_the_problem(api, body, status, error, field):
    r = api.client.post("/recommendations", json=body)
    assert r.status_code == status
    assert r.json() == {"error": error, "field": field}


def test_zero_ratings_get_the_most_rated_movies_as_popular(api):
    r = api.client.post("/recommendations", json={"ratings": {}, "limit": 5})
    assert r.status_code == 200
    body = r.json()
    assert (body["model"], body["neighbors"]) == ("popular", 0)
    most_rated = api.client.get("/movies", params={"limit": 5}).json()["items"]
    assert [i["movie_id"] for i in body["items"]] == [m["movie_id"] for m in most_rated] == [
        2858, 260, 1196, 1210, 480]
    for item, movie in zip(body["items"], most_rated):
        assert item["score"] == movie["rating_count"]
        assert item["why"]["text"] == (f"popular: rated by {movie['rating_count']:,} people, "
                                       f"{movie['rating_mean']:.2g} stars on average")
    # Whichever model is named, and on either scale.
    named = api.client.post("/recommendations", json={"ratings": {}, "limit": 5,
                                                      "model": "tutorial", "scale": "stars"})
    assert named.status_code == 200 and named.json() == body


def test_zero_ratings_honour_the_genre_and_year_filters(api):
    body = {"ratings": {}, "limit": 10, "genres": ["Horror"], "year_min": 1980, "year_max": 1989}
    r = api.client.post("/recommendations", json=body)
    assert r.status_code == 200
    items = r.json()["items"]
    assert len(items) == 10
    assert items[0]["title"] == "Ghostbusters (1984)"  # Comedy|Horror, 2,181 ratings
    counts = [i["score"] for i in items]
    assert counts == sorted(counts, reverse=True)
    for item in items:
        assert "Horror" in item["genres"] and 1980 <= item["year"] <= 1989, item
        assert item["why"]["text"].startswith("popular: rated by ")


def test_more_like_this_answers_the_nearest_movies_in_the_item_model(api):
    r = api.client.get("/movies/1/similar", params={"limit": 5})
    assert r.status_code == 200
    body = r.json()
    assert body["movie"]["title"] == "Toy Story (1995)"
    assert body["model"] == "item"
    ids = [i["movie_id"] for i in body["items"]]
    assert len(ids) == 5 and 1 not in ids and ids[0] == 3114  # Toy Story 2 (1999)
    scores = [i["score"] for i in body["items"]]
    assert scores == sorted(scores, reverse=True) and scores[-1] > 0
    for item in body["items"]:
        assert item["why"]["text"].startswith("people who liked ")
        assert item["why"]["text"].endswith(" like both")
    assert api.client.get("/movies/1/similar").json()["items"][:5] == body["items"]


@pytest.mark.parametrize("genres", [["Comedy", "Romance"], ["Comedy,Romance"]])
def test_more_like_this_honours_genre_and_year_filters(api, genres):
    r = api.client.get("/movies/1/similar", params={"limit": 10, "genres": genres,
                                                    "year_min": 1990, "year_max": 1995})
    assert r.status_code == 200
    items = r.json()["items"]
    assert len(items) == 10
    for item in items:
        assert item["movie_id"] != 1
        assert {"Comedy", "Romance"} & set(item["genres"]) and 1990 <= item["year"] <= 1995


@pytest.mark.parametrize(
    ("path", "status", "error"),
    [
        ("/movies/999999/similar", 404, "no movie 999999 in the dataset"),
        ("/movies/51/similar", 409, "movie 51 has too few ratings for the item model to know "
         "which movies are like it"),
        ("/movies/1/similar?limit=0", 422, "limit: Input should be greater than or equal to 1"),
        ("/movies/1/similar?limit=101", 422, "limit: Input should be less than or equal to 100"),
        ("/movies/1/similar?year_min=2000&year_max=1990", 422, "year_min is after year_max"),
        ("/movies/x/similar", 422, "movie_id: Input should be a valid integer, unable to parse "
         "string as an integer"),
    ],
)
def test_more_like_this_refuses_with_one_line(api, path, status, error):
    r = api.client.get(path)
    assert r.status_code == status
    assert r.json()["error"] == error


def test_unknown_movie_ids_are_all_named(api):
    r = api.client.post("/recommendations", json={"ratings": {"1": 1, "999998": 1, "999999": -1}})
    assert r.status_code == 422
    assert r.json()["error"] == "unknown movie ids: 999998, 999999"


def test_body_over_64_kib_gets_413(api):
    big = {"ratings": {"1": 1}, "pad": "x" * (64 * 1024)}
    r = api.client.post("/recommendations", json=big)
    assert r.status_code == 413
    assert r.json() == {"error": "request body is larger than 65536 bytes"}


def test_invalid_json_and_wrong_content_type_are_4xx(api):
    r = api.client.post("/recommendations", content=b"{not json",
                        headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert r.json()["error"].startswith("invalid JSON")
    r = api.client.post("/recommendations", content=json.dumps(TUTORIAL_BODY),
                        headers={"content-type": "text/plain"})
    assert r.status_code == 415
    r = api.client.post("/recommendations", content=b'{"ratings": {"1": 1, "1": -1}}',
                        headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert r.json() == {"error": "invalid JSON: duplicate key '1'"}


def test_unknown_user_and_movie_get_404(api):
    r = api.client.get("/users/999999/recommendations")
    assert (r.status_code, r.json()) == (404, {"error": "no user 999999 in the dataset"})
    r = api.client.get("/movies/999999")
    assert (r.status_code, r.json()) == (404, {"error": "no movie 999999 in the dataset"})
    assert api.client.get("/users/-1/recommendations").status_code == 422
    assert api.client.get("/nope").status_code == 404


def test_readyz_reports_the_store_and_metrics_count_requests(api):
    r = api.client.get("/readyz")
    assert r.status_code == 200
    body = r.json()
    assert (body["status"], body["store"], body["users"], body["movies"], body["dataset"]) == (
        "ready", "embedded", 6040, 3883, "ml-1m")
    before = api.client.get("/metrics").text
    for _ in range(3):
        api.client.get("/movies/1")
    api.client.get("/movies/999999")
    after = api.client.get("/metrics").text

    def count(text: str, status: str) -> float:
        key = (f'movierec_http_requests_total{{method="GET",model="",route="/movies/{{movie_id}}",'
               f'status="{status}"}}')
        for line in text.splitlines():
            if line.startswith(key):
                return float(line.split()[-1])
        return 0.0

    assert count(after, "200") - count(before, "200") == 3
    assert count(after, "404") - count(before, "404") == 1
    assert "movierec_http_request_duration_seconds_bucket" in after
    assert 'movierec_store_query_duration_seconds_count{operation="recommend"}' in after


def test_openapi_and_docs_are_served(api):
    spec = api.client.get("/openapi.json").json()
    assert {"/recommendations", "/users/{user_id}/recommendations", "/movies",
            "/movies/{movie_id}", "/movies/{movie_id}/similar", "/healthz", "/readyz", "/metrics"} <= set(spec["paths"])
    assert api.client.get("/docs").status_code == 200


def test_access_log_is_one_json_line_per_request(api):
    api.client.get("/movies/2571", headers={"x-marker": "log-check"})
    time.sleep(0.2)
    lines = [json.loads(line) for line in api.logs().splitlines() if line.startswith("{")]
    hits = [e for e in lines if e.get("route") == "/movies/{movie_id}" and e.get("path") == "/movies/2571"]
    assert hits and hits[-1]["status"] == 200 and hits[-1]["method"] == "GET"
    assert "duration_ms" in hits[-1]


def test_readyz_is_503_before_ingest_and_200_after(tmp_path, ml1m_dir):
    env = {"QDRANT_PATH": str(tmp_path / "q"), "QDRANT_URL": ""}
    with running(env, tmp_path / "serve.log") as service:
        r = service.client.get("/readyz")
        assert r.status_code == 503
        assert r.json()["detail"].endswith("run `movierec ingest` first")
        r = service.client.post("/recommendations", json=TUTORIAL_BODY)
        assert r.status_code == 503
        assert "run `movierec ingest` first" in r.json()["error"]
        done = subprocess.run(
            [sys.executable, "-m", "movierec.cli", "ingest", "--data", str(ml1m_dir),
             "--no-item-model"],
            env={**os.environ, **env}, capture_output=True, text=True, timeout=120,
        )
        assert done.returncode == 0, done.stderr
        deadline = time.monotonic() + 10
        while service.client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert_reference(service.client.post("/recommendations", json=TUTORIAL_BODY).json())
        r = service.client.get("/movies/1/similar")
        assert (r.status_code, r.json()) == (409, {
            "error": "the live data has no item model, which finds similar movies: ingest "
                     "without --no-item-model"})


@pytest.fixture
def fast_tmp(tmp_path):
    """qdrant-client local mode commits (fsyncs) once per point: keep it on tmpfs if there is one."""
    import shutil
    import tempfile
    from pathlib import Path

    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    folder = Path(tempfile.mkdtemp(dir=shm, prefix="movierec-test-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_service_on_qdrant_client_local_mode_gives_the_reference(tmp_path, fast_tmp, ml1m_dir):
    env = {"QDRANT_URL": f"local:{fast_tmp / 'local'}"}
    done = subprocess.run(
        [sys.executable, "-m", "movierec.cli", "ingest", "--data", str(ml1m_dir),
         "--no-item-model"],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    with running(env, tmp_path / "serve.log", timeout=120) as service:
        ready = service.client.get("/readyz").json()
        assert (ready["store"], ready["users"], ready["movies"]) == ("server", 6040, 3883)
        assert_reference(service.client.post("/recommendations", json=TUTORIAL_BODY).json())
        assert service.client.get("/movies", params={"search": "matrix"}).json()["items"][0][
            "movie_id"] == 2571


def test_unreachable_qdrant_gives_503_with_a_clear_message(tmp_path):
    env = {"QDRANT_URL": "http://127.0.0.1:9", "QDRANT_TIMEOUT": "1"}
    with running(env, tmp_path / "serve.log") as service:
        r = service.client.get("/readyz")
        assert r.status_code == 503
        assert r.json()["detail"].startswith("cannot reach Qdrant at http://127.0.0.1:9")
        r = service.client.post("/recommendations", json=TUTORIAL_BODY)
        assert r.status_code == 503
        assert r.json()["error"].startswith("cannot reach Qdrant at http://127.0.0.1:9")
        assert r.headers["retry-after"] == "5"
        assert service.client.get("/healthz").json() == {"status": "ok"}


def test_sigterm_lets_in_flight_requests_finish(tmp_path, ml1m_prepared):
    service = serve_prepared(ml1m_prepared, tmp_path)
    # Hold a request open by sending its body slowly, then SIGTERM mid-request.
    import socket

    body = json.dumps(TUTORIAL_BODY).encode()
    host, port = service.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    sock.sendall(b"POST /recommendations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 + f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:10])
    time.sleep(0.3)
    service.proc.send_signal(15)
    time.sleep(0.3)
    sock.sendall(body[10:])
    answer = b""
    sock.settimeout(10)
    while b"\r\n\r\n" not in answer or len(answer.split(b"\r\n\r\n", 1)[1]) < 50:
        chunk = sock.recv(65536)
        if not chunk:
            break
        answer += chunk
    sock.close()
    assert answer.startswith(b"HTTP/1.1 200")
    assert b"Empire Strikes Back" in answer
    assert service.proc.wait(30) in (0, -15)  # uvicorn re-raises SIGTERM after a clean drain
    with pytest.raises(httpx.TransportError):
        httpx.get(service.url + "/healthz", timeout=1)


# --- models, filters, explanations ------------------------------------------------------------


def test_models_lists_the_default_for_new_people_first(api):
    r = api.client.get("/models")
    assert r.status_code == 200
    body = r.json()
    assert body["default"] == "blend"
    assert [m["name"] for m in body["models"]] == ["blend", "item", "user-knn", "tutorial", "popular"]
    assert body["liked_stars"] == 3.0


def test_default_model_is_blend_and_explains_every_answer(api):
    body = {"ratings": {"2571": 1, "260": 1, "1196": 1, "296": -1}, "limit": 5}
    r = api.client.post("/recommendations", json=body)
    assert r.status_code == 200
    answer = r.json()
    assert answer["model"] == "blend"
    assert answer["neighbors"] == 50
    ids = [i["movie_id"] for i in answer["items"]]
    assert len(ids) == 5 and not {2571, 260, 1196, 296} & set(ids)
    scores = [i["score"] for i in answer["items"]]
    assert scores == sorted(scores, reverse=True) and scores[-1] > 0
    for item in answer["items"]:
        why = item["why"]
        assert why["text"] and set(why["parts"]) == {"popularity", "item", "neighbors"}


def test_user_knn_explains_with_the_similar_users(api):
    body = {"ratings": {"2571": 1, "260": 1, "1196": 1, "296": -1}, "limit": 3,
            "model": "user-knn"}
    answer = api.client.post("/recommendations", json=body).json()
    assert (answer["model"], answer["neighbors"]) == ("user-knn", 100)
    first = answer["items"][0]["why"]
    assert first["text"] == (f"rated by {first['neighbors']} of your 100 most similar users, "
                             f"{first['mean_rating']:g} stars on average")
    assert 0 < first["neighbors"] <= 100 and 1 <= first["mean_rating"] <= 5


@pytest.mark.parametrize("path, body", [
    ("/recommendations", {"ratings": {"2571": 1, "260": 1, "1196": 1, "296": -1}}),
    ("/recommendations", {"ratings": {"2571": 5, "260": 4.5, "1": 2}, "scale": "stars"}),
    ("/recommendations", {"ratings": {}}),
    *[("/recommendations", {"ratings": {"2571": 1, "260": 1, "296": -1}, "model": model})
      for model in ("item", "user-knn", "tutorial", "popular")],
    ("/recommendations", {"ratings": {"2571": 1}, "genres": ["Comedy"], "year_min": 1990}),
    ("/users/1/recommendations", None),
    ("/users/1/recommendations?model=user-knn&limit=3", None),
])
def test_answers_are_exactly_the_response_models_json(api, path, body):
    """The answer routes write their JSON without FastAPI's validation: it must be, byte for
    byte, what validating it as RecommendationResponse and dumping that gives (every field, in
    the model's order, of the model's types)."""
    from movierec.service.schemas import RecommendationResponse

    r = api.client.post(path, json=body) if body is not None else api.client.get(path)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.json()["items"]
    assert r.content == RecommendationResponse.model_validate_json(r.content).model_dump_json(
        ).encode()


@pytest.mark.parametrize("model", ["blend", "item", "user-knn", "tutorial"])
def test_genre_and_year_filters_hold_for_every_model(api, model):
    body = {"ratings": {"2571": 1, "260": 1, "1": 1}, "limit": 10, "model": model,
            "genres": ["Comedy", "Romance"], "year_min": 1990, "year_max": 1995}
    r = api.client.post("/recommendations", json=body)
    assert r.status_code == 200
    items = r.json()["items"]
    assert len(items) == 10
    for item in items:
        assert {"Comedy", "Romance"} & set(item["genres"]), item
        assert 1990 <= item["year"] <= 1995, item


def test_bad_model_and_filters_get_422(api):
    r = api.client.post("/recommendations", json={"ratings": {"1": 1}, "model": "svd"})
    assert r.status_code == 422
    assert r.json()["field"] == "model"
    r = api.client.post("/recommendations", json={"ratings": {"1": 1}, "year_min": 2000,
                                                  "year_max": 1990})
    assert r.status_code == 422
    assert r.json() == {"error": "year_min is after year_max", "field": "year_max"}


def test_genres_lists_the_datasets_genres(api):
    genres = api.client.get("/genres").json()["genres"]
    assert len(genres) == 18
    assert genres[:3] == ["Action", "Adventure", "Animation"]


def test_existing_user_with_the_item_model(api, ml1m):
    r = api.client.get("/users/1/recommendations", params={"limit": 5, "model": "item"})
    assert r.status_code == 200
    ids = [i["movie_id"] for i in r.json()["items"]]
    assert len(ids) == 5 and not set(ml1m.movie_ids[ml1m.user_ids == 1].tolist()) & set(ids)



# --- importing ratings -----------------------------------------------------------------------


def test_import_of_a_letterboxd_export_as_text_csv_and_its_recommendations(api):
    from tests.imports_helpers import WELL_KNOWN, letterboxd

    data = letterboxd([(name, year, 4.5 if k % 5 else 1.5) for k, (name, year, _) in
                       enumerate(WELL_KNOWN)])
    r = api.client.post("/ratings/import", content=data, headers={"content-type": "text/csv"})
    assert r.status_code == 200
    body = r.json()
    assert (body["format"], body["rows"], len(body["matched"])) == ("letterboxd", 50, 49)
    assert {int(k) for k in body["ratings"]} == {m for *_, m in WELL_KNOWN if m is not None}
    assert body["matched"][0] == {"line": 2, "movie_id": 260, "title": "Star Wars: Episode IV - "
                                  "A New Hope (1977)", "year": 1977, "genres": [
                                      "Action", "Adventure", "Fantasy", "Sci-Fi"], "stars": 1.5,
                                  "matched_by": "title", "given": {"title": "Star Wars",
                                                                   "year": 1977}}
    assert body["unmatched"] == [{"line": 51, "title": "Amélie", "year": 2001, "reason":
                                  "no such movie in the catalog (its newest movies are from 2000)"}]
    answer = api.client.post("/recommendations", json={"ratings": body["ratings"],
                                                       "scale": "stars", "limit": 10})
    assert answer.status_code == 200
    ids = [i["movie_id"] for i in answer.json()["items"]]
    assert len(ids) == 10 and not {int(k) for k in body["ratings"]} & set(ids)


def test_import_as_a_multipart_upload_of_an_imdb_export(api):
    from tests.imports_helpers import imdb

    data = imdb([(133093, 10, "The Matrix", 1999, "Movie"), (120338, 3, "Titanic", 1997,
                                                             "Movie")])
    r = api.client.post("/ratings/import", params={"format": "imdb"},
                        files={"file": ("ratings.csv", data, "text/csv")})
    assert r.status_code == 200
    assert r.json()["ratings"] == {"2571": 5.0, "1721": 1.5}


@pytest.mark.parametrize(("content", "content_type", "status", "error"), [
    (b"", "text/csv", 422, "the file is empty"),
    (b"a;b\n1;2\n", "text/csv", 422, "the file is neither a Letterboxd ratings.csv (Name, Year, "
     "Rating), an IMDb ratings export (Const, Your Rating, Title, Year) nor a movie_id,rating "
     "csv: its first line is 'a;b'"),
    (b"Name,Year,Rating\nAm\xe9lie,2001,4\n", "text/csv", 422, "line 2: the file is not UTF-8 "
     "text (byte 0xe9): export it again, or save it as UTF-8"),
    (b'{"ratings": {}}', "application/json", 415, "send the export as a file upload "
     "(multipart/form-data) or as the body with Content-Type: text/csv"),
    (b"--x\r\n\r\n", "multipart/form-data; boundary=y", 422, "the multipart body cannot be "
     "read: no parts found (is the boundary right?)"),
    (b"--x\r\n\r\n", "multipart/form-data", 422, "the multipart body cannot be read: no parts "
     "found (is the boundary right?)"),
    (b"--x\r\nContent-Type: text/csv\r\n\r\n1,4\r\n--x--\r\n", "multipart/form-data; "
     "boundary=x", 422, "the multipart body has no form-data part holding a file"),
])
def test_import_refuses_bad_files_in_one_line(api, content, content_type, status, error):
    r = api.client.post("/ratings/import", content=content,
                        headers={"content-type": content_type})
    assert r.status_code == status
    assert r.json()["error"] == error


def test_import_bodies_are_limited_to_2_mib_and_every_other_body_to_64_kib(api):
    rows = b"movie_id,rating\n" + b"1,4\n" * 30_000  # 90 KB: over 64 KiB, within 2 MiB
    r = api.client.post("/ratings/import", content=rows, headers={"content-type": "text/csv"})
    assert r.status_code == 422
    assert r.json()["error"] == ("the file has more than 10,000 rows: export fewer ratings "
                                 "(Letterboxd and IMDb exports are far smaller)")
    big = b"movie_id,rating\n" + b"1,4\n" * 800_000
    r = api.client.post("/ratings/import", content=big, headers={"content-type": "text/csv"})
    assert (r.status_code, r.json()) == (413, {"error": "request body is larger than 2097152 "
                                                        "bytes"})
    r = api.client.post("/recommendations", content=rows, headers={"content-type": "text/csv"})
    assert r.status_code == 413
