"""Local features for verifying that two photos show the same object: SIFT keypoints and
descriptors (Lowe, IJCV 2004) on the image at a bounded size, the strongest `features`
kept. Matching turns descriptors into RootSIFT (Arandjelovic & Zisserman, CVPR 2012); the
store keeps the roots in 4 bits a dimension (imgsearch.keypoints)."""
from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from imgsearch.features.base import Extractor
from imgsearch.keypoints import LocalFeatures

DEFAULT_FEATURES = 400
DEFAULT_MAX_SIDE = 640
# A query photo holds the object and its surroundings: it keeps more keypoints than a
# stored image, or a busy background takes them all (the prototype's 1,000 at 640 px).
QUERY_FEATURES = 1000


class SiftExtractor(Extractor):
    name = "sift"
    kind = "local"

    def __init__(self, features: int = DEFAULT_FEATURES, max_side: int = DEFAULT_MAX_SIDE) -> None:
        self.features, self.max_side = int(features), int(max_side)
        self.needed_side = self.max_side
        self._sift: Any = None

    @property
    def dim(self) -> int:
        return 128

    @property
    def params(self) -> dict[str, Any]:
        return {"kind": "local", "detector": "sift", "features": self.features, "max_side": self.max_side}

    def restore(self, params: dict[str, Any]) -> SiftExtractor:
        return SiftExtractor(params["features"], params["max_side"])

    def for_query(self) -> SiftExtractor:
        """The same detector for a query photo, keeping more keypoints (QUERY_FEATURES)."""
        return SiftExtractor(max(self.features, QUERY_FEATURES), self.max_side)

    def extract(self, bgr: np.ndarray) -> LocalFeatures:  # type: ignore[override]
        if self._sift is None:
            self._sift = cv2.SIFT_create(nfeatures=self.features)
        height, width = bgr.shape[:2]
        scale = min(1.0, self.max_side / max(height, width))
        grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        if scale < 1:
            grey = cv2.resize(grey, (max(1, round(width * scale)), max(1, round(height * scale))),
                              interpolation=cv2.INTER_AREA)
        points, descriptors = self._sift.detectAndCompute(grey, None)
        if descriptors is None or not points:
            return LocalFeatures(np.empty((0, 4), np.float32), np.empty((0, 128), np.uint8))
        # SIFT may return a few more than asked when responses tie: keep the strongest.
        order = np.argsort([-p.response for p in points], kind="stable")[: self.features]
        keypoints = np.array([[points[i].pt[0] / scale, points[i].pt[1] / scale, points[i].size / scale,
                               points[i].angle] for i in order], dtype=np.float32)
        return LocalFeatures(keypoints, np.clip(np.rint(descriptors[order]), 0, 255).astype(np.uint8))
