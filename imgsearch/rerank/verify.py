"""Geometric verification of candidates (Philbin et al., CVPR 2007): the query photo's
local features matched to each candidate's (RootSIFT, Arandjelovic & Zisserman 2012;
Lowe's ratio test, 2004), one homography fitted by RANSAC, its inliers counted. Pure
functions of features and keypoints; rerank.query runs them on a shortlist."""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

import cv2
import numpy as np
from scipy.special import gammaln

from imgsearch.keypoints import LocalFeatures
from imgsearch.rerank.scene import OBJECT

RATIO = 0.8  # Lowe's ratio test
RANSAC_PIXELS = 8.0  # reprojection error allowed, in pixels of the query at its extraction size
MIN_HULL_SHARE = 0.005  # inliers spread over at least this share of the stored image: not on a line
ROWS_PER_PRODUCT = 2048  # candidate descriptors matched in one product (1,000 query rows: 8 MB of scores)
SAMPLE = 4  # correspondences a homography is fitted from
# An inlier's SIFT orientation must agree with the one the homography predicts at its
# point within this many degrees (Lowe 2004 votes in 30-degree bins; weak geometric
# consistency, Jegou et al. 2008): a wrong match agrees by chance 1 time in 360 / (2 x 30).
ORIENTATION_DEGREES = 30.0
# The a-contrario bound (Moisan & Stival 2004) a homography must meet: the number of
# false alarms chance is expected to give per pair tested. A query tests about 150 pairs:
# at 1e-6, 10,000 queries expect about 1 false verification where the background model
# (position and orientation uniform) holds. Measured where it does not quite: among ~55,000
# pairs of real phone photos and photos that cannot hold the object (flowers102, Corel-1k;
# bench/real_photos_offline.py) the most significant chance model reached 10^-1.1, the
# least significant right one 10^-15.7 (docs/benchmarks.md).
DEFAULT_FALSE_ALARMS = 1e-6


@dataclass(frozen=True)
class Verification:
    inliers: int
    corners: np.ndarray | None  # the stored image's corners in the query photo (4 x 2), when verified
    matches: int = 0  # the tentative correspondences RANSAC chose its inliers from: what chance is judged against
    # log10 of the false alarms chance gives a model this good (log10_false_alarms); inf
    # where no homography passed the geometric checks
    significance: float = math.inf
    # which of the query's keypoints are the agreeing inliers (indices): where in the query
    # photo the image matched
    query_inliers: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    homography: np.ndarray | None = None  # 3 x 3, the stored image's pixels to the query's, when verified


@dataclass(frozen=True)
class Evidence:
    """What a homography must show to verify: at most `false_alarms` models this good
    expected by chance, and at least `min_inliers` inliers (a floor a caller may raise:
    duplicates ask for the many inliers of a copy)."""

    false_alarms: float = DEFAULT_FALSE_ALARMS
    min_inliers: int = SAMPLE + 1

    def accepts(self, found: Verification) -> bool:
        return found.inliers >= self.min_inliers and found.significance < math.log10(self.false_alarms)


SEARCH_EVIDENCE = Evidence()


def log10_false_alarms(inliers: int, matches: int, chance: float) -> float:
    """log10 of the number of false alarms (Moisan & Stival 2004, ORSA) of a homography with
    `inliers` of `matches` tentative correspondences within the threshold, each wrong one
    landing there with probability `chance`: (n - 4) C(n, k) C(k, 4) chance^(k - 4), the
    models of 4 correspondences tried times the chance of k - 4 more agreeing."""
    k, n = int(inliers), int(matches)
    if k <= SAMPLE or n <= SAMPLE:
        return math.inf
    log_choose = (gammaln(n + 1) - gammaln(n - k + 1) - gammaln(SAMPLE + 1) - gammaln(k - SAMPLE + 1)) / math.log(10)
    return float(math.log10(n - SAMPLE) + log_choose + (k - SAMPLE) * math.log10(chance))


def inlier_chance(threshold: float, outline: np.ndarray, query_size: tuple[int, int]) -> float:
    """The probability that a wrong correspondence lands within `threshold` pixels of where
    the homography puts it: the threshold's disc over the part of the query photo (height,
    width) the stored image's outline covers. A wrong match lands anywhere in the photo,
    but it can only agree where the homography puts the stored image's points: a model that
    squeezes the image into a corner makes agreement there cheap."""
    height, width = query_size
    frame = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float32)
    covered, _ = cv2.intersectConvexConvex(outline.astype(np.float32), frame)
    return min(1.0, math.pi * threshold**2 / max(float(covered), 1.0))


def root_sift(descriptors: np.ndarray) -> np.ndarray:
    """RootSIFT: L1-normalise, square root; the rows are then unit vectors, and the
    Euclidean distance between them is the Hellinger kernel's."""
    x = descriptors.astype(np.float32)
    x /= np.maximum(x.sum(axis=1, keepdims=True), 1e-12)
    return np.sqrt(x)


def ratio_matches(query: np.ndarray, candidates: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per candidate, the (query index, candidate index) pairs whose nearest neighbour in
    the candidate is closer than RATIO times the second nearest. Query and candidates are
    RootSIFT rows. Candidates are matched about ROWS_PER_PRODUCT rows at a time, each padded
    with zero rows to the group's largest: its scores are then a (query, candidate, row)
    array whose best and second best are plain reductions over the last axis. RootSIFT
    rows are non-negative, so a zero row scores 0, never above a real row's best."""
    found: list[tuple[np.ndarray, np.ndarray]] = [(np.empty(0, np.int64), np.empty(0, np.int64))] * len(candidates)
    # grouped shortest first, so that a group's rows are of about one length and little of
    # the product is padding (stored images hold a few to 400 keypoints; in arrival order
    # each group was padded to its longest)
    usable = sorted((j for j, c in enumerate(candidates) if len(c) >= 2), key=lambda j: len(candidates[j])) \
        if len(query) else []
    start = 0
    while start < len(usable):
        end, rows = start, 0
        while end < len(usable) and (end == start or rows + len(candidates[usable[end]]) <= ROWS_PER_PRODUCT):
            rows += len(candidates[usable[end]])
            end += 1
        group = usable[start:end]
        start = end
        longest = max(len(candidates[j]) for j in group)
        padded = np.zeros((len(group), longest, query.shape[1]), dtype=np.float32)
        for column, j in enumerate(group):
            padded[column, : len(candidates[j])] = candidates[j]
        similarity = (query @ padded.reshape(-1, query.shape[1]).T).reshape(len(query), len(group), longest)
        nearest = np.argmax(similarity, axis=2)
        best = np.take_along_axis(similarity, nearest[:, :, None], axis=2)[:, :, 0].copy()
        np.put_along_axis(similarity, nearest[:, :, None], -np.inf, axis=2)
        second = similarity.max(axis=2)
        # unit vectors: squared distance = 2 - 2 similarity
        passed = np.sqrt(np.maximum(2 - 2 * best, 0)) < RATIO * np.sqrt(np.maximum(2 - 2 * second, 0))
        for column, j in enumerate(group):
            matched = np.flatnonzero(passed[:, column])
            found[j] = (matched, nearest[matched, column].astype(np.int64))
    return found


def verify(query_points: np.ndarray, candidate_points: np.ndarray, matches: tuple[np.ndarray, np.ndarray],
           candidate_size: tuple[int, int], query_scale: float, query_size: tuple[int, int],
           evidence: Evidence = SEARCH_EVIDENCE) -> Verification:
    """One homography from the candidate (stored image, `candidate_size` = height, width)
    to the query photo (`query_size`) by RANSAC; verified when it keeps orientation (no
    mirror), maps the image to a convex quadrilateral, its inliers cover more than a line,
    and they are evidence (Evidence: more than chance explains, given the matches and the
    outline's part of the photo, inlier_chance). An inlier counts only when its orientation
    agrees too (agrees_in_orientation): chance must then match position and orientation.
    query_scale: the query's extraction size over its own size."""
    q, c = matches
    n = int(len(q))
    if n < max(evidence.min_inliers, SAMPLE):
        return Verification(n, None, n)
    src = candidate_points[c, :2].astype(np.float32)
    dst = query_points[q, :2].astype(np.float32)
    threshold = RANSAC_PIXELS / query_scale  # in the query's own pixels
    # USAC_FAST (RANSAC with local optimisation and SPRT) gives up on a wrong candidate
    # early: on bench/instance.py photos the same answers as plain RANSAC at 2.6x less time.
    # Its random state is fixed: the same answer every time.
    H, mask = cv2.findHomography(src, dst, cv2.USAC_FAST, threshold, maxIters=2000, confidence=0.995)
    if H is None or mask is None:
        return Verification(0, None, n)
    inlying = mask.ravel().astype(bool)
    inliers = int(inlying.sum())
    if inliers < evidence.min_inliers or not np.all(np.isfinite(H)) or np.linalg.det(H[:2, :2]) <= 0:
        return Verification(inliers, None, n)
    height, width = candidate_size
    corners = cv2.perspectiveTransform(np.array([[[0, 0], [width, 0], [width, height], [0, height]]], np.float32), H)[0]
    hull = cv2.convexHull(src[inlying])
    if (not cv2.isContourConvex(corners.astype(np.float32)) or cv2.contourArea(corners) <= 0
            or cv2.contourArea(hull) < MIN_HULL_SHARE * width * height):
        return Verification(inliers, None, n)
    agrees = agrees_in_orientation(H, candidate_points[c[inlying]], query_points[q[inlying]])
    agreeing = int(agrees.sum())
    chance = inlier_chance(threshold, corners, query_size) * 2 * ORIENTATION_DEGREES / 360
    found = Verification(agreeing, corners, n, log10_false_alarms(agreeing, n, chance), q[inlying][agrees], H)
    return found if evidence.accepts(found) else replace(found, corners=None)


def carried(H: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """Keypoint rows (x, y, size, angle) carried by the homography H into the other image:
    the point mapped, the angle and size those of a short step along it, mapped."""
    angle = np.deg2rad(keypoints[:, 3].astype(np.float64))
    start = keypoints[:, :2].astype(np.float64)
    ahead = start + 8.0 * np.column_stack([np.cos(angle), np.sin(angle)])
    mapped = cv2.perspectiveTransform(np.stack([start, ahead], axis=1).reshape(1, -1, 2), H).reshape(-1, 2, 2)
    step = mapped[:, 1] - mapped[:, 0]
    return np.column_stack([mapped[:, 0], keypoints[:, 2] * np.hypot(step[:, 0], step[:, 1]) / 8.0,
                            np.rad2deg(np.arctan2(step[:, 1], step[:, 0]))])


def agrees_in_orientation(H: np.ndarray, stored: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Per correspondence (keypoint rows x, y, size, angle of the stored image and of the
    query), whether the query keypoint's orientation is within ORIENTATION_DEGREES of the
    stored one's carried by H at its point."""
    predicted = carried(H, stored)[:, 3]
    return np.abs((query[:, 3] - predicted + 180.0) % 360.0 - 180.0) <= ORIENTATION_DEGREES


def verify_all(query: LocalFeatures, query_scale: float, query_size: tuple[int, int],
               candidates: Iterable[tuple[LocalFeatures, tuple[int, int]]],
               evidence: Evidence = SEARCH_EVIDENCE) -> list[Verification]:
    """verify() for each (candidate features, candidate size), the matching batched;
    query_size: the query's (height, width) in its own pixels."""
    listed = list(candidates)
    matched = ratio_matches(root_sift(query.descriptors), [root_sift(f.descriptors) for f, _ in listed])
    return [verify(query.keypoints, f.keypoints, m, size, query_scale, query_size, evidence)
            for (f, size), m in zip(listed, matched)]


# Verified images rank above every plain score (unit vectors: at most 1 in magnitude): those
# showing the query's object first, then those the expanded query verified on it
# (rerank.expansion), then those sharing only the query's surroundings (rerank.scene);
# inlier counts stay far below OBJECT_ABOVE.
VERIFIED = 10.0
OBJECT_ABOVE = 1e6


def is_verified(found: Verification | None) -> bool:
    return found is not None and found.corners is not None


def inlier_points(found: Verification | None, keypoints: np.ndarray) -> np.ndarray | None:
    """Where a verified image's inliers lie in the query photo (n x 2; `keypoints`: those of
    the query it was verified against), None where not verified."""
    return keypoints[found.query_inliers, :2] if found is not None and found.corners is not None else None


def verified_keys(scores: np.ndarray, results: Sequence[Verification | None], kinds: Sequence[str | None],
                  expanded: Sequence[Verification | None] | None = None) -> np.ndarray:
    """The one ranking rule of verification, for query and eval alike: images verified on
    the query's object first (kinds: rerank.scene.match_kinds of both passes), then those
    on it only the second query verified (`expanded`: the second pass, None where not
    checked), then those verified on the query's surroundings only, each by inlier count,
    then by their plain score; the rest by their plain score (`results[i]` None: not
    checked). Sorting by these keys (stable) keeps the plain order wherever nothing
    verifies."""
    second = expanded if expanded is not None else [None] * len(results)
    plain = np.asarray(scores, dtype=np.float64)
    keys = plain.copy()
    for i, (first, kind, again) in enumerate(zip(results, kinds, second)):
        # plain / 4 stays within (-0.25, 0.25): it orders equal inlier counts, never crosses one
        if is_verified(first):
            keys[i] = VERIFIED + (2 * OBJECT_ABOVE if kind == OBJECT else 0.0) + first.inliers + plain[i] / 4  # type: ignore[union-attr]
        elif is_verified(again):
            keys[i] = VERIFIED + (OBJECT_ABOVE if kind == OBJECT else 0.0) + again.inliers + plain[i] / 4  # type: ignore[union-attr]
    return keys
