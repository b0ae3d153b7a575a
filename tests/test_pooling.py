"""Each pooling against a direct, slow reference, and the invariances that must hold."""
import math

import numpy as np
import pytest

from imgsearch.features import pooling


def random_map(c=16, h=7, w=7, seed=0, zeros=0.3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.random((c, h, w)).astype(np.float32) * 6
    x[rng.random(x.shape) < zeros] = 0  # ReLU6 maps are sparse
    return x


def unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


def pixels(h, w):
    return [(i, j) for i in range(h) for j in range(w)]


def slow_spoc(x):
    return unit([sum(x[k, i, j] for i, j in pixels(*x.shape[1:])) for k in range(len(x))])


def slow_mac(x):
    return unit([max(x[k, i, j] for i, j in pixels(*x.shape[1:])) for k in range(len(x))])


def slow_gem(x, p):
    n = x.shape[1] * x.shape[2]
    return unit([(sum(max(float(x[k, i, j]), 1e-6) ** p for i, j in pixels(*x.shape[1:])) / n) ** (1 / p) for k in range(len(x))])


def slow_spatial_weights(m):
    norm = math.sqrt(sum(float(v) ** 2 for v in m.ravel()))
    return np.array([[math.sqrt(float(m[i, j]) / norm) for j in range(m.shape[1])] for i in range(m.shape[0])])


def slow_weighted_sum(x, weights):
    return [sum(x[k, i, j] * weights[i, j] for i, j in pixels(*x.shape[1:])) for k in range(len(x))]


def slow_crow(x):
    s = slow_spatial_weights(x.sum(axis=0))
    q = [np.count_nonzero(x[k]) / x[k].size for k in range(len(x))]
    omega = [math.log(sum(q) / (qk + 1e-6) + 1e-6) for qk in q]
    return unit([o * v for o, v in zip(omega, slow_weighted_sum(x, s))])


def slow_pwa(x, parts):
    return unit(np.concatenate([unit(slow_weighted_sum(x, slow_spatial_weights(x[k]))) for k in parts]))


def slow_cam(x, class_weights):
    total = np.zeros(len(x))
    for wc in class_weights:
        cam = np.array([[sum(wc[k] * x[k, i, j] for k in range(len(x))) for j in range(x.shape[2])] for i in range(x.shape[1])])
        cam = (cam - cam.min()) / (cam.max() - cam.min())
        total += unit(slow_weighted_sum(x, cam))
    return unit(total)


def slow_rmac(x, regions):
    total = np.zeros(len(x))
    for top, left, side in regions:
        region = x[:, top : top + side, left : left + side]
        total += unit([region[k].max() for k in range(len(x))])
    return unit(total)


@pytest.mark.parametrize("shape", [(16, 7, 7), (8, 5, 8), (8, 1, 1)])
def test_simple_poolings_match_slow_references(shape) -> None:
    x = random_map(*shape)
    np.testing.assert_allclose(pooling.spoc(x), slow_spoc(x), atol=1e-5)
    np.testing.assert_allclose(pooling.mac(x), slow_mac(x), atol=1e-5)
    for p in (1.0, 3.0, 6.5):
        np.testing.assert_allclose(pooling.gem(x, p), slow_gem(x, p), atol=1e-5)


def test_crow_pwa_cam_match_slow_references() -> None:
    x = random_map(12, 5, 6, seed=3)
    np.testing.assert_allclose(pooling.crow(x), slow_crow(x), atol=1e-5)
    np.testing.assert_allclose(pooling.pwa(x, [1, 4, 7]), slow_pwa(x, [1, 4, 7]), atol=1e-5)
    weights = np.random.default_rng(5).standard_normal((3, 12))
    np.testing.assert_allclose(pooling.class_weighted(x, weights), slow_cam(x, weights), atol=1e-5)


def test_rmac_regions_on_a_7x7_map_are_tolias_layout() -> None:
    regions = pooling.rmac_regions(7, 7, levels=3)
    assert regions[0] == (0, 0, -1)
    assert sorted(regions[1:]) == sorted(
        [(0, 0, 7)]
        + [(t, l, 4) for t in (0, 3) for l in (0, 3)]
        + [(t, l, 3) for t in (0, 2, 4) for l in (0, 2, 4)]
    )
    x = random_map(10, 7, 7, seed=1)
    whole = [(0, 0, 7)] + [r for r in regions[1:]]
    np.testing.assert_allclose(pooling.rmac(x, 3), slow_rmac(x, whole), atol=1e-5)


@pytest.mark.parametrize("h,w", [(5, 8), (8, 5), (7, 10), (3, 3)])
def test_rmac_regions_stay_inside_the_map(h, w) -> None:
    for top, left, side in pooling.rmac_regions(h, w):
        if side > 0:
            assert 0 <= top and top + side <= h and 0 <= left and left + side <= w


@pytest.mark.parametrize("name", ["spoc", "mac", "gem", "rmac", "crow"])
def test_scaling_the_map_leaves_the_descriptor_unchanged(name) -> None:
    x = random_map(16, 6, 9, seed=2)
    fn = pooling.POOLINGS[name]
    np.testing.assert_allclose(fn(x * 3.7), fn(x), atol=1e-5)


def test_pwa_and_cam_are_scale_invariant_too() -> None:
    x = random_map(16, 6, 9, seed=4)
    np.testing.assert_allclose(pooling.pwa(x * 0.2, [0, 5]), pooling.pwa(x, [0, 5]), atol=1e-5)
    w = np.random.default_rng(0).standard_normal((2, 16))
    np.testing.assert_allclose(pooling.class_weighted(x * 5, w), pooling.class_weighted(x, w), atol=1e-5)


def test_every_output_is_unit_length_float32() -> None:
    x = random_map()
    outputs = [pooling.POOLINGS[n](x) for n in ("spoc", "mac", "gem", "rmac", "crow")]
    outputs += [pooling.pwa(x, [0, 1]), pooling.class_weighted(x, np.ones((1, 16)))]
    for v in outputs:
        assert v.dtype == np.float32
        assert np.linalg.norm(v) == pytest.approx(1.0, abs=1e-5)
