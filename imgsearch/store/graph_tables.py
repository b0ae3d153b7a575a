"""The k-NN graph tables (graphs, graph_nodes, graph_removed) behind FeatureStore.

A node row holds one image's neighbour list packed as two blobs: one row read gives a
whole list, which is what query-time re-ranking needs for its shortlist."""
from __future__ import annotations

import json
from collections.abc import Iterator, Set
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from imgsearch.errors import ImgsearchError
from imgsearch.store.records import ID_DTYPE, VECTOR_DTYPE, ExtractorRow, changes_key, id_chunks
from imgsearch.store.session import SqlSession


class GraphSession(SqlSession, Protocol):
    """What the graph tables need of a store beyond SQL: transactions, the extractor rows
    its augmented vectors are kept under, and their writes. FeatureStore provides it; this
    module depends on the protocol, not on FeatureStore (no circle, typing included)."""

    def transaction(self) -> AbstractContextManager[None]: ...

    def find_extractor(self, name: str) -> ExtractorRow | None: ...

    def add_extractor(self, name: str, params: str, dim: int) -> None: ...

    def replace_vectors(self, extractor: ExtractorRow, vectors: dict[int, np.ndarray]) -> None: ...

NO_KTH = -1e30  # the threshold of a list shorter than k: any image enters it


@dataclass(frozen=True)
class GraphRow:
    id: int
    extractor_id: int
    metric: str
    k: int
    dba: int = 0  # > 0: database-side augmented vectors kept too (see dba_extractor_name)


@dataclass(frozen=True)
class NeighbourList:
    """An image's nearest others, best first: exactly the top len(ids) of the collection.
    complete: the list holds every other image (any new one belongs in it)."""

    ids: np.ndarray  # int64
    scores: np.ndarray  # float32
    complete: bool

    @property
    def threshold(self) -> float:
        """The score a new image must beat to enter the list."""
        return NO_KTH if self.complete or not len(self.scores) else float(self.scores[-1])


def list_capacity(graph: GraphRow) -> int:
    """Neighbours kept per list: k plus slack, so that a list whose members are deleted
    stays usable (still the exact top of what remains) until fewer than k are left,
    instead of costing a scan of the collection at every deletion."""
    return graph.k + max(4, graph.k // 4)


def dba_extractor_name(extractor_name: str, metric: str, n: int) -> str:
    """The name under which a graph's augmented vectors are stored as features."""
    return f"{extractor_name}.{metric}.dba{n}"


def find_graph(store: GraphSession, extractor: ExtractorRow, metric: str) -> GraphRow | None:
    rows = store.execute("SELECT id, k, dba FROM graphs WHERE extractor_id = ? AND metric = ?", (extractor.id, metric))
    return GraphRow(int(rows[0][0]), extractor.id, metric, int(rows[0][1]), int(rows[0][2])) if rows else None


def graphs_of(store: GraphSession, extractor: ExtractorRow) -> list[GraphRow]:
    rows = store.execute("SELECT id, metric, k, dba FROM graphs WHERE extractor_id = ? ORDER BY metric",
                         (extractor.id,))
    return [GraphRow(int(i), extractor.id, str(m), int(k), int(d)) for i, m, k, d in rows]


def create_graph(store: GraphSession, extractor: ExtractorRow, metric: str, k: int, dba: int = 0) -> GraphRow:
    """The graph of this extractor and metric; an existing one with another k or dba is
    dropped (its lists would be too short or too long) and made again."""
    if dba > k:
        raise ImgsearchError(f"database-side augmentation over {dba} neighbours needs a graph of at least {dba}")
    found = find_graph(store, extractor, metric)
    if found is not None and (found.k, found.dba) == (k, dba):
        return found
    with store.transaction():
        if found is not None:
            drop_graph(store, extractor, found)
        store.execute("INSERT INTO graphs (extractor_id, metric, k, dba) VALUES (?, ?, ?, ?)",
                      (extractor.id, metric, k, dba))
        if dba:
            store.add_extractor(dba_extractor_name(extractor.name, metric, dba),
                                json.dumps({"dba_of": extractor.name, "metric": metric, "n": dba}), extractor.dim)
    created = find_graph(store, extractor, metric)
    assert created is not None
    return created


def dba_extractor(store: GraphSession, extractor: ExtractorRow, graph: GraphRow) -> ExtractorRow | None:
    return store.find_extractor(dba_extractor_name(extractor.name, graph.metric, graph.dba)) if graph.dba else None


def drop_graph(store: GraphSession, extractor: ExtractorRow, graph: GraphRow) -> None:
    with store.transaction():
        derived = dba_extractor(store, extractor, graph)
        if derived is not None:
            # features and packed blocks follow the extractor row (ON DELETE CASCADE)
            store.execute("DELETE FROM packed_stale WHERE extractor_id = ?", (derived.id,))
            store.execute("DELETE FROM extractors WHERE id = ?", (derived.id,))
            store.execute("DELETE FROM meta WHERE k = ?", (changes_key(derived.id),))
        for table, column in (("graph_nodes", "graph_id"), ("graph_removed", "graph_id"), ("graphs", "id")):
            store.execute(f"DELETE FROM {table} WHERE {column} = ?", (graph.id,))


def node_thresholds(store: GraphSession, graph: GraphRow) -> dict[int, float]:
    """Every node's threshold: the bar a new image must pass to enter its list."""
    rows = store.execute("SELECT image_id, kth FROM graph_nodes WHERE graph_id = ?", (graph.id,))
    return {int(i): float(t) for i, t in rows}


def _neighbour_list(kth: float, neighbours: bytes, scores: bytes) -> NeighbourList:
    return NeighbourList(np.frombuffer(bytes(neighbours), ID_DTYPE), np.frombuffer(bytes(scores), VECTOR_DTYPE),
                         complete=float(kth) == NO_KTH)


def neighbour_lists(store: GraphSession, graph: GraphRow, ids: list[int]) -> dict[int, NeighbourList]:
    """The stored lists of these images (images that are no node are left out)."""
    found: dict[int, NeighbourList] = {}
    for chunk, marks in id_chunks(ids):
        rows = store.execute(
            f"SELECT image_id, kth, neighbours, scores FROM graph_nodes WHERE graph_id = ? AND image_id IN ({marks})",
            (graph.id, *chunk),
        )
        found.update((int(image_id), _neighbour_list(*rest)) for image_id, *rest in rows)
    return found


def iter_lists(store: GraphSession, graph: GraphRow, page: int = 10_000) -> Iterator[tuple[int, NeighbourList]]:
    """Every list of the graph, in image id order, a page of them at a time, so memory
    stays bounded on millions of images."""
    after = -1
    while rows := store.execute(
        "SELECT image_id, kth, neighbours, scores FROM graph_nodes WHERE graph_id = ? AND image_id > ? "
        "ORDER BY image_id LIMIT ?", (graph.id, after, page),
    ):
        for image_id, *rest in rows:
            yield int(image_id), _neighbour_list(*rest)
        after = int(rows[-1][0])


def lists_holding(store: GraphSession, graph: GraphRow, ids: set[int], page: int = 10_000) -> dict[int, NeighbourList]:
    """The lists that contain any of these images (one pass over all lists)."""
    wanted = np.fromiter(ids, dtype=np.int64, count=len(ids))
    return {image_id: held for image_id, held in iter_lists(store, graph, page) if np.isin(held.ids, wanted).any()}


def removed_images(store: GraphSession, graph: GraphRow) -> dict[int, int]:
    """The images marked removed, each with its mark's token."""
    rows = store.execute("SELECT image_id, token FROM graph_removed WHERE graph_id = ?", (graph.id,))
    return {int(i): int(t) for i, t in rows}


def save_lists(
    store: GraphSession, graph: GraphRow, lists: dict[int, NeighbourList],
    augmented: tuple[ExtractorRow, dict[int, np.ndarray]] | None = None,
    forgotten: Set[int] = frozenset(), removed: dict[int, int] | None = None,
) -> None:
    """One transaction: write these nodes' lists (and their augmented vectors if the graph
    keeps them), drop the lists of `forgotten` nodes (the next update recomputes them) and
    the `removed` marks that were handled (image -> token: a mark made again since keeps)."""
    rows = [
        (graph.id, image_id, len(nl.ids), nl.threshold,
         np.ascontiguousarray(nl.ids, ID_DTYPE).tobytes(), np.ascontiguousarray(nl.scores, VECTOR_DTYPE).tobytes())
        for image_id, nl in lists.items()
    ]
    with store.transaction():
        for chunk, marks in id_chunks(sorted({*lists, *forgotten})):
            store.execute(f"DELETE FROM graph_nodes WHERE graph_id = ? AND image_id IN ({marks})", (graph.id, *chunk))
        if removed:
            store.executemany("DELETE FROM graph_removed WHERE graph_id = ? AND image_id = ? AND token = ?",
                              [(graph.id, i, t) for i, t in removed.items()])
        store.executemany(
            "INSERT INTO graph_nodes (graph_id, image_id, n, kth, neighbours, scores) VALUES (?, ?, ?, ?, ?, ?)", rows
        )
        if augmented is not None:
            store.replace_vectors(*augmented)


def graph_lag(store: GraphSession, graph: GraphRow, extractor: ExtractorRow) -> int:
    """Images the graph does not reflect yet: vectors without a node, plus removals."""
    missing = store.execute(
        "SELECT COUNT(*) FROM features f WHERE f.extractor_id = ? AND NOT EXISTS "
        "(SELECT 1 FROM graph_nodes n WHERE n.graph_id = ? AND n.image_id = f.image_id)",
        (extractor.id, graph.id),
    )
    removed = store.execute("SELECT COUNT(*) FROM graph_removed WHERE graph_id = ?", (graph.id,))
    return int(missing[0][0]) + int(removed[0][0])


def graph_is_behind(store: GraphSession, graph: GraphRow, extractor: ExtractorRow) -> bool:
    """A cheap check for query time (index lookups only, where graph_lag counts): removals
    are pending, or a vector newer than every list exists (image ids only grow, and an
    update computes missing lists in id order)."""
    if store.execute("SELECT 1 FROM graph_removed WHERE graph_id = ? LIMIT 1", (graph.id,)):
        return True
    newest_vector = store.execute("SELECT MAX(image_id) FROM features WHERE extractor_id = ?", (extractor.id,))[0][0]
    newest_list = store.execute("SELECT MAX(image_id) FROM graph_nodes WHERE graph_id = ?", (graph.id,))[0][0]
    return newest_vector is not None and (newest_list is None or int(newest_vector) > int(newest_list))


def mark_removed(store: SqlSession, rows: list[tuple[int, int]]) -> None:
    """(extractor id, image id) of feature rows being replaced or deleted: each graph of
    those extractors is told, with a fresh token, so that its next update recomputes the
    lists that hold them and clears only the marks it saw."""
    extractors = sorted({e for e, _ in rows})
    if not extractors:
        return
    marks = ",".join("?" * len(extractors))
    graphs = store.execute(f"SELECT id, extractor_id FROM graphs WHERE extractor_id IN ({marks})", extractors)
    if graphs:
        token = store.fresh_token()
        store.executemany("REPLACE INTO graph_removed (graph_id, image_id, token) VALUES (?, ?, ?)",
                          [(int(g), i, token) for g, ge in graphs for e, i in rows if e == int(ge)])
