"""Copies apart from photographs of the same scene. Two shots of one view (a burst, a
tripod, another day) verify under one homography, since the background matches, and their
descriptors score high; only a copy of one photograph (resized, re-encoded, cropped,
turned, mirrored, brightened, watermarked) agrees with it over the whole frame they share
once aligned. So a pair is a copy when one image, aligned onto the other, covers most of
the smaller frame and the two agree, cell by cell, in local normalised correlation (which
no brightness or contrast change moves): a subject that moved, a changed sky or a parallax
shift breaks the cells it touches.

The alignments tried: the homography local features verify (crops, small turns), and the
eight quarter-turn and mirror orientations stretched over the frame (resized, mirrored,
turned copies: no keypoint matches a mirror image)."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

SIDE = 256  # the longer side both images are compared at: a cell of the grid is 16 px
GRID = 16  # GRID x GRID cells over the larger image's frame
BLUR_SIGMA = 1.2  # absorbs re-compression and the half-pixel error of an alignment
CELL_COVERED = 0.75  # a cell counts when the aligned image covers this share of it
CELL_NCC = 0.85  # a textured cell agrees at this correlation
# a smooth cell (a gradient, a backdrop: its correlation is noise) agrees when b, mapped
# to a's intensities by one linear fit over the whole overlap, stays this close to a
# (root mean square, in units of a's spread over the overlap)
CELL_RESIDUAL = 0.10
MIN_CELLS = 12  # fewer cells covered: no decision, not a copy
# A copy's aligned frame covers most of the smaller image (a turned copy loses its corners
# to the border); two tiles of a panorama or a shifted shot cover less.
MIN_OVERLAP = 0.7
# Measured on Corel-1k (bench/duplicates.py, docs/benchmarks.md): 885 copies by the 15
# transformations of issue 12 keep 0.874 or more of their cells in 99 %, the 107 pairs of
# different photographs of one scene the sources find in the set at most 0.813: the cut is
# between the two.
MIN_AGREEMENT = 0.845
ASPECT_TOLERANCE = 0.04  # a resized or turned copy keeps its aspect ratio to within this


@dataclass(frozen=True)
class Agreement:
    """The best alignment's share of agreeing cells, and of the smaller frame it covers."""

    cells: float
    overlap: float

    @property
    def is_copy(self) -> bool:
        return self.overlap >= MIN_OVERLAP and self.cells >= MIN_AGREEMENT


NO_AGREEMENT = Agreement(0.0, 0.0)


def small_grey(pixels: np.ndarray) -> np.ndarray:
    """The image as float32 grey, its longer side SIDE."""
    grey = cv2.cvtColor(pixels, cv2.COLOR_BGR2GRAY) if pixels.ndim == 3 else pixels
    return _resized(grey, SIDE / max(grey.shape)).astype(np.float32)


def with_detail(small: np.ndarray, detail: int) -> np.ndarray:
    """A small_grey image holding no finer detail than an image of `detail` pixels a side:
    a small copy, enlarged, lacks the original's fine texture, so both are compared at the
    smaller one's detail."""
    if detail >= SIDE:
        return small
    return cv2.resize(_resized(small, detail / SIDE), (small.shape[1], small.shape[0]), interpolation=cv2.INTER_LINEAR)


def _resized(grey: np.ndarray, scale: float) -> np.ndarray:
    height, width = grey.shape
    return cv2.resize(grey, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA)


def agreement(a: np.ndarray, b: np.ndarray, b_to_a: np.ndarray | None) -> Agreement:
    """How well b (small_grey) agrees with a, over every alignment tried: `b_to_a`, a
    homography from b's pixels to a's in these small images (None: not verified), and the
    eight orientations of b stretched over a's frame."""
    found = []
    for h in ([b_to_a] if b_to_a is not None else []) + _orientations(a.shape, b.shape):
        found.append(_aligned(a, b, h))
        if found[-1].is_copy:  # the first alignment that makes a copy decides: no other is tried
            break
    return max(found, key=lambda f: (f.is_copy, f.cells * min(f.overlap / MIN_OVERLAP, 1.0)), default=NO_AGREEMENT)


def full_to_small(b_to_a: np.ndarray, a_size: tuple[int, int], b_size: tuple[int, int], a_small: tuple[int, int],
                  b_small: tuple[int, int]) -> np.ndarray:
    """A homography between the images' own pixels (sizes height, width) as one between
    their small_grey versions."""
    to_a = np.diag([a_small[1] / a_size[1], a_small[0] / a_size[0], 1.0])
    from_b = np.diag([b_size[1] / b_small[1], b_size[0] / b_small[0], 1.0])
    return to_a @ b_to_a @ from_b


def homography_of_corners(corners: np.ndarray, b_size: tuple[int, int]) -> np.ndarray:
    """The homography taking b's frame (height, width) to its verified corners in a."""
    height, width = b_size
    frame = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float32)
    return cv2.getPerspectiveTransform(frame, np.asarray(corners, np.float32)).astype(np.float64)


def _orientations(a_shape: tuple[int, ...], b_shape: tuple[int, ...]) -> list[np.ndarray]:
    """b's eight quarter-turn and mirror orientations as homographies stretching it over
    a's frame, those whose aspect ratio is a's."""
    (ah, aw), (bh, bw) = a_shape[:2], b_shape[:2]
    found = []
    for turns in range(4):
        for mirror in (False, True):
            # b's pixel (x, y) -> the oriented frame's unit square, then onto a's frame
            corners = np.array([[0, 0], [bw, 0], [bw, bh], [0, bh]], np.float32)
            unit = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float32)
            if mirror:
                unit = unit[[1, 0, 3, 2]]
            unit = np.roll(unit, turns, axis=0)
            oriented_h, oriented_w = (bh, bw) if turns % 2 == 0 else (bw, bh)
            if abs(np.log((oriented_w / oriented_h) / (aw / ah))) > ASPECT_TOLERANCE:
                continue
            found.append(cv2.getPerspectiveTransform(corners, unit * np.float32([aw, ah])).astype(np.float64))
    return found


def _aligned(a: np.ndarray, b: np.ndarray, b_to_a: np.ndarray) -> Agreement:
    height, width = a.shape
    warped = cv2.warpPerspective(b, b_to_a, (width, height), flags=cv2.INTER_LINEAR)
    covered = cv2.warpPerspective(np.ones_like(b), b_to_a, (width, height), flags=cv2.INTER_NEAREST)
    covered = cv2.erode(covered, np.ones((3, 3), np.uint8)) > 0.5
    smaller = min(a.size, b.size * abs(np.linalg.det(b_to_a[:2, :2])))
    overlap = float(covered.sum() / max(smaller, 1.0))
    if covered.sum() < MIN_CELLS:
        return NO_AGREEMENT
    x = cv2.GaussianBlur(a, (0, 0), BLUR_SIGMA).astype(np.float64)
    y = cv2.GaussianBlur(warped, (0, 0), BLUR_SIGMA).astype(np.float64)
    spread = max(float(x[covered].std()), 1e-6)
    gain, offset = np.polyfit(y[covered], x[covered], 1) if y[covered].std() > 1e-6 else (0.0, float(x[covered].mean()))
    fitted = y * gain + offset
    rows, columns = np.linspace(0, height, GRID + 1).astype(int), np.linspace(0, width, GRID + 1).astype(int)
    mask = covered.astype(np.float64)
    n, sx, sy, sxx, syy, sxy, sr = (_cell_sums(v * mask, rows, columns) for v in (
        np.ones_like(mask), x, y, x * x, y * y, x * y, (x - fitted) ** 2))
    area = _cell_sums(np.ones_like(mask), rows, columns)
    counted = n >= CELL_COVERED * area
    n = np.maximum(n, 1)
    mx, my = sx / n, sy / n
    sp, sq = np.sqrt(np.maximum(sxx / n - mx * mx, 0)), np.sqrt(np.maximum(syy / n - my * my, 0))
    textured = (sp >= 1e-3) & (sq >= 1e-3)
    correlation = np.where(textured, (sxy / n - mx * my) / np.where(textured, sp * sq, 1), 0)
    close = np.sqrt(sr / n) <= CELL_RESIDUAL * spread
    agreeing = counted & (close | (correlation >= CELL_NCC))
    if counted.sum() < MIN_CELLS:
        return Agreement(0.0, min(overlap, 1.0))
    return Agreement(float(agreeing.sum() / counted.sum()), min(overlap, 1.0))


def _cell_sums(values: np.ndarray, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """Each grid cell's sum of `values` (cells bounded by rows x columns)."""
    return np.add.reduceat(np.add.reduceat(values, rows[:-1], axis=0), columns[:-1], axis=1)
