"""Local features of one image, as the extractors make them and the store keeps them: a
bottom-layer value both sides share (features never imports store, nor store features)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# x, y, size, angle per keypoint, stored as float16: 8 bytes a keypoint instead of 16. Its
# 11 bits put a point within 1/2048 of its coordinate (2 px at 4,000 px, a third of a pixel
# at the 640 px the features are found at, where RANSAC allows 8), an angle within 0.25
# degrees. Indexes built before hold float32 rows; from_blobs tells them by their length.
KEYPOINT_DTYPE = np.dtype("<f2")
KEYPOINT_DTYPES = (KEYPOINT_DTYPE, np.dtype("<f4"))
# A SIFT descriptor is stored in DESCRIPTOR_BITS bits a dimension (64 bytes, was 128):
# its square root, the RootSIFT the matching compares (Arandjelovic & Zisserman 2012), in
# 2**bits - 1 even steps up to SQRT_TOP (a value of 144: OpenCV's SIFT writes larger ones
# for 1 % of the dimensions, which the top level clips as SIFT clips its own at 0.2).
# Rounding the root is rounding where distances are taken; measured on the 200 dev phone
# photos against the 100 covers, it verified what the full bytes verify (docs/scaling.md).
# Indexes built before hold the full bytes; from_blobs tells them by their length.
DESCRIPTOR_BITS = 4  # two levels a byte (packed_levels)
SQRT_TOP = 12.0
RAW_DESCRIPTOR_DTYPE = np.dtype("u1")


def descriptor_levels(descriptors: np.ndarray) -> np.ndarray:
    """The stored level of each dimension (0 .. 2**DESCRIPTOR_BITS - 1) of SIFT values."""
    top = 2**DESCRIPTOR_BITS - 1
    roots = np.sqrt(np.asarray(descriptors, np.float32))
    return np.clip(np.rint(roots * (top / SQRT_TOP)), 0, top).astype(np.uint8)


def level_values(levels: np.ndarray) -> np.ndarray:
    """The SIFT values the levels stand for (float32: squares of the levels' roots)."""
    return np.square(levels.astype(np.float32) * (SQRT_TOP / (2**DESCRIPTOR_BITS - 1)))


def packed_levels(levels: np.ndarray) -> bytes:
    """Two levels a byte, the first in the high half."""
    return (levels[:, 0::2] << 4 | levels[:, 1::2]).astype(np.uint8).tobytes()


def unpacked_levels(blob: bytes, rows: int, dim: int) -> np.ndarray:
    pairs = np.frombuffer(blob, np.uint8).reshape(rows, dim // 2)
    levels = np.empty((rows, dim), np.uint8)
    levels[:, 0::2] = pairs >> 4
    levels[:, 1::2] = pairs & 0x0F
    return levels


@dataclass(frozen=True)
class LocalFeatures:
    keypoints: np.ndarray  # n x 4 float32: x, y in the original image's pixels, size, angle (degrees)
    # n x d SIFT values: uint8 as extracted, float32 as stored (level_values)
    descriptors: np.ndarray

    def __len__(self) -> int:
        return len(self.keypoints)

    def scaled(self, factor: float) -> LocalFeatures:
        """The same features with positions and sizes multiplied by `factor` (into another
        size of the same image)."""
        keypoints = self.keypoints.copy()
        keypoints[:, :3] *= factor
        return LocalFeatures(keypoints, self.descriptors)

    def blobs(self) -> tuple[bytes, bytes]:
        return (np.ascontiguousarray(self.keypoints, KEYPOINT_DTYPE).tobytes(),
                packed_levels(descriptor_levels(self.descriptors)))

    @classmethod
    def from_blobs(cls, keypoints: bytes, descriptors: bytes, dim: int, rows: int) -> LocalFeatures:
        """The features of a stored row of `rows` keypoints, in either width of either part."""
        if not rows:
            return cls(np.empty((0, 4), np.float32), np.empty((0, dim), np.float32))
        stored = next(t for t in KEYPOINT_DTYPES if len(keypoints) == rows * 4 * t.itemsize)
        points = np.frombuffer(keypoints, stored).reshape(rows, 4).astype(np.float32)
        if len(descriptors) == rows * dim * RAW_DESCRIPTOR_DTYPE.itemsize:
            return cls(points, np.frombuffer(descriptors, RAW_DESCRIPTOR_DTYPE).reshape(rows, dim))
        return cls(points, level_values(unpacked_levels(descriptors, rows, dim)))
