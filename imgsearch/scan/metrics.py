"""Similarity metrics, each reduced to `prepare(matrix) -> matrix` so that
score(x, q) = prepare(x) . prepare(q): a whole block of rows is scored by one
matrix-vector product. Higher scores are always more similar.

`prepare` defines a metric (and scores a whole collection at once in eval). The scan uses
each metric's fused `score_block(x, prepare(q))`, which computes the same numbers without
writing prepare(x) out: one product plus row sums, a quarter of the memory traffic.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from imgsearch.errors import ImgsearchError

Prepare = Callable[[np.ndarray], np.ndarray]
ScoreBlock = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _l2_rows(x: np.ndarray) -> np.ndarray:
    norms = np.sqrt(np.einsum("ij,ij->i", x, x))
    # A zero row (e.g. a constant vector under Pearson) scores 0 against everything
    # instead of producing NaNs that would poison the ranking.
    norms[norms == 0] = 1
    return x / norms[:, None]


def prepare_pearson(x: np.ndarray) -> np.ndarray:
    """Pearson r(x, y) = cosine(x - mean x, y - mean y): centre, then L2-normalise."""
    return _l2_rows(x - x.mean(axis=1, keepdims=True))


def prepare_bhattacharyya(x: np.ndarray) -> np.ndarray:
    """Bhattacharyya coefficient sum sqrt(p q) of L1-normalised histograms: sqrt(x / sum x).
    OpenCV's HISTCMP_BHATTACHARYYA distance is sqrt(1 - coefficient)."""
    sums = x.sum(axis=1, keepdims=True)
    sums[sums == 0] = 1
    return np.sqrt(np.maximum(x, 0) / sums)


def prepare_cosine(x: np.ndarray) -> np.ndarray:
    """Cosine similarity; on L2-normalised vectors it ranks exactly as L2 distance."""
    return _l2_rows(x)


def _divide_or_zero(dots: np.ndarray, norms: np.ndarray) -> np.ndarray:
    # dots: one score per row, or rows x query regions (a 2-D prepared query, d x R)
    norms = norms.reshape(-1, *([1] * (dots.ndim - 1)))
    return np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)


def _row_sums(x: np.ndarray) -> np.ndarray:
    # A product with ones runs in BLAS: several times faster than numpy's pairwise sum.
    return x @ np.ones(x.shape[1], dtype=x.dtype)


def score_pearson(x: np.ndarray, prepared_query: np.ndarray) -> np.ndarray:
    # The query is centred, so x . q_c = (x - mean x) . q_c; and |x - mean x|^2 = |x|^2 - (sum x)^2 / d.
    sums = _row_sums(x)
    centred_sq = np.einsum("ij,ij->i", x, x) - sums * sums / x.shape[1]
    return _divide_or_zero(x @ prepared_query, np.sqrt(np.maximum(centred_sq, 0)))


def score_bhattacharyya(x: np.ndarray, prepared_query: np.ndarray) -> np.ndarray:
    x = np.maximum(x, 0)
    return _divide_or_zero(np.sqrt(x) @ prepared_query, np.sqrt(_row_sums(x)))


def score_cosine(x: np.ndarray, prepared_query: np.ndarray) -> np.ndarray:
    return _divide_or_zero(x @ prepared_query, np.sqrt(np.einsum("ij,ij->i", x, x)))


@dataclass(frozen=True)
class Metric:
    name: str
    prepare: Prepare
    score_block: ScoreBlock  # == prepare(x) @ prepared_query, fused
    description: str

    def prepare_rows(self, x: np.ndarray) -> np.ndarray:
        return self.prepare(np.atleast_2d(np.asarray(x, dtype=np.float32)))

    def prepare_one(self, q: np.ndarray) -> np.ndarray:
        return self.prepare_rows(q)[0]


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("pearson", prepare_pearson, score_pearson, "Pearson correlation, as the original demo"),
        Metric("bhattacharyya", prepare_bhattacharyya, score_bhattacharyya, "Bhattacharyya coefficient of L1-normalised histograms"),
        Metric("cosine", prepare_cosine, score_cosine, "cosine similarity (same ranking as L2 on normalised vectors)"),
    )
}



def get_metric(name: str) -> Metric:
    try:
        return METRICS[name]
    except KeyError:
        raise ImgsearchError(f"unknown metric {name!r}; known: {', '.join(METRICS)}") from None


def in_learned_space(metric: Metric, map_name: str, apply: Prepare) -> Metric:
    """`metric` followed by a learned map: vectors prepared for the metric, then mapped by
    `apply` (unit rows out), scored by dot product. One definition for eval, which learns
    on prepared vectors, and for `query --whiten`: the map never sees raw vectors, and
    mapped vectors are never clipped (Bhattacharyya's sqrt applies before the map)."""
    def prepare(x: np.ndarray) -> np.ndarray:
        return apply(metric.prepare(x))

    def score_block(x: np.ndarray, prepared_query: np.ndarray) -> np.ndarray:
        return prepare(np.asarray(x, dtype=np.float32)) @ prepared_query

    return Metric(metric.name, prepare, score_block, f"{metric.description}, mapped by {map_name}")
