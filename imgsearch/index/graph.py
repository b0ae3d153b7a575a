"""The collection's exact k-nearest-neighbour graph, kept in the database and updated
incrementally: images without a list get one from a scan of the whole collection, and in
the same scan each older image whose list threshold they beat takes them into its list.
An image deleted or re-extracted (graph_removed) is dropped from the lists that held it;
lists keep some slack beyond k, and only one left with fewer than k is recomputed the
same way. Nothing else is touched, so adding m images to n costs m x n scores, not n x n.

Each chunk of new lists and the older lists it changed are written in one transaction:
an update killed midway leaves whole chunks, and the next update finishes the rest."""
from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from imgsearch.errors import ImgsearchError
from imgsearch.rerank.maths import augment, positions_in
from imgsearch.scan.kernel import pair_scores
from imgsearch.scan.metrics import Metric, get_metric
from imgsearch.scan.store_scan import prepared_rows
from imgsearch.store.base import FeatureStore
from imgsearch.store.graph_tables import (
    GraphRow,
    NeighbourList,
    create_graph,
    dba_extractor,
    drop_graph,
    find_graph,
    graphs_of,
    list_capacity,
    lists_holding,
    neighbour_lists,
    node_thresholds,
    removed_images,
    save_lists,
)
from imgsearch.store.packed import DEFAULT_PACK_ROWS
from imgsearch.store.records import ExtractorRow

DEFAULT_K = 30  # Iscen et al. (2017) use k = 50 on 5k-100k images; 30 as the reference
# The graph a default build keeps for the default re-ranking (dba-aqe+verify): only the
# neighbours DBA averages over (Arandjelovic & Zisserman 2012: dba-aqe's n_db default), so
# its lists stay small; `imgsearch graph -n 30` makes the longer one diffusion reads.
DEFAULT_DBA = 3


def dropped_key(extractor: str, metric: str) -> str:
    """The meta key that says the user dropped this graph: builds do not make it again."""
    return f"graph_dropped:{extractor}/{metric}"


def keep_default_graph(store: FeatureStore, extractor: ExtractorRow, metric: str) -> None:
    """Make the graph the default re-ranking reads (filled by the build's upkeep), unless
    there is one already or the user dropped it."""
    with graph_lock(store):
        if find_graph(store, extractor, metric) is None and store.get_meta(dropped_key(extractor.name, metric)) is None:
            create_graph(store, extractor, metric, DEFAULT_DBA, DEFAULT_DBA)
CHUNK_ROWS = 2048  # new lists computed per pass over the collection


@dataclass
class GraphReport:
    nodes_added: int = 0
    lists_recomputed: int = 0
    lists_trimmed: int = 0
    lists_extended: int = 0
    seconds: float = 0.0

    def summary(self, graph: GraphRow, extractor: ExtractorRow) -> str:
        return (f"graph {extractor.name}/{graph.metric} k={graph.k}: {self.nodes_added} lists computed "
                f"({self.lists_recomputed} of them after removals), {self.lists_trimmed} lists lost removed images, "
                f"{self.lists_extended} older lists took in new images, {self.seconds:.1f} s")


def update_graph(
    store: FeatureStore, graph: GraphRow, extractor: ExtractorRow, metric: Metric, block_rows: int,
    progress: Callable[[int, int], None] | None = None, chunk_rows: int = CHUNK_ROWS, pack_rows: int = DEFAULT_PACK_ROWS,
) -> GraphReport:
    """Bring the graph up to date with the stored vectors (read in blocks of `block_rows`;
    its augmented vectors packed `pack_rows` a row). `progress` is told, after each chunk,
    how many new lists it completed and how many this update computes in all."""
    started = time.perf_counter()
    report = GraphReport()
    removed = removed_images(store, graph)
    if removed:
        trimmed, forgotten = _without(store, graph, set(removed))
        save_lists(store, graph, trimmed, _augmented(store, graph, extractor, metric, trimmed), forgotten, removed)
        report.lists_recomputed, report.lists_trimmed = len(forgotten - set(removed)), len(trimmed)
    older = node_thresholds(store, graph)  # lists made before this update: only they can miss a new image
    missing = sorted(store.image_ids_with_features(extractor) - set(older))
    for start in range(0, len(missing), chunk_rows):
        chunk = missing[start : start + chunk_rows]
        fresh, proposals = _scan_chunk(store, graph, extractor, metric, block_rows, chunk, older)
        extended = _merge_proposals(store, graph, proposals)
        changed = {**fresh, **extended}
        save_lists(store, graph, changed, _augmented(store, graph, extractor, metric, changed))
        older.update((i, nl.threshold) for i, nl in extended.items())
        report.nodes_added += len(fresh)
        report.lists_extended += len(extended)
        if progress:
            progress(len(chunk), len(missing))
    derived = dba_extractor(store, extractor, graph)
    if derived is not None:
        store.pack(derived, pack_rows)
    report.seconds = time.perf_counter() - started
    return report


def _without(store: FeatureStore, graph: GraphRow, removed: set[int]) -> tuple[dict[int, NeighbourList], set[int]]:
    """The lists that held removed images, without them where k or more remain (still the
    exact top of the collection), and the nodes to recompute: the removed images (a
    re-extracted one gets a new list) and lists left too short."""
    gone = np.fromiter(removed, dtype=np.int64, count=len(removed))
    trimmed, forgotten = {}, set(removed)
    for node, held in lists_holding(store, graph, removed).items():
        if node in removed:
            continue
        keep = ~np.isin(held.ids, gone)
        if held.complete or keep.sum() >= graph.k:
            trimmed[node] = NeighbourList(held.ids[keep], held.scores[keep], held.complete)
        else:
            forgotten.add(node)
    return trimmed, forgotten


def _augmented(
    store: FeatureStore, graph: GraphRow, extractor: ExtractorRow, metric: Metric, lists: dict[int, NeighbourList]
) -> tuple[ExtractorRow, dict[int, np.ndarray]] | None:
    """The database-side augmented vectors of these nodes (Arandjelovic & Zisserman, CVPR
    2012), from their new lists, when the graph keeps them."""
    derived = dba_extractor(store, extractor, graph)
    if derived is None or not lists:
        return None
    nodes = sorted(lists)
    nearest = {i: lists[i].ids[: graph.dba].tolist() for i in nodes}
    vectors = store.vectors(extractor, sorted({*nodes, *(j for ids in nearest.values() for j in ids)}))
    nodes = [i for i in nodes if i in vectors and all(j in vectors for j in nearest[i])]
    order = list(vectors)
    row_of = {image_id: r for r, image_id in enumerate(order)}
    prepared = metric.prepare_rows(np.vstack([vectors[i] for i in order]))  # one pass, not one per vector
    augmented = {}
    for i in nodes:
        neighbours = prepared[[row_of[j] for j in nearest[i]]][None, :, :]
        similarities = lists[i].scores[: graph.dba][None, :]
        augmented[i] = augment(prepared[row_of[i]][None, :], neighbours, similarities)[0]
    return derived, augmented


@contextmanager
def graph_lock(store: FeatureStore) -> Iterator[None]:
    """Graph updates of one database, one at a time: a build and an `imgsearch graph`
    that both computed lists from the same state would otherwise overwrite each other's."""
    def waiting() -> None:
        print("imgsearch: waiting for another graph update of this index to finish", file=sys.stderr, flush=True)

    with store.named_lock("graph", waiting):
        yield


def update_graphs(store: FeatureStore, extractor: ExtractorRow, block_rows: int, pack_rows: int,
                  progress: bool = True) -> list[str]:
    """Update every graph of the extractor (build calls this after writing); one summary
    line per graph."""
    with graph_lock(store):
        return [_update(store, graph, extractor, block_rows, pack_rows, progress) for graph in graphs_of(store, extractor)]


def configure_graph(
    store: FeatureStore, extractor: ExtractorRow, metric: str, block_rows: int, pack_rows: int,
    k: int | None = None, dba: int | None = None, progress: bool = True,
) -> list[str]:
    """Make or update the graph of this extractor and metric. k and dba left None keep the
    stored graph's (or take the defaults for a new one); others than the stored ones make
    it again, and the first line says so."""
    with graph_lock(store):
        found = find_graph(store, extractor, metric)
        wanted_k = k if k is not None else found.k if found else DEFAULT_K
        wanted_dba = dba if dba is not None else found.dba if found else 0
        lines = []
        if found is not None and (found.k, found.dba) != (wanted_k, wanted_dba):
            lines.append(f"rebuilding the {extractor.name}/{metric} graph: neighbours {found.k} -> {wanted_k}, "
                         f"dba {found.dba} -> {wanted_dba}")
        graph = create_graph(store, extractor, metric, wanted_k, wanted_dba)
        store.delete_meta(dropped_key(extractor.name, metric))
        return [*lines, _update(store, graph, extractor, block_rows, pack_rows, progress)]


def remove_graph(store: FeatureStore, extractor: ExtractorRow, metric: str) -> None:
    with graph_lock(store):
        found = find_graph(store, extractor, metric)
        if found is None:
            raise ImgsearchError(f"there is no {extractor.name}/{metric} graph to drop")
        drop_graph(store, extractor, found)
        store.set_meta(dropped_key(extractor.name, metric), "1")


def _update(store: FeatureStore, graph: GraphRow, extractor: ExtractorRow, block_rows: int, pack_rows: int,
            progress: bool) -> str:
    with tqdm(unit="img", desc=f"graph {extractor.name}/{graph.metric}", disable=not progress or None) as bar:
        def advance(done: int, total: int) -> None:
            bar.total = total
            bar.update(done)

        report = update_graph(store, graph, extractor, get_metric(graph.metric), block_rows, advance,
                              pack_rows=pack_rows)
    return report.summary(graph, extractor)


Proposals = dict[int, tuple[np.ndarray, np.ndarray]]  # older node -> (candidate ids, scores)


def _scan_chunk(
    store: FeatureStore, graph: GraphRow, extractor: ExtractorRow, metric: Metric, block_rows: int,
    chunk: list[int], older: dict[int, float],
) -> tuple[dict[int, NeighbourList], Proposals]:
    """One pass over the collection: the top k of each chunk image (itself excluded),
    and the chunk images that beat an older node's k-th score."""
    chunk_ids, prepared = prepared_rows(store, extractor, metric, chunk)
    chunk = chunk_ids.tolist()
    k = list_capacity(graph)
    best_ids = np.full((len(chunk), k), -1, dtype=np.int64)
    best_scores = np.full((len(chunk), k), -np.inf, dtype=np.float32)
    found: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
    older_ids = np.array(sorted(older), dtype=np.int64)
    older_bars = np.array([older[i] for i in older_ids.tolist()], dtype=np.float64)
    for ids, block in store.stream_blocks(extractor, block_rows):
        scores = pair_scores(metric, block, prepared).astype(np.float32)  # block x chunk
        own = positions_in(chunk_ids, ids)  # chunk ids are ascending
        scores[own >= 0, own[own >= 0]] = -np.inf  # an image is not its own neighbour
        best_ids, best_scores = _merge_top(best_ids, best_scores, ids, scores.T, k)
        if not len(older_ids):
            continue  # a first build: no older list to propose to
        at = positions_in(older_ids, ids)
        bars = np.where(at >= 0, older_bars[at], np.inf)  # rows that are no older list take nothing
        rows, cols = np.nonzero(scores > bars[:, None])  # row-major: rows come sorted
        heads, starts = np.unique(rows, return_index=True)
        for row, row_cols in zip(heads.tolist(), np.split(cols, starts[1:])):
            found.setdefault(int(ids[row]), []).append((chunk_ids[row_cols], scores[row, row_cols]))
    fresh = {}
    for i, image_id in enumerate(chunk):
        keep = np.isfinite(best_scores[i])  # not itself, not an empty slot
        fresh[image_id] = NeighbourList(best_ids[i][keep], best_scores[i][keep], complete=keep.sum() < k)
    proposals = {node: (np.concatenate([c for c, _ in parts]), np.concatenate([s for _, s in parts]))
                 for node, parts in found.items()}
    return fresh, proposals


def _merge_top(
    best_ids: np.ndarray, best_scores: np.ndarray, ids: np.ndarray, scores: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the k best of the current best (padded to k with id -1 and -inf) and a
    block's scores (rows x block, ids per column), sorted best first (equal scores: the
    smaller id first). Only block entries above a row's current k-th score are looked at:
    after the first blocks they are few, and sorting them is what an update costs."""
    if best_ids.shape[1] < k:
        pad = k - best_ids.shape[1]
        best_ids = np.pad(best_ids, ((0, 0), (0, pad)), constant_values=-1)
        best_scores = np.pad(best_scores, ((0, 0), (0, pad)), constant_values=-np.inf)
    above = scores > best_scores[:, -1:]
    if np.count_nonzero(above) > 2 * above.shape[0] * k:
        return _merge_dense(best_ids, best_scores, ids, scores, k)  # the first blocks: most entries qualify
    rows, cols = np.nonzero(above)
    if not len(rows):
        return best_ids, best_scores
    touched = np.unique(rows)
    entry_rows = np.concatenate([rows, np.repeat(touched, k)])
    entry_ids = np.concatenate([ids[cols], best_ids[touched].ravel()])
    entry_scores = np.concatenate([scores[rows, cols], best_scores[touched].ravel()])
    order = np.lexsort((np.where(entry_ids < 0, np.iinfo(np.int64).max, entry_ids), -entry_scores, entry_rows))
    starts = np.searchsorted(entry_rows[order], touched)  # every row has at least its k best entries
    first_k = order[starts[:, None] + np.arange(k)]
    best_ids, best_scores = best_ids.copy(), best_scores.copy()
    best_ids[touched], best_scores[touched] = entry_ids[first_k], entry_scores[first_k]
    return best_ids, best_scores


def _merge_dense(
    best_ids: np.ndarray, best_scores: np.ndarray, ids: np.ndarray, scores: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """_merge_top by a partial selection over every entry of every row."""
    all_ids = np.concatenate([best_ids, np.broadcast_to(ids, scores.shape)], axis=1)
    all_scores = np.concatenate([best_scores, scores], axis=1)
    top = np.argpartition(-all_scores, k - 1, axis=1)[:, :k]
    all_ids, all_scores = np.take_along_axis(all_ids, top, axis=1), np.take_along_axis(all_scores, top, axis=1)
    order = np.lexsort((np.where(all_ids < 0, np.iinfo(np.int64).max, all_ids), -all_scores), axis=1)
    return np.take_along_axis(all_ids, order, axis=1), np.take_along_axis(all_scores, order, axis=1)


def _merge_proposals(store: FeatureStore, graph: GraphRow, proposals: Proposals) -> dict[int, NeighbourList]:
    """The older lists that change when their proposed new neighbours are merged in."""
    stored = neighbour_lists(store, graph, sorted(proposals))
    changed = {}
    for node, (candidates, scores) in proposals.items():
        current = stored.get(node)
        if current is None:
            continue  # forgotten since: the next update recomputes it
        new = ~np.isin(candidates, current.ids)
        if not new.any():
            continue
        capacity = list_capacity(graph)
        ids, merged = _merge_top(
            current.ids[None, :], current.scores[None, :], candidates[new], scores[new][None, :], capacity
        )
        keep = np.isfinite(merged[0])
        complete = current.complete and len(current.ids) + int(new.sum()) <= capacity
        changed[node] = NeighbourList(ids[0][keep], merged[0][keep], complete)
    return changed
