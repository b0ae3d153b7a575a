"""The HTTP side of `imgsearch serve`: a FastAPI app over a Service.

Errors are JSON `{"error": "..."}` with the status that fits: 400 malformed request, 401
missing or wrong token, 404 unknown id or name, 413 upload over the limit (counted while
it is read), 415 not an image, 422 bad parameter, 503 database unreachable. No client
input ever reaches a traceback; no path ever comes from the client."""
from __future__ import annotations

import hmac
import json
import logging
import os
import re
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, NoReturn

from fastapi import FastAPI, Query, Request
from fastapi import Path as FastApiPath
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi_offline import FastAPIOffline
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from imgsearch import __version__
from imgsearch.duplicates import CopyRules
from imgsearch.errors import BusyError, DatabaseError, ImgsearchError, NotFoundError, NotKeptError
from imgsearch.index.images import SkippedFile
from imgsearch.serve.files import IndexedFileResponse, thumbnail
from imgsearch.serve.service import Service
from imgsearch.serve.spec import (
    BOX,
    COMPARE_BODY,
    COMPARE_FIELD_NAMES,
    FORM_PATTERNS,
    MAX_K,
    MAX_OFFSET,
    SEARCH_BODY,
    SEARCH_FIELD_NAMES,
    SEARCH_FIELDS,
    errors,
    image_response,
)

log = logging.getLogger("imgsearch.serve")
TOKEN_COOKIE = "imgsearch_token"
OVER_LIMIT = "imgsearch.over_limit"  # set in the ASGI scope when a body passed the limit


class BodyTooLarge(Exception):
    pass


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


def status_of(e: Exception) -> int:
    if isinstance(e, SkippedFile):
        return 415
    if isinstance(e, (DatabaseError, BusyError)):
        return 503
    if isinstance(e, NotFoundError):
        return 404
    if isinstance(e, NotKeptError):
        return 409
    return 422


def create_app(service: Service) -> FastAPI:
    # /docs and /redoc from swagger-ui and redoc as fastapi-offline installs them: they load
    # without internet (FastAPI's own pages fetch both from a CDN)
    app = FastAPIOffline(title="imgsearch", version=__version__, favicon_url="/favicon.svg",
                         description="Exact query-by-example image search over MySQL/MariaDB or SQLite.")
    upload_limit, token, cache = service.config.upload_limit, service.config.token, service.config.thumbnail_cache

    @app.middleware("http")
    async def authorise(request: Request, call_next: Any) -> Response:
        if token and request.url.path.startswith("/api/"):
            header = request.headers.get("authorization", "")
            given = header[7:] if header.lower().startswith("bearer ") else request.cookies.get(TOKEN_COOKIE, "")
            if not hmac.compare_digest(given.encode(), token.encode()):
                return error(401, "a valid bearer token is required")
        return await call_next(request)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        first = e.errors()[0] if e.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return error(422, f"{where}: {first.get('msg', 'invalid')}" if where else str(first.get("msg", "invalid")))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, e: Exception) -> JSONResponse:
        log.exception("unexpected error on %s", request.url.path)
        return error(500, "internal error; the server log has the details")

    @app.post("/api/search", responses={200: {"description": "the ranked matches"},
                                        **errors(400, 404, 409, 413, 415, 422)}, openapi_extra=SEARCH_BODY)
    async def search_endpoint(request: Request) -> JSONResponse:
        """Multipart: the image in the field `image`, parameters as fields. JSON:
        {"name": "45.jpg", ...} names an indexed image as `query` takes it. Parameters:
        extractor, metric, k (1-1000), offset, rerank, whiten, include_self, under (a folder
        of the collection, relative to its root: the top k among the images under it), box
        (with an upload: "x,y,width,height" in its pixels, to search for what is inside)."""
        try:
            upload, fields = await _read_request(request)
            search = _search_request(fields.only(SEARCH_FIELD_NAMES))
            if upload is not None:
                answer = await run_in_threadpool(service.search_upload, upload, search, _box(fields))
            elif name := _text(fields, "name"):
                answer = await run_in_threadpool(lambda: service.search(search, name=name))
            else:
                return error(400, "send an image in the multipart field `image`, or JSON {\"name\": ...}")
        except BodyTooLarge:
            return error(413, f"the upload is over the limit of {upload_limit} bytes")
        except SkippedFile as e:
            log.warning("imgsearch: refused an upload: %s", e)
            return error(415, f"not a usable image: {e}")
        except ImgsearchError as e:
            return failure(e)
        except _BadRequest as e:
            return error(400, str(e))
        return JSONResponse(answer)

    @app.get("/api/images/{image_id}", responses=errors(404, 422))
    def image_metadata(image_id: ImageId) -> JSONResponse:
        return guarded(lambda: _image_json(service.image(image_id)))

    @app.get("/api/images/{image_id}/file", response_class=Response,
             responses={**image_response("image/*"), **errors(404, 422)})
    def image_file(image_id: ImageId) -> Response:
        return guarded(lambda: IndexedFileResponse(*service.image_on_disk(image_id)))

    @app.get("/api/images/{image_id}/thumbnail", response_class=Response,
             responses={**image_response("image/jpeg"), **errors(404, 422)})
    def image_thumbnail(image_id: ImageId) -> Response:
        return guarded(lambda: FileResponse(thumbnail(*service.image_on_disk(image_id), cache),
                                             media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"}))

    @app.get("/api/duplicates", responses=errors(404, 422))
    def duplicates(extractor: Descriptor = None, threshold: Threshold = None, hash_bits: HashBits = None,
                   min_inliers: MinInliers = None, reference: str | None = None) -> JSONResponse:
        """Groups of exact and near copies, as `imgsearch duplicates --json` (without the
        collection's path). reference is a folder of the collection, relative to its root;
        hash_bits and min_inliers -1 leave that source out."""
        try:
            folder = _folder(Fields({"reference": reference}, from_form=True), "reference")
        except ImgsearchError as e:
            return failure(e)
        rules = CopyRules.chosen(threshold, hash_bits, min_inliers)
        return guarded(lambda: JSONResponse(service.duplicates(extractor, rules, folder)))

    @app.post("/api/compare", responses={200: {"description": "the two images through every stored descriptor"},
                                         **errors(400, 404, 413, 415, 422)}, openapi_extra=COMPARE_BODY)
    async def compare_endpoint(request: Request) -> JSONResponse:
        """Two images through every stored descriptor: each vector's score under each
        metric, perceptual hashes' bits apart, local features' verified inliers (and b's
        outline in a). Multipart: a photo in the field `image` is a, `b` names an indexed
        image; JSON: {"a": name, "b": name}."""
        try:
            upload, fields = await _read_request(request)
            fields.only(COMPARE_FIELD_NAMES)
            b = _text(fields, "b")
            a = _text(fields, "a")
            if b is None or (upload is None and a is None):
                raise _BadRequest("give b (an indexed image) and a (an indexed image, or a photo in `image`)")
            return JSONResponse(await run_in_threadpool(service.compare, upload, a, b))
        except BodyTooLarge:
            return error(413, f"the upload is over the limit of {upload_limit} bytes")
        except _BadRequest as e:
            return error(400, str(e))
        except (ImgsearchError, SkippedFile) as e:
            return failure(e)

    @app.get("/api/stats", responses=errors())
    def stats() -> JSONResponse:
        return guarded(lambda: JSONResponse(service.stats()))

    @app.get("/api/health", responses=errors())
    def health() -> JSONResponse:
        return guarded(lambda: JSONResponse(service.health()))

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
        kinds = {"app.js": "text/javascript", "style.css": "text/css", "duplicates.js": "text/javascript"}
        if name not in kinds:  # a fixed list: nothing the client names is looked up on disk
            return error(404, "no such file")
        return Response(_static(name), media_type=kinds[name])

    def failure(e: ImgsearchError | SkippedFile) -> JSONResponse:
        if isinstance(e, DatabaseError):
            service.watch.failed(str(e))
        return error(status_of(e), service.public(e.problem if isinstance(e, ImgsearchError) else str(e)))

    def guarded(make: Any) -> Any:
        try:
            return make()
        except (ImgsearchError, SkippedFile) as e:
            return failure(e)

    @app.middleware("http")
    async def database_answers(request: Request, call_next: Any) -> Response:
        response = await call_next(request)
        if request.url.path.startswith("/api/") and response.status_code not in (401, 503):
            service.watch.answered()  # a 401 never reached the database
        return response

    app.add_middleware(BodyLimit, limit=upload_limit)
    return app


# Ids are BIGINT UNSIGNED in MySQL and 64-bit signed in SQLite: a larger number is no id.
ImageId = Annotated[int, FastApiPath(ge=1, le=2**63 - 1)]
Descriptor = Annotated[str | None, Query(pattern=f"^(?:{'|'.join(SEARCH_FIELDS['extractor']['enum'][1:])})$",
                                         description="a stored descriptor (default cnn-spoc)")]
Threshold = Annotated[float | None, Query(ge=-1, le=1, allow_inf_nan=False)]
HashBits = Annotated[int | None, Query(ge=-1, le=63)]
MinInliers = Annotated[int | None, Query(ge=-1)]


class _BadRequest(Exception):
    pass


async def _read_request(request: Request) -> tuple[bytes | None, Fields]:
    kind = request.headers.get("content-type", "")
    if kind.startswith("multipart/form-data"):
        try:
            form = await request.form(max_files=1, max_fields=20)
        except Exception as e:  # the multipart parser's own errors: a malformed or cut-off body
            if request.scope.get(OVER_LIMIT):
                raise BodyTooLarge() from None
            raise _BadRequest(f"malformed multipart body: {e}") from None
        upload = form.get("image")
        if upload is None or isinstance(upload, str):
            raise _BadRequest("the multipart body has no file in the field `image`")
        data = await upload.read()
        return data, Fields({k: v for k, v in form.items() if k != "image"}, from_form=True)
    if kind.startswith("application/json"):
        try:
            fields = json.loads(await request.body() or b"{}", parse_constant=_not_a_number)
        except Exception:
            if request.scope.get(OVER_LIMIT):
                raise BodyTooLarge() from None
            raise _BadRequest("the body is not valid JSON") from None
        if not isinstance(fields, dict):
            raise _BadRequest("the JSON body must be an object")
        return None, Fields(fields, from_form=False)
    raise _BadRequest("send multipart/form-data (an image) or application/json (a name)")


TRUE = ("true", "1")


class Fields(dict):
    """A request's fields, and how they came: a JSON body's values keep their JSON types
    (k an integer, include_self a boolean: "3" and "yes" are refused there), a form's are
    text to parse (k "3", include_self "true" or "1")."""

    def __init__(self, values: dict[str, Any], from_form: bool) -> None:
        super().__init__(values)
        self.from_form = from_form

    def only(self, allowed: frozenset[str]) -> Fields:
        unknown = sorted(set(self) - allowed)
        if unknown:
            raise ImgsearchError(f"unknown field{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
                                 f"this endpoint takes {', '.join(sorted(allowed))}")
        return self


def _whole(fields: Fields, key: str, default: int, low: int, high: int) -> int:
    """A whole number: from JSON an integer (1.0 is one: JSON has one number type), never a
    bool or text; from a form, its pattern's digits ("" for the default)."""
    raw = fields.get(key, default)
    if isinstance(raw, bool) or (isinstance(raw, str) and not fields.from_form):
        _refused(key, raw, low, high)
    if isinstance(raw, float) and raw.is_integer() and not fields.from_form:
        value = int(raw)
    elif isinstance(raw, int):
        value = raw
    elif isinstance(raw, str) and re.fullmatch(FORM_PATTERNS[key], raw):
        value = int(raw) if raw else default
    else:
        raise ImgsearchError(f"{key} must be a whole number from {low} to {high}, not {_shown(raw)}")
    if not low <= value <= high:
        raise ImgsearchError(f"{key} must be from {low} to {high}, not {value}")
    return value


def _text(fields: dict[str, Any], key: str) -> str | None:
    value = fields.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ImgsearchError(f"{key} must be text")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate ("\ud800"): valid JSON, not text
        raise ImgsearchError(f"{key} must be valid Unicode text (it holds a lone surrogate)") from None
    return value


def _refused(key: str, raw: Any, low: int, high: int) -> NoReturn:
    raise ImgsearchError(f"{key} must be a whole number from {low} to {high}, not {_shown(raw)}")


def _flag(fields: Fields, key: str) -> bool:
    """true or false: from JSON a boolean, from a form "true", "false", "1", "0" or empty."""
    value = fields.get(key, False)
    if isinstance(value, bool):
        return value
    if fields.from_form and isinstance(value, str) and re.fullmatch(FORM_PATTERNS[key], value):
        return value in TRUE
    raise ImgsearchError(f"{key} must be true or false, not {_shown(value)}")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _not_a_number(constant: str) -> None:
    raise ValueError(f"{constant} is not a JSON number")


def _search_request(fields: Fields) -> dict[str, Any]:
    """What a search request asks for, as library.search_plan takes it (None: the default)."""
    return {"extractor": _text(fields, "extractor"), "metric": _text(fields, "metric"),
            "k": _whole(fields, "k", 10, 1, MAX_K), "offset": _whole(fields, "offset", 0, 0, MAX_OFFSET),
            "include_self": _flag(fields, "include_self"), "regions": _text(fields, "regions"),
            "rerank": _text(fields, "rerank"), "whiten": _text(fields, "whiten"), "under": _folder(fields, "under")}


def _box(fields: dict[str, Any]) -> tuple[int, int, int, int] | None:
    """`box` as "x,y,width,height" (whole pixels of the uploaded photo), or None."""
    text = _text(fields, "box")
    if text is None:
        return None
    if not re.fullmatch(BOX, text):
        raise ImgsearchError(f"box must be x,y,width,height in whole pixels, not {_shown(text)}")
    x, y, width, height = (int(p) for p in text.split(","))
    return x, y, width, height


def _folder(fields: dict[str, Any], key: str) -> str | None:
    """A folder of the collection, relative to its root: no client names a path outside it."""
    folder = _text(fields, key)
    if folder is not None and (folder.startswith("/") or ".." in Path(folder).parts):
        raise NotFoundError(f"{key}: no such folder in the collection (a folder of it is named relative to its root)")
    return folder


def _image_json(image: Any) -> JSONResponse:
    return JSONResponse({"id": image.id, "path": os.fsdecode(image.path), "name": os.fsdecode(image.name),
                         "bytes": image.bytes, "width": image.width, "height": image.height, "sha256": image.sha256,
                         "thumbnail": f"/api/images/{image.id}/thumbnail", "file": f"/api/images/{image.id}/file"})


def _static(name: str) -> str:
    return resources.files("imgsearch.serve").joinpath("static").joinpath(name).read_text("utf-8")
