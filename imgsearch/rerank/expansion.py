"""Verified query expansion (Chum et al., ICCV 2007, "Total Recall"): the images verified on
the query's object carry their features into the query photo by their homographies, and the
query's features on its object with theirs make a richer query, for a second words stage
and verification. It finds the photos of the object that share too little with the query
photo itself (another side in the glare, another distance) but enough with a clean view of
it. Only the object's part is expanded: features on the query's surroundings would find more
photos of the same desk (rerank.scene)."""
from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from imgsearch.keypoints import LocalFeatures
from imgsearch.rerank.scene import OBJECT
from imgsearch.rerank.verify import Verification, carried

# The object matches (most inliers first) whose features join the query (Chum et al. took
# the best verified results). On the development photos (bench/real_photos.py --protocol
# photos) one, two and three found the same images; each more costs matching time.
EXPANSION = 1
# New images the expanded query's words stage brings to verification (at most)
EXPANDED_CANDIDATES = 25


def _inside(outline: np.ndarray, points: np.ndarray) -> np.ndarray:
    return np.array([cv2.pointPolygonTest(outline, (float(x), float(y)), False) >= 0 for x, y in points[:, :2]],
                    dtype=bool)


def object_query(query: LocalFeatures, results: Sequence[Verification | None], kinds: Sequence[str | None],
                   stored: Sequence[LocalFeatures | None], anchors: int = EXPANSION) -> LocalFeatures | None:
    """The query's features within its object (the hull of every object match's inliers)
    and those of its `anchors` best object matches (stored[i], carried by results[i]'s
    homography) that land there; None when nothing verified on the object."""
    objects = [i for i, kind in enumerate(kinds) if kind == OBJECT and results[i] is not None]
    if not objects or anchors <= 0:
        return None
    matched = np.vstack([query.keypoints[results[i].query_inliers, :2] for i in objects])  # type: ignore[union-attr]
    outline = cv2.convexHull(matched.astype(np.float32))
    parts = [query]
    for i in sorted(objects, key=lambda i: -results[i].inliers)[:anchors]:  # type: ignore[union-attr]
        features, H = stored[i], results[i].homography  # type: ignore[union-attr]
        if features is not None and H is not None and len(features):
            parts.append(LocalFeatures(carried(H, features.keypoints).astype(np.float32), features.descriptors))
    kept = [(part.keypoints[inside], np.asarray(part.descriptors, np.float32)[inside])
            for part in parts for inside in [_inside(outline, part.keypoints)]]
    return LocalFeatures(np.vstack([k for k, _ in kept]), np.vstack([d for _, d in kept]))
