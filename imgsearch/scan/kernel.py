"""The exhaustive scan: blocks of vectors from a store, one matrix-vector product each,
merged into a bounded top-K (the shape of faiss' contrib exhaustive_search)."""
from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import numpy as np

from imgsearch.linalg import one_blas_thread
from imgsearch.scan.metrics import Metric
from imgsearch.store.records import Block

# Scores closer than this are ties, ordered by image id. BLAS computes a row's dot
# product differently by its place in a block (rows go through its kernels in groups),
# so two identical vectors (exact duplicate photos) can score an ulp apart in one layout
# and equal in another; without a tolerance their order would depend on how the rows
# were cut into blocks (packed or per-row, one connection or several, resident or not).
TIE_EPS = 1e-6


def tie_order(ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Positions best first: by score, with runs of scores each within TIE_EPS of the
    previous one ordered by id."""
    order = np.lexsort((ids, -scores))
    if len(order) < 2:
        return order
    steps = np.diff(scores[order].astype(np.float64)) < -TIE_EPS
    runs = np.concatenate([[0], np.cumsum(steps)])
    return order[np.lexsort((ids[order], runs))]


class TopK:
    """The k highest scores seen so far, with their ids. Ties (see TIE_EPS) keep the
    smaller id first, so the result does not depend on how the rows were cut into blocks."""

    def __init__(self, k: int) -> None:
        if k < 1:
            raise ValueError("k must be at least 1")
        self.k = k
        self.ids = np.empty(0, dtype=np.int64)
        self.scores = np.empty(0, dtype=np.float32)

    def _near_top(self, ids: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # Keep every row that may tie with the k-th best, so the id tie-break is exact.
        n = len(scores)
        if n <= self.k:
            return ids, scores
        kth = np.partition(scores, n - self.k)[n - self.k]
        keep = scores >= kth - TIE_EPS
        return ids[keep], scores[keep]

    def add(self, ids: np.ndarray, scores: np.ndarray) -> None:
        ids, scores = self._near_top(ids, scores)
        self.ids, self.scores = self._near_top(np.concatenate([self.ids, ids]), np.concatenate([self.scores, scores]))

    def ranked(self) -> list[tuple[int, float]]:
        order = tie_order(self.ids, self.scores)[: self.k]
        return [(int(self.ids[i]), float(self.scores[i])) for i in order]


@dataclass(frozen=True)
class RowFilter:
    """The rows a scan scores: every row but `excluded` (the query's own), and only the
    `allowed` ids when given (the images under a folder: a top-K among them, exactly)."""

    excluded: tuple[int, ...] = ()
    allowed: np.ndarray | None = None  # sorted image ids

    @classmethod
    def of_query(cls, own_id: int | None, include_self: bool, allowed: np.ndarray | None = None) -> RowFilter:
        """A query's rows: not its own stored row unless it asks for it, only the allowed ids."""
        return cls(() if include_self or own_id is None else (own_id,), allowed)

    def mask(self, ids: np.ndarray) -> np.ndarray | None:
        """Which of these ids to score; None: all of them."""
        keep = ~np.isin(ids, self.excluded) if self.excluded else None
        if self.allowed is not None:
            inside = _members(ids, self.allowed)
            keep = inside if keep is None else keep & inside
        return keep

    def admits(self, image_id: int) -> bool:
        keep = self.mask(np.array([image_id], dtype=np.int64))
        return keep is None or bool(keep[0])


def _members(ids: np.ndarray, sorted_ids: np.ndarray) -> np.ndarray:
    """Which ids are in the sorted array: a binary search each, so a block costs the same
    whatever the folder's size (np.isin sorts both arrays together: 1.9 ms a block of 1,024
    against 500,000 allowed ids, 16 times the block's scoring; this 0.05 ms)."""
    at = np.minimum(np.searchsorted(sorted_ids, ids), len(sorted_ids) - 1)
    return sorted_ids[at] == ids if len(sorted_ids) else np.zeros(len(ids), dtype=bool)


EVERY_ROW = RowFilter()


@dataclass(frozen=True)
class ScanResult:
    ranking: list[tuple[int, float]]  # (image id, score), best first
    rows_scanned: int
    state: int | None = None  # the store's change counter of the extractor, as the scan saw it
    extras: dict[int, dict] = field(default_factory=dict)  # what a re-ranking found per image (verification)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage, where a re-ranking reports them

    def at_state(self, state: int | None) -> ScanResult:
        return replace(self, state=state)


def merge(results: Iterable[ScanResult], k: int) -> ScanResult:
    """One top-K from the top-Ks of disjoint parts: exactly the top-K of the whole."""
    top = TopK(k)
    rows = 0
    for result in results:
        if result.ranking:
            ids, scores = zip(*result.ranking)
            top.add(np.array(ids, dtype=np.int64), np.array(scores, dtype=np.float32))
        rows += result.rows_scanned
    return ScanResult(ranking=top.ranked(), rows_scanned=rows)


def scan(
    blocks: Iterable[Block],
    query: np.ndarray,
    metric: Metric,
    k: int,
    rows: RowFilter = EVERY_ROW,
    query_is_prepared: bool = False,
) -> ScanResult:
    """Score every row of every block against `query` and keep the best `k`. A 2-D query
    (regions x dim: several descriptors of one photo) scores each row by its best region."""
    prepared_query = query if query_is_prepared else prepare_query(metric, query)
    top = TopK(k)
    scanned = 0
    with one_blas_thread():
        for ids, vectors in blocks:
            scanned += len(ids)
            top.add(*kept(ids, best_region_scores(metric, vectors, prepared_query), rows))
    return ScanResult(ranking=top.ranked(), rows_scanned=scanned)


def prepare_query(metric: Metric, query: np.ndarray) -> np.ndarray:
    return metric.prepare_rows(query) if np.ndim(query) == 2 else metric.prepare_one(query)


# The block functions every scorer shares: the streaming scan, the resident copy, the
# duplicates self-join, the graph's chunk scan and eval.

def best_region_scores(metric: Metric, vectors: np.ndarray, prepared_query: np.ndarray) -> np.ndarray:
    """Each stored row's score (raw vectors, the metric's fused product); against a query
    of several regions, its best region's (one matrix product for all regions)."""
    if prepared_query.ndim == 1:
        return metric.score_block(vectors, prepared_query)
    return metric.score_block(vectors, np.ascontiguousarray(prepared_query.T)).max(axis=1)


def prepared_scores(prepared_rows: np.ndarray, prepared_query: np.ndarray) -> np.ndarray:
    """best_region_scores of rows already prepared for the metric (a resident copy, eval)."""
    if prepared_query.ndim == 1:
        return prepared_rows @ prepared_query
    return (prepared_rows @ prepared_query.T).max(axis=1)


def pair_scores(metric: Metric, vectors: np.ndarray, prepared_queries: np.ndarray) -> np.ndarray:
    """Every stored row against every prepared query (rows x queries): a self-join's block
    against a chunk of the collection."""
    return metric.prepare_rows(vectors) @ prepared_queries.T


def kept(ids: np.ndarray, scores: np.ndarray, rows: RowFilter,
         alive: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A block's ids and scores of the rows the filter scores (not the query's own, inside
    its folder) that are alive (not a resident copy's dead rows)."""
    keep = alive
    wanted = rows.mask(ids)
    if wanted is not None:
        keep = wanted if keep is None else keep & wanted
    return (ids, scores) if keep is None else (ids[keep], scores[keep])


_END = object()


def prefetched(blocks: Iterable[Block], depth: int = 2) -> Iterator[Block]:
    """The same blocks, read ahead by a background thread. The driver's row parsing holds
    the GIL but numpy's scoring releases it, so reading block n+1 overlaps scoring block n.
    An exception in the reader is re-raised here; stopping early stops the reader."""
    handoff: queue.Queue = queue.Queue(depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        iterator = iter(blocks)
        try:
            for block in iterator:
                if not put(block):
                    break
            else:
                put(_END)
        except BaseException as e:  # handed to the consumer, which raises it
            put(e)
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    reader = threading.Thread(target=read, name="imgsearch-block-reader", daemon=True)
    reader.start()
    try:
        while (item := handoff.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        reader.join()


def parallel_scan(
    parts: Sequence[Callable[[], Iterable[Block]]],
    scan_part: Callable[[Iterable[Block]], ScanResult],
    k: int,
) -> ScanResult:
    """Run `scan_part` (a `scan` with its query bound) over each part (a function opening
    its own stream) in its own thread, and merge. The driver releases the GIL while it
    waits on the socket, and packed blocks cost one row parse per thousand vectors, so
    the parts' streams overlap for real."""
    with ThreadPoolExecutor(max_workers=len(parts), thread_name_prefix="imgsearch-scan") as pool:
        results = list(pool.map(lambda open_part: scan_part(open_part()), parts))
    return merge(results, k)
