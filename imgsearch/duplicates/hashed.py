"""Pairs of images whose perceptual hashes (imgsearch.hashes) differ in few bits, each
hash compared with the other's eight mirrored and quarter-turned variants: resized,
re-compressed, recoloured, mirrored and turned copies."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from imgsearch.hashes import dihedral_variants, hamming
from imgsearch.store.base import FeatureStore
from imgsearch.store.records import ExtractorRow

# 8 of 63 bits. Hash pairs of different Corel-1k photos at <= 8 bits: 17 of 499,500
# (most of them the same scene shot twice); imagededup's default for its 64-bit hashes is
# 10, which found 47 here. bench/duplicates.py gives recall per transformation.
DEFAULT_HASH_BITS = 8
CHUNK = 256  # hashes compared with all others per step: CHUNK x n x 8 bytes at once


def hash_pairs(store: FeatureStore, row: ExtractorRow, max_bits: int,
               progress: Callable[[int, int], None] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(left ids, right ids, bits apart), left < right, for every pair at most max_bits apart
    in any of the 8 orientations."""
    ids, hashes = store.image_hashes(row)
    variants = dihedral_variants(hashes)  # 8 x n
    lefts, rights, bits = [], [], []
    for start in range(0, len(ids), CHUNK):
        stop = min(start + CHUNK, len(ids))
        apart = np.min([hamming(variant[start:stop, None], hashes[None, :]) for variant in variants], axis=0)
        r, c = np.nonzero((apart <= max_bits) & (np.arange(len(ids))[None, :] > np.arange(start, stop)[:, None]))
        lefts.append(ids[start + r])
        rights.append(ids[c])
        bits.append(apart[r, c])
        if progress:
            progress(stop - start, len(ids))
    if not lefts:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate(lefts), np.concatenate(rights), np.concatenate(bits)
