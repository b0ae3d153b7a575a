"""What the API's requests may hold, declared once as pydantic models: the service parses
every body with them, and /openapi.json publishes their schemas (serve.spec), so the spec
and the service cannot say different things. A JSON body keeps JSON's types (k an integer,
include_self a boolean: "3" and "yes" are refused); a form's fields are text, read by the
patterns its model declares ("" for the default)."""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    StrictBool,
    ValidationError,
)
from pydantic import StrictStr as _StrictStr
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema
from starlette.requests import Request

from imgsearch.errors import ImgsearchError, NotFoundError
from imgsearch.features.regions import REGION_CHOICES
from imgsearch.features.registry import names_of_kind
from imgsearch.query import MIN_BOX_SIDE
from imgsearch.rerank.registry import reranking_pattern
from imgsearch.scan.metrics import METRICS
from imgsearch.store.kinds import VECTOR

MAX_K = 1000
MAX_OFFSET = 100_000
# a box's side: a whole number of at least MIN_BOX_SIDE (16), as the pattern of its digits
BOX_SIDE = "(?:1[6-9]|[2-9][0-9]|[1-9][0-9]{2,8})"
OVER_LIMIT = "imgsearch.over_limit"  # set in the ASGI scope when a body passed the limit (app.BodyLimit)


class BadRequest(Exception):
    """A body this endpoint does not read (400)."""


class BodyTooLarge(Exception):
    """A body over the service's upload limit (413)."""


def _unicode(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate ("\ud800"): valid JSON, not text
        raise ValueError("must be valid Unicode text (it holds a lone surrogate)") from None
    return value


def _json_whole(value: Any) -> Any:
    """A whole number in JSON: an integer (1.0 is one: JSON has one number type), never a
    bool or text."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"must be a whole number, not {_shown(value)}")
    return value


@dataclass(frozen=True)
class OneOf:
    """Text that is one of these names ("" for the default): checked, and published as the
    schema's enum."""

    names: tuple[str, ...]

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_after_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return {**handler(schema), "enum": list(self.names)}

    def check(self, value: str) -> str:
        if value not in self.names:
            raise ValueError(f"must be one of {', '.join(n for n in self.names if n)}, not {_shown(value)}")
        return value


StrictStr = Annotated[_StrictStr, AfterValidator(_unicode)]
Name = Annotated[_StrictStr, Field(min_length=1), AfterValidator(_unicode)]
Extractor = Annotated[StrictStr, OneOf(("", *names_of_kind(VECTOR.name)))]
Metric = Annotated[StrictStr, OneOf(("", *METRICS))]
Regions = Annotated[StrictStr, OneOf(("", *REGION_CHOICES))]
Count = Annotated[int, Field(ge=1, le=MAX_K), BeforeValidator(_json_whole)]
Skipped = Annotated[int, Field(ge=0, le=MAX_OFFSET), BeforeValidator(_json_whole)]
# the re-rankings' grammar is published; parse_reranking reads it, with the message that names the parameter
Rerank = Annotated[StrictStr, Field(json_schema_extra={"pattern": reranking_pattern()},
                                    description="a re-ranking, NAME[:PARAMS] joined by +, or none")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SearchFields(_Strict):
    """The search a request asks for (JSON); None or "" leaves the service's default."""

    extractor: Extractor | None = Field(None, description="a stored descriptor (default: the service's)")
    metric: Metric | None = Field(None, description="the metric (default: the service's)")
    k: Count = Field(10, description="how many results")
    offset: Skipped = Field(0, description="results skipped")
    rerank: Rerank | None = None
    whiten: StrictStr | None = Field(None, description="a learned map's name")
    include_self: StrictBool = Field(False, description="keep the query's own row")
    under: StrictStr | None = Field(None, description="only images under this folder of the collection, relative "
                                                       "to its root ('.' is the root)")
    regions: Regions | None = Field(None, description="query regions of an upload")

    def asked(self) -> dict[str, Any]:
        """What library.search_plan takes."""
        return {"extractor": self.extractor or None, "metric": self.metric or None, "k": self.k,
                "offset": self.offset, "include_self": self.include_self, "regions": self.regions or None,
                "rerank": self.rerank or None, "whiten": self.whiten or None, "under": folder(self.under, "under")}


class SearchByName(SearchFields):
    name: Name = Field(description="an indexed image's path or file name")


class SearchForm(_Strict):
    """The fields of an upload's multipart form: the same, as text."""

    extractor: Extractor = ""
    metric: Metric = ""
    k: Annotated[_StrictStr, Field(pattern=f"^(?:|[1-9][0-9]{{0,2}}|{MAX_K})$")] = ""
    offset: Annotated[_StrictStr, Field(pattern=f"^(?:|0|[1-9][0-9]{{0,4}}|{MAX_OFFSET})$")] = ""
    rerank: Rerank = ""
    whiten: StrictStr = ""
    include_self: Annotated[_StrictStr, Field(pattern="^(?:|true|false|1|0)$")] = ""
    under: StrictStr = ""
    regions: Regions = ""
    box: Annotated[_StrictStr, Field(pattern=f"^(?:|[0-9]{{1,9}},[0-9]{{1,9}},{BOX_SIDE},{BOX_SIDE})$")] = Field(
        "", description=f"x,y,width,height in the photo's pixels, each side at least {MIN_BOX_SIDE}; the photo "
                        "must hold the box (422 where it does not: its size is known only once it is decoded)")

    def asked(self) -> dict[str, Any]:
        return {"extractor": self.extractor or None, "metric": self.metric or None, "k": int(self.k or 10),
                "offset": int(self.offset or 0), "include_self": self.include_self in ("true", "1"),
                "regions": self.regions or None, "rerank": self.rerank or None, "whiten": self.whiten or None,
                "under": folder(self.under, "under")}

    def box_tuple(self) -> tuple[int, int, int, int] | None:
        if not self.box:
            return None
        x, y, width, height = (int(p) for p in self.box.split(","))
        return x, y, width, height


class CompareNames(_Strict):
    a: Name = Field(description="an indexed image")
    b: Name = Field(description="an indexed image")


class CompareForm(_Strict):
    b: Name = Field(description="an indexed image")


def folder(text: str | None, key: str) -> str | None:
    """A folder of the collection, relative to its root: no client names a path outside it."""
    if not text:
        return None
    if text.startswith("/") or ".." in Path(text).parts:
        raise NotFoundError(f"{key}: no such folder in the collection (a folder of it is named relative to its root)")
    return text


Model = TypeVar("Model", bound=BaseModel)


def parsed(model: type[Model], fields: Mapping[str, Any]) -> Model:
    """The fields as the model reads them; a field it does not take, or a value it refuses,
    is an ImgsearchError naming it (422)."""
    unknown = sorted(set(fields) - set(model.model_fields))
    if unknown:
        raise ImgsearchError(f"unknown field{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
                             f"this endpoint takes {', '.join(sorted(model.model_fields))}")
    try:
        return model.model_validate(dict(fields))
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        cause = first.get("ctx", {}).get("error")
        said = str(cause) if first["type"] == "value_error" and cause is not None else first["msg"]
        raise ImgsearchError(f"{where}: {said}") from None


async def read_body(request: Request) -> tuple[bytes | None, dict[str, Any]]:
    """The upload (multipart field `image`) and the other fields, or a JSON object's fields."""
    kind = request.headers.get("content-type", "")
    if kind.startswith("multipart/form-data"):
        try:
            form = await request.form(max_files=1, max_fields=20)
        except Exception as e:  # the multipart parser's own errors: a malformed or cut-off body
            if request.scope.get(OVER_LIMIT):
                raise BodyTooLarge() from None
            raise BadRequest(f"malformed multipart body: {e}") from None
        upload = form.get("image")
        if upload is None or isinstance(upload, str):
            raise BadRequest("the multipart body has no file in the field `image`")
        return await upload.read(), {k: v for k, v in form.items() if k != "image"}
    if kind.startswith("application/json"):
        try:
            fields = json.loads(await request.body() or b"{}", parse_constant=_not_a_number)
        except Exception:
            if request.scope.get(OVER_LIMIT):
                raise BodyTooLarge() from None
            raise BadRequest("the body is not valid JSON") from None
        if not isinstance(fields, dict):
            raise BadRequest("the JSON body must be an object")
        return None, fields
    raise BadRequest("send multipart/form-data (an image) or application/json (a name)")


def _not_a_number(constant: str) -> None:
    raise ValueError(f"{constant} is not a JSON number")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
