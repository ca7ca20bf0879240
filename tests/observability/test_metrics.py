"""The service's metrics module on real stores, without HTTP: labels by the model that answered,
empty answers, and the readiness / data-age gauges that each scrape reads afresh (bounded in time
even while Qdrant hangs)."""

from __future__ import annotations

import concurrent.futures
import time

import anyio
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from movierec import ingest, movielens, synthetic
from movierec.service import metrics as service_metrics
from movierec.service.metrics import Metrics, created_at_epoch
from movierec.store import open_reader, open_writer
from tests.conftest import settings_for
from tests.reliability.conftest import Listener


def scrape(m: Metrics, store) -> dict[tuple[str, tuple], float]:
    """One /metrics exposition, run on an event loop of its own thread (the browser tests'
    Playwright keeps one running in the main thread for the whole session)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return samples(pool.submit(anyio.run, m.exposition, store).result())


def samples(text: bytes) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text.decode()) for s in family.samples}


@pytest.fixture(scope="module")
def small_store(tmp_path_factory):
    data = synthetic.generate(n_users=200, n_movies=80, n_ratings=5_000, seed=3, name="small")
    folder = synthetic.write_dat(data, tmp_path_factory.mktemp("small"))
    settings = settings_for(qdrant_path=tmp_path_factory.mktemp("store") / "q")
    ingest.write(open_writer(settings), ingest.prepare(movielens.load(folder, "small")),
                 progress=False)
    reader = open_reader(settings)
    yield reader
    reader.close()


def test_requests_are_labelled_by_the_model_that_answered_and_empty_answers_counted():
    m = Metrics()
    answered = {"state": {"answered_by": "user-knn", "answer_empty": False}}
    empty = {"state": {"answered_by": "tutorial", "answer_empty": True}}
    m.observe_request(answered, "POST", "/recommendations", 200, 0.004)
    m.observe_request(empty, "POST", "/recommendations", 200, 0.003)
    m.observe_request({"state": {}}, "POST", "/recommendations", 503, 0.001)
    m.observe_request({}, "GET", "/movies/{movie_id}", 404, 0.001)
    got = samples(generate_latest(m.registry))
    count = "movierec_http_requests_total"
    assert got[(count, (("method", "POST"), ("model", "user-knn"), ("route", "/recommendations"),
                        ("status", "200")))] == 1
    assert got[(count, (("method", "POST"), ("model", ""), ("route", "/recommendations"),
                        ("status", "503")))] == 1
    assert got[(count, (("method", "GET"), ("model", ""), ("route", "/movies/{movie_id}"),
                        ("status", "404")))] == 1
    assert {k: v for k, v in got.items() if k[0] == "movierec_empty_answers_total"} == {
        ("movierec_empty_answers_total", (("model", "tutorial"), ("route", "/recommendations"))): 1}
    bucket = ("movierec_http_request_duration_seconds_bucket",
              (("le", "0.005"), ("method", "POST"), ("model", "user-knn"),
               ("route", "/recommendations"), ("status", "200")))
    assert got[bucket] == 1


def test_a_scrape_reports_readiness_data_age_and_collection_sizes_of_the_live_version(small_store):
    m = Metrics()
    got = scrape(m, small_store)
    meta = small_store.meta()
    assert got[("movierec_ready", ())] == 1
    age = got[("movierec_data_version_age_seconds", (("dataset", "small"),))]
    assert abs(age - (time.time() - created_at_epoch(meta.created_at))) < 5
    assert got[("movierec_store_points", (("collection", "users"),))] == meta.users == 200
    assert got[("movierec_store_points", (("collection", "movies"),))] == meta.movies
    assert got[("movierec_store_query_duration_seconds_count", (("operation", "status"),))] == 1
    assert got[("movierec_build_info", (("version", "0.1.0"),))] == 1


def test_a_store_without_data_is_not_ready_and_has_no_data_age(tmp_path):
    reader = open_reader(settings_for(qdrant_path=tmp_path / "empty"))
    try:
        got = scrape(Metrics(), reader)
    finally:
        reader.close()
    assert got[("movierec_ready", ())] == 0
    assert not [k for k in got if k[0].startswith(("movierec_data_version", "movierec_store_points"))]


def test_a_scrape_gives_up_on_a_hung_qdrant_within_its_deadline(monkeypatch):
    monkeypatch.setattr(service_metrics, "STATUS_DEADLINE_SECONDS", 1.0)
    hung = Listener()
    reader = open_reader(settings_for(qdrant_url=hung.url, qdrant_timeout=30))
    try:
        started = time.monotonic()
        got = scrape(Metrics(), reader)
        took = time.monotonic() - started
    finally:
        hung.close()
    assert got[("movierec_ready", ())] == 0
    assert 0.9 < took < 3  # the 1 s deadline, not Qdrant's 30 s timeout


@pytest.mark.parametrize(("value", "epoch"), [
    ("2026-12-01T07:10:00Z", 1796109000.0), ("2026-12-01 07:10", None), (None, None), (3, None)])
def test_created_at_is_read_as_utc_or_ignored_when_malformed(value, epoch):
    assert created_at_epoch(value) == epoch
