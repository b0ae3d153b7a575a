"""What the HTTP API documents of itself (/openapi.json), stated once here so that the spec
says what the service does: the request bodies the handlers read by hand (multipart with
an `image`, or JSON), every status an endpoint answers with, the one error shape
`{"error": message}` for all of them, and the images the file endpoints send."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ErrorBody(BaseModel):
    error: str  # for a person: what was wrong, naming no path of the server


ERROR_WHY = {
    400: "the request is not one this endpoint reads (no image, no name, a malformed body)",
    401: "the service has a token and the request did not give it",
    404: "no indexed image, folder or file by that name or id",
    413: "the upload is over the service's limit",
    415: "the upload is not a usable image",
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


SEARCH_FIELDS: dict[str, Any] = {
    "extractor": _text("a stored descriptor (default: the service's)"),
    "metric": _text("pearson, bhattacharyya or cosine (default: the service's)"),
    "k": {"type": "integer", "minimum": 1, "maximum": 1000, "description": "how many results (default 10)"},
    "offset": {"type": "integer", "minimum": 0, "maximum": 100000, "description": "results skipped (default 0)"},
    "rerank": _text("a re-ranking, NAME[:PARAMS], or none"),
    "whiten": _text("a learned map"),
    "include_self": {"type": "boolean", "description": "keep the query's own row"},
    "under": _text("only images under this folder of the collection, relative to its root ('.' is the root)"),
    "regions": _text("query regions of an upload"),
}


def _form(fields: dict[str, Any], required: list[str]) -> dict[str, Any]:
    """The same fields as form text: numbers as digits, booleans as true/false/1/0."""
    as_text = {name: {"type": "string", "description": spec.get("description", "")} for name, spec in fields.items()}
    return {"type": "object", "required": ["image", *required], "additionalProperties": False,
            "properties": {"image": {"type": "string", "format": "binary", "description": "the photo"}, **as_text}}


def _json(fields: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "required": required, "additionalProperties": False, "properties": fields}


SEARCH_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": _form({**SEARCH_FIELDS,
                                             "box": _text("x,y,width,height in the photo's pixels")}, [])},
    "application/json": {"schema": _json({"name": _text("an indexed image's path or file name"), **SEARCH_FIELDS},
                                         ["name"])},
}}}

COMPARE_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": _form({"b": _text("an indexed image")}, ["b"])},
    "application/json": {"schema": _json({"a": _text("an indexed image"), "b": _text("an indexed image")},
                                         ["a", "b"])},
}}}


def field_names(body: dict[str, Any]) -> frozenset[str]:
    """Every field a documented body takes, in any of its media types (the upload itself,
    `image`, is read apart): what the handler accepts is what the spec says."""
    return frozenset(name for media in body["requestBody"]["content"].values()
                     for name in media["schema"]["properties"] if name != "image")


SEARCH_FIELD_NAMES = field_names(SEARCH_BODY)
COMPARE_FIELD_NAMES = field_names(COMPARE_BODY)
