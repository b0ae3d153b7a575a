"""eval's verification: what a query's verification does (rerank.query.verify_at_query),
on the stored features of a collection whose every image is a query in turn: each image's
shortlist verified, its matches told object from scene (rerank.scene), the unverified
verified again against the expanded query (rerank.expansion), ranked by verified_keys."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from imgsearch.features.local import DEFAULT_MAX_SIDE
from imgsearch.keypoints import LocalFeatures
from imgsearch.rerank.expansion import EXPANSION, second_query
from imgsearch.rerank.scene import match_kinds
from imgsearch.rerank.verify import DEFAULT_FALSE_ALARMS, Evidence, inlier_points, is_verified, verified_keys, verify_all


def verified_scores(scores: np.ndarray, local: list[tuple[LocalFeatures, tuple[int, int]]], shortlist: int = 100,
                    false_alarms: float = DEFAULT_FALSE_ALARMS, expand: int = EXPANSION, *,
                    queries: Sequence[int] | None = None) -> np.ndarray:
    """Each image (a query, with its own stored local features) verified against its top
    `shortlist` by the scores before (itself left out), those left unverified again against
    the query expanded by its `expand` best object matches (0: no expansion), scored by
    verified_keys as a query ranks them. local: each image's features and (height, width).
    queries: only these rows (a benchmark's sample; the others keep their scores)."""
    out = np.array(scores, dtype=np.float64, copy=True)
    evidence = Evidence(float(false_alarms))
    for i in range(len(scores)) if queries is None else queries:
        order = np.argsort(-scores[i], kind="stable")
        order = order[order != i][: int(shortlist)]
        features, (height, width) = local[i]
        scale = min(1.0, DEFAULT_MAX_SIDE / max(height, width, 1))
        results = verify_all(features, scale, (height, width), [local[j] for j in order], evidence)
        model = second_query(features, (height, width), results, [local[j][0] for j in order], int(expand))
        again: list = [None] * len(order)
        if model is not None:
            unverified = [n for n, found in enumerate(results) if not is_verified(found)]
            for n, found in zip(unverified, verify_all(model, scale, (height, width),
                                                         [local[order[n]] for n in unverified], evidence)):
                again[n] = found
        points = [inlier_points(first, features.keypoints) if is_verified(first) else
                  inlier_points(second, model.keypoints) if model is not None else None
                  for first, second in zip(results, again)]
        out[i, order] = verified_keys(scores[i, order], results, match_kinds((height, width), points), again)
    return out
