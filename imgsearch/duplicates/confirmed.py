"""Which pairs of a report are copies of one photograph, and which are two photographs of
the same scene (duplicates.aligned): each pair's files, read as indexed (their sha256
checked), aligned by the homography their stored local features verify or by an
orientation, and compared over the frame they share. A pair that cannot be checked (a
file gone or changed since the build) is not confirmed a copy: nothing of it is ever
offered for removal on a guess."""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from imgsearch.duplicates.aligned import (
    NO_AGREEMENT,
    Agreement,
    agreement,
    full_to_small,
    homography_of_corners,
    small_grey,
    with_detail,
)
from imgsearch.errors import SkippedFile
from imgsearch.index.images import decode_to_side, read_bytes
from imgsearch.rerank.verify import Evidence, verify_all
from imgsearch.store.base import FeatureStore
from imgsearch.store.records import ExtractorRow, StoredImage

# the homography is taken from fewer inliers than a report's verified source needs: it
# only aligns, the pixels decide
ALIGNING_INLIERS = 12
SIDE_READ = 512  # decoded at most this large (a JPEG by its DCT scaling), then shrunk to aligned.SIDE


def confirm_copies(store: FeatureStore, root: Path, images: dict[int, StoredImage], pairs: list[tuple[int, int]],
                   local: ExtractorRow | None, progress: Callable[[int, int], None] | None = None,
                   ) -> dict[tuple[int, int], Agreement]:
    """Each pair's agreement (left, right: left is aligned onto from right)."""
    small: dict[int, np.ndarray | None] = {}
    found: dict[tuple[int, int], Agreement] = {}
    by_left: dict[int, list[int]] = {}
    for a, b in pairs:
        by_left.setdefault(a, []).append(b)
    done = 0
    for a, others in sorted(by_left.items()):
        homographies = _verified(store, local, images, a, others) if local is not None else {}
        for b in others:
            left, right = _small(small, root, images[a]), _small(small, root, images[b])
            if left is None or right is None:
                found[(a, b)] = NO_AGREEMENT
                continue
            h = homographies.get(b)
            aligned = None if h is None else full_to_small(h, (images[a].height, images[a].width),
                                                           (images[b].height, images[b].width), left.shape, right.shape)
            detail = min(max(images[a].width, images[a].height), max(images[b].width, images[b].height))
            found[(a, b)] = agreement(with_detail(left, detail), with_detail(right, detail), aligned)
        done += len(others)
        if progress:
            progress(done, len(pairs))
    return found


def _verified(store: FeatureStore, local: ExtractorRow, images: dict[int, StoredImage], a: int,
              others: list[int]) -> dict[int, np.ndarray]:
    """The homography from each other image to a, where their local features verify."""
    features = store.local_features(local, [a, *others])
    if a not in features:
        return {}
    max_side = int(json.loads(local.params)["max_side"])
    scale = min(1.0, max_side / max(images[a].width, images[a].height, 1))
    listed = [b for b in others if b in features]
    results = verify_all(features[a], scale, (images[a].height, images[a].width),
                         [(features[b], (images[b].height, images[b].width)) for b in listed],
                         Evidence(min_inliers=ALIGNING_INLIERS))
    return {b: homography_of_corners(r.corners, (images[b].height, images[b].width))
            for b, r in zip(listed, results) if r.corners is not None}


def _small(cache: dict[int, np.ndarray | None], root: Path, image: StoredImage) -> np.ndarray | None:
    if image.id not in cache:
        try:
            data = read_bytes(root / os.fsdecode(image.path))
            same = hashlib.sha256(data).hexdigest() == image.sha256
            cache[image.id] = small_grey(decode_to_side(data, SIDE_READ).pixels) if same else None
        except (OSError, SkippedFile):
            cache[image.id] = None
    return cache[image.id]
