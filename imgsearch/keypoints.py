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
DESCRIPTOR_DTYPE = np.dtype("u1")


@dataclass(frozen=True)
class LocalFeatures:
    keypoints: np.ndarray  # n x 4 float32: x, y in the original image's pixels, size, angle (degrees)
    descriptors: np.ndarray  # n x d uint8

    def __len__(self) -> int:
        return len(self.keypoints)

    @property
    def nbytes(self) -> int:
        return self.keypoints.nbytes + self.descriptors.nbytes

    def scaled(self, factor: float) -> LocalFeatures:
        """The same features with positions and sizes multiplied by `factor` (into another
        size of the same image)."""
        keypoints = self.keypoints.copy()
        keypoints[:, :3] *= factor
        return LocalFeatures(keypoints, self.descriptors)

    def blobs(self) -> tuple[bytes, bytes]:
        return (np.ascontiguousarray(self.keypoints, KEYPOINT_DTYPE).tobytes(),
                np.ascontiguousarray(self.descriptors, DESCRIPTOR_DTYPE).tobytes())

    @classmethod
    def from_blobs(cls, keypoints: bytes, descriptors: bytes, dim: int) -> LocalFeatures:
        rows = np.frombuffer(descriptors, DESCRIPTOR_DTYPE).reshape(-1, dim)
        stored = next(t for t in KEYPOINT_DTYPES if len(keypoints) == len(rows) * 4 * t.itemsize)
        return cls(np.frombuffer(keypoints, stored).reshape(-1, 4).astype(np.float32), rows)
