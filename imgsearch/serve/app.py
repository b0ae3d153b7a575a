"""The HTTP side of `imgsearch serve`: a FastAPI app that translates requests into the
Service's calls (bodies parsed by serve.requests' models) and its errors into answers.

Errors are JSON `{"error": "..."}` with the status that fits, mapped in one place
(STATUS_OF): 400 malformed request, 401 missing or wrong token, 404 unknown id or name, 409
what the index does not keep, 413 upload over the limit (counted while it is read), 415 not
an image, 422 bad parameter or too much work, 503 database unreachable or busy. No client
input ever reaches a traceback; no path ever comes from the client."""
from __future__ import annotations

import hmac
import logging
import os
from importlib import resources
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi import Path as FastApiPath
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi_offline import FastAPIOffline
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from imgsearch import __version__
from imgsearch.duplicates import CopyRules
from imgsearch.errors import BusyError, DatabaseError, ImgsearchError, NotFoundError, NotKeptError, SkippedFile
from imgsearch.serve.files import IndexedFileResponse, thumbnail
from imgsearch.serve.requests import (
    OVER_LIMIT,
    BadRequest,
    BodyTooLarge,
    CompareForm,
    CompareNames,
    Extractor,
    SearchByName,
    SearchForm,
    folder,
    parsed,
    read_body,
)
from imgsearch.serve.service import Service
from imgsearch.serve.spec import COMPARE_BODY, SEARCH_BODY, errors, image_response

log = logging.getLogger("imgsearch.serve")
TOKEN_COOKIE = "imgsearch_token"


class BodyLimit:
    """Refuses a request body over `limit` bytes: at once when Content-Length says so,
    else as soon as the bytes read pass it (a slow or lying client is cut off early)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            response = error(413 if declared.isdigit() else 400,
                             f"the upload is over the limit of {self.limit} bytes" if declared.isdigit()
                             else "bad Content-Length")
            # A client waiting for "100 Continue" has sent nothing: it reads the answer at once.
            if headers.get(b"expect", b"").lower() != b"100-continue":
                await drain(receive)
            await response(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            # Past the limit the app sees the client go away (its body parser stops at
            # once) and the flag tells the endpoint why: an exception raised here would
            # reach it wrapped by the middleware stack's task groups.
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    scope[OVER_LIMIT] = True
                    if message.get("more_body", False):
                        await drain(receive)
                    return {"type": "http.disconnect"}
            return message

        await self.app(scope, counted, send)


DRAIN_BYTES = 64 * 1024 * 1024


async def drain(receive: Receive) -> None:
    """Read and discard what the client still sends of a refused body, up to DRAIN_BYTES:
    a server that answers and closes while the client is still sending resets the
    connection, and clients that write the whole body before reading (Python's urllib,
    requests) then see "connection reset" instead of the 413. The answer can only be sent
    after this: once it is complete the server reads no more of the body."""
    discarded = 0
    while discarded <= DRAIN_BYTES:
        message = await receive()
        if message["type"] != "http.request":
            return
        discarded += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


def error(status: int, message: str) -> JSONResponse:
    # A message may quote what the client sent: never let its bytes break the answer.
    return JSONResponse({"error": message.encode("utf-8", "backslashreplace").decode("utf-8")}, status_code=status)


# The first class an error is an instance of gives its status; ImgsearchError last.
STATUS_OF: tuple[tuple[type[ImgsearchError], int], ...] = (
    (SkippedFile, 415), (DatabaseError, 503), (BusyError, 503), (NotFoundError, 404), (NotKeptError, 409),
    (ImgsearchError, 422))


def status_of(e: ImgsearchError) -> int:
    return next(status for kind, status in STATUS_OF if isinstance(e, kind))


def create_app(service: Service) -> FastAPI:
    # /docs and /redoc from swagger-ui and redoc as fastapi-offline installs them: they load
    # without internet (FastAPI's own pages fetch both from a CDN)
    app = FastAPIOffline(title="imgsearch", version=__version__, favicon_url="/favicon.svg",
                         description="Exact query-by-example image search over MySQL/MariaDB or SQLite.")
    _answer_errors(app, service)
    _search_routes(app, service)
    _image_routes(app, service)
    _page_routes(app)
    token = service.config.token

    @app.middleware("http")
    async def authorise(request: Request, call_next: Any) -> Response:
        if token and request.url.path.startswith("/api/"):
            header = request.headers.get("authorization", "")
            given = header[7:] if header.lower().startswith("bearer ") else request.cookies.get(TOKEN_COOKIE, "")
            if not hmac.compare_digest(given.encode(), token.encode()):
                return error(401, "a valid bearer token is required")
        return await call_next(request)

    @app.middleware("http")
    async def database_answers(request: Request, call_next: Any) -> Response:
        response = await call_next(request)
        if request.url.path.startswith("/api/") and response.status_code not in (401, 503):
            service.watch.answered()  # a 401 never reached the database
        return response

    app.add_middleware(BodyLimit, limit=service.config.upload_limit)
    return app


def _answer_errors(app: FastAPI, service: Service) -> None:
    """Every error an endpoint raises, answered in one place."""
    @app.exception_handler(ImgsearchError)
    async def refused(request: Request, e: ImgsearchError) -> JSONResponse:
        if isinstance(e, DatabaseError):
            service.watch.failed(str(e))
        if isinstance(e, SkippedFile):
            log.warning("imgsearch: refused an upload: %s", e)
            return error(415, f"not a usable image: {e}")
        return error(status_of(e), service.public(e.problem))

    @app.exception_handler(BadRequest)
    async def unreadable(request: Request, e: BadRequest) -> JSONResponse:
        return error(400, str(e))

    @app.exception_handler(BodyTooLarge)
    async def too_large(request: Request, e: BodyTooLarge) -> JSONResponse:
        return error(413, f"the upload is over the limit of {service.config.upload_limit} bytes")

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        first = e.errors()[0] if e.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return error(422, f"{where}: {first.get('msg', 'invalid')}" if where else str(first.get("msg", "invalid")))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, e: Exception) -> JSONResponse:
        log.exception("unexpected error on %s", request.url.path)
        return error(500, "internal error; the server log has the details")


def _search_routes(app: FastAPI, service: Service) -> None:
    @app.post("/api/search", responses={200: {"description": "the ranked matches"},
                                        **errors(400, 404, 409, 413, 415, 422)}, openapi_extra=SEARCH_BODY)
    async def search(request: Request) -> JSONResponse:
        """Multipart: the image in the field `image`, parameters as fields. JSON:
        {"name": "45.jpg", ...} names an indexed image as `query` takes it. Parameters:
        extractor, metric, k (1-1000), offset, rerank, whiten, include_self, under (a folder
        of the collection, relative to its root: the top k among the images under it), box
        (with an upload: "x,y,width,height" in its pixels, to search for what is inside)."""
        upload, fields = await read_body(request)
        if upload is not None:
            form = parsed(SearchForm, fields)
            return JSONResponse(await run_in_threadpool(service.search_upload, upload, form.asked(), form.box_tuple()))
        if not fields.get("name"):
            raise BadRequest("send an image in the multipart field `image`, or JSON {\"name\": ...}")
        named = parsed(SearchByName, fields)
        return JSONResponse(await run_in_threadpool(lambda: service.search(named.asked(), name=named.name)))

    @app.post("/api/compare", responses={200: {"description": "the two images through every stored descriptor"},
                                         **errors(400, 404, 413, 415, 422)}, openapi_extra=COMPARE_BODY)
    async def compare(request: Request) -> JSONResponse:
        """Two images through every stored descriptor: each vector's score under each
        metric, perceptual hashes' bits apart, local features' verified inliers (and b's
        outline in a). Multipart: a photo in the field `image` is a, `b` names an indexed
        image; JSON: {"a": name, "b": name}."""
        upload, fields = await read_body(request)
        if not fields.get("b") or (upload is None and not fields.get("a")):
            raise BadRequest("give b (an indexed image) and a (an indexed image, or a photo in `image`)")
        if upload is not None:
            b, a = parsed(CompareForm, fields).b, None
        else:
            names = parsed(CompareNames, fields)
            a, b = names.a, names.b
        return JSONResponse(await run_in_threadpool(service.compare, upload, a, b))

    @app.get("/api/duplicates", responses=errors(404, 422))
    def duplicates(extractor: Descriptor = None, threshold: Threshold = None, hash_bits: HashBits = None,
                   min_inliers: MinInliers = None, reference: str | None = None) -> JSONResponse:
        """Groups of exact and near copies, as `imgsearch duplicates --json` (without the
        collection's path). reference is a folder of the collection, relative to its root;
        hash_bits and min_inliers -1 leave that source out."""
        rules = CopyRules.chosen(threshold, hash_bits, min_inliers)
        return JSONResponse(service.duplicates(extractor, rules, folder(reference, "reference")))


def _image_routes(app: FastAPI, service: Service) -> None:
    cache = service.config.thumbnail_cache

    @app.get("/api/images/{image_id}", responses=errors(404, 422))
    def image_metadata(image_id: ImageId) -> JSONResponse:
        return _image_json(service.image(image_id))

    @app.get("/api/images/{image_id}/file", response_class=Response,
             responses={**image_response("image/*"), **errors(404, 422)})
    def image_file(image_id: ImageId) -> Response:
        return IndexedFileResponse(*service.image_on_disk(image_id))

    @app.get("/api/images/{image_id}/thumbnail", response_class=Response,
             responses={**image_response("image/jpeg"), **errors(404, 422)})
    def image_thumbnail(image_id: ImageId) -> Response:
        return FileResponse(thumbnail(*service.image_on_disk(image_id), cache), media_type="image/jpeg",
                            headers={"Cache-Control": "max-age=3600"})

    @app.get("/api/stats", responses=errors())
    def stats() -> JSONResponse:
        return JSONResponse(service.stats())

    @app.get("/api/health", responses=errors())
    def health() -> JSONResponse:
        return JSONResponse(service.health())


STATIC_KINDS = {"app.js": "text/javascript", "style.css": "text/css", "duplicates.js": "text/javascript"}


def _page_routes(app: FastAPI) -> None:
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(_static("index.html"))

    @app.get("/duplicates", response_class=HTMLResponse, include_in_schema=False)
    def duplicates_page() -> HTMLResponse:
        return HTMLResponse(_static("duplicates.html"))

    @app.get("/favicon.svg", include_in_schema=False)
    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response(_static("favicon.svg"), media_type="image/svg+xml")

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        if name not in STATIC_KINDS:  # a fixed list: nothing the client names is looked up on disk
            return error(404, "no such file")
        return Response(_static(name), media_type=STATIC_KINDS[name])


# Ids are BIGINT UNSIGNED in MySQL and 64-bit signed in SQLite: a larger number is no id.
ImageId = Annotated[int, FastApiPath(ge=1, le=2**63 - 1)]
Descriptor = Annotated[Extractor | None, Query(description="a stored descriptor (default cnn-spoc)")]
Threshold = Annotated[float | None, Query(ge=-1, le=1, allow_inf_nan=False)]
HashBits = Annotated[int | None, Query(ge=-1, le=63)]
MinInliers = Annotated[int | None, Query(ge=-1)]


def _image_json(image: Any) -> JSONResponse:
    return JSONResponse({"id": image.id, "path": os.fsdecode(image.path), "name": os.fsdecode(image.name),
                         "bytes": image.bytes, "width": image.width, "height": image.height, "sha256": image.sha256,
                         "thumbnail": f"/api/images/{image.id}/thumbnail", "file": f"/api/images/{image.id}/file"})


def _static(name: str) -> str:
    return resources.files("imgsearch.serve").joinpath("static").joinpath(name).read_text("utf-8")
