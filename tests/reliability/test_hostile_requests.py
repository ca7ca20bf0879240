"""Hostile requests against the real server (ml-1m, embedded store): each gets its 4xx fast, with
an exact one-line JSON message, and the server stays healthy for everyone else.
"""

from __future__ import annotations

import json
import socket
import threading
import time

import httpx
import pytest

from movierec import ingest, movielens
from movierec.models import REGISTRY
from movierec.service import server as service_server
from movierec.service.guards import BearerAuth
from movierec.store import open_writer
from tests.conftest import settings_for
from tests.reliability.conftest import host_port, raw_exchange, status_and_body
from tests.service_helpers import TUTORIAL_BODY, running

pytestmark = pytest.mark.ml1m

FAST = 1.0  # seconds: a refusal that needs no data takes milliseconds; this leaves CI slack
U32 = 2**32


def healthy(service) -> None:
    started = time.monotonic()
    assert service.client.get("/healthz").json() == {"status": "ok"}
    assert service.client.get("/readyz").status_code == 200
    assert time.monotonic() - started < FAST


def post_raw(service, body: bytes, content_type: str = "application/json", **headers):
    started = time.monotonic()
    r = service.client.post("/recommendations", content=body,
                            headers={"content-type": content_type, **headers})
    return r, time.monotonic() - started


# --- sizes and shapes ----------------------------------------------------------------------

def test_a_huge_announced_body_is_refused_before_it_is_sent(served):
    head = (b"POST /recommendations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 10000000000\r\n\r\n")
    answer, took = raw_exchange(served, head)
    assert status_and_body(answer) == (413, b'{"error": "request body is larger than 65536 bytes"}')
    assert took < FAST
    healthy(served)


def test_a_huge_streamed_body_is_cut_off_at_64_kib(served):
    def chunks():
        yield b'{"ratings": {"1": 1}, "pad": "'
        for _ in range(1024):  # 64 MiB if it were all read
            yield b"x" * 65536

    r, took = post_raw(served, chunks())
    assert (r.status_code, r.json()) == (413, {"error": "request body is larger than 65536 bytes"})
    assert took < 5 * FAST
    healthy(served)


def test_deeply_nested_json_is_refused_without_parsing_it(served):
    too_deep = {"error": "invalid JSON: nested deeper than 32 levels"}
    r, took = post_raw(served, b"[" * 30_000 + b"]" * 30_000)
    assert (r.status_code, r.json()) == (422, too_deep)
    assert took < FAST
    r, _ = post_raw(served, b'{"ratings": ' + b'{"a": ' * 40 + b"1" + b"}" * 41)
    assert (r.status_code, r.json()) == (422, too_deep)
    healthy(served)


def test_duplicate_keys_are_refused_at_any_level(served):
    r, _ = post_raw(served, b'{"ratings": {"1": 1}, "ratings": {"2": 1}}')
    assert (r.status_code, r.json()) == (422, {"error": "invalid JSON: duplicate key 'ratings'"})
    r, _ = post_raw(served, b'{"ratings": {"260": 1, "260": -1}}')
    assert (r.status_code, r.json()) == (422, {"error": "invalid JSON: duplicate key '260'"})


@pytest.mark.parametrize("content_type", [
    "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "",
    "application/jsonx"])
def test_a_body_that_is_not_declared_json_gets_415(served, content_type):
    r, took = post_raw(served, json.dumps(TUTORIAL_BODY).encode(), content_type)
    assert (r.status_code, r.json()) == (
        415, {"error": "send the body as JSON (Content-Type: application/json)"})
    assert took < FAST


def test_one_movie_spelled_twice_is_refused(served):
    r, _ = post_raw(served, b'{"ratings": {"1": 1, "001": -1}}')
    assert r.status_code == 422
    assert r.json()["error"] == "ratings: movie 1 is rated twice ('1' and '001')"


def test_a_body_that_is_not_utf8_is_invalid_json(served):
    r, took = post_raw(served, b'{"ratings": {"1": 1}}\xff')
    assert (r.status_code, r.json()) == (422, {"error": "invalid JSON: the body is not UTF-8"})
    assert took < FAST


def test_thousands_of_ratings_are_refused_and_the_maximum_is_answered_in_time(served):
    many = {"ratings": {str(i): 1 for i in range(1, 5001)}}
    r, took = post_raw(served, json.dumps(many).encode())
    assert (r.status_code, r.json()) == (
        422, {"error": "ratings: too many ratings: 5000 (at most 1000)", "field": "ratings"})
    assert took < FAST
    # The largest request allowed: 1,000 real movies, 1,000 neighbours, 100 results.
    top = served.client.get("/movies", params={"limit": 100}).json()["items"]
    catalog = {m["movie_id"] for m in top}
    candidate = 1
    while len(catalog) < 1000:
        if served.client.get(f"/movies/{candidate}").status_code == 200:
            catalog.add(candidate)
        candidate += 1
    body = {"ratings": {str(m): (1 if m % 2 else -1) for m in sorted(catalog)},
            "limit": 100, "neighbors": 1000}
    r, took = post_raw(served, json.dumps(body).encode())
    assert r.status_code == 200
    assert len(r.json()["items"]) == 100 and r.json()["neighbors"] == 1000
    assert took < 10 * FAST


# --- ids that are not ids ------------------------------------------------------------------

INT_ERROR = "Input should be a valid integer, unable to parse string as an integer"


@pytest.mark.parametrize(("raw", "status", "error"), [
    ("0", 404, "no {kind} 0 in the dataset"),
    ("-1", 422, "{kind}_id: Input should be greater than or equal to 0"),
    (str(U32), 422, "{kind}_id: Input should be less than or equal to 4294967295"),
    (str(U32 - 1), 404, "no {kind} 4294967295 in the dataset"),
    ("99999999999999999999999", 422, "{kind}_id: Input should be less than or equal to 4294967295"),
    ("1e400", 422, "{kind}_id: " + INT_ERROR),
    ("NaN", 422, "{kind}_id: " + INT_ERROR),
    ("1.5", 422, "{kind}_id: " + INT_ERROR),
    ("%00", 422, "{kind}_id: " + INT_ERROR),
])
@pytest.mark.parametrize("kind", ["movie", "user"])
def test_ids_in_the_path_that_are_not_u32_get_an_exact_4xx(served, kind, raw, status, error):
    path = f"/movies/{raw}" if kind == "movie" else f"/users/{raw}/recommendations"
    started = time.monotonic()
    r = served.client.get(path)
    assert time.monotonic() - started < FAST
    body = {"error": error.format(kind=kind)}
    if status == 422:
        body["field"] = f"{kind}_id"
    assert (r.status_code, r.json()) == (status, body)


@pytest.mark.parametrize(("ratings", "error"), [
    (b'{"0": 1}', "unknown movie id: 0"),
    (b'{"-1": 1}', "ratings: movie id '-1' is not an integer in 0..4294967295"),
    (b'{"4294967296": 1}', "ratings: movie id '4294967296' is not an integer in 0..4294967295"),
    (b'{"1e400": 1}', "ratings: movie id '1e400' is not an integer in 0..4294967295"),
    (b'{"NaN": 1}', "ratings: movie id 'NaN' is not an integer in 0..4294967295"),
    (b'{"1": NaN}', "ratings: rating of movie 1 must be a finite number"),
    (b'{"1": Infinity}', "ratings: rating of movie 1 must be a finite number"),
    (b'{"1": 1e400}', "ratings: rating of movie 1 must be a finite number"),
    (b'{"1": 2}', "rating of movie 1 must be between -1 and 1 on the 'unit' scale "
                  "(use \"scale\": \"stars\" for 0.5-5 stars)"),
    (b'{"1": "NaN"}', "ratings: rating of movie 1 must be a finite number"),
])
def test_ids_and_ratings_in_the_body_that_are_not_valid_get_an_exact_422(served, ratings, error):
    r, took = post_raw(served, b'{"ratings": ' + ratings + b"}")
    assert r.status_code == 422
    assert r.json()["error"] == error
    assert took < FAST


# --- the HTTP layer itself -----------------------------------------------------------------

def test_an_oversized_request_head_gets_431_and_garbage_gets_400(served):
    big = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * (1 << 20) + b"\r\n\r\n"
    answer, took = raw_exchange(served, big)
    assert status_and_body(answer) == (
        431, b'{"error": "request line and headers are larger than 16384 bytes"}')
    assert took < FAST
    answer, took = raw_exchange(served, b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\n\r\n")
    assert status_and_body(answer)[0] == 431
    answer, took = raw_exchange(served, b"HELLO\x00\x01 nonsense\r\n\r\n")
    assert status_and_body(answer) == (400, b'{"error": "invalid HTTP request"}')
    assert took < FAST
    healthy(served)


def test_wrong_methods_get_405_as_json(served):
    r = served.client.put("/recommendations", json=TUTORIAL_BODY)
    assert (r.status_code, r.json()) == (405, {"error": "Method Not Allowed"})
    assert r.headers["allow"] == "POST"


def test_slow_and_idle_clients_are_cut_off_while_everyone_else_is_served(served):
    """Slowloris: 60 idle connections, 60 trickling their headers, 30 trickling a body. Normal
    requests meanwhile are answered at once; every attacker gets 408 within the read timeout."""
    timeout = service_server.REQUEST_READ_TIMEOUT
    addr = host_port(served)
    results: dict[str, list] = {"idle": [], "head": [], "body": []}
    stop = threading.Event()

    def attacker(kind: str) -> None:
        sock = socket.create_connection(addr, timeout=timeout + 10)
        started = time.monotonic()
        try:
            if kind == "body":
                sock.sendall(b"POST /recommendations HTTP/1.1\r\nHost: x\r\nContent-Type: "
                             b"application/json\r\nContent-Length: 100\r\n\r\n")
            drip = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: " if kind == "head" else b'{"r'
            answer = b""
            sock.settimeout(0.5)
            give_up = started + timeout + 5  # bounded even when the server never cuts it off
            k = 0
            while time.monotonic() < give_up:
                if kind != "idle" and not stop.is_set():
                    try:
                        sock.send(drip[k % len(drip): k % len(drip) + 1])
                        k += 1
                    except OSError:
                        break
                try:
                    chunk = sock.recv(4096)
                except socket.timeout:
                    continue
                except OSError:
                    break
                answer += chunk
                if not chunk or b"\r\n\r\n" in answer:
                    break
            results[kind].append((answer, time.monotonic() - started))
        finally:
            sock.close()

    threads = [threading.Thread(target=attacker, args=(kind,), daemon=True)
               for kind, n in (("idle", 60), ("head", 60), ("body", 30)) for _ in range(n)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    latencies = []
    with httpx.Client(base_url=served.url, timeout=5) as client:
        while any(t.is_alive() for t in threads) and len(latencies) < 400:
            started = time.monotonic()
            r = client.post("/recommendations", json=TUTORIAL_BODY)
            latencies.append(time.monotonic() - started)
            assert r.status_code == 200
            time.sleep(0.02)
    for t in threads:
        t.join(timeout + 15)
    stop.set()
    assert max(latencies) < FAST, sorted(latencies)[-5:]
    expected = (b"HTTP/1.1 408 Request Timeout", b'{"error": "the request did not arrive within '
                + f"{timeout:g}".encode() + b' seconds"}')
    for kind, answers in results.items():
        assert len(answers) == {"idle": 60, "head": 60, "body": 30}[kind]
        for answer, took in answers:
            assert answer.startswith(expected[0]) and answer.endswith(expected[1]), (kind, answer)
            assert timeout - 0.5 < took < timeout + 3, (kind, took)
    healthy(served)
    metrics = served.client.get("/metrics").text
    timed_out = ('movierec_http_requests_total{method="POST",model="",route="/recommendations",'
                 'status="408"}')
    assert f"{timed_out} 30.0" in metrics


# --- bearer token and CORS -----------------------------------------------------------------

@pytest.fixture(scope="module")
def small_store_path(tmp_path_factory, small_dir):
    root = tmp_path_factory.mktemp("auth") / "q"
    ingest.write(open_writer(settings_for(qdrant_path=root)),
                 ingest.prepare(movielens.load(small_dir, "small"), REGISTRY.unlearned()), progress=False)
    return root


TOKEN = "s3rvice-token-for-tests-0123456789"


def test_with_service_api_key_every_route_but_the_probes_needs_the_token(small_store_path,
                                                                          tmp_path):
    env = {"QDRANT_PATH": str(small_store_path), "QDRANT_URL": "", "SERVICE_API_KEY": TOKEN}
    with running(env, tmp_path / "serve.log") as service:
        c = service.client
        assert c.get("/healthz").status_code == 200
        assert c.get("/readyz").status_code == 200
        refused = {"error": "missing or wrong bearer token (Authorization: Bearer ...)"}
        wrong = [None, "Bearer", f"bearer {TOKEN}", f"Bearer  {TOKEN}",
                 f"Bearer {TOKEN[:-1]}x", f"Bearer {TOKEN}{TOKEN}", f"Basic {TOKEN}", TOKEN]
        routes = [("GET", "/movies"), ("GET", "/movies/1"), ("GET", "/users/1/recommendations"),
                  ("POST", "/recommendations"), ("GET", "/metrics"), ("GET", "/openapi.json"),
                  ("GET", "/docs"), ("GET", "/"), ("GET", "/nope"), ("GET", "/healthz/"),
                  ("GET", "//movies")]
        for method, path in routes:
            for header in wrong:
                headers = {} if header is None else {"authorization": header}
                r = c.request(method, path, headers=headers, json={"ratings": {"1": 1}})
                assert (r.status_code, r.json()) == (401, refused), (method, path, header)
                assert r.headers["www-authenticate"] == "Bearer"
        good = {"authorization": f"Bearer {TOKEN}"}
        assert c.get("/movies/1", headers=good).status_code == 200
        r = c.post("/recommendations", json={"ratings": {"1": 1}}, headers=good)
        assert r.status_code == 200
        assert c.get("/metrics", headers=good).status_code == 200


def test_the_token_is_compared_in_constant_time():
    import inspect

    source = inspect.getsource(BearerAuth)
    assert "hmac.compare_digest(" in source and "==" not in source.split("compare_digest")[1][:60]


def test_cors_is_off_by_default_and_only_named_origins_get_it(small_store_path, tmp_path):
    preflight = {"origin": "https://evil.example", "access-control-request-method": "POST"}
    env = {"QDRANT_PATH": str(small_store_path), "QDRANT_URL": ""}
    with running(env, tmp_path / "off.log") as service:
        r = service.client.options("/recommendations", headers=preflight)
        assert r.status_code == 405
        assert "access-control-allow-origin" not in r.headers
        r = service.client.get("/movies/1", headers={"origin": "https://evil.example"})
        assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
    env["CORS_ORIGINS"] = "https://app.example"
    with running(env, tmp_path / "on.log") as service:
        r = service.client.options("/recommendations", headers={
            **preflight, "origin": "https://app.example"})
        assert (r.status_code, r.headers["access-control-allow-origin"]) == (
            200, "https://app.example")
        r = service.client.options("/recommendations", headers=preflight)
        assert r.status_code == 400 and "access-control-allow-origin" not in r.headers
        r = service.client.get("/movies/1", headers={"origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers
