"""The second query of verification: what the first pass learned of the photo's object,
asked again of the words stage. Where other views of the object verified, verified query
expansion (Chum et al., ICCV 2007, "Total Recall"): the best view's features, carried into
the query photo by its homography, and the photo's own, only where the object lies. It
finds the photos of the object that share too little with the photo itself (another
distance, the glare elsewhere) but enough with a clean view of it; features on the
surroundings would find more photos of the same desk (rerank.scene). Where only photos of
the same desk verified (the object's own photos were in no first-stage list), what none of
them matched, when it lies nearer the centre than they do, is where the object is: those
features alone are asked."""
from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from imgsearch.keypoints import LocalFeatures
from imgsearch.rerank.scene import off_centre, unexplained, views_of_object
from imgsearch.rerank.verify import Verification, carried, inlier_points

# The object matches (most inliers first) whose features join the query (Chum et al. took
# the best verified results). On the development photos (bench/real_photos.py --protocol
# photos) one, two and three found the same images; each more costs matching time.
EXPANSION = 1
# New images the expanded query's words stage brings to verification (at most)
EXPANDED_CANDIDATES = 25


def _inside(outline: np.ndarray, points: np.ndarray) -> np.ndarray:
    return np.array([cv2.pointPolygonTest(outline, (float(x), float(y)), False) >= 0 for x, y in points[:, :2]],
                    dtype=bool)


def second_query(query: LocalFeatures, size: tuple[int, int], results: Sequence[Verification | None],
                 stored: Sequence[LocalFeatures | None], anchors: int = EXPANSION) -> LocalFeatures | None:
    """The second query. Where other views of the photo's object verified: its features
    within the hull of their inliers, with those of its `anchors` best views (stored[i],
    carried by results[i]'s homography) that land there (Total Recall). Where what no
    verified image matched lies nearer the centre than they (only the object's surroundings
    verified): the photo's features there. None when nothing verified (nothing learned) or
    anchors is 0. size: the query's (height, width)."""
    points = [inlier_points(found, query.keypoints) for found in results]
    if anchors <= 0 or all(p is None for p in points):
        return None
    keep = unexplained(query.keypoints, size, points)
    parts = []
    # a copy of the photo (in the collection too, or a burst) adds no view of the object
    views = [i for i, view in enumerate(views_of_object(size, points)) if view]
    matched = np.vstack([points[i] for i in views]) if views else np.empty((0, 2))  # type: ignore[misc]
    # what the verified images left unexplained is the object when it lies nearer the centre
    # than what they call the object (only its surroundings verified): it alone is asked
    if views and off_centre(matched, size) <= off_centre(query.keypoints[keep], size):
        outline = cv2.convexHull(matched.astype(np.float32))
        keep = _inside(outline, query.keypoints)
        for i in sorted(views, key=lambda i: -results[i].inliers)[:anchors]:  # type: ignore[union-attr]
            features, H = stored[i], results[i].homography  # type: ignore[union-attr]
            if features is not None and H is not None and len(features):
                view = carried(H, features.keypoints).astype(np.float32)
                inside = _inside(outline, view)
                parts.append((view[inside], np.asarray(features.descriptors, np.float32)[inside]))
    parts.insert(0, (query.keypoints[keep], np.asarray(query.descriptors, np.float32)[keep]))
    model = LocalFeatures(np.vstack([k for k, _ in parts]), np.vstack([d for _, d in parts]))
    return model if len(model) else None
