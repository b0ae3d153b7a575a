"""What the HTTP API documents of itself (/openapi.json), stated once here so that the spec
says what the service does: the request bodies the handlers read by hand (multipart with
an `image`, or JSON), every status an endpoint answers with, the one error shape
`{"error": message}` for all of them, and the images the file endpoints send."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel

from imgsearch.features.regions import REGION_CHOICES
from imgsearch.features.registry import names_of_kind
from imgsearch.rerank.registry import reranking_pattern
from imgsearch.scan.metrics import METRICS


class ErrorBody(BaseModel):
    error: str  # for a person: what was wrong, naming no path of the server


ERROR_WHY = {
    400: "the request is not one this endpoint reads (no image, no name, a malformed body)",
    401: "the service has a token and the request did not give it",
    404: "no indexed image, folder or file by that name or id",
    413: "the upload is over the service's limit",
    409: "the index does not keep what the request needs (a k-NN graph, local features, a learned map for its "
         "metric), or two of its fields do not go together",
    415: "the upload is not a usable image (the schema cannot say which bytes are one)",
    422: "a field is unknown, of the wrong type or out of range",
    503: "the database cannot be reached now, or the service is busy",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses` of an endpoint answering these error statuses (and 401 and 503, as
    every /api/ endpoint may)."""
    return {s: {"model": ErrorBody, "description": ERROR_WHY[s]} for s in sorted({*statuses, 401, 503})}


def image_response(media: str) -> dict[int | str, dict[str, Any]]:
    return {200: {"description": "the image's bytes", "content": {media: {"schema": {"type": "string",
                                                                                       "format": "binary"}}}}}


def _text(description: str) -> dict[str, str]:
    return {"type": "string", "description": description}


def _name(description: str) -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "description": description}


def _choice(names: Iterable[str], description: str) -> dict[str, Any]:
    """One of these names, or "" for the default."""
    return {"type": "string", "enum": ["", *names], "description": description}


MAX_K = 1000
MAX_OFFSET = 100_000
# A form's fields are text: a whole number as digits with no leading zero, a flag as
# true/false/1/0, "" for the default; the service reads them by these patterns (app).
FORM_PATTERNS = {
    "k": f"^(?:|[1-9][0-9]{{0,2}}|{MAX_K})$",
    "offset": f"^(?:|0|[1-9][0-9]{{0,4}}|{MAX_OFFSET})$",
    "include_self": "^(?:|true|false|1|0)$",
}
BOX = "^(?:|[0-9]{1,9},[0-9]{1,9},[0-9]{1,9},[0-9]{1,9})$"

SEARCH_FIELDS: dict[str, Any] = {
    "extractor": _choice(names_of_kind("vector"), "a stored descriptor (default: the service's)"),
    "metric": _choice(METRICS, "the metric (default: the service's)"),
    "k": {"type": "integer", "minimum": 1, "maximum": MAX_K, "description": "how many results (default 10)"},
    "offset": {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET, "description": "results skipped (default 0)"},
    "rerank": {"type": "string", "pattern": reranking_pattern(),
               "description": "a re-ranking, NAME[:PARAMS] joined by +, or none (default: what the index keeps)"},
    "whiten": _text("a learned map's name"),
    "include_self": {"type": "boolean", "description": "keep the query's own row"},
    "under": _text("only images under this folder of the collection, relative to its root ('.' is the root)"),
    "regions": _choice(REGION_CHOICES, "query regions of an upload"),
}


def _form(fields: dict[str, Any], required: list[str]) -> dict[str, Any]:
    """The same fields as form text: numbers as digits, booleans as true/false/1/0."""
    def as_text(name: str, spec: dict[str, Any]) -> dict[str, Any]:
        text = {key: value for key, value in spec.items() if key in ("enum", "pattern", "minLength", "description")}
        return {"type": "string", **text, **({"pattern": FORM_PATTERNS[name]} if name in FORM_PATTERNS else {})}

    return {"type": "object", "required": ["image", *required], "additionalProperties": False,
            "properties": {"image": {"type": "string", "format": "binary", "description": "the photo",
                                     "contentMediaType": "image/*"},
                           **{name: as_text(name, spec) for name, spec in fields.items()}}}


def _json(fields: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "required": required, "additionalProperties": False, "properties": fields}


SEARCH_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": _form({**SEARCH_FIELDS,
                                             "box": {"type": "string", "pattern": BOX,
                                                     "description": "x,y,width,height in the photo's pixels"}}, [])},
    "application/json": {"schema": _json({"name": _name("an indexed image's path or file name"), **SEARCH_FIELDS},
                                         ["name"])},
}}}

COMPARE_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": _form({"b": _name("an indexed image")}, ["b"])},
    "application/json": {"schema": _json({"a": _name("an indexed image"), "b": _name("an indexed image")},
                                         ["a", "b"])},
}}}


def field_names(body: dict[str, Any]) -> frozenset[str]:
    """Every field a documented body takes, in any of its media types (the upload itself,
    `image`, is read apart): what the handler accepts is what the spec says."""
    return frozenset(name for media in body["requestBody"]["content"].values()
                     for name in media["schema"]["properties"] if name != "image")


SEARCH_FIELD_NAMES = field_names(SEARCH_BODY)
COMPARE_FIELD_NAMES = field_names(COMPARE_BODY)
