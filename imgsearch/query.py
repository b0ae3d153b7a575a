"""query: turn the user's IMAGE argument into a vector, scan, and name the top-K."""
from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from imgsearch.errors import ImgsearchError
from imgsearch.extraction import cached_extractor
from imgsearch.features.base import Extractor
from imgsearch.features.pooling import l2n
from imgsearch.graph_rerank import GRAPH_RERANKERS, rerank_shortlist, shortlist_length
from imgsearch.images import SkippedFile, load_image
from imgsearch.learn import stored_map
from imgsearch.methods import filled_params, parse_method
from imgsearch.rerank import RERANKERS
from imgsearch.search import ScanResult, parallel_scan, prefetched, scan
from imgsearch.similarity import Metric, get_metric
from imgsearch.store.base import COLLECTION_ROOT_KEY, Block, ExtractorRow, FeatureStore, check_same_params
from imgsearch.store.graph_tables import dba_extractor, find_graph, graph_is_behind


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
    if row is None:
        built = ", ".join(e.name for e in store.extractors()) or "none"
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
    metric = get_metric(metric_name)
    row, extractor = stored_extractor(store, extractor_name)
    vector, own_id = query_vector(store, row, extractor, image)
    excluded = [] if include_self or own_id is None else [own_id]
    method, params = parse_method(rerank, QUERY_RERANKERS) if rerank else (None, [])
    if whiten and method in GRAPH_RERANKERS:
        raise ImgsearchError(f"--rerank {method} uses the graph of the unmapped vectors; it cannot follow --whiten")
    transform = stored_map(store, row, whiten).apply if whiten else None
    notes = []
    scanned, scan_metric = row, metric
    if method == "dba-aqe":
        n_db, n_query = filled_params(rerank, RERANKERS[method][0], params)
        scanned, scan_metric = augmented_set(store, row, metric, int(n_db)), get_metric("cosine")
        notes = graph_notes(store, row, metric)
        vector = expanded_query(store, scanned, metric.prepare_one(vector), scan_metric, block_rows, excluded,
                                parallel, f"aqe:{int(n_query)}")
    elif method in QUERY_EXPANSIONS:
        vector = expanded_query(store, row, vector, metric, block_rows, excluded, parallel, rerank, transform)
    elif method in GRAPH_RERANKERS:
        notes = graph_notes(store, row, metric)
    # Names are read after the scan's snapshot: an image a concurrent build deleted in
    # between has no name any more. Rather than print a shorter list, scan again.
    for _ in range(3):
        if method in GRAPH_RERANKERS:
            ranking = graph_reranked(store, row, metric, method, params, vector, own_id, include_self, top_k,
                                     block_rows, parallel)
        else:
            ranking = scan_store(store, scanned, vector, scan_metric, top_k, block_rows, excluded, parallel,
                                 query_is_prepared=method in QUERY_EXPANSIONS, transform=transform).ranking
        rows = store.images_by_ids([image_id for image_id, _ in ranking])
        if all(image_id in rows for image_id, _ in ranking):
            matches = [Match(rank, rows[image_id].name, rows[image_id].path, score)
                       for rank, (image_id, score) in enumerate(ranking, start=1)]
            return QueryResult(image, extractor_name, metric_name, time.perf_counter() - started, matches, notes)
    raise ImgsearchError("images kept being deleted while the query ran; run it again")


def graph_reranked(
    store: FeatureStore, row: ExtractorRow, metric: Metric, method: str, params: list[int | float],
    vector: np.ndarray, own_id: int | None, include_self: bool, top_k: int, block_rows: int, parallel: int,
) -> list[tuple[int, float]]:
    """Scan for the shortlist, re-rank it with the graph. Diffusion keeps the query's own
    row in its shortlist (it seeds the walk, as in eval); k-reciprocal puts the query
    itself first in its universe instead."""
    keep_own = method == "diffusion" and own_id is not None
    excluded = [] if keep_own or own_id is None else [own_id]
    shortlist = scan_store(store, row, vector, metric, max(top_k, shortlist_length(method, params)), block_rows,
                           excluded, parallel).ranking
    reranked = rerank_shortlist(store, row, metric, method, params, shortlist, metric.prepare_one(vector), own_id)
    return [(i, s) for i, s in reranked if include_self or i != own_id][:top_k]


def augmented_set(store: FeatureStore, row: ExtractorRow, metric: Metric, n_db: int) -> ExtractorRow:
    """The stored database-side augmented vectors of the extractor's graph under the
    metric (unit vectors in the metric's space: they are scanned by cosine)."""
    graph = find_graph(store, row, metric.name)
    derived = dba_extractor(store, row, graph) if graph is not None and graph.dba == n_db else None
    if derived is None:
        raise ImgsearchError(
            f"--rerank dba-aqe:{n_db} scans the vectors augmented with their {n_db} nearest, which are kept with "
            f"the k-NN graph; make them once with `imgsearch graph -e {row.name} -m {metric.name} --dba {n_db}`"
        )
    return derived


def graph_notes(store: FeatureStore, row: ExtractorRow, metric: Metric) -> list[str]:
    graph = find_graph(store, row, metric.name)
    if graph is None or not graph_is_behind(store, graph, row):
        return []
    return [f"the {row.name}/{metric.name} graph does not reflect the latest added, changed or deleted images; "
            f"`imgsearch graph -e {row.name} -m {metric.name}` updates it"]


Transform = Callable[[np.ndarray], np.ndarray]
QUERY_EXPANSIONS = {"aqe": 0.0, "alpha-qe": 3.0, "dba-aqe": 0.0}  # name -> default alpha
QUERY_RERANKERS = [*QUERY_EXPANSIONS, *GRAPH_RERANKERS]


def expanded_query(
    store: FeatureStore, row: ExtractorRow, vector: np.ndarray, metric: Metric, block_rows: int,
    excluded: list[int], parallel: int, spec: str, transform: Transform | None = None,
) -> np.ndarray:
    """Query expansion at query time (AQE: Chum et al. 2007; alpha-QE: Radenovic et al.
    2018), in the metric's prepared space so it holds for every metric: a first scan
    finds the top n, the prepared query plus their prepared vectors (weighted by
    score^alpha) is the new query of a second scan. Costs one more scan."""
    name, params = parse_method(spec, QUERY_EXPANSIONS)
    n = int(params[0]) if params else 10
    alpha = float(params[1]) if len(params) > 1 else QUERY_EXPANSIONS[name]
    first = scan_store(store, row, vector, metric, n, block_rows, excluded, parallel, transform=transform)
    mapped = transform or (lambda x: x)
    prepared = metric.prepare_one(mapped(vector)).astype(np.float64)
    for image_id, score in first.ranking:
        neighbour = store.vector(row, image_id)
        if neighbour is not None:
            prepared += max(score, 0.0) ** alpha * metric.prepare_one(mapped(neighbour))
    return l2n(prepared)


def scan_store(
    store: FeatureStore, row: ExtractorRow, vector: np.ndarray, metric: Metric, top_k: int, block_rows: int,
    excluded: list[int], parallel: int = 1, query_is_prepared: bool = False, transform: Transform | None = None,
) -> ScanResult:
    """The exact top-K over the store: one read-ahead stream, or `parallel` connections
    over disjoint parts whose snapshots must have seen the same pack generation (else a
    pack committed between them, and the scan is repeated)."""
    def blocks(stream):
        # A learned map applies to every block (one matrix product) and to the query.
        return stream if transform is None else ((ids, transform(x)) for ids, x in stream)

    if transform is not None and not query_is_prepared:
        vector = transform(vector)[0]
    scan_part = functools.partial(
        scan, query=vector, metric=metric, k=top_k, exclude_ids=excluded, query_is_prepared=query_is_prepared
    )
    if parallel <= 1:
        return scan_part(prefetched(blocks(store.stream_blocks(row, block_rows))))
    for _ in range(3):
        generations: list[int] = []
        def open_part(part: int, seen: list[int] = generations) -> Iterable[Block]:
            return blocks(store.stream_blocks(row, block_rows, True, part, parallel, seen))

        parts = [functools.partial(open_part, part) for part in range(parallel)]
        result = parallel_scan(parts, scan_part, top_k)
        if len(set(generations)) == 1:
            return result
    raise ImgsearchError("packs kept committing during the parallel scan; retry, or use --parallel 1")


def display(name: bytes) -> str:
    """A stored file-system name as one line of printable text: undecodable bytes as
    \\xNN, control characters (a newline in a name) escaped. --json gives names exactly."""
    text = name.decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() or c == " " else c.encode("unicode_escape").decode("ascii") for c in text)
