"""Pairs that geometric verification shows to be the same picture: each image's nearest
neighbours by a descriptor, matched by their stored local features (rerank.verify: the
same RootSIFT ratio test and RANSAC homography as a query's verification). Finds the
cropped, slightly turned and watermarked copies a descriptor scores too low."""
from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np

from imgsearch.rerank.verify import Evidence, verify_all
from imgsearch.scan.metrics import Metric
from imgsearch.scan.store_scan import nearest_of_rows
from imgsearch.store.base import FeatureStore
from imgsearch.store.records import ExtractorRow

# A copy shares most of its keypoints with the original (bench/duplicates.py: a 70 % crop,
# a 10-degree turn or a watermark keep a median of 225-256 of the 400 stored); two
# different shots of one scene verify too, with fewer. With the two other sources, 40 is
# the first count reaching pair precision 0.99 there (docs/benchmarks.md).
DEFAULT_MIN_INLIERS = 40
NEIGHBOURS = 10  # candidates per image, by the descriptor
FLOOR = 0.5  # and at least this score: below it nothing is a copy's descriptor
CHUNK_ROWS = 1024  # images whose neighbours are found, then verified, per pass


def nearest_pairs(store: FeatureStore, row: ExtractorRow, metric: Metric, chunk: list[int], neighbours: int,
                  floor: float, block_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """(left ids, right ids): each image of the chunk with its `neighbours` best-scoring
    other images scoring >= floor, from one pass over the stored blocks."""
    chunk_ids, found = nearest_of_rows(store, row, [metric], chunk, neighbours, block_rows)
    best, best_ids = found[metric.name]
    keep = best >= floor
    return np.broadcast_to(chunk_ids[None, :], best.shape)[keep], best_ids[keep]


def verified_pairs(store: FeatureStore, row: ExtractorRow, metric: Metric, local_row: ExtractorRow,
                   min_inliers: int, block_rows: int, progress: Callable[[int, int], None] | None = None,
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(left ids, right ids, inliers), left < right: every image and each of its nearest
    neighbours whose local features verify with at least min_inliers inliers."""
    max_side = int(json.loads(local_row.params)["max_side"])
    ids = sorted(store.image_ids_with_features(row))
    found: dict[tuple[int, int], int] = {}
    for start in range(0, len(ids), CHUNK_ROWS):
        left, right = nearest_pairs(store, row, metric, ids[start : start + CHUNK_ROWS], NEIGHBOURS, FLOOR,
                                    block_rows)
        pairs = {(min(a, b), max(a, b)) for a, b in zip(left.tolist(), right.tolist())} - found.keys()
        involved = sorted({i for pair in pairs for i in pair})
        local = store.local_features(local_row, involved)
        images = store.images_by_ids(involved)
        by_left: dict[int, list[int]] = {}
        for a, b in sorted(pairs):
            if a in local and b in local and a in images and b in images:
                by_left.setdefault(a, []).append(b)
        for a, others in by_left.items():
            scale = min(1.0, max_side / max(images[a].width, images[a].height, 1))
            results = verify_all(local[a], scale, (images[a].height, images[a].width),
                                 [(local[b], (images[b].height, images[b].width)) for b in others],
                                 Evidence(min_inliers=min_inliers))
            for b, result in zip(others, results):
                found[(a, b)] = result.inliers if result.corners is not None else 0
        if progress:
            progress(min(CHUNK_ROWS, len(ids) - start), len(ids))
    kept = [(a, b, n) for (a, b), n in sorted(found.items()) if n >= min_inliers]
    if not kept:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int64)
    left_ids, right_ids, inliers = (np.array(column, dtype=np.int64) for column in zip(*kept))
    return left_ids, right_ids, inliers
