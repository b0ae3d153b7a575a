"""Geometric verification of candidates (Philbin et al., CVPR 2007): the query photo's
local features matched to each candidate's (RootSIFT, Arandjelovic & Zisserman 2012;
Lowe's ratio test, 2004), one homography fitted by RANSAC, its inliers counted. Pure
functions of features and keypoints; rerank.query runs them on a shortlist."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np

from imgsearch.features.local import DEFAULT_MAX_SIDE
from imgsearch.keypoints import LocalFeatures

RATIO = 0.8  # Lowe's ratio test
RANSAC_PIXELS = 8.0  # reprojection error allowed, in pixels of the query at its extraction size
MIN_HULL_SHARE = 0.005  # inliers spread over at least this share of the stored image: not on a line
CANDIDATES_PER_PRODUCT = 32  # candidates whose descriptors are matched in one product (about 45 MB each)


@dataclass(frozen=True)
class Verification:
    inliers: int
    corners: np.ndarray | None  # the stored image's corners in the query photo (4 x 2), when verified
    matches: int = 0  # the tentative correspondences RANSAC chose its inliers from: what chance is judged against


def root_sift(descriptors: np.ndarray) -> np.ndarray:
    """RootSIFT: L1-normalise, square root; the rows are then unit vectors, and the
    Euclidean distance between them is the Hellinger kernel's."""
    x = descriptors.astype(np.float32)
    x /= np.maximum(x.sum(axis=1, keepdims=True), 1e-12)
    return np.sqrt(x)


def ratio_matches(query: np.ndarray, candidates: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per candidate, the (query index, candidate index) pairs whose nearest neighbour in
    the candidate is closer than RATIO times the second nearest. Query and candidates are
    RootSIFT rows; CANDIDATES_PER_PRODUCT candidates are matched in one product, their
    nearest and second nearest found for all of them at once (maximum.reduceat)."""
    found: list[tuple[np.ndarray, np.ndarray]] = [(np.empty(0, np.int64), np.empty(0, np.int64))] * len(candidates)
    usable = [j for j, c in enumerate(candidates) if len(c) >= 2] if len(query) else []
    for start in range(0, len(usable), CANDIDATES_PER_PRODUCT):
        group = usable[start : start + CANDIDATES_PER_PRODUCT]
        sizes = np.array([len(candidates[j]) for j in group])
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        similarity = query @ np.vstack([candidates[j] for j in group]).T  # query x all the group's rows
        best = np.maximum.reduceat(similarity, offsets, axis=1)  # query x candidates
        others = np.where(similarity >= np.repeat(best, sizes, axis=1), -np.inf, similarity)
        second = np.maximum.reduceat(others, offsets, axis=1)
        # unit vectors: squared distance = 2 - 2 similarity
        passed = np.sqrt(np.maximum(2 - 2 * best, 0)) < RATIO * np.sqrt(np.maximum(2 - 2 * second, 0))
        for column, j in enumerate(group):
            rows = np.flatnonzero(passed[:, column])
            segment = similarity[rows, offsets[column] : offsets[column] + sizes[column]]
            found[j] = (rows, np.argmax(segment, axis=1) if len(rows) else np.empty(0, np.int64))
    return found


def shared_word_count(query_words: np.ndarray, candidate_words: np.ndarray) -> int:
    """How many matches shared_word_matches gives a candidate: the query keypoints whose
    word the candidate has."""
    return int(np.isin(query_words, candidate_words).sum())


def shared_word_matches(query: np.ndarray, query_words: np.ndarray, candidates: list[np.ndarray],
                        candidate_words: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per candidate, (query index, candidate index) pairs of descriptors with the same
    visual word (Philbin et al. 2007: the words are the correspondences), each query
    descriptor keeping the most similar of its word's descriptors in that candidate. With
    tens of thousands of words a query descriptor shares its word with a handful of rows of
    all the candidates together: a few thousand dot products instead of a product with
    every candidate row. query: RootSIFT rows; candidates: SIFT descriptors as stored."""
    empty = (np.empty(0, np.int64), np.empty(0, np.int64))
    if not len(query) or not candidates:
        return [empty for _ in candidates]
    sizes = np.array([len(c) for c in candidates])
    owner = np.repeat(np.arange(len(candidates)), sizes)
    words = np.concatenate(candidate_words)
    order = np.argsort(words, kind="stable")
    words = words[order]
    first, last = np.searchsorted(words, query_words), np.searchsorted(words, query_words, side="right")
    per_query = last - first
    if not per_query.sum():
        return [empty for _ in candidates]
    q = np.repeat(np.arange(len(query)), per_query)
    # the positions first[i] .. last[i] - 1 for every query descriptor i, in one array
    at = order[np.arange(per_query.sum()) - np.repeat(np.cumsum(per_query) - per_query - first, per_query)]
    similarity = np.einsum("nd,nd->n", query[q], root_sift(np.vstack(candidates)[at]))
    keep = np.lexsort((-similarity, q, owner[at]))  # by candidate, query descriptor, most similar first
    q, at = q[keep], at[keep]
    pair_owner = owner[at]
    first_of_pair = np.concatenate([[True], (q[1:] != q[:-1]) | (pair_owner[1:] != pair_owner[:-1])])
    q, at, pair_owner = q[first_of_pair], at[first_of_pair], pair_owner[first_of_pair]
    row = at - np.concatenate([[0], np.cumsum(sizes)[:-1]])[pair_owner]
    bounds = np.searchsorted(pair_owner, np.arange(len(candidates) + 1))
    return [(q[a:b], row[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]


def verify(query_points: np.ndarray, candidate_points: np.ndarray, matches: tuple[np.ndarray, np.ndarray],
           candidate_size: tuple[int, int], query_scale: float, min_inliers: int) -> Verification:
    """One homography from the candidate (stored image, `candidate_size` = height, width)
    to the query photo by RANSAC; verified when it has min_inliers inliers, keeps
    orientation (no mirror), maps the image to a convex quadrilateral and its inliers
    cover more than a line. query_scale: the query's extraction size over its own size."""
    q, c = matches
    if len(q) < max(min_inliers, 4):
        return Verification(int(len(q)), None, int(len(q)))
    src = candidate_points[c, :2].astype(np.float32)
    dst = query_points[q, :2].astype(np.float32)
    # USAC_FAST (RANSAC with local optimisation and SPRT) gives up on a wrong candidate
    # early: on bench/instance.py photos the same answers as plain RANSAC at 2.6x less time.
    # Its random state is fixed: the same answer every time.
    H, mask = cv2.findHomography(src, dst, cv2.USAC_FAST, RANSAC_PIXELS / query_scale, maxIters=2000,
                                 confidence=0.995)
    if H is None or mask is None:
        return Verification(0, None, int(len(q)))
    inlying = mask.ravel().astype(bool)
    inliers = int(inlying.sum())
    if inliers < min_inliers or not np.all(np.isfinite(H)) or np.linalg.det(H[:2, :2]) <= 0:
        return Verification(inliers, None, int(len(q)))
    height, width = candidate_size
    corners = cv2.perspectiveTransform(np.array([[[0, 0], [width, 0], [width, height], [0, height]]], np.float32), H)[0]
    hull = cv2.convexHull(src[inlying])
    if (not cv2.isContourConvex(corners.astype(np.float32)) or cv2.contourArea(corners) <= 0
            or cv2.contourArea(hull) < MIN_HULL_SHARE * width * height):
        return Verification(inliers, None, int(len(q)))
    return Verification(inliers, corners, int(len(q)))


def verify_all(query: LocalFeatures, query_scale: float, candidates: Iterable[tuple[LocalFeatures, tuple[int, int]]],
               min_inliers: int) -> list[Verification]:
    """verify() for each (candidate features, candidate size), the matching batched."""
    listed = list(candidates)
    matched = ratio_matches(root_sift(query.descriptors), [root_sift(f.descriptors) for f, _ in listed])
    return [verify(query.keypoints, f.keypoints, m, size, query_scale, min_inliers)
            for (f, size), m in zip(listed, matched)]


# The prototype: >= 15 inliers never verified an unrelated Corel-1k pair (mAP
# 0.909878 -> 0.909881) and verified 95 % of phone photos of the object.
DEFAULT_MIN_INLIERS = 15

# Verified images rank above every plain score (unit vectors: at most 1 in magnitude).
VERIFIED = 10.0


def verified_keys(scores: np.ndarray, results: list[Verification | None]) -> np.ndarray:
    """The one ranking rule of verification, for query and eval alike: verified images
    first, by inlier count, then by their plain score; the rest by their plain score
    (`results[i]` None: not checked). Sorting by these keys (stable) keeps the plain order
    wherever nothing verifies."""
    verified = np.array([r is not None and r.corners is not None for r in results], dtype=bool)
    inliers = np.array([r.inliers if r is not None else 0 for r in results], dtype=np.float64)
    plain = np.asarray(scores, dtype=np.float64)
    # plain / 4 stays within (-0.25, 0.25): it orders equal inlier counts, never crosses one
    return np.where(verified, VERIFIED + inliers + plain / 4, plain)


def verified_scores(scores: np.ndarray, local: list[tuple[LocalFeatures, tuple[int, int]]], shortlist: int = 300,
                    min_inliers: int = DEFAULT_MIN_INLIERS) -> np.ndarray:
    """eval's verification: each image (a query, with its own stored local features) is
    verified against its top `shortlist` by the plain scores (itself left out) and scored
    by verified_keys, as query ranks them. local: each image's features and (height, width)."""
    out = np.array(scores, dtype=np.float64, copy=True)
    for i in range(len(scores)):
        order = np.argsort(-scores[i], kind="stable")
        order = order[order != i][: int(shortlist)]
        features, (height, width) = local[i]
        results = verify_all(features, min(1.0, DEFAULT_MAX_SIDE / max(height, width, 1)), [local[j] for j in order],
                             int(min_inliers))
        out[i, order] = verified_keys(scores[i, order], list(results))
    return out
