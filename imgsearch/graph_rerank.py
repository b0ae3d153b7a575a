"""Re-ranking at query time with the stored k-NN graph: the scan's shortlist, the graph's
lists of the shortlisted images, and the same pure functions eval measures (rerank.py)."""
from __future__ import annotations

import inspect

import numpy as np

from imgsearch.errors import ImgsearchError
from imgsearch.methods import filled_params
from imgsearch.rerank import RERANKERS, diffuse_shortlist, k_reciprocal_shortlist, k_reciprocal_universe, local_positions
from imgsearch.similarity import Metric
from imgsearch.store.base import ExtractorRow, FeatureStore
from imgsearch.store.graph_tables import GraphRow, NeighbourList, find_graph, neighbour_lists, vectors_of

Ranking = list[tuple[int, float]]
GRAPH_RERANKERS = ("diffusion", "k-reciprocal")


def graph_params(name: str, params: list[int | float]) -> dict[str, int | float]:
    """The parameters by name, in the order the eval functions take them."""
    fn = RERANKERS[name][0]
    return dict(zip(list(inspect.signature(fn).parameters)[2:], filled_params(name, fn, params)))


def shortlist_length(name: str, params: list[int | float]) -> int:
    return int(graph_params(name, params)["shortlist"])


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
    store: FeatureStore, extractor: ExtractorRow, metric: Metric, name: str, params: list[int | float],
    shortlist: Ranking, prepared_query: np.ndarray, own_id: int | None,
) -> Ranking:
    """The shortlist re-ordered by diffusion or k-reciprocal re-ranking, with new scores."""
    values = graph_params(name, params)
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
        stored = vectors_of(store, extractor, universe.tolist())
        universe = np.array([i for i in universe.tolist() if i in stored], dtype=np.int64)
        vectors = np.vstack([prepared_query, metric.prepare_rows(np.vstack([stored[i] for i in universe.tolist()]))])
        in_shortlist = np.isin(ids, universe)
        reranked = np.full(len(ids), -np.inf)
        reranked[in_shortlist] = k_reciprocal_shortlist(vectors, int(in_shortlist.sum()), k, int(values["k2"]),
                                                        float(values["lambda_"]))
    order = np.lexsort((ids, -reranked))
    return [(int(ids[i]), float(reranked[i])) for i in order]
