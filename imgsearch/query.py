"""query: turn the user's IMAGE argument into a vector, scan, and name the top-K."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from imgsearch.errors import ImgsearchError
from imgsearch.features.base import Extractor
from imgsearch.index.extraction import cached_extractor
from imgsearch.index.images import SkippedFile, load_image
from imgsearch.learn.stored import learned_metric
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
from imgsearch.specs import parse_spec
from imgsearch.store.base import COLLECTION_ROOT_KEY, FeatureStore, check_same_params
from imgsearch.store.records import ExtractorRow


@dataclass(frozen=True)
class Match:
    rank: int
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


def stored_extractor(store: FeatureStore, name: str) -> tuple[ExtractorRow, Extractor]:
    """The stored extractor, refusing one that was never built or was built differently."""
    row = store.find_extractor(name)
    if not store.extractors() or (row is not None and not store.has_vectors(row)):
        raise ImgsearchError("nothing indexed yet: run `imgsearch build FOLDER` first")
    if row is None:
        built = ", ".join(e.name for e in store.extractors())
        raise ImgsearchError(
            f"extractor {name!r} was never built in this database (built: {built}); "
            f"run `imgsearch build --extractor {name}`"
        )
    extractor = cached_extractor(name, row.params)
    check_same_params(row, extractor.params_json(), extractor.dim)
    return row, extractor


def query_vector(
    store: FeatureStore, row: ExtractorRow, extractor: Extractor, image: str
) -> tuple[np.ndarray, int | None]:
    """The query's vector and the id of its own stored row (None when not indexed).

    IMAGE is a file path, else the relative path or file name of an indexed image (the
    demo's `query 45.jpg`); a name shared by several images is an error listing them."""
    if os.path.isfile(image):
        try:
            decoded = load_image(image)
        except SkippedFile as e:
            raise ImgsearchError(f"cannot use {image} as a query: {e}") from None
        vector = extractor.extract(decoded.pixels)
        return vector, _own_row_id(store, Path(image))
    matches = store.find_images(os.fsencode(image))
    if not matches:
        raise ImgsearchError(f"{image}: no such file, and no indexed image has that name or path")
    if len(matches) > 1:
        listed = "\n  ".join(display(m.path) for m in matches[:20])
        more = f"\n  ... and {len(matches) - 20} more" if len(matches) > 20 else ""
        raise ImgsearchError(f"{image} is ambiguous; give one of these paths:\n  {listed}{more}")
    vector = store.vector(row, matches[0].id)
    if vector is None:
        raise ImgsearchError(f"{image} is indexed but has no {row.name} vector; rerun `imgsearch build`")
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
) -> QueryResult:
    started = time.perf_counter()
    spec = parse_spec(rerank, RERANKERS, allowed=QUERY_RERANKERS) if rerank else None
    method, values = (spec.name, spec.values) if spec else (None, {})
    if whiten and method in GRAPH_KEPT:
        raise ImgsearchError(f"--rerank {method} uses the graph of the unmapped vectors; it cannot follow --whiten")
    row, extractor = stored_extractor(store, extractor_name)
    metric = get_metric(metric_name)
    if whiten:
        metric = learned_metric(store, row, metric, whiten)
    vector, own_id = query_vector(store, row, extractor, image)
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
            ranking = graph_reranked(scanner, row, metric, method, values, vector, own_id, include_self, top_k)
        else:
            ranking = scanner.top_k(scanned, scan_metric, vector, top_k, excluded,
                                    query_is_prepared=method in (*QUERY_EXPANSIONS, "dba-aqe")).ranking
        rows = store.images_by_ids([image_id for image_id, _ in ranking])
        if all(image_id in rows for image_id, _ in ranking):
            matches = [Match(rank, rows[image_id].name, rows[image_id].path, score)
                       for rank, (image_id, score) in enumerate(ranking, start=1)]
            return QueryResult(image, extractor_name, metric_name, time.perf_counter() - started, matches, notes)
    raise ImgsearchError("images kept being deleted while the query ran; run it again")


def display(name: bytes) -> str:
    """A stored file-system name as one line of printable text: undecodable bytes as
    \\xNN, control characters (a newline in a name) escaped. --json gives names exactly."""
    text = name.decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() or c == " " else c.encode("unicode_escape").decode("ascii") for c in text)
