"""Pairs of images whose perceptual hashes (imgsearch.hashes) differ in few bits, each
hash compared with the other's eight mirrored and quarter-turned variants: resized,
re-compressed, recoloured, mirrored and turned copies."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from imgsearch.errors import TooMuchWork
from imgsearch.hashes import dihedral_variants, hamming
from imgsearch.store.base import FeatureStore
from imgsearch.store.records import ExtractorRow

# 6 of 63 bits: stricter than imagededup's 10 of 64, because a false hash pair joins two
# whole groups. bench/duplicates.py (Corel-1k, 200 originals x 15 copies, 800 others): hash
# pairs alone reach precision 0.998 at 6 bits, 0.987 at 8, 0.976 at 10, with every resized,
# re-compressed, recoloured, mirrored and quarter-turned copy found at 6.
DEFAULT_HASH_BITS = 6
CHUNK = 256  # hashes compared with all others per step: CHUNK x n x 8 bytes at once


def hash_pairs(store: FeatureStore, row: ExtractorRow, max_bits: int,
               progress: Callable[[int, int], None] | None = None, max_pairs: int | None = None,
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(left ids, right ids, bits apart), left < right, for every pair at most max_bits apart
    in any of the 8 orientations; more than max_pairs pairs are refused (TooMuchWork)."""
    ids, hashes = store.image_hashes(row)
    variants = dihedral_variants(hashes)  # 8 x n
    lefts, rights, bits = [], [], []
    found = 0
    for start in range(0, len(ids), CHUNK):
        stop = min(start + CHUNK, len(ids))
        apart = np.min([hamming(variant[start:stop, None], hashes[None, :]) for variant in variants], axis=0)
        r, c = np.nonzero((apart <= max_bits) & (np.arange(len(ids))[None, :] > np.arange(start, stop)[:, None]))
        lefts.append(ids[start + r])
        rights.append(ids[c])
        bits.append(apart[r, c])
        found += len(r)
        if max_pairs is not None and found > max_pairs:
            raise TooMuchWork(f"hashes at most {max_bits} bits apart give more than {max_pairs:,} candidate pairs, "
                              f"more than one report checks: compare fewer bits (default {DEFAULT_HASH_BITS})",
                              "or allow more with --max-pairs")
        if progress:
            progress(stop - start, len(ids))
    if not lefts:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate(lefts), np.concatenate(rights), np.concatenate(bits)
