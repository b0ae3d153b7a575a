"""What the HTTP API documents of itself (/openapi.json): the request bodies, generated
from the models the service parses them with (serve.requests: multipart with an `image`,
or JSON), every status an endpoint answers with, the one error shape `{"error": message}`
for all of them, and the images the file endpoints send."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from imgsearch.serve.requests import CompareForm, CompareNames, SearchByName, SearchForm


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


def _form(model: type[BaseModel]) -> dict[str, Any]:
    """The model's fields as a multipart form beside the photo in `image`."""
    schema = model.model_json_schema()
    photo = {"type": "string", "format": "binary", "description": "the photo", "contentMediaType": "image/*"}
    return {**schema, "properties": {"image": photo, **schema["properties"]},
            "required": ["image", *schema.get("required", [])]}


def body(json_model: type[BaseModel], form_model: type[BaseModel]) -> dict[str, Any]:
    """An endpoint's documented body: a photo with form fields, or a JSON object."""
    return {"requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": _form(form_model)},
        "application/json": {"schema": json_model.model_json_schema()},
    }}}


SEARCH_BODY = body(SearchByName, SearchForm)
COMPARE_BODY = body(CompareNames, CompareForm)
