"""POST /ratings/import: a Letterboxd, IMDb or movie_id,rating export, uploaded as a file
(multipart/form-data) or sent as the body (text/csv), matched to the live catalog.

The one route whose body is not JSON: its route class accepts exactly those two content types,
and its body limit is MAX_IMPORT_BODY instead of the API's 64 KiB (service/app.py)."""

from __future__ import annotations

from collections.abc import Callable
from email.parser import BytesParser
from email.policy import HTTP
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.routing import APIRoute

from movierec import imports, recommend
from movierec.service.routes import on_store
from movierec.service.schemas import ImportAnswer, Problem

# An export of 10,000 ratings (imports.MAX_ROWS) is about 1 MB from IMDb (14 columns a row) and
# 0.6 MB from Letterboxd: 2 MiB holds the largest with room for multipart framing.
MAX_IMPORT_BODY = 2 * 1024 * 1024
CONTENT_TYPES = ("text/csv", "multipart/form-data")


class UploadRoute(APIRoute):
    """A route whose body is a file: text/csv or multipart/form-data, nothing else."""

    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def upload(request: Request):
            kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if kind not in CONTENT_TYPES:
                raise HTTPException(415, "send the export as a file upload (multipart/form-data)"
                                    " or as the body with Content-Type: text/csv")
            return await handler(request)

        return upload


router = APIRouter(route_class=UploadRoute, tags=["import"])


def uploaded_file(content_type: str, body: bytes) -> bytes:
    """The file's bytes from a multipart/form-data body (its first part with a filename, else
    its first part), parsed with the standard library's MIME parser."""
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
    if not message.is_multipart():
        raise imports.ExportError("the multipart body cannot be read: no parts found (is the "
                                  "boundary right?)")
    parts = [p for p in message.iter_parts() if p.get_content_disposition() == "form-data"]
    if not parts:
        raise imports.ExportError("the multipart body has no form-data part holding a file")
    chosen = next((p for p in parts if p.get_filename()), parts[0])
    return chosen.get_payload(decode=True) or b""


def _read(store, data: bytes, format: str):  # noqa: A002
    return imports.read_ratings(store.catalog(), data, format, max_ratings=recommend.MAX_RATINGS)


@router.post(
    "/ratings/import", response_model=ImportAnswer,
    openapi_extra={"requestBody": {"required": True, "content": {
        "text/csv": {"schema": {"type": "string"}},
        "multipart/form-data": {"schema": {"type": "object", "properties": {
            "file": {"type": "string", "format": "binary"}}}}}}},
    responses={413: {"model": Problem, "description": f"body over {MAX_IMPORT_BODY} bytes"},
               415: {"model": Problem, "description": "neither text/csv nor multipart/form-data"},
               422: {"model": Problem, "description": "not an export this reads"}},
)
async def import_ratings(
    request: Request,
    format: Annotated[Literal["auto", "letterboxd", "imdb", "csv"], Query(  # noqa: A002
        description="the export's format; auto recognises it by its header")] = "auto",
):
    """Ratings from a Letterboxd ratings.csv, an IMDb ratings export or a movie_id,rating csv,
    matched to the catalog (IMDb id where the dataset links them, else title and year): the
    matched ratings in stars (ready for POST /recommendations with "scale": "stars"), and every
    row that did not match with its reason."""
    body = await request.body()
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() == "multipart/form-data":
        body = uploaded_file(content_type, body)
    result = await on_store(request, "import", _read, body, format)
    return result.to_dict()
