"""Pooling of a CNN feature map (C x H x W, float32) into one vector: pure numpy
functions behind a registry, as cnnimageretrieval-pytorch keeps them. Every function
returns an L2-normalised float32 vector.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from imgsearch.linalg import EPS, l2n


def spoc(fmap: np.ndarray) -> np.ndarray:
    """Sum pooling (Babenko & Lempitsky, 2015)."""
    return l2n(fmap.sum(axis=(1, 2)))


def mac(fmap: np.ndarray) -> np.ndarray:
    """Maximum activation of convolutions (Tolias et al., 2016)."""
    return l2n(fmap.max(axis=(1, 2)))


def gem(fmap: np.ndarray, p: float = 3.0) -> np.ndarray:
    """Generalized mean (Radenovic et al., 2018): (mean x^p)^(1/p); p=1 is SPoC, p->inf MAC."""
    x = np.maximum(fmap, EPS).astype(np.float64)
    return l2n(np.mean(x**p, axis=(1, 2)) ** (1.0 / p))


def rmac_regions(h: int, w: int, levels: int = 3, overlap: float = 0.4) -> list[tuple[int, int, int]]:
    """Square regions (top, left, side) of R-MAC at `levels` scales (Tolias et al., 2016),
    laid out as cnnimageretrieval-pytorch does, the whole map included."""
    side = min(w, h)
    steps = np.arange(2, 8)
    b = (max(h, w) - side) / (steps - 1)
    idx = int(np.argmin(np.abs((side**2 - side * b) / side**2 - overlap)))
    extra_w = idx + 1 if h < w else 0
    extra_h = idx + 1 if h > w else 0
    regions = [(0, 0, -1)]  # -1: the whole map, MAC over all of it
    for level in range(1, levels + 1):
        wl = math.floor(2 * side / (level + 1))
        if wl == 0:
            continue
        wl2 = math.floor(wl / 2 - 1)
        bw = 0 if level + extra_w == 1 else (w - wl) / (level + extra_w - 1)
        bh = 0 if level + extra_h == 1 else (h - wl) / (level + extra_h - 1)
        centres_w = [math.floor(wl2 + i * bw) - wl2 for i in range(level + extra_w)]
        centres_h = [math.floor(wl2 + i * bh) - wl2 for i in range(level + extra_h)]
        regions += [(top, left, wl) for top in centres_h for left in centres_w]
    return regions


def rmac(fmap: np.ndarray, levels: int = 3) -> np.ndarray:
    """Regional MAC (Tolias et al., 2016): L2-normalised MAC of each region, summed."""
    _, h, w = fmap.shape
    total = np.zeros(fmap.shape[0], dtype=np.float64)
    for top, left, side in rmac_regions(h, w, levels):
        region = fmap if side < 0 else fmap[:, top : top + side, left : left + side]
        v = region.max(axis=(1, 2)).astype(np.float64)
        total += l2n(v)
    return l2n(total)


def _power_normalised_map(m: np.ndarray, a: float = 2.0, b: float = 2.0) -> np.ndarray:
    # CroW's spatial normalisation: (m / ||m||_a)^(1/b).
    norm = np.sum(m**a) ** (1.0 / a)
    return (m / norm) ** (1.0 / b) if norm > 0 else np.zeros_like(m)


def crow(fmap: np.ndarray) -> np.ndarray:
    """Cross-dimensional weighting (Kalantidis et al., 2016): spatial weights from the
    channel-summed map, normalised and square-rooted; channel weights
    log(sum of non-zero rates / rate) that favour rare, distinctive channels."""
    x = fmap.astype(np.float64)
    spatial = _power_normalised_map(x.sum(axis=0))
    nonzero_rate = (x > 0).mean(axis=(1, 2))
    channel = np.log(nonzero_rate.sum() / (nonzero_rate + EPS) + EPS) if nonzero_rate.sum() > 0 else np.zeros(len(x))
    return l2n(channel * np.einsum("chw,hw->c", x, spatial))


def pwa(fmap: np.ndarray, parts: Sequence[int]) -> np.ndarray:
    """Part-based weighting aggregation (Xu et al., 2018): each selected channel, power-
    normalised as a spatial map, weights a sum-pool of the whole map; the L2-normalised
    part vectors are concatenated (len(parts) x C)."""
    x = fmap.astype(np.float64)
    pieces = [l2n(np.einsum("chw,hw->c", x, _power_normalised_map(x[k]))) for k in parts]
    return l2n(np.concatenate(pieces))


def class_weighted(fmap: np.ndarray, class_weights: np.ndarray) -> np.ndarray:
    """Class-weighted features (Jimenez et al., 2017): each row of class_weights (the
    classifier weights of one top-predicted class) gives a class activation map, scaled
    to [0, 1], that weights a sum-pool; the L2-normalised vectors are summed."""
    x = fmap.astype(np.float64)
    total = np.zeros(x.shape[0])
    for weights in class_weights:
        cam = np.einsum("c,chw->hw", weights.astype(np.float64), x)
        cam -= cam.min()
        if cam.max() > 0:
            cam /= cam.max()
        v = np.einsum("chw,hw->c", x, cam)
        total += l2n(v)
    return l2n(total)


POOLINGS: dict[str, Callable[..., np.ndarray]] = {
    "spoc": spoc,
    "mac": mac,
    "gem": gem,
    "rmac": rmac,
    "crow": crow,
    "pwa": pwa,
    "cam": class_weighted,
}
