"""Colour histograms of the original demo, vectorised (no Python loop per pixel)."""
from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from imgsearch.features.base import Extractor


def _l1_normalised(counts: np.ndarray) -> np.ndarray:
    # Fractions of the pixel count, so images of different sizes are comparable.
    counts = counts.astype(np.float32)
    return counts / max(float(counts.sum()), 1.0)


class RgbHistogram(Extractor):
    """The demo's RGB histogram: `color_degree` uniform levels per channel, bin index
    r * d^2 + g * d + b, so `color_degree`^3 bins (8 -> 512)."""

    name = "rgb"

    def __init__(self, color_degree: int = 8) -> None:
        if not 2 <= color_degree <= 64 or 256 % color_degree:
            raise ValueError("color_degree must divide 256 and lie in 2..64")
        self.color_degree = color_degree

    @property
    def dim(self) -> int:
        return self.color_degree**3

    @property
    def params(self) -> dict[str, Any]:
        return {"color_degree": self.color_degree}

    def extract(self, bgr: np.ndarray) -> np.ndarray:
        d = self.color_degree
        levels = (bgr // (256 // d)).astype(np.int32)
        index = (levels[..., 2] * d + levels[..., 1]) * d + levels[..., 0]
        return _l1_normalised(np.bincount(index.ravel(), minlength=self.dim))


# Hue edges in degrees of the demo's 8 hue bins. The demo tested `h <= 20 and h > 315`
# for red, which is never true, so pure reds fell into no bin; here hues above 315 or at
# most 20 share bin 0 as intended (the wrap-around is handled in `_hue_bins`).
HUE_EDGES = np.array([20, 40, 75, 155, 190, 270, 295, 315], dtype=np.float32)
SV_EDGES = np.array([0.2, 0.7], dtype=np.float32)


def _hue_bins(h: np.ndarray) -> np.ndarray:
    # right=True: a value equal to an edge belongs to the lower bin, as the demo's `<=` tests.
    bins = np.digitize(h, HUE_EDGES, right=True)
    return np.where(bins == len(HUE_EDGES), 0, bins)


class Hsv72Histogram(Extractor):
    """The demo's 72-bin HSV histogram: hue 8 x saturation 3 x value 3, index 9h + 3s + v,
    with saturation and value cut at 0.2 and 0.7."""

    name = "hsv72"
    dim = 72

    @property
    def params(self) -> dict[str, Any]:
        return {"hue_edges": [int(e) for e in HUE_EDGES], "sv_edges": [0.2, 0.7]}

    def extract(self, bgr: np.ndarray) -> np.ndarray:
        # Float input makes OpenCV return H in degrees [0, 360) and S, V in [0, 1].
        hsv = cv2.cvtColor(bgr.astype(np.float32) * np.float32(1 / 255), cv2.COLOR_BGR2HSV)
        h = _hue_bins(hsv[..., 0])
        s = np.digitize(hsv[..., 1], SV_EDGES, right=True)
        v = np.digitize(hsv[..., 2], SV_EDGES, right=True)
        return _l1_normalised(np.bincount((9 * h + 3 * s + v).ravel(), minlength=72))
