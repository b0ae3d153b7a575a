"""The small linear algebra every layer shares: one L2 normaliser and its epsilon."""
from __future__ import annotations

import numpy as np

EPS = 1e-6


def l2n(v: np.ndarray) -> np.ndarray:
    """L2-normalised float32: a vector, or each row of a matrix."""
    return (v / (np.linalg.norm(v, axis=-1, keepdims=True) + EPS)).astype(np.float32)
