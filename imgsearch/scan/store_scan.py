"""The exact top-K over a store: the blocks a store streams, scored by the kernel, in one
read-ahead stream or over parallel connections whose snapshots agree."""
from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from imgsearch.scan.kernel import EVERY_ROW, RowFilter, ScanResult, parallel_scan, prefetched, scan
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
        packed = not self.store.scans_rows()
        if self.parallel > 1 and packed:  # the parts are parts of the packed blocks
            for _ in range(PARALLEL_ATTEMPTS):
                snapshots = [Snapshot() for _ in range(self.parallel)]
                parts = [functools.partial(self._stream, extractor, part, self.parallel, snapshots[part])
                         for part in range(self.parallel)]
                result = parallel_scan(parts, scan_part, k)
                if len({s.changes for s in snapshots}) == 1:
                    return result.at_state(snapshots[0].changes)
        snapshot = Snapshot()  # one connection, all of it: one snapshot is always consistent
        return scan_part(prefetched(self._stream(extractor, 0, 1, snapshot, packed))).at_state(snapshot.changes)

    def _stream(self, extractor: ExtractorRow, part: int, parts: int, snapshot: Snapshot,
                packed: bool = True) -> Iterable[Block]:
        return self.store.stream_blocks(extractor, self.block_rows, packed, part, parts, snapshot)


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
