"""The exact top-K over a store: the blocks a store streams, scored by the scan of
search.py, in one read-ahead stream or over parallel connections."""
from __future__ import annotations

import functools
from collections.abc import Callable, Iterable

import numpy as np

from imgsearch.errors import ImgsearchError
from imgsearch.search import ScanResult, parallel_scan, prefetched, scan
from imgsearch.similarity import Metric
from imgsearch.store.base import Block, ExtractorRow, FeatureStore

Transform = Callable[[np.ndarray], np.ndarray]


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
