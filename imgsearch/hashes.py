"""Perceptual hashes as the extractors make them and the store keeps them (a bottom-layer
value, as keypoints.LocalFeatures is), and the comparisons they allow.

The hash is the sign of each of the 63 lowest non-constant DCT coefficients of the image
shrunk to 32 x 32 grey (pHash's DCT, Zauner 2010, with 0 as the cut instead of the
median). With signs as bits a mirror or a quarter turn of the image is an exact
operation on the bits: mirroring negates the odd horizontal frequencies, a transpose
swaps the two frequency axes. So a rotated or mirrored copy is found by comparing one
stored hash with the eight variants of the other, no pixels needed.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SIDE = 8  # the SIDE x SIDE lowest frequencies, less the constant one: 63 bits
# Bit n of a hash is the sign of coefficient BIT_LAYOUT[n] = (vertical, horizontal frequency).
BIT_LAYOUT = [(v, u) for v in range(SIDE) for u in range(SIDE) if (v, u) != (0, 0)]
BITS = len(BIT_LAYOUT)


@dataclass(frozen=True)
class ImageHash:
    bits: int  # BITS bits, so it fits a signed BIGINT unchanged (the top bit is always 0)

    @classmethod
    def from_signs(cls, positive: np.ndarray) -> ImageHash:
        """From booleans in BIT_LAYOUT order (coefficient > 0)."""
        return cls(int(pack_bits(np.asarray(positive, dtype=bool)[None, :])[0]))


def pack_bits(signs: np.ndarray) -> np.ndarray:
    """n x BITS booleans -> n uint64 hashes (bit k of each is column k)."""
    padded = np.zeros((len(signs), 64), dtype=bool)
    padded[:, :BITS] = signs
    return np.packbits(padded, axis=1, bitorder="little").view("<u8").ravel()


def unpack_bits(hashes: np.ndarray) -> np.ndarray:
    """n uint64 hashes -> n x BITS booleans."""
    as_bytes = np.ascontiguousarray(hashes, dtype="<u8").view(np.uint8).reshape(-1, 8)
    return np.unpackbits(as_bytes, axis=1, bitorder="little")[:, :BITS].astype(bool)


def _dihedral() -> list[tuple[np.ndarray, np.ndarray]]:
    """The 8 mirror / quarter-turn maps as (source bit per bit, bits to invert)."""
    position = {vu: n for n, vu in enumerate(BIT_LAYOUT)}
    maps = []
    for transpose in (False, True):
        for flip_u in (False, True):
            for flip_v in (False, True):
                source, invert = [], []
                for v, u in BIT_LAYOUT:
                    sv, su = (u, v) if transpose else (v, u)
                    source.append(position[(sv, su)])
                    invert.append((flip_u and u % 2 == 1) != (flip_v and v % 2 == 1))
                maps.append((np.array(source), np.array(invert)))
    return maps


DIHEDRAL = _dihedral()


def dihedral_variants(hashes: np.ndarray) -> np.ndarray:
    """8 x n: each hash as it is for the image mirrored and turned in each of the 8 ways
    (row 0: unchanged)."""
    signs = unpack_bits(hashes)
    return np.stack([pack_bits(signs[:, source] ^ invert[None, :]) for source, invert in DIHEDRAL])


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bits that differ, elementwise (broadcasting); SQL's BIT_COUNT(a ^ b)."""
    return np.bitwise_count(np.bitwise_xor(a.astype(np.uint64), b.astype(np.uint64))).astype(np.int64)
