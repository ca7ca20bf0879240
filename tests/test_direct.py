"""POST /recommendations as served (service/direct.py, plain ASGI) against FastAPI's own route for
it (the reference): two real servers on loopback ports, one embedded ml-1m store, the same
requests; every answer must match in status, content type and bytes, good bodies and bad."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from harness.queries import body as tutorial_body
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from movierec.config import Settings
from movierec.service.app import create_app
from movierec.service.server import uvicorn_config
from tests.service_helpers import free_port

pytestmark = pytest.mark.ml1m

JSON = {"content-type": "application/json"}
SETTINGS = Settings(qdrant_url=None, qdrant_path="unused-the-store-is-given")


class _Running:
    def __init__(self, app) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn_config(app, "127.0.0.1", self.port))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30)

    def stop(self) -> None:
        self.client.close()
        self.server.should_exit = True
        self.thread.join(30)


@pytest.fixture(scope="module")
def pair(ml1m_full_embedded) -> Iterator[tuple[_Running, _Running]]:
    """(the service as it runs, the same service with every route left to FastAPI), both on
    the one open store."""
    served = _Running(create_app(SETTINGS, store=ml1m_full_embedded))
    reference = _Running(create_app(SETTINGS, store=ml1m_full_embedded, direct=False))
    yield served, reference
    served.stop()
    reference.stop()


def _same(pair, content: bytes, headers: dict) -> httpx.Response:
    served, reference = pair
    got = served.client.post("/recommendations", content=content, headers=headers)
    want = reference.client.post("/recommendations", content=content, headers=headers)
    assert (got.status_code, got.headers.get("content-type"), got.content) == (
        want.status_code, want.headers.get("content-type"), want.content), content[:200]
    return got


def _body(**fields) -> bytes:
    return json.dumps(fields).encode()


GOOD = [
    json.dumps(tutorial_body(limit=10)).encode(),
    json.dumps(tutorial_body(model="tutorial", limit=5)).encode(),
    _body(ratings={"2571": 1}),
    _body(ratings={}, limit=5),
    _body(ratings={}, genres=["Horror"], year_min=1980, year_max=1989, limit=10),
    _body(ratings={"2571": 5, "260": 4.5, "296": 1}, scale="stars", limit=3),
    _body(ratings={"1": 1, "2": -1}, model="user-knn", neighbors=30, genres=["Comedy"]),
    _body(ratings={"1": 1, "2": -1}, model="item", limit=100),
    _body(ratings={"1": 1}, model="blend", year_min=1990),
    _body(ratings={"1": 0.5, "2": -0.25}, model="popular"),
]

BAD = [
    b"",
    b"null",
    b"[]",
    b'"ratings"',
    b"1",
    b"{not json",
    b'{"ratings": {"1": 1, "1": -1}}',
    b"[" * 40 + b"]" * 40,
    b'{"ratings": {"1": 1}}\xff',
    _body(),
    _body(limit=5),
    _body(ratings=[1, 2]),
    _body(ratings={"1": "good"}),
    _body(ratings={"x": 1}),
    _body(ratings={"1": 1, "001": 1}),
    _body(ratings={"1": 2}),
    _body(ratings={"1": 6}, scale="stars"),
    _body(ratings={"1": 1}, scale="percent"),
    _body(ratings={"1": 1}, model="nope"),
    _body(ratings={"1": 1}, limit=0),
    _body(ratings={"1": 1}, limit=101),
    _body(ratings={"1": 1}, neighbors=1001),
    _body(ratings={"1": 1}, year_min=2000, year_max=1990),
    _body(ratings={"1": 1}, year_min=1700),
    _body(ratings={"1": 1}, genres="Comedy"),
    _body(ratings={"1": 1}, colour="red"),
    _body(ratings={"1": 1, "999998": 1, "999999": -1}),
    _body(ratings={str(i): 1 for i in range(1, 1002)}),
]


@pytest.mark.parametrize("content", GOOD)
def test_answers_match_fastapis_route_byte_for_byte(pair, content):
    r = _same(pair, content, JSON)
    assert r.status_code == 200
    assert r.json()["items"]


@pytest.mark.parametrize("content", BAD)
def test_refusals_match_fastapis_route_byte_for_byte(pair, content):
    r = _same(pair, content, JSON)
    assert r.status_code == 422
    assert set(r.json()) <= {"error", "field"}


@pytest.mark.parametrize(("headers", "status"), [
    ({"content-type": "text/plain"}, 415),
    ({}, 415),
    ({"content-type": "application/json; charset=utf-8"}, 200),
    ({"content-type": "Application/JSON"}, 200),
    ({"content-type": "application/merge-patch+json"}, 415),
])
def test_content_types_are_answered_alike(pair, headers, status):
    assert _same(pair, GOOD[0], headers).status_code == status


def test_other_methods_and_paths_are_left_to_fastapi(pair):
    served, reference = pair
    for method, path in [("GET", "/recommendations"), ("PUT", "/recommendations"),
                         ("POST", "/recommendations/"), ("GET", "/models")]:
        got = served.client.request(method, path)
        want = reference.client.request(method, path)
        assert (got.status_code, got.content) == (want.status_code, want.content), (method, path)
    assert served.client.get("/recommendations").status_code == 405


def test_metrics_name_the_route_and_model_alike(pair):
    served, reference = pair

    def counts(client) -> dict[str, float]:
        lines = client.get("/metrics").text.splitlines()
        return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in lines
                if line.startswith("movierec_http_requests_total{") and "/recommendations" in line}

    before = counts(served.client), counts(reference.client)
    for content in (GOOD[0], GOOD[3], BAD[5]):
        _same(pair, content, JSON)
    after = counts(served.client), counts(reference.client)
    grown = [{k: v - before[i].get(k, 0) for k, v in after[i].items() if v != before[i].get(k, 0)}
             for i in range(2)]
    assert grown[0] == grown[1] == {
        'movierec_http_requests_total{method="POST",model="blend",route="/recommendations",'
        'status="200"}': 1.0,
        'movierec_http_requests_total{method="POST",model="popular",route="/recommendations",'
        'status="200"}': 1.0,
        'movierec_http_requests_total{method="POST",model="",route="/recommendations",'
        'status="422"}': 1.0,
    }


def test_the_documented_api_is_the_same(ml1m_full_embedded):
    assert create_app(SETTINGS, store=ml1m_full_embedded).openapi() == create_app(
        SETTINGS, store=ml1m_full_embedded, direct=False).openapi()


_values = st.one_of(st.none(), st.booleans(), st.integers(-10, 3000), st.floats(allow_nan=False),
                    st.text(max_size=8), st.lists(st.integers(0, 5), max_size=3))
_ratings = st.dictionaries(st.sampled_from(["1", "260", "2571", "296", "0", "x", "-1", "99999"]),
                           st.one_of(st.floats(-2, 6, allow_nan=False), st.integers(-2, 6),
                                     st.text(max_size=3)), max_size=5)
_bodies = st.fixed_dictionaries({}, optional={
    "ratings": st.one_of(_ratings, _values), "limit": _values, "scale": st.sampled_from(
        ["unit", "stars", "x"]), "model": st.sampled_from(["blend", "item", "tutorial", "nope"]),
    "genres": st.one_of(st.lists(st.sampled_from(["Comedy", "Horror", "Nope"]), max_size=3),
                        _values),
    "year_min": _values, "year_max": _values, "neighbors": _values, "extra": _values})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_bodies)
def test_any_body_gets_the_same_answer(pair, fields):
    _same(pair, json.dumps(fields).encode(), JSON)
