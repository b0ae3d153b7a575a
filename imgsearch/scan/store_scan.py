"""The exact top-K over a store: the blocks a store streams, scored by the kernel, in one
read-ahead stream or over parallel connections whose snapshots agree."""
from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from imgsearch.linalg import one_blas_thread
from imgsearch.scan.kernel import EVERY_ROW, RowFilter, ScanResult, pair_scores, parallel_scan, prefetched, scan
from imgsearch.scan.metrics import Metric
from imgsearch.store.base import FeatureStore
from imgsearch.store.packed import Snapshot
from imgsearch.store.records import Block, ExtractorRow

# Parallel attempts whose parts saw different states before one connection does it alone
# (a single snapshot is always consistent): enough for builds committing every second.
PARALLEL_ATTEMPTS = 5


class Scanner(Protocol):
    """What query-time re-ranking scans with: the store's top-k (StoreScan), or a copy
    held in memory (the service's resident vectors) answering the same."""

    @property
    def store(self) -> FeatureStore: ...

    def top_k(self, extractor: ExtractorRow, metric: Metric, query: np.ndarray, k: int, rows: RowFilter = EVERY_ROW,
              query_is_prepared: bool = False) -> ScanResult: ...


@dataclass(frozen=True)
class StoreScan:
    """How to scan a store: block size of the per-row stream and the number of
    connections. `top_k` answers exactly as a per-row scan of one committed state."""

    store: FeatureStore
    block_rows: int = 1024
    parallel: int = 1

    def top_k(
        self, extractor: ExtractorRow, metric: Metric, query: np.ndarray, k: int, rows: RowFilter = EVERY_ROW,
        query_is_prepared: bool = False,
    ) -> ScanResult:
        """The k best rows of the extractor for the query under the metric, among the rows
        the filter scores; ScanResult.state is the change counter of the state it scanned."""
        scan_part = functools.partial(scan, query=query, metric=metric, k=k, rows=rows,
                                      query_is_prepared=query_is_prepared)
        # the parts are parts of the packed blocks: where the store reads its rows, one connection
        if self.parallel > 1 and not self.store.scans_rows():
            for _ in range(PARALLEL_ATTEMPTS):
                snapshots = [Snapshot() for _ in range(self.parallel)]
                parts = [functools.partial(self._stream, extractor, part, self.parallel, snapshots[part])
                         for part in range(self.parallel)]
                result = parallel_scan(parts, scan_part, k)
                if len({s.changes for s in snapshots}) == 1:
                    return result.at_state(snapshots[0].changes)
        snapshot = Snapshot()  # one connection, all of it: one snapshot is always consistent
        return scan_part(prefetched(self._stream(extractor, 0, 1, snapshot))).at_state(snapshot.changes)

    def _stream(self, extractor: ExtractorRow, part: int, parts: int, snapshot: Snapshot) -> Iterable[Block]:
        return self.store.stream_blocks(extractor, self.block_rows, None, part, parts, snapshot)


def prepared_rows(
    store: FeatureStore, extractor: ExtractorRow, metric: Metric, ids: list[int]
) -> tuple[np.ndarray, np.ndarray]:
    """The stored vectors of these images prepared for the metric, with their ids (images
    deleted since the ids were read are left out): the left side of a self-join."""
    vectors = store.vectors(extractor, ids)
    kept = [i for i in ids if i in vectors]
    if not kept:
        return np.empty(0, np.int64), np.empty((0, extractor.dim), np.float32)
    return np.array(kept, dtype=np.int64), metric.prepare_rows(np.vstack([vectors[i] for i in kept]))


def nearest_of_rows(
    store: FeatureStore, extractor: ExtractorRow, metrics: list[Metric], ids: list[int], neighbours: int,
    block_rows: int,
) -> tuple[np.ndarray, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """These stored images (those still stored) and, per metric, each one's `neighbours`
    best-scoring other images as (scores, ids), each neighbours x images, unsorted: one
    pass over the stored blocks for every metric, one product per block and metric."""
    vectors = store.vectors(extractor, ids)
    kept = np.array([i for i in ids if i in vectors], dtype=np.int64)
    if not len(kept):
        return kept, {m.name: (np.empty((neighbours, 0), np.float32), np.empty((neighbours, 0), np.int64))
                      for m in metrics}
    queries = np.vstack([vectors[i] for i in kept.tolist()])
    prepared = {m.name: m.prepare_rows(queries) for m in metrics}
    best = {m.name: (np.full((neighbours, len(kept)), -np.inf, np.float32), np.full((neighbours, len(kept)), -1, np.int64))
            for m in metrics}
    with one_blas_thread():
        for block_ids, block in store.stream_blocks(extractor, block_rows):
            own = block_ids[:, None] == kept[None, :]
            for m in metrics:
                product = np.where(own, -np.inf, pair_scores(m, block, prepared[m.name]))  # block x images
                scores = np.vstack([best[m.name][0], product])
                found = np.vstack([best[m.name][1], np.broadcast_to(block_ids[:, None], product.shape)])
                top = np.argpartition(-scores, neighbours - 1, axis=0)[:neighbours]
                best[m.name] = (np.take_along_axis(scores, top, 0), np.take_along_axis(found, top, 0))
    return kept, best
