"""The FastAPI application, wired: the store in the lifespan, the routers (service/routes/), the
error handlers (service/errors.py), the guards and the observability middleware, the web page."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI

from movierec import __version__
from movierec.config import Settings, get_settings
from movierec.service.direct import DirectRoutes, route_of
from movierec.service.errors import add_error_handlers
from movierec.service.guards import BearerAuth, BodyLimit
from movierec.service.observe import Metrics, Observe
from movierec.service.routes import imports, movies, operations, recommendations
from movierec.service.schemas import Problem
from movierec.service.strict import StrictRoute
from movierec.service.web import mount_web
from movierec.store import StoreReader, open_reader

MAX_BODY = 64 * 1024


def create_app(settings: Settings | None = None, store: StoreReader | None = None,
               direct: bool = True) -> FastAPI:
    """The service's app; `direct=False` leaves every route to FastAPI (the reference the direct
    routes are tested against)."""
    settings = settings or get_settings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.store = store if store is not None else open_reader(settings)
        try:
            yield
        finally:
            if store is None:
                app.state.store.close()

    app = FastAPI(
        title="movierec",
        version=__version__,
        description="Movie recommendations from MovieLens ratings, served from Qdrant.",
        lifespan=lifespan,
        # Prometheus metrics and JSON logs (service/observe.py), no OpenTelemetry: FastAPI's
        # native hooks would look for a configured provider on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        responses={
            401: {"model": Problem, "description": "SERVICE_API_KEY is set and the bearer "
                  "token is missing or wrong"},
            413: {"model": Problem, "description": "request body over 64 KiB (2 MiB for an "
                  "export to import)"},
            415: {"model": Problem, "description": "body is not application/json"},
            422: {"model": Problem},
            503: {"model": Problem, "description": "Qdrant unreachable or holding no data"},
        },
    )
    app.router.route_class = StrictRoute
    app.state.metrics = metrics
    add_error_handlers(app)
    for router in (recommendations.router, movies.router, imports.router,
                   operations.router):
        app.include_router(router)

    # add_middleware wraps: the last added is outermost. Observe sees every request (413 and
    # 401 included); the size limit runs before auth so a huge body is refused unread; the
    # routes that carry the load skip FastAPI's per-request steps after the guards (direct.py).
    if direct:
        app.add_middleware(DirectRoutes, routes={
            (method, path): (route_of(recommendations.router.routes, method, path), handler)
            for (method, path), handler in recommendations.DIRECT.items()})
    app.add_middleware(BearerAuth, token=settings.service_api_key.get_secret_value()
                       if settings.service_api_key else None)
    # Every body is small JSON but an uploaded export (routes/imports.py says why 2 MiB).
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY,
                       larger={"/ratings/import": imports.MAX_IMPORT_BODY})
    if settings.cors_origin_list:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origin_list,
                           allow_methods=["GET", "POST"], allow_headers=["*"])
    app.add_middleware(Observe, metrics=metrics)
    mount_web(app)
    return app
