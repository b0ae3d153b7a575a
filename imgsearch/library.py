"""imgsearch as a Python library: open an index, build it from a folder, search it with a
photo (a path, its bytes, or an RGB array) or by an indexed image's name, find its
duplicates, compare two images. The same code paths as the command line, with the same
defaults; results are plain dataclasses with the fields `query --json` prints; every
failure is an ImgsearchError, never a driver's traceback.

    import imgsearch
    with imgsearch.open("sqlite:///photos.db") as index:
        index.build("~/Pictures")
        for hit in index.search("query.jpg", k=10):
            print(hit.path, hit.score, hit.inliers)
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import cv2
import numpy as np

from imgsearch.compare import Comparison, side_of, side_of_bytes
from imgsearch.compare import compare as compare_sides
from imgsearch.config import SOURCE_OF, Settings, database_url, load_settings
from imgsearch.duplicates import (
    DEFAULT_EXTRACTOR,
    DEFAULT_MAX_PAIRS,
    DEFAULT_METRIC,
    CopyRules,
    DuplicateReport,
    Progress,
    find_duplicates,
)
from imgsearch.errors import ImgsearchError, SkippedFile
from imgsearch.index.build import build as build_folder
from imgsearch.names import display
from imgsearch.plan import SearchPlan
from imgsearch.query import (
    QueryPhoto,
    QueryResult,
    Request,
    name_request,
    photo_of_bytes,
    photo_request,
    planned,
    query_photo,
    run_query,
    search,
)
from imgsearch.scan.store_scan import Scanner
from imgsearch.store import open_store
from imgsearch.store.base import FeatureStore

Photo = str | os.PathLike | bytes | np.ndarray  # a file, its bytes, or RGB pixels (height x width x 3, uint8)


@dataclass(frozen=True)
class Hit:
    """One result, as `query --json` prints it: `inliers`, `matches`, `significance` and
    `corners` where the photo was verified against the image (corners: its outline in the
    photo, when verified), `match`: what a verified image shares with the photo ("object":
    the thing the photo shows, "scene": only its surroundings, as another photo taken on the
    same desk; None where not verified), and `found_by`: the first-stage lists that brought
    it ("photo": the whole photo's ranking, "regions": its regions' scan, "words": the
    visual words, "expansion": the words of verification's second query, what the first
    pass learned of the object)."""

    rank: int
    id: int
    name: str
    path: str
    score: float
    inliers: int | None = None
    matches: int | None = None
    significance: float | None = None
    corners: list[list[float]] | None = None
    match: str | None = None
    found_by: list[str] | None = None

    @property
    def verified(self) -> bool:
        return self.corners is not None


@dataclass(frozen=True)
class Built:
    """What a build did, as its summary line says it."""

    indexed: int
    moved: int
    unchanged: int
    removed: int
    skipped: list[tuple[str, str]]  # (path, why)
    dropped: list[tuple[str, str]]  # (path, what it holds now): rows removed as their path holds no image
    caught: int  # files changed behind the stored size and time (verify_content)
    summary: str


class Index:
    """An open index (use `imgsearch.open`): one database connection, the search defaults of
    its settings, and how it scans: the store, or the copy in memory a service hands in
    (scan.store_scan.Scanner). The one entrance: the command line, the library and the
    service all search, compare and report duplicates through it."""

    def __init__(self, store: FeatureStore, settings: Settings, scanner: Scanner | None = None) -> None:
        self._store, self._settings, self._scanner = store, settings, scanner

    def __enter__(self) -> Index:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._store.close()

    def build(self, folder: str | os.PathLike | None = None, *, extractors: tuple[str, ...] | None = None,
              workers: int | None = None, progress: bool = False, verify_content: bool = False) -> Built:
        """The incremental build `imgsearch build` runs: new and changed files read, moved
        ones kept, vanished ones and those whose path holds no image now removed. folder:
        the collection (default: the one this index already holds); verify_content: hash
        the files of the stored size and time too, as `build --verify-content`."""
        workers = None if workers is None else whole_number("workers", workers, *WORKERS)
        if extractors is not None:
            names = SOURCE_OF["build_extractors"].choices
            if isinstance(extractors, str) or not all(isinstance(e, str) and e in names for e in extractors) \
                    or not extractors:
                raise ImgsearchError(f"extractors must be a tuple of names from {', '.join(names)}, "
                                     f"not {shown(extractors)}")
        if folder is not None and not isinstance(folder, (str, os.PathLike)):
            raise ImgsearchError(f"folder must be a path, not {shown(folder)}")
        report = build_folder(self._store, None if folder is None else str(Path(folder).expanduser()),
                              extractors or self._settings.build_extractors, workers or self._settings.workers,
                              self._settings.batch_size, progress, default_graph=self._settings.default_graph,
                              verify_content=verify_content)
        return Built(report.indexed, report.moved, report.unchanged, report.removed,
                     [(display(path), why) for path, why in report.skipped],
                     [(display(path), why) for path, why in report.dropped], report.caught, report.summary())

    def search(self, photo: Photo | None = None, *, name: str | None = None, k: int = 10,
               under: str | None = None, extractor: str | None = None, metric: str | None = None,
               rerank: str | None = None, whiten: str | None = None, include_self: bool = False) -> list[Hit]:
        """The k images most like the photo (a path, bytes or an RGB array), or like the
        indexed image called `name` (its relative path or file name; itself left out unless
        include_self), as `imgsearch query` ranks them: verified where local features are
        stored. under: only the images below that folder of the collection; rerank, whiten:
        as `query --rerank` and `--whiten`."""
        return hits(self.query(photo, name=name, k=k, under=under, extractor=extractor, metric=metric,
                               rerank=rerank, whiten=whiten, include_self=include_self))

    def query(self, photo: Photo | QueryPhoto | None = None, *, name: str | None = None,
              vector: np.ndarray | None = None, label: str = "photo", **plan: Any) -> QueryResult:
        """search(), with what the answer says besides its hits (times, notes, state). A
        path that is not a file is taken for an indexed image's name, as `query IMAGE` does;
        vector: a descriptor of the searched extractor as the query. plan: what plan()
        takes; label: what the answer calls a photo given as pixels or a vector."""
        if sum(given is not None for given in (photo, name, vector)) != 1:
            raise ImgsearchError("search takes a photo, the name of an indexed image or a vector, one of them")
        text_or_none("name", name)
        return self.answer(self.plan(**plan), photo, name, label, vector)

    def plan(self, **asked: Any) -> SearchPlan:
        """search_plan over this index's defaults."""
        return search_plan(self._settings, **asked)

    def answer(self, plan: SearchPlan, photo: Photo | QueryPhoto | None = None, name: str | None = None,
               label: str = "photo", vector: np.ndarray | None = None) -> QueryResult:
        """The one path from a plan and its query (one of photo, name, vector) to the
        ranked answer."""
        if isinstance(photo, (str, os.PathLike)):
            return run_query(self._store, str(Path(photo).expanduser()), plan, self._scanner)
        started = time.perf_counter()
        found = planned(self._store, plan)
        if vector is not None:
            request = Request(found, vector_of(vector, found.row.dim), None, label)
        elif name is not None:
            request = name_request(self._store, found, name)
        else:
            request = photo_request(found, photo_of(photo), label)
        return search(self._store, request, started, self._scanner)

    def duplicates(self, extractor: str = DEFAULT_EXTRACTOR, rules: CopyRules = CopyRules(),
                   reference: str | None = None, *, metric: str = DEFAULT_METRIC, progress: Progress | None = None,
                   use_graph: bool = True, max_pairs: int | None = DEFAULT_MAX_PAIRS) -> DuplicateReport:
        """The duplicate groups `imgsearch duplicates` reports: exact copies, near copies,
        and photographs of one scene apart from them (duplicates.find_duplicates)."""
        text_or_none("extractor", extractor)
        return find_duplicates(self._store, extractor, metric, rules, reference, self._settings.block_rows, progress,
                               use_graph, max_pairs)

    def compare(self, a: str | os.PathLike | bytes, b: str | os.PathLike) -> Comparison:
        """Every stored descriptor's verdict on two images (files, indexed names, or a's
        bytes): .text() as `imgsearch compare` prints it, .as_json() as with --json."""
        for key, side, kinds in (("a", a, (str, os.PathLike, bytes)), ("b", b, (str, os.PathLike))):
            if not isinstance(side, kinds) or not (isinstance(side, bytes) or str(side).strip()):
                raise ImgsearchError(f"{key} must be a file or an indexed image's name, not {shown(side)}")
        left = side_of_bytes("upload", a) if isinstance(a, bytes) else side_of(self._store, str(a))
        return compare_sides(self._store, left, side_of(self._store, str(b)))


def search_plan(settings: Settings, *, k: int = 10, offset: int = 0, under: str | None = None,
                extractor: str | None = None, metric: str | None = None, rerank: str | None = None,
                whiten: str | None = None, include_self: bool = False, regions: str | None = None) -> SearchPlan:
    """The search these arguments ask for over the settings' defaults, each checked: the one
    place a plan is made of what a person gives (the command line, the library, a request)."""
    k = whole_number("k", k, *TOP_K)
    offset = whole_number("offset", offset, 0, TOP_K[1])
    for key, value in (("under", under), ("extractor", extractor), ("metric", metric), ("rerank", rerank),
                       ("whiten", whiten), ("regions", regions)):
        text_or_none(key, value)
    if not isinstance(include_self, bool):
        raise ImgsearchError(f"include_self must be True or False, not {shown(include_self)}")
    settings = settings.with_flags(extractor=extractor, metric=metric, regions=regions)
    return SearchPlan.of(settings.extractor, settings.metric, k=k, offset=offset, include_self=include_self,
                         parallel=settings.parallel, block_rows=settings.block_rows, regions=settings.regions,
                         rerank=rerank, whiten=whiten, under=under)


TOP_K = (SOURCE_OF["top_k"].low or 1, SOURCE_OF["top_k"].high or 1)  # what `query -k` and IMGSEARCH_TOP_K take
WORKERS = (SOURCE_OF["workers"].low or 1, SOURCE_OF["workers"].high or 1)


def whole_number(key: str, value: object, low: int, high: int) -> int:
    """The rule the command line and the API apply: a whole number (not a bool, text or a
    float) within the range."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ImgsearchError(f"{key} must be a whole number from {low} to {high}, not {shown(value)}")
    if not low <= value <= high:
        raise ImgsearchError(f"{key} must be from {low} to {high}, not {value}")
    return int(value)


def text_or_none(key: str, value: object) -> None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise ImgsearchError(f"{key} must be non-empty text or None, not {shown(value)}")


def shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def vector_of(vector: object, dim: int) -> np.ndarray:
    if not isinstance(vector, np.ndarray) or vector.shape != (dim,) or not np.isfinite(vector).all():
        raise ImgsearchError(f"a vector query is {dim} finite numbers of the searched extractor, not {shown(vector)}")
    return vector.astype(np.float32)


def photo_of(photo: object) -> QueryPhoto:
    """A query photo from a file's bytes or RGB pixels (or one decoded already); anything
    else is an error."""
    if isinstance(photo, QueryPhoto):
        return photo
    if isinstance(photo, bytes):
        try:
            return photo_of_bytes(photo)
        except SkippedFile as e:
            raise ImgsearchError(f"cannot use these bytes as a photo: {e}") from None
    if isinstance(photo, np.ndarray) and photo.ndim == 3 and photo.shape[2] == 3 and photo.dtype == np.uint8:
        if min(photo.shape[:2]) < 1:
            raise ImgsearchError(f"an RGB array of {photo.shape[0]} x {photo.shape[1]} pixels holds no photo")
        return query_photo(cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    raise ImgsearchError("a photo is a path, the bytes of an image file, or an RGB array (height x width x 3, uint8), "
                         f"not {shown(photo) if not isinstance(photo, np.ndarray) else f'an array {photo.shape} of {photo.dtype}'}")


def hits(result: QueryResult) -> list[Hit]:
    fields = Hit.__dataclass_fields__
    return [Hit(**{key: value for key, value in row.items() if key in fields}) for row in result.as_json()["results"]]


def open(url: str | None = None, *, config: str | os.PathLike | None = None) -> Index:  # noqa: A001
    """The index at a database URL (sqlite:///path or mysql://user:password@host/db), made
    when missing; without one, the configured database (config.ini, IMGSEARCH_DB), else
    the embedded default."""
    if url is not None and (not isinstance(url, str) or not url.strip()):
        raise ImgsearchError(f"a database URL is sqlite:///path or mysql://user@host/db (None: the configured one), "
                             f"not {shown(url)}")
    settings = load_settings(None if config is None else str(config)).with_flags(db_url=url)
    return Index(open_store(database_url(settings), create=True), settings)
