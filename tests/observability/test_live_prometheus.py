"""A real Prometheus (Debian's package, on loopback, a temporary data dir, at most 5 minutes)
scrapes a real `movierec serve` on ml-1m and evaluates the chart's own rendered rules. The test
drives traffic, takes the store's live data away, watches MovierecNotReady and Movierec5xxRatioHigh go pending
then firing through Prometheus' HTTP API, runs an ingest and sees both resolve. The dashboard's
queries run against the same Prometheus, and every metric they and the rules name is one the
service really exports."""

from __future__ import annotations

import json
import math
import re
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest
import yaml

from movierec import ingest
from movierec.service.metrics import created_at_epoch
from movierec.store import open_writer
from movierec.store.embedded import CURRENT, META, VERSIONS
from tests.conftest import ROOT, settings_for
from tests.service_helpers import TUTORIAL_BODY, free_port, start

from .conftest import dashboard_json, render_monitoring, require_binary, write_rules
from .dashboard_picture import Series, legend_of, render_html
from .test_chart_monitoring import dashboard_queries

# The chart's rules with windows short enough for a test; everything else as rendered for users.
FAST_RULES = (
    "metrics.prometheusRule.notReady.for=5s",
    "metrics.prometheusRule.errors.window=10s",
    "metrics.prometheusRule.errors.for=5s",
)
PROMETHEUS_LIFETIME = "300"  # seconds: the server is killed by then whatever happens
# A recommendation no movie can satisfy (one genre, one early year): an empty answer.
PICTURE = ROOT / "docs" / "dashboard.png"
EMPTY_BODY = {**TUTORIAL_BODY, "genres": ["Documentary"], "year_min": 1919, "year_max": 1919}


def wait_for(what: str, check, timeout: float = 45.0, every: float = 0.5):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


class Prometheus:
    def __init__(self, url: str):
        self.client = httpx.Client(base_url=url, timeout=10)

    def query(self, expr: str) -> list[dict]:
        r = self.client.get("/api/v1/query", params={"query": expr})
        assert r.status_code == 200, (expr, r.text)
        return r.json()["data"]["result"]

    def value(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict]:
        r = self.client.get("/api/v1/query_range",
                            params={"query": expr, "start": start, "end": end, "step": step})
        assert r.status_code == 200, (expr, r.text)
        return r.json()["data"]["result"]

    def alerts(self) -> dict[str, str]:
        """{alertname: state} of the active alerts (pending or firing)."""
        data = self.client.get("/api/v1/alerts").json()["data"]["alerts"]
        return {a["labels"]["alertname"]: a["state"] for a in data}


@pytest.fixture(scope="module")
def service(tmp_path_factory, ml1m_prepared):
    root = tmp_path_factory.mktemp("observed")
    ingest.write(open_writer(settings_for(qdrant_path=root / "q")), ml1m_prepared, progress=False)
    served = start({"QDRANT_PATH": str(root / "q"), "QDRANT_URL": ""}, root / "serve.log")
    served.store = root / "q"
    yield served
    served.stop()


@pytest.fixture(scope="module")
def prometheus(service, tmp_path_factory):
    binary = require_binary("prometheus")
    folder = tmp_path_factory.mktemp("prometheus")
    write_rules(render_monitoring(*FAST_RULES), folder / "rules.yaml")
    target = service.url.removeprefix("http://")
    (folder / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": ["rules.yaml"],
        # The labels the Prometheus Operator gives a ServiceMonitor's targets: job = the Service.
        "scrape_configs": [{"job_name": "movierec", "static_configs": [
            {"targets": [target], "labels": {"namespace": "movierec"}}]}],
    }))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(folder / "prometheus.log", "wb") as log:
        proc = subprocess.Popen(
            ["timeout", PROMETHEUS_LIFETIME, binary, f"--config.file={folder / 'prometheus.yml'}",
             f"--storage.tsdb.path={folder / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
             "--storage.tsdb.retention.time=1h", "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for("Prometheus to be ready", lambda: _ready(url, proc), timeout=30)
            server = Prometheus(url)
            server.started = time.time()
            yield server
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _ready(url: str, proc: subprocess.Popen) -> bool:
    assert proc.poll() is None, f"prometheus exited with {proc.returncode}"
    try:
        return httpx.get(url + "/-/ready", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


class Traffic:
    """A person's requests, a few per second, until stopped: tutorial recommendations, a search,
    an existing user's recommendations and an answer that comes back empty."""

    def __init__(self, url: str):
        self.url = url
        self.stop = threading.Event()
        self.statuses: list[int] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as c:
            while not self.stop.is_set():
                for r in (c.post("/recommendations", json=TUTORIAL_BODY),
                          c.post("/recommendations", json=EMPTY_BODY),
                          c.get("/movies", params={"search": "matrix"}),
                          c.get("/users/42/recommendations")):
                    self.statuses.append(r.status_code)
                time.sleep(0.05)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)


def test_alerts_fire_when_the_store_loses_its_data_and_resolve_after_an_ingest(
        service, prometheus, ml1m_prepared):
    traffic = Traffic(service.url)
    try:
        # Healthy: scraped, ready, the live data's age and size as the store's meta says.
        wait_for("movierec to be scraped and ready",
                 lambda: prometheus.value('movierec_ready{job="movierec", namespace="movierec"}') == 1)
        created = created_at_epoch(live_meta(service.store)["created_at"])
        age = prometheus.value('movierec_data_version_age_seconds{dataset="ml-1m"}')
        assert age is not None and abs(age - (time.time() - created)) < 10
        assert prometheus.value('movierec_store_points{collection="users"}') == 6040
        assert prometheus.value('movierec_store_points{collection="movies"}') == 3883
        wait_for("answers counted by model", lambda: prometheus.value(
            'sum(movierec_http_requests_total{route="/recommendations", status="200", model="tutorial"})'))
        wait_for("empty answers counted", lambda: prometheus.value(
            'sum(movierec_empty_answers_total{route="/recommendations", model="tutorial"})'))
        assert not {"MovierecNotReady", "Movierec5xxRatioHigh"} & set(prometheus.alerts())

        # The live data disappears (its version pointer is removed, as after a lost volume):
        # /readyz and every recommendation answer 503.
        (service.store / CURRENT).unlink()
        seen: dict[str, list[str]] = {"MovierecNotReady": [], "Movierec5xxRatioHigh": []}

        def both_firing():
            alerts = prometheus.alerts()
            for name, states in seen.items():
                if name in alerts and alerts[name] not in states[-1:]:
                    states.append(alerts[name])
            return all(alerts.get(name) == "firing" for name in seen)

        try:
            wait_for("MovierecNotReady and Movierec5xxRatioHigh to fire", both_firing, every=0.25)
        except AssertionError as error:
            raise AssertionError(f"{error}; states seen {seen}; statuses "
                                 f"{traffic.statuses[-8:]}") from None
        assert seen == {"MovierecNotReady": ["pending", "firing"],
                        "Movierec5xxRatioHigh": ["pending", "firing"]}
        assert prometheus.value('movierec_ready{job="movierec"}') == 0
        assert 503 in traffic.statuses

        # Repaired the way the runbook says, by an ingest: ready again within seconds of its
        # switch, and both alerts resolve on their own.
        ingest.write(open_writer(settings_for(qdrant_path=service.store)), ml1m_prepared,
                     progress=False)
        wait_for("movierec to be ready again",
                 lambda: prometheus.value('movierec_ready{job="movierec"}') == 1)
        wait_for("both alerts to resolve",
                 lambda: not {"MovierecNotReady", "Movierec5xxRatioHigh"} & set(prometheus.alerts()))
        assert service.client.post("/recommendations", json=TUTORIAL_BODY).status_code == 200
    finally:
        traffic.close()

    # Every dashboard query runs in Prometheus; every movierec panel shows data after this run.
    board = dashboard_json()
    queries = dashboard_queries(board, {"$__rate_interval": "1m", "$namespace": "movierec",
                                        "$qdrant_job": "qdrant|qdrant-headless",
                                        "$qdrant_namespace": "qdrant"})
    for query in queries:
        result = prometheus.query(query)  # a parse error is a 400, failed above
        if "movierec_" in query:
            assert result, f"no data for dashboard query {query}"


def live_meta(store: Path) -> dict:
    """The live version's meta.json, read from the store's files."""
    version = json.loads((store / CURRENT).read_text())["version"]
    return json.loads((store / VERSIONS / version / META).read_text())


def test_dashboard_and_rules_name_only_metrics_the_service_exports(service, prometheus):
    exported = service.client.get("/metrics").text
    samples = {line.split("{")[0].split(" ")[0] for line in exported.splitlines()
               if line and not line.startswith("#")}
    rules = yaml.safe_dump(render_monitoring().of_kind("PrometheusRule")[0]["spec"])
    named = set(re.findall(r"\bmovierec_[a-z0-9_]+\b", " ".join(dashboard_queries(dashboard_json()))))
    named |= set(re.findall(r"\bmovierec_[a-z0-9_]+\b", rules)) - {"movierec_ingest"}
    assert named and named <= samples, named - samples
    # Qdrant's own names, as its metrics documentation and source give them (v1.16+).
    qdrant = set(re.findall(r"\b(collection_[a-z_]+)\b", " ".join(dashboard_queries(dashboard_json()))))
    assert qdrant == {"collection_dead_replicas", "collection_points"}
    # Bounded labels: route templates, never an id from a path.
    routes = set(re.findall(r'route="([^"]*)"', exported))
    assert "/users/{user_id}/recommendations" in routes
    assert not [r for r in routes if re.search(r"/\d", r)]
    assert set(re.findall(r'model="([^"]*)"', exported)) <= {"", "tutorial", "user-knn", "item"}


def test_a_picture_of_the_dashboard_drawn_from_this_run(service, prometheus, browser):
    """docs/dashboard.png: every panel's own query over this module's run (the outage included),
    drawn on the dashboard's grid and taken by headless Chromium."""
    board = dashboard_json()
    variables = {"$__rate_interval": "15s", "$namespace": "movierec",
                 "$qdrant_job": "qdrant|qdrant-headless", "$qdrant_namespace": "qdrant"}
    start, end = prometheus.started, time.time()
    results = {}
    for panel in board["panels"]:
        for target in panel["targets"]:
            (expr,) = dashboard_queries({"panels": [{"targets": [target]}]}, variables)
            results[(panel["id"], target["refId"])] = [
                Series(legend_of(target["legendFormat"], r["metric"]),
                       [(float(t), float(v)) for t, v in r["values"] if not math.isnan(float(v))])
                for r in prometheus.query_range(expr, start, end, 1)]
    for panel in board["panels"]:
        if "movierec_" in panel["targets"][0]["expr"]:
            assert any(results[(panel["id"], t["refId"])] for t in panel["targets"]), panel["title"]
    page = browser.new_page(viewport={"width": 24 * 56, "height": 900}, device_scale_factor=1)
    try:
        page.set_content(render_html(board, results, (start, end),
                                     "movierec: ml-1m under test traffic, live data removed, then re-ingested"))
        page.screenshot(path=PICTURE, full_page=True)
    finally:
        page.close()
    assert PICTURE.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
