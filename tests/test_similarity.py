import cv2
import numpy as np
import pytest
from scipy.stats import pearsonr

from imgsearch.errors import ImgsearchError
from imgsearch.scan.metrics import METRICS, get_metric


def score(metric: str, x: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Scores both ways a metric computes them, checked equal: prepare . prepare (eval)
    and the fused score_block (the scan)."""
    m = get_metric(metric)
    x = np.asarray(x, np.float32)
    by_prepare = m.prepare_rows(x) @ m.prepare_one(q)
    np.testing.assert_allclose(m.score_block(x, m.prepare_one(q)), by_prepare, atol=2e-6)
    return by_prepare


def test_pearson_matches_scipy() -> None:
    rng = np.random.default_rng(1)
    x = rng.random((50, 512)).astype(np.float32) ** 3
    q = rng.random(512).astype(np.float32)
    expected = [pearsonr(row, q).statistic for row in x]
    np.testing.assert_allclose(score("pearson", x, q), expected, atol=1e-5)


def test_bhattacharyya_coefficient_matches_direct_formula_and_opencv() -> None:
    rng = np.random.default_rng(2)
    x = rng.random((30, 72)).astype(np.float32)
    q = rng.random(72).astype(np.float32)
    direct = [np.sum(np.sqrt(row / row.sum() * q / q.sum())) for row in x]
    got = score("bhattacharyya", x, q)
    np.testing.assert_allclose(got, direct, atol=1e-5)
    opencv_distance = [cv2.compareHist(row, q, cv2.HISTCMP_BHATTACHARYYA) for row in x]
    np.testing.assert_allclose(np.sqrt(np.maximum(1 - got, 0)), opencv_distance, atol=1e-4)


def test_cosine_matches_direct_formula() -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((20, 64)).astype(np.float32)
    q = rng.standard_normal(64).astype(np.float32)
    direct = x @ q / np.linalg.norm(x, axis=1) / np.linalg.norm(q)
    np.testing.assert_allclose(score("cosine", x, q), direct, atol=1e-5)


@pytest.mark.parametrize("metric", list(METRICS))
def test_degenerate_rows_score_zero_not_nan(metric: str) -> None:
    x = np.vstack([np.zeros(16), np.full(16, 3.0)]).astype(np.float32)
    s = score(metric, x, np.arange(16, dtype=np.float32))
    assert np.all(np.isfinite(s))
    assert s[0] == 0


def test_unknown_metric_is_a_clear_error() -> None:
    with pytest.raises(ImgsearchError, match="known: pearson"):
        get_metric("euclid")
