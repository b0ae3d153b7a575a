"""Similarity metrics, each reduced to `prepare(matrix) -> matrix` so that
score(x, q) = prepare(x) . prepare(q): a whole block of rows is scored by one
matrix-vector product. Higher scores are always more similar.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from imgsearch.errors import ImgsearchError

Prepare = Callable[[np.ndarray], np.ndarray]


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


@dataclass(frozen=True)
class Metric:
    name: str
    prepare: Prepare
    description: str

    def prepare_rows(self, x: np.ndarray) -> np.ndarray:
        return self.prepare(np.atleast_2d(np.asarray(x, dtype=np.float32)))

    def prepare_one(self, q: np.ndarray) -> np.ndarray:
        return self.prepare_rows(q)[0]


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("pearson", prepare_pearson, "Pearson correlation, as the original demo"),
        Metric("bhattacharyya", prepare_bhattacharyya, "Bhattacharyya coefficient of L1-normalised histograms"),
        Metric("cosine", prepare_cosine, "cosine similarity (same ranking as L2 on normalised vectors)"),
    )
}

DEFAULT_METRIC = "pearson"


def get_metric(name: str) -> Metric:
    try:
        return METRICS[name]
    except KeyError:
        raise ImgsearchError(f"unknown metric {name!r}; known: {', '.join(METRICS)}") from None
