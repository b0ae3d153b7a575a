"""A 63-bit perceptual hash (imgsearch.hashes): finds resized, re-compressed, recoloured,
mirrored and quarter-turned copies by Hamming distance, kept in a BIGINT a person can
compare with BIT_COUNT(a ^ b) in SQL."""
from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from imgsearch.features.base import Extractor
from imgsearch.hashes import BIT_LAYOUT, BITS, ImageHash

SHRUNK = 32  # pHash's grey image side: the 8 x 8 lowest of its 32 x 32 frequencies are kept
ROWS, COLUMNS = np.array(BIT_LAYOUT).T


class PerceptualHash(Extractor):
    name = "phash"
    kind = "hash"

    @property
    def dim(self) -> int:
        return BITS

    @property
    def params(self) -> dict[str, Any]:
        return {"kind": "hash", "transform": "dct-sign", "shrunk": SHRUNK, "bits": BITS}

    def extract(self, bgr: np.ndarray) -> ImageHash:  # type: ignore[override]
        grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY) if bgr.ndim == 3 else bgr
        shrunk = cv2.resize(grey, (SHRUNK, SHRUNK), interpolation=cv2.INTER_AREA).astype(np.float32)
        return ImageHash.from_signs(cv2.dct(shrunk)[ROWS, COLUMNS] > 0)
