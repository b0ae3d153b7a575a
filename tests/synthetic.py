"""Synthetic index rows for tests that need many vectors and no photos."""
from __future__ import annotations

import numpy as np

from imgsearch.store.records import ExtractorRow, ImageRecord


def record(name: str) -> ImageRecord:
    """An image row named `name` (its path too), with placeholder size, hash and pixels."""
    return ImageRecord(name.encode(), name.encode(), 1, 1, "0" * 64, 1, 1)


def fill(store, rows: int, dim: int, seed: int = 0, pack: bool = False) -> ExtractorRow:
    """`rows` random vectors as the extractor `synthetic`, images 0.jpg, 1.jpg, ..."""
    extractor = store.register_extractor("synthetic", "{}", dim)
    rng = np.random.default_rng(seed)
    for start in range(0, rows, 2000):
        store.write_batch([(record(f"{i}.jpg"), {extractor.id: rng.random(dim, dtype=np.float32)})
                           for i in range(start, min(start + 2000, rows))])
    if pack:
        store.pack(extractor)
    return extractor


def delete_images(store, ids) -> int:
    """Delete these images as a build deletes vanished files (FeatureStore.delete_images_at,
    each at its stored path)."""
    rows = store.images_by_ids([int(i) for i in ids])
    return store.delete_images_at({image_id: row.path for image_id, row in rows.items()})
