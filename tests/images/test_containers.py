"""The two images run as production runs them (podman): the ingest image loads ml-1m into a
volume, the service image serves it over HTTP, stops cleanly, and neither holds build tools."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
import yaml

from tests.conftest import DISLIKES, LIKES, REFERENCE, settings_for
from tests.service_helpers import TUTORIAL_BODY

from .conftest import CI, ROOT, cannot_run, podman, podman_problem

# Each image may add at most this much to its base (README, Images).
SIZE_BUDGET = 250e6
# What the chart gives a pod between SIGTERM and SIGKILL.
GRACE_SECONDS = yaml.safe_load((ROOT / "charts" / "movierec" / "values.yaml").read_text())[
    "service"]["terminationGracePeriodSeconds"]
DEFAULT_BODY = {"ratings": TUTORIAL_BODY["ratings"], "limit": 10}

# Where podman cannot run, the whole module is skipped at collection, with one reason (under
# CI=true each test fails instead, from the `images` fixture, and the rest of the run goes on).
if (problem := podman_problem()) is not None and not CI:
    cannot_run(problem)


@pytest.fixture(scope="module")
def library_answer(store):
    """What the library answers a request without options on the ingested volume, read before
    any service holds the store (one process at a time opens it)."""
    from movierec import recommend
    from movierec.store import open_reader

    with open_reader(settings_for(qdrant_path=store.path / "qdrant")) as reader:
        return recommend.recommend(reader, recommend.tutorial_query(LIKES, DISLIKES), limit=10)


@pytest.fixture(scope="module")
def served(library_answer, service):
    return service


def test_the_ingest_image_loads_ml1m_into_a_volume_as_uid_10001(store):
    assert store.ingest.returncode == 0, store.ingest.stderr[-3000:]
    assert "ingested ml-1m: 6040 users, 3883 movies, 1000209 ratings" in store.ingest.stdout
    owners = {(p.stat().st_uid, p.stat().st_gid) for p in (store.path / "qdrant").rglob("*")}
    assert owners == {(10001, 10001)}


def test_the_service_image_answers_the_tutorial_top5_with_scores(served):
    r = served.client.post("/recommendations", json=TUTORIAL_BODY)
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert [(i["movie_id"], i["title"]) for i in items] == [(m, t) for m, t, _ in REFERENCE]
    assert [i["score"] for i in items] == pytest.approx([s for *_, s in REFERENCE], rel=1e-6)


def test_a_request_without_a_model_gets_the_default_models_answer(served, library_answer):
    r = served.client.post("/recommendations", json=DEFAULT_BODY)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == library_answer.model
    assert [i["movie_id"] for i in body["items"]] == [i.movie.movie_id for i in library_answer.items]
    assert [i["score"] for i in body["items"]] == pytest.approx(
        [i.score for i in library_answer.items], rel=1e-6)


def test_the_service_image_exports_prometheus_metrics(served):
    assert served.client.post("/recommendations", json=TUTORIAL_BODY).status_code == 200
    r = served.client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    served_ok = [line for line in r.text.splitlines()
                 if line.startswith("movierec_http_requests_total{")
                 and 'route="/recommendations"' in line and 'status="200"' in line]
    assert served_ok and float(served_ok[0].rsplit(" ", 1)[1]) >= 1


def test_a_bad_body_is_a_422_with_a_json_error(served):
    r = served.client.post("/recommendations", json={"ratings": {"abc": 1}})
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"error": "ratings: movie id 'abc' is not an integer in 0..4294967295",
                        "field": "ratings"}


NO_BUILD_TOOLS = """
import importlib.util, json, shutil
tools = ["cc", "gcc", "g++", "c++", "clang", "ld", "as", "make", "pip", "pip3", "pip3.11"]
print(json.dumps({
    "on_path": [t for t in tools if shutil.which(t)],
    "modules": [m for m in ("pip", "setuptools", "wheel", "scipy", "pandas")
                if importlib.util.find_spec(m)],
}))
"""


@pytest.mark.parametrize("image, modules", [
    ("ingest", ["scipy", "pandas"]),
    # serving needs neither scipy nor pandas (the ingest's extra), by construction
    ("service", []),
])
def test_the_runtime_images_hold_no_compiler_and_no_pip(images, image, modules):
    done = podman("run", "--rm", "--entrypoint", "python", getattr(images, image), "-c",
                  NO_BUILD_TOOLS)
    found = json.loads(done.stdout)
    assert found["on_path"] == []
    assert found["modules"] == modules


@pytest.mark.parametrize("image", ["ingest", "service"])
def test_each_image_adds_at_most_250_mb_to_its_base(images, image):
    added = images.sizes[getattr(images, image)] - images.sizes[images.base]
    assert added <= SIZE_BUDGET, f"{image} adds {added / 1e6:.0f} MB to {images.base}"


# Last in this module: it stops the module's service container (the store admits one process).
def test_podman_stop_answers_the_request_in_flight_and_exits_0(served):
    body = json.dumps(TUTORIAL_BODY).encode()
    port = int(served.url.rsplit(":", 1)[1])
    stopped: dict = {}

    def stop():
        started = time.monotonic()
        stopped["done"] = podman("stop", "--time", str(GRACE_SECONDS), served.name, check=False)
        stopped["seconds"] = time.monotonic() - started

    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        # The request's head and part of its body: in flight when the stop begins.
        conn.sendall(b"POST /recommendations HTTP/1.1\r\nhost: test\r\n"
                     b"content-type: application/json\r\n"
                     b"content-length: %d\r\n\r\n" % len(body) + body[:10])
        stopper = threading.Thread(target=stop)
        stopper.start()
        wait_for_log(served, "shutting down")
        conn.sendall(body[10:])
        response = read_response(conn)
        stopper.join(GRACE_SECONDS + 30)
    assert response.startswith(b"HTTP/1.1 200 "), response[:500]
    answer = json.loads(response.split(b"\r\n\r\n", 1)[1])
    assert [i["movie_id"] for i in answer["items"]] == [m for m, _, _ in REFERENCE]
    assert stopped["done"].returncode == 0, stopped["done"].stderr
    assert stopped["seconds"] < GRACE_SECONDS, "podman stop had to kill it"
    exit_code = podman("inspect", "--format", "{{.State.ExitCode}}", served.name).stdout
    assert exit_code.strip() == "0", served.logs()


def wait_for_log(service, text: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while text not in service.logs().lower():
        assert time.monotonic() < deadline, f"no {text!r} in the logs:\n{service.logs()}"
        time.sleep(0.1)


def read_response(conn: socket.socket) -> bytes:
    """One HTTP response, read until its content-length is complete."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536) or b""
    head, rest = data.split(b"\r\n\r\n", 1)
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    while len(rest) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        rest += chunk
    return head + b"\r\n\r\n" + rest
