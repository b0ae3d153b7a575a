"""Query-side regions: several descriptors of one query photo, for finding an object that
covers only part of it (a painting on a wall, a product on a table). The database keeps
its whole-image vectors; an image scores by its best region (Razavian et al., "Visual
instance retrieval with deep convolutional networks", 2016).

Two ways to cut regions, as pure functions of an extractor and a photo:
- feature-map regions: the R-MAC grid (Tolias et al., 2016) of the network's feature map
  at one or more input sizes, each region pooled the extractor's own way (one forward
  pass per input size);
- image crops: a grid of crops of the photo, each extracted anew (one forward pass per
  crop).
The whole photo is always the first region, so a query that is the object alone still
scores as before.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from imgsearch.features.cnn import CnnExtractor
from imgsearch.features.pooling import rmac_regions
from imgsearch.linalg import l2n

# Input sizes (times the extractor's max_side) whose feature maps are cut into regions: at
# twice the size an object covering a third of the photo spans as many cells as the
# whole stored image does.
MAP_SCALES = (1.0, 2.0)
CROP_GRID = ((0.75, 2), (0.5, 3))  # (side as a share of the photo's, crops per side)


def map_regions(extractor: CnnExtractor, bgr: np.ndarray, levels: int = 3,
                scales: tuple[float, ...] = MAP_SCALES) -> np.ndarray:
    """The whole-photo descriptor, then one per R-MAC region of the feature map at each
    input scale: a (regions x dim) matrix of unit rows."""
    rows = [extractor.extract(bgr)]
    for scale in scales:
        features, logits = extractor.feature_map(bgr, scale)
        _, h, w = features.shape
        for top, left, side in rmac_regions(h, w, levels):
            if side < 0:
                continue  # the whole map: the first row already is the whole photo
            rows.append(l2n(extractor.pool(features[:, top : top + side, left : left + side], logits)))
    return np.vstack(rows).astype(np.float32)


def crop_regions(extractor: CnnExtractor, bgr: np.ndarray, grid: tuple[tuple[float, int], ...] = CROP_GRID) -> np.ndarray:
    """The whole-photo descriptor, then one per crop of the grid, each crop extracted anew."""
    h, w = bgr.shape[:2]
    crops = [bgr]
    for share, count in grid:
        ch, cw = max(32, round(h * share)), max(32, round(w * share))
        for top in np.linspace(0, h - ch, count).round().astype(int):
            for left in np.linspace(0, w - cw, count).round().astype(int):
                crops.append(np.ascontiguousarray(bgr[top : top + ch, left : left + cw]))
    return extractor.extract_many(crops).astype(np.float32)


REGIONS: dict[str, Callable[[CnnExtractor, np.ndarray], np.ndarray]] = {
    "map": map_regions,
    "crops": crop_regions,
}
WHOLE_PHOTO = "none"  # no regions: the photo's one descriptor
REGION_CHOICES = (WHOLE_PHOTO, *REGIONS)  # what a flag, a setting or a request may name
