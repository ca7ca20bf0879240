"""The service's Prometheus metrics: what an operator alerts on and what the dashboard shows.

Requests and latency by route template, status and the model that answered; answers that came
back empty; store query latency by operation; and, read fresh at every scrape, readiness, the
live data version's age and its dataset. Every label value comes from a small fixed set (route
templates, status codes, model names, dataset names): never a movie id, a user id or a path.
"""

from __future__ import annotations

import calendar
import time
from dataclasses import dataclass

import anyio
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

from movierec import __version__
from movierec.store import StoreReader, StoreStatus

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)
# A scrape must answer within Prometheus' scrape timeout (10 s by default) even while Qdrant
# hangs: the readiness check it runs is abandoned after this long and reported as not ready.
STATUS_DEADLINE_SECONDS = 5.0
# Keys a recommendation route sets in the request state (read by the Observe middleware).
ANSWERED_BY = "answered_by"
ANSWER_EMPTY = "answer_empty"


def record_answer(request, model: str, items: int) -> None:
    """Called by a recommendation route: which model answered, and whether it found nothing."""
    setattr(request.state, ANSWERED_BY, model)
    setattr(request.state, ANSWER_EMPTY, items == 0)


@dataclass
class _StoreView:
    """What the last readiness check saw, and when."""

    status: StoreStatus
    checked_at: float


def created_at_epoch(value: str | None) -> float | None:
    """An ingest's `created_at` (UTC, "%Y-%m-%dT%H:%M:%SZ") as seconds since the epoch."""
    if not isinstance(value, str):
        return None
    try:
        return float(calendar.timegm(time.strptime(value, "%Y-%m-%dT%H:%M:%SZ")))
    except ValueError:
        return None


class _StoreCollector:
    """Readiness, data version age and collection sizes, as of the scrape's own check (no stale
    label sets linger when the dataset changes: every scrape yields exactly what it saw)."""

    def __init__(self) -> None:
        self.view: _StoreView | None = None

    def describe(self):
        return []

    def collect(self):
        view = self.view
        ready = GaugeMetricFamily(
            "movierec_ready", "1 when the store is reachable and both collections hold data "
            "(what /readyz checks), else 0")
        ready.add_metric([], 1.0 if view and view.status.ready else 0.0)
        yield ready
        if view is None or not view.status.ready:
            return
        meta = view.status.meta
        dataset = str(meta.dataset if meta else "unknown")
        created = created_at_epoch(meta.created_at if meta else None)
        if created is not None:
            age = GaugeMetricFamily(
                "movierec_data_version_age_seconds",
                "Seconds since the ingest that wrote the live data version (its created_at: "
                "when that ingest had prepared the data, just before writing it)",
                labels=["dataset"])
            age.add_metric([dataset], max(0.0, view.checked_at - created))
            yield age
        points = GaugeMetricFamily(
            "movierec_store_points", "Points in the live collections", labels=["collection"])
        points.add_metric(["users"], float(view.status.users))
        points.add_metric(["movies"], float(view.status.movies))
        yield points


class Metrics:
    """The service's Prometheus metrics, in a registry of its own (one per app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "movierec_http_requests", "HTTP requests by route, status and the model that answered",
            ["method", "route", "status", "model"], registry=self.registry,
        )
        self.latency = Histogram(
            "movierec_http_request_duration_seconds",
            "HTTP request latency by route, status and the model that answered",
            ["method", "route", "status", "model"], buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.empty_answers = Counter(
            "movierec_empty_answers", "Recommendation answers with no movie in them, by route "
            "and model", ["route", "model"], registry=self.registry,
        )
        self.store_latency = Histogram(
            "movierec_store_query_duration_seconds", "Qdrant query latency by operation",
            ["operation"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        info = Gauge("movierec_build_info", "Always 1; the running movierec version",
                     ["version"], registry=self.registry)
        info.labels(__version__).set(1)
        self._store = _StoreCollector()
        self.registry.register(self._store)

    def observe_request(self, scope, method: str, route: str, status: int, seconds: float) -> None:
        state = scope.get("state") or {}
        model = state.get(ANSWERED_BY) or ""
        code = str(status)
        self.requests.labels(method, route, code, model).inc()
        self.latency.labels(method, route, code, model).observe(seconds)
        if model and state.get(ANSWER_EMPTY):
            self.empty_answers.labels(route, model).inc()

    async def exposition(self, store: StoreReader) -> bytes:
        """The text format, after a fresh readiness check bounded by STATUS_DEADLINE_SECONDS."""
        started = time.perf_counter()
        status = StoreStatus(ready=False, detail="the readiness check did not finish in time")
        with anyio.move_on_after(STATUS_DEADLINE_SECONDS):
            if store.kind == "embedded":  # sub-millisecond, in-process
                status = store.status()
            else:
                status = await anyio.to_thread.run_sync(store.status, abandon_on_cancel=True)
        self.store_latency.labels("status").observe(time.perf_counter() - started)
        self._store.view = _StoreView(status, time.time())
        return generate_latest(self.registry)
