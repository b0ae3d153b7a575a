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
from imgsearch.rerank.scene import views_of_object
from imgsearch.rerank.verify import Verification, carried, is_verified

# The object matches (most inliers first) whose features join the query (Chum et al. took
# the best verified results). On the development photos (bench/real_photos.py --protocol
# photos) one, two and three found the same images; each more costs matching time.
EXPANSION = 1
# New images the expanded query's words stage brings to verification (at most)
EXPANDED_CANDIDATES = 25


def _inside(outline: np.ndarray, points: np.ndarray) -> np.ndarray:
    return np.array([cv2.pointPolygonTest(outline, (float(x), float(y)), False) >= 0 for x, y in points[:, :2]],
                    dtype=bool)


def object_query(query: LocalFeatures, size: tuple[int, int], results: Sequence[Verification | None],
                 stored: Sequence[LocalFeatures | None], anchors: int = EXPANSION) -> LocalFeatures | None:
    """The query's features within its object (the hull of the inliers of every object match
    but copies of the whole photo) and those of its `anchors` best such matches (stored[i],
    carried by results[i]'s homography) that land there; None when no other view verified
    on the object. size: the query's (height, width)."""
    # a copy of the photo (in the collection too, or a burst) adds no view of the object
    views = [i for i, view in enumerate(views_of_object(query.keypoints, size, [
        r.query_inliers if is_verified(r) else None for r in results])) if view]  # type: ignore[union-attr]
    if not views or anchors <= 0:
        return None
    matched = np.vstack([query.keypoints[results[i].query_inliers, :2] for i in views])  # type: ignore[union-attr]
    outline = cv2.convexHull(matched.astype(np.float32))
    parts = [query]
    for i in sorted(views, key=lambda i: -results[i].inliers)[:anchors]:  # type: ignore[union-attr]
        features, H = stored[i], results[i].homography  # type: ignore[union-attr]
        if features is not None and H is not None and len(features):
            parts.append(LocalFeatures(carried(H, features.keypoints).astype(np.float32), features.descriptors))
    kept = [(part.keypoints[inside], np.asarray(part.descriptors, np.float32)[inside])
            for part in parts for inside in [_inside(outline, part.keypoints)]]
    return LocalFeatures(np.vstack([k for k, _ in kept]), np.vstack([d for _, d in kept]))
