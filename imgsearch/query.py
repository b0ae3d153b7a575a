"""query: turn the user's IMAGE argument into a vector, scan, and name the top-K."""
from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from imgsearch.errors import ImgsearchError, NotFoundError, SkippedFile
from imgsearch.features.base import Extractor
from imgsearch.features.cnn import CnnExtractor
from imgsearch.features.regions import REGION_CHOICES, REGIONS
from imgsearch.index.calibration import stored_calibration
from imgsearch.index.extraction import cached_extractor
from imgsearch.index.images import decode_to_side, jpeg_size, read_bytes, shrunk_to_side
from imgsearch.index.walk import folder_prefix
from imgsearch.learn.stored import learned_metric
from imgsearch.names import display
from imgsearch.plan import SearchPlan
from imgsearch.rerank.query import LocalSource, QueryContext, QueryLocal, graph_notes
from imgsearch.rerank.registry import DEFAULT_VERIFY, GRAPH, parse_reranking
from imgsearch.scan.kernel import RowFilter, ScanResult, pair_scores
from imgsearch.scan.store_scan import Scanner, StoreScan
from imgsearch.store.base import COLLECTION_ROOT_KEY, FeatureStore, check_same_params
from imgsearch.store.catalog import Catalog, read_catalog
from imgsearch.store.records import ExtractorRow


@dataclass(frozen=True)
class Match:
    rank: int
    id: int
    name: bytes
    path: bytes  # relative to the collection root
    score: float


@dataclass(frozen=True)
class QueryResult:
    query: str
    extractor: str
    metric: str
    elapsed_s: float
    matches: list[Match]
    notes: list[str] = field(default_factory=list)  # warnings for the user, one line each
    rows_scanned: int = 0
    state: int | None = None  # the extractor's change counter the answer was computed at
    extras: dict[int, dict] = field(default_factory=dict)  # per image id: what its re-ranking found
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage of the re-ranking, where it tells
    # Whether the best match scores above what unrelated photos of this index score (or
    # verified); None where unknown (no calibration, or a re-ranking's own score scale).
    close_match: bool | None = None
    rerank: str | None = None  # the re-ranking that ordered the results (its default included), None: the metric
    total: int = 0  # the images searched (those under the folder asked for), the query's own row left out

    def as_json(self) -> dict:
        """The `query --json` object (the service's answer adds to it)."""
        return {
            "query": self.query, "extractor": self.extractor, "metric": self.metric, "elapsed_s": self.elapsed_s,
            "rows_scanned": self.rows_scanned, "state": self.state, "close_match": self.close_match,
            "rerank": self.rerank,
            **({"stages_s": self.timings} if self.timings else {}),
            "results": [{"rank": m.rank, "id": m.id, "name": os.fsdecode(m.name), "path": os.fsdecode(m.path),
                         "score": m.score, **self.extras.get(m.id, {})} for m in self.matches],
        }


def stored_row(store: FeatureStore, name: str, catalog: Catalog | None = None) -> ExtractorRow:
    """The stored extractor row of this name (from the search's catalog where it has one),
    refusing one that was never built."""
    extractors = catalog.extractors if catalog is not None else tuple(store.extractors())
    row = next((e for e in extractors if e.name == name), None)
    if not extractors or (row is not None and not store.has_vectors(row)):
        raise NotFoundError("nothing indexed yet: run `imgsearch build FOLDER` first")
    if row is not None and not row.kind.searched:
        raise ImgsearchError(f"{name} {row.kind.not_searched}, it is not searched; search with cnn-spoc or another "
                             "descriptor")
    if row is None:
        built = ", ".join(e.name for e in extractors)
        raise NotFoundError(f"extractor {name!r} was never built in this database (built: {built})",
                             f"run `imgsearch build --extractor {name}`")
    return row


def stored_extractor(store: FeatureStore, name: str) -> tuple[ExtractorRow, Extractor]:
    """The stored extractor and the code that extracts it, refusing one that was never
    built or was built differently."""
    row = stored_row(store, name)
    return row, extractor_of(row)


def extractor_of(row: ExtractorRow) -> Extractor:
    """The code that extracts a stored extractor's vectors, refusing one whose stored
    parameters this code would not reproduce."""
    extractor = cached_extractor(row.name, row.params)
    check_same_params(row, extractor.params_json(), extractor.dim)
    return extractor


# A query photo is shrunk once to this side before anything is extracted from it: the
# smallest query crop (half the photo's side, features.regions) still reaches the network's
# 256 pixels twice over, and local features are extracted at 640. A 12 MP phone photo's
# crops cost 309 ms at the median from the full photo, 171 from a quarter of it
# (bench/instance.py photos).
QUERY_MAX_SIDE = 1024


@dataclass(frozen=True)
class QueryPhoto:
    pixels: np.ndarray  # at most QUERY_MAX_SIDE a side
    scale: float  # its size over the photo's own (1: not shrunk)
    height: int  # the photo's own size
    width: int


def query_photo(pixels: np.ndarray) -> QueryPhoto:
    """The photo as every extractor of a query reads it: shrunk once (INTER_AREA)."""
    height, width = pixels.shape[:2]
    shrunk = shrunk_to_side(pixels, QUERY_MAX_SIDE)
    return QueryPhoto(shrunk, max(shrunk.shape[:2]) / max(height, width), height, width)


MIN_BOX_SIDE = 16  # pixels of the photo: below this a box holds too little to describe


def photo_of_bytes(data: bytes, box: tuple[int, int, int, int] | None = None) -> QueryPhoto:
    """A query photo from a file's bytes, decoded once at the size its extractors need (a
    JPEG at a reduced DCT scale), or the part of it inside `box` (x, y, width, height in the
    photo's pixels), decoded large enough that the part still reaches QUERY_MAX_SIDE."""
    if box is None:
        sized = decode_to_side(data, QUERY_MAX_SIDE)
        return QueryPhoto(sized.pixels, sized.scale, sized.height, sized.width)
    x, y, width, height = box
    header = jpeg_size(data)
    side = QUERY_MAX_SIDE if header is None else math.ceil(QUERY_MAX_SIDE * max(header) / max(width, height, 1))
    sized = decode_to_side(data, side)
    if x < 0 or y < 0 or x + width > sized.width or y + height > sized.height:
        raise ImgsearchError(f"box {x},{y},{width},{height} is not inside the photo ({sized.width} x {sized.height} "
                             "pixels)")
    if min(width, height) < MIN_BOX_SIDE:
        raise ImgsearchError(f"box {width} x {height}: a side of at least {MIN_BOX_SIDE} pixels is needed")
    s = sized.scale
    part = np.ascontiguousarray(sized.pixels[round(y * s) : max(round((y + height) * s), round(y * s) + 1),
                                             round(x * s) : max(round((x + width) * s), round(x * s) + 1)])
    shrunk = query_photo(part)
    return QueryPhoto(shrunk.pixels, max(shrunk.pixels.shape[:2]) / max(width, height), height, width)


def photo_vector(extractor: Extractor, pixels: np.ndarray, regions: str | None) -> np.ndarray:
    """The descriptor of a query photo, or its regions' when asked and the extractor is a
    CNN (the colour histograms have no regions: their whole-photo vector is used)."""
    if regions is None or not isinstance(extractor, CnnExtractor):
        return extractor.extract(pixels)
    if regions not in REGIONS:
        raise ImgsearchError(f"unknown regions {regions!r}; known: {', '.join(REGION_CHOICES)}")
    return REGIONS[regions](extractor, pixels)


def indexed_vector(store: FeatureStore, row: ExtractorRow, name: str) -> tuple[np.ndarray, int]:
    """The stored vector and id of the indexed image whose relative path (else file name)
    is `name`; a name shared by several images is an error listing their paths."""
    matches = store.find_images(os.fsencode(name))
    if not matches:
        raise NotFoundError(f"{name}: no such file, and no indexed image has that name or path")
    if len(matches) > 1:
        listed = "\n  ".join(display(m.path) for m in matches[:20])
        more = f"\n  ... and {len(matches) - 20} more" if len(matches) > 20 else ""
        raise ImgsearchError(f"{name} is ambiguous; give one of these paths:\n  {listed}{more}")
    vector = store.vector(row, matches[0].id)
    if vector is None:
        raise NotFoundError(f"{name} is indexed but has no {row.name} vector; rerun `imgsearch build`")
    return vector, matches[0].id


def _own_row_id(store: FeatureStore, path: Path) -> int | None:
    root = store.get_meta(COLLECTION_ROOT_KEY)
    if root is None:
        return None
    try:
        relpath = path.resolve().relative_to(root)
    except ValueError:
        return None
    rows = store.find_images(os.fsencode(relpath))
    return next((r.id for r in rows if r.path == os.fsencode(relpath)), None)


@dataclass(frozen=True)
class Planned:
    """A search plan as the index can run it, read once (store.catalog): the stored row it
    searches, the plan with its default re-ranking, and the catalog its stages read."""

    row: ExtractorRow
    plan: SearchPlan
    catalog: Catalog


@dataclass(frozen=True)
class Request:
    """A search as every entry point (the command line, the library, the service) hands
    it to the scan: what was planned, the query vector, the query's own stored row, its
    label, and its local features."""

    planned: Planned
    vector: np.ndarray
    own_id: int | None
    label: str
    local: LocalSource | None = None

    @property
    def row(self) -> ExtractorRow:
        return self.planned.row

    @property
    def plan(self) -> SearchPlan:
        return self.planned.plan


def planned(store: FeatureStore, plan: SearchPlan) -> Planned:
    """The stored row the plan searches and the plan with its default re-ranking (which
    decides a photo's regions: before anything is extracted), from one read of the catalog."""
    catalog = read_catalog(store, plan.extractor, plan.metric.name)
    return Planned(stored_row(store, plan.extractor, catalog), with_default_rerank(catalog, plan), catalog)


def photo_request(planned: Planned, photo: QueryPhoto, label: str, own_id: int | None = None) -> Request:
    """The search for a query photo: its descriptor (or its regions') and local features."""
    vector = photo_vector(extractor_of(planned.row), photo.pixels, planned.plan.photo_regions)
    return Request(planned, vector, own_id, label, photo_local(photo))


def name_request(store: FeatureStore, planned: Planned, name: str) -> Request:
    """The search for an indexed image by its relative path or file name: its stored
    vector and local features are the query; itself is left out."""
    vector, own_id = indexed_vector(store, planned.row, name)
    return Request(planned, vector, own_id, name, indexed_local(store, own_id))


def is_photo_file(image: str) -> bool:
    """Whether IMAGE is a file to read as the photo (else it names an indexed image). A
    folder is an error, and so is anything else that exists but is no regular file: never
    read, a pipe waits and a device never ends."""
    if os.path.isdir(image):
        raise ImgsearchError(f"{image} is a folder: give one image (a file, or the name of an indexed image); "
                             "--under FOLDER searches only the images under a folder")
    if os.path.exists(image) and not os.path.isfile(image):
        raise ImgsearchError(f"{image} is not a regular file (a pipe, a device or a socket): give an image file, "
                             "or the name of an indexed image")
    return os.path.isfile(image)


def run_query(store: FeatureStore, image: str, plan: SearchPlan, scanner: Scanner | None = None) -> QueryResult:
    """`imgsearch query`: IMAGE -> the top-K. IMAGE is a file path (its vector, or its
    regions' matrix, is extracted), else the relative path or file name of an indexed image
    (the demo's `query 45.jpg`, whose stored vector is the query); a name shared by several
    images is an error listing them."""
    started = time.perf_counter()
    if not is_photo_file(image):
        return search(store, name_request(store, planned(store, plan), image), started, scanner)
    try:
        photo = photo_of_bytes(read_bytes(image))
    except SkippedFile as e:
        raise ImgsearchError(f"cannot use {image} as a query: {e}") from None
    return search(store, photo_request(planned(store, plan), photo, image, _own_row_id(store, Path(image))), started,
                  scanner)


def with_default_rerank(catalog: Catalog, plan: SearchPlan) -> SearchPlan:
    """The plan with the default re-ranking where none was asked for: DEFAULT_RERANK
    (verified images first, the rest by DBA-AQE) of what the index keeps: verify where it
    has local features, dba-aqe where the extractor's graph under the plan's metric keeps
    augmented vectors (not within a folder, nor after a learned map: the graph is the whole
    collection's, of the unmapped vectors)."""
    if plan.rerank is not None or not plan.rerank_by_default:
        return plan
    graph = catalog.graph
    stages = []
    if graph is not None and graph.dba and plan.under is None and not plan.whiten:
        stages.append(f"dba-aqe:{graph.dba}")
    if catalog.local is not None:
        stages.append(DEFAULT_VERIFY)
    return dataclasses.replace(plan, rerank=parse_reranking("+".join(stages))) if stages else plan


def photo_local(photo: QueryPhoto) -> LocalSource:
    """The local features of a query photo, extracted as the stored local extractor made its,
    its keypoints in the photo's own pixels."""
    def local(row: ExtractorRow) -> QueryLocal:
        extractor = cached_extractor(row.name, row.params).for_query()
        features = extractor.extract(photo.pixels).scaled(1 / photo.scale)  # in the photo's own pixels
        return QueryLocal(features, extraction_scale(row, photo.height, photo.width), (photo.height, photo.width))

    return local


def indexed_local(store: FeatureStore, image_id: int) -> LocalSource:
    """The stored local features of an indexed image that is the query."""
    def local(row: ExtractorRow) -> QueryLocal | None:
        features = store.local_features(row, [image_id]).get(image_id)
        image = store.images_by_ids([image_id]).get(image_id)
        if features is None or image is None:
            return None
        return QueryLocal(features, extraction_scale(row, image.height, image.width), (image.height, image.width))

    return local


def extraction_scale(row: ExtractorRow, height: int, width: int) -> float:
    """The size a local extractor worked at, over the image's own (its keypoints are in
    the image's pixels, its accuracy in the extraction's)."""
    return min(1.0, float(json.loads(row.params)["max_side"]) / max(height, width, 1))


def search(store: FeatureStore, request: Request, started: float | None = None,
           scanner: Scanner | None = None) -> QueryResult:
    """The request's top-K (offset + k of them) over the store, named, with its
    re-ranking and learned map; the query's own row is left out unless the plan includes
    it. `scanner` answers the scans (default: the store's, StoreScan)."""
    started = time.perf_counter() if started is None else started
    row, plan = request.row, request.plan
    metric = learned_metric(store, row, plan.metric, plan.whiten) if plan.whiten else plan.metric
    scanner = scanner or StoreScan(store, plan.block_rows, plan.parallel)
    catalog = request.planned.catalog
    ctx = QueryContext(scanner, row, metric, request.vector, request.own_id, plan.include_self, plan.wanted, catalog,
                       request.local, allowed_ids(store, plan.under))
    notes = graph_notes(store, row, metric, catalog.graph) if plan.rerank and GRAPH in plan.rerank.needs else []

    def scanned() -> ScanResult:
        if plan.rerank:
            return plan.rerank.run(ctx)
        return scanner.top_k(row, metric, request.vector, plan.wanted, ctx.rows)

    result, matches = named_with_retry(functools.partial(named, store), scanned)
    own = int(request.own_id is not None and not plan.include_self and RowFilter((), ctx.allowed).admits(request.own_id))
    searched = len(ctx.allowed) if ctx.allowed is not None else result.rows_scanned
    found = QueryResult(request.label, row.name, plan.metric.name, time.perf_counter() - started, matches, notes,
                        result.rows_scanned, result.state, result.extras, result.timings,
                        rerank=plan.rerank.text if plan.rerank else None,
                        total=max(searched - own, 0) if searched else len(matches))
    return with_close_match(store, found, request)


def with_close_match(store: FeatureStore, result: QueryResult, request: Request) -> QueryResult:
    """The result, saying whether its best match is close: verified, or scoring by the
    metric above the index's calibrated cut for unrelated photos (index.calibration).
    Under the default re-ranking, whose scores are not the metric's, the first match is
    scored by the metric again (its best region for a photo's regions; one stored vector
    read), so the default keeps the cue; a re-ranking asked for by name, or a learned
    map, says nothing."""
    if any(extra.get("corners") for extra in result.extras.values()):
        return dataclasses.replace(result, close_match=True)
    plan = request.plan
    own_scale = plan.rerank and any(stage.reranking.name != DEFAULT_VERIFY for stage in plan.rerank.stages)
    if plan.whiten or not result.matches or (own_scale and not plan.rerank_by_default):
        return result
    calibration = stored_calibration(store, result.extractor, result.metric)
    if calibration is None:
        return result
    best = result.matches[0]
    if own_scale:
        stored = store.vector(request.row, best.id)
        if stored is None:  # deleted since the scan: nothing to judge by
            return result
        queries = plan.metric.prepare_rows(np.atleast_2d(request.vector))
        return dataclasses.replace(result, close_match=calibration.is_close(
            float(pair_scores(plan.metric, stored[None, :], queries).max())))
    return dataclasses.replace(result, close_match=calibration.is_close(best.score))


def allowed_ids(store: FeatureStore, under: str | None) -> np.ndarray | None:
    """The ids of the images under the folder `under` of the collection (None: all): the
    scan scores only those, so the top-K is exactly the top-K among them."""
    if under is None:
        return None
    root = store.get_meta(COLLECTION_ROOT_KEY)
    if root is None:
        raise NotFoundError("nothing is indexed yet")
    ids = store.image_ids_under(folder_prefix(Path(root), under))
    if not len(ids):
        raise NotFoundError(f"no indexed image is under {under}")
    return ids


def named_with_retry(name: Callable[[list[tuple[int, float]]], list[Match] | None],
                     scanned: Callable[[], ScanResult]) -> tuple[ScanResult, list[Match]]:
    """A scan's result and its matches with names (`name`: see named). Names are read
    after the scan's snapshot: an image a concurrent build deleted in between has no name
    any more. Rather than answer a shorter list, scan again."""
    for _ in range(3):
        result = scanned()
        matches = name(result.ranking)
        if matches is not None:
            return result, matches
    raise ImgsearchError("images kept being deleted while the query ran; run it again")


def named(store: FeatureStore, ranking: list[tuple[int, float]]) -> list[Match] | None:
    """The ranking with each image's name and path; None if one of them is gone."""
    rows = store.images_by_ids([image_id for image_id, _ in ranking])
    if not all(image_id in rows for image_id, _ in ranking):
        return None
    return [Match(rank, image_id, rows[image_id].name, rows[image_id].path, score)
            for rank, (image_id, score) in enumerate(ranking, start=1)]
