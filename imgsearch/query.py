"""query: turn the user's IMAGE argument into a vector, scan, and name the top-K."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from imgsearch.errors import ImgsearchError, NotFoundError
from imgsearch.features.base import Extractor
from imgsearch.features.cnn import CnnExtractor
from imgsearch.features.regions import REGIONS
from imgsearch.index.extraction import cached_extractor
from imgsearch.index.images import SkippedFile, load_image
from imgsearch.learn.stored import learned_metric
from imgsearch.names import display
from imgsearch.rerank.maths import RERANKERS
from imgsearch.rerank.query import (
    GRAPH_KEPT,
    GRAPH_RERANKERS,
    QUERY_EXPANSIONS,
    QUERY_RERANKERS,
    dba_expanded_query,
    expanded_query,
    graph_notes,
    graph_reranked,
)
from imgsearch.scan.metrics import get_metric
from imgsearch.scan.store_scan import StoreScan
from imgsearch.specs import Spec, parse_spec
from imgsearch.store.base import COLLECTION_ROOT_KEY, FeatureStore, check_same_params
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

    def as_json(self) -> dict:
        """The `query --json` object (the service's answer adds to it)."""
        return {
            "query": self.query, "extractor": self.extractor, "metric": self.metric, "elapsed_s": self.elapsed_s,
            "rows_scanned": self.rows_scanned, "state": self.state,
            "results": [{"rank": m.rank, "id": m.id, "name": os.fsdecode(m.name), "path": os.fsdecode(m.path),
                         "score": m.score} for m in self.matches],
        }


def stored_row(store: FeatureStore, name: str) -> ExtractorRow:
    """The stored extractor row of this name, refusing one that was never built."""
    row = store.find_extractor(name)
    if not store.extractors() or (row is not None and not store.has_vectors(row)):
        raise ImgsearchError("nothing indexed yet: run `imgsearch build FOLDER` first")
    if row is None:
        built = ", ".join(e.name for e in store.extractors())
        raise ImgsearchError(
            f"extractor {name!r} was never built in this database (built: {built}); "
            f"run `imgsearch build --extractor {name}`"
        )
    return row


def stored_extractor(store: FeatureStore, name: str) -> tuple[ExtractorRow, Extractor]:
    """The stored extractor and the code that extracts it, refusing one that was never
    built or was built differently."""
    row = stored_row(store, name)
    extractor = cached_extractor(name, row.params)
    check_same_params(row, extractor.params_json(), extractor.dim)
    return row, extractor


def query_vector(
    store: FeatureStore, row: ExtractorRow, extractor: Extractor, image: str, regions: str | None = None
) -> tuple[np.ndarray, int | None]:
    """The query's vector (with `regions`: a regions x dim matrix of a photo's regions)
    and the id of its own stored row (None when not indexed).

    IMAGE is a file path, else the relative path or file name of an indexed image (the
    demo's `query 45.jpg`, whose stored vector is the query); a name shared by several
    images is an error listing them."""
    if os.path.isfile(image):
        try:
            decoded = load_image(image)
        except SkippedFile as e:
            raise ImgsearchError(f"cannot use {image} as a query: {e}") from None
        return photo_vector(extractor, decoded.pixels, regions), _own_row_id(store, Path(image))
    return indexed_vector(store, row, image)


def photo_vector(extractor: Extractor, pixels: np.ndarray, regions: str | None) -> np.ndarray:
    """The descriptor of a query photo, or its regions' when asked and the extractor is a
    CNN (the colour histograms have no regions: their whole-photo vector is used)."""
    if regions is None or regions == "none" or not isinstance(extractor, CnnExtractor):
        return extractor.extract(pixels)
    if regions not in REGIONS:
        raise ImgsearchError(f"unknown regions {regions!r}; known: none, {', '.join(REGIONS)}")
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


def run_query(
    store: FeatureStore,
    image: str,
    extractor_name: str,
    metric_name: str,
    top_k: int,
    block_rows: int,
    include_self: bool = False,
    parallel: int = 1,
    rerank: str | None = None,
    whiten: str | None = None,
    regions: str | None = None,
) -> QueryResult:
    """`imgsearch query`: IMAGE (a file, or an indexed image's name or path) -> the top-K."""
    started = time.perf_counter()
    spec = parse_rerank(rerank, whiten)
    row, extractor = stored_extractor(store, extractor_name)
    vector, own_id = query_vector(store, row, extractor, image, regions_for(spec, regions))
    return search(store, row, vector, own_id, image, metric_name, top_k, block_rows, include_self, parallel, spec,
                  whiten, started)


def regions_for(spec: Spec | None, regions: str | None) -> str | None:
    """The regions a photo query uses: none when it is re-ranked, as query expansion
    starts from one vector (and after regions it loses: docs/benchmarks.md)."""
    return None if spec else regions


def parse_rerank(rerank: str | None, whiten: str | None) -> Spec | None:
    spec = parse_spec(rerank, RERANKERS, allowed=QUERY_RERANKERS) if rerank else None
    if whiten and spec is not None and spec.name in GRAPH_KEPT:
        raise ImgsearchError(f"--rerank {spec.name} uses the graph of the unmapped vectors; it cannot follow --whiten")
    return spec


def search(
    store: FeatureStore, row: ExtractorRow, vector: np.ndarray, own_id: int | None, label: str, metric_name: str,
    top_k: int, block_rows: int, include_self: bool = False, parallel: int = 1, spec: Spec | None = None,
    whiten: str | None = None, started: float | None = None,
) -> QueryResult:
    """The top-K of a query vector over the store, named, with re-ranking and a learned map
    when asked. own_id is the query's own stored row, left out unless include_self."""
    started = time.perf_counter() if started is None else started
    method, values = (spec.name, spec.values) if spec else (None, {})
    metric = get_metric(metric_name)
    if whiten:
        metric = learned_metric(store, row, metric, whiten)
    scanner = StoreScan(store, block_rows, parallel)
    excluded = [] if include_self or own_id is None else [own_id]
    notes = graph_notes(store, row, metric) if method in GRAPH_KEPT else []
    scanned, scan_metric = row, metric
    if method == "dba-aqe":
        scanned, scan_metric, vector = dba_expanded_query(scanner, row, metric, vector, values, excluded)
    elif method in QUERY_EXPANSIONS:
        vector = expanded_query(scanner, row, vector, metric, excluded, values)
    # Names are read after the scan's snapshot: an image a concurrent build deleted in
    # between has no name any more. Rather than print a shorter list, scan again.
    for _ in range(3):
        if method in GRAPH_RERANKERS:
            result = graph_reranked(scanner, row, metric, method, values, vector, own_id, include_self, top_k)
        else:
            result = scanner.top_k(scanned, scan_metric, vector, top_k, excluded,
                                   query_is_prepared=method in (*QUERY_EXPANSIONS, "dba-aqe"))
        matches = named(store, result.ranking)
        if matches is not None:
            return QueryResult(label, row.name, metric_name, time.perf_counter() - started, matches, notes,
                               result.rows_scanned, result.state)
    raise ImgsearchError("images kept being deleted while the query ran; run it again")


def named(store: FeatureStore, ranking: list[tuple[int, float]]) -> list[Match] | None:
    """The ranking with each image's name and path; None if one of them is gone."""
    rows = store.images_by_ids([image_id for image_id, _ in ranking])
    if not all(image_id in rows for image_id, _ in ranking):
        return None
    return [Match(rank, image_id, rows[image_id].name, rows[image_id].path, score)
            for rank, (image_id, score) in enumerate(ranking, start=1)]
