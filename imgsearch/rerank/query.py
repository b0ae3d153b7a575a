"""Re-ranking at query time: query expansion by a second scan (in the metric's prepared
space), DBA-AQE over the stored augmented vectors, and diffusion / k-reciprocal on the
scan's shortlist with the stored k-NN graph, by the same pure functions eval measures
(rerank.py)."""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from imgsearch.errors import ImgsearchError
from imgsearch.features.pooling import l2n
from imgsearch.rerank.maths import diffuse_shortlist, k_reciprocal_shortlist, k_reciprocal_universe, local_positions
from imgsearch.scan.kernel import ScanResult
from imgsearch.scan.metrics import Metric, get_metric
from imgsearch.scan.store_scan import StoreScan
from imgsearch.store.base import FeatureStore
from imgsearch.store.graph_tables import (
    GraphRow,
    NeighbourList,
    dba_extractor,
    find_graph,
    graph_is_behind,
    neighbour_lists,
)
from imgsearch.store.records import ExtractorRow

Ranking = list[tuple[int, float]]
Params = dict[str, int | float]  # a method's parameters by name (specs.Spec.values)
GRAPH_RERANKERS = ("diffusion", "k-reciprocal")
QUERY_EXPANSIONS = ("aqe", "alpha-qe")
QUERY_RERANKERS = [*QUERY_EXPANSIONS, "dba-aqe", *GRAPH_RERANKERS]
GRAPH_KEPT = ("dba-aqe", *GRAPH_RERANKERS)  # they read what `imgsearch graph` keeps


def required_graph(store: FeatureStore, extractor: ExtractorRow, metric: Metric, name: str, k: int) -> GraphRow:
    graph = find_graph(store, extractor, metric.name)
    if graph is None:
        raise ImgsearchError(
            f"--rerank {name} reads the collection's k-NN graph, and there is none for {extractor.name}/{metric.name}; "
            f"make it once with `imgsearch graph -e {extractor.name} -m {metric.name}` (builds keep it up to date)"
        )
    if graph.k < k:
        raise ImgsearchError(f"--rerank {name} wants {k} neighbours, the stored graph keeps {graph.k}; "
                             f"remake it with `imgsearch graph -e {extractor.name} -m {metric.name} -n {k}`")
    return graph


def _padded(lists: dict[int, NeighbourList], ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The first k neighbours (ids, scores) of each image, -1 / 0 where a list is shorter
    or missing (an image added after the last graph update)."""
    neighbour_ids = np.full((len(ids), k), -1, dtype=np.int64)
    scores = np.zeros((len(ids), k), dtype=np.float32)
    for row, image_id in enumerate(ids.tolist()):
        found = lists.get(image_id)
        if found is not None:
            n = min(k, len(found.ids))
            neighbour_ids[row, :n], scores[row, :n] = found.ids[:n], found.scores[:n]
    return neighbour_ids, scores


def rerank_shortlist(
    store: FeatureStore, extractor: ExtractorRow, metric: Metric, name: str, values: Params,
    shortlist: Ranking, prepared_query: np.ndarray, own_id: int | None,
) -> Ranking:
    """The shortlist re-ordered by diffusion or k-reciprocal re-ranking, with new scores."""
    k = int(values["k" if name == "diffusion" else "k1"])
    graph = required_graph(store, extractor, metric, name, k)
    ids = np.array([i for i, _ in shortlist], dtype=np.int64)
    scores = np.array([s for _, s in shortlist])
    if not len(ids):
        return []
    neighbour_ids, neighbour_scores = _padded(neighbour_lists(store, graph, ids.tolist()), ids, k)
    if name == "diffusion":
        reranked = diffuse_shortlist(scores, local_positions(ids, neighbour_ids), neighbour_scores,
                                     float(values["alpha"]), float(values["gamma"]), int(values["query_k"]),
                                     int(values["iterations"]))
    else:
        universe = k_reciprocal_universe(-1 if own_id is None else own_id, ids, neighbour_ids[neighbour_ids >= 0])
        stored = store.vectors(extractor, universe.tolist())
        universe = np.array([i for i in universe.tolist() if i in stored], dtype=np.int64)
        vectors = np.vstack([prepared_query, metric.prepare_rows(np.vstack([stored[i] for i in universe.tolist()]))])
        in_shortlist = np.isin(ids, universe)
        reranked = np.full(len(ids), -np.inf)
        reranked[in_shortlist] = k_reciprocal_shortlist(vectors, int(in_shortlist.sum()), k, int(values["k2"]),
                                                        float(values["lambda_"]))
    order = np.lexsort((ids, -reranked))
    return [(int(ids[i]), float(reranked[i])) for i in order]


def graph_reranked(
    scanner: StoreScan, row: ExtractorRow, metric: Metric, method: str, values: Params,
    vector: np.ndarray, own_id: int | None, include_self: bool, top_k: int,
) -> ScanResult:
    """Scan for the shortlist, re-rank it with the graph: the scan's rows and state, the
    re-ranked top-K. Diffusion keeps the query's own row in its shortlist (it seeds the
    walk, as in eval); k-reciprocal puts the query itself first in its universe instead."""
    keep_own = method == "diffusion" and own_id is not None
    excluded = [] if keep_own or own_id is None else [own_id]
    scanned = scanner.top_k(row, metric, vector, max(top_k, int(values["shortlist"])), excluded)
    reranked = rerank_shortlist(scanner.store, row, metric, method, values, scanned.ranking,
                                metric.prepare_one(vector), own_id)
    return replace(scanned, ranking=[(i, s) for i, s in reranked if include_self or i != own_id][:top_k])


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


def dba_expanded_query(
    scanner: StoreScan, row: ExtractorRow, metric: Metric, vector: np.ndarray, values: Params, excluded: list[int],
) -> tuple[ExtractorRow, Metric, np.ndarray]:
    """DBA then AQE at query time: (the augmented set to scan, its metric, the expanded
    query), AQE being one scan of the augmented vectors with the prepared query."""
    augmented, cosine = augmented_set(scanner.store, row, metric, int(values["n_db"])), get_metric("cosine")
    expanded = expanded_query(scanner, augmented, metric.prepare_one(vector), cosine, excluded, {"n": values["n_query"]})
    return augmented, cosine, expanded


def graph_notes(store: FeatureStore, row: ExtractorRow, metric: Metric) -> list[str]:
    graph = find_graph(store, row, metric.name)
    if graph is None or not graph_is_behind(store, graph, row):
        return []
    return [f"the {row.name}/{metric.name} graph does not reflect the latest added, changed or deleted images; "
            f"`imgsearch graph -e {row.name} -m {metric.name}` updates it"]


def expanded_query(
    scanner: StoreScan, row: ExtractorRow, vector: np.ndarray, metric: Metric, excluded: list[int], values: Params,
) -> np.ndarray:
    """Query expansion at query time (AQE: Chum et al. 2007; alpha-QE: Radenovic et al.
    2018), in the metric's prepared space so it holds for every metric: a first scan
    finds the top n, the prepared query plus their prepared vectors (weighted by
    score^alpha; AQE: alpha 0) is the new query of a second scan. Costs one more scan."""
    alpha = float(values.get("alpha", 0.0))
    first = scanner.top_k(row, metric, vector, int(values["n"]), excluded)
    prepared = metric.prepare_one(vector).astype(np.float64)
    neighbours = scanner.store.vectors(row, [image_id for image_id, _ in first.ranking])
    for image_id, score in first.ranking:
        if image_id in neighbours:
            prepared += max(score, 0.0) ** alpha * metric.prepare_one(neighbours[image_id])
    return l2n(prepared)
