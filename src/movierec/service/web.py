"""The web page at `/`: static files shipped inside the package, served by the API itself, so the
page works offline and inside the cluster with no other server and no CDN.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"

# The page loads only its own files and talks only to this service: no inline script or style,
# no other origin, and it cannot be framed by another site.
PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": "default-src 'self'; base-uri 'none'; form-action 'self'; "
                               "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class _PageFiles(StaticFiles):
    """The page's files, revalidated by the browser (ETag, 304) so an upgrade shows at once, and
    counted by the metrics and the access log under their mount, "/static", not "unmatched"."""

    route: Mount | None = None

    async def __call__(self, scope, receive, send):
        scope["route"] = self.route
        await super().__call__(scope, receive, send)

    async def get_response(self, path, scope):
        response = await super().get_response(path, scope)
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def mount_web(app: FastAPI) -> None:
    """Serve the page at `/` and its script, style and icon under `/static/`."""

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8",
                            headers=PAGE_HEADERS)

    files = _PageFiles(directory=STATIC)
    files.route = Mount("/static", app=files, name="static")
    app.router.routes.append(files.route)
