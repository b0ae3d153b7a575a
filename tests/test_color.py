import colorsys

import numpy as np
import pytest
from photos import photo

from imgsearch.features.color import Hsv72Histogram, RgbHistogram


def demo_rgb_histogram(bgr: np.ndarray, degree: int) -> np.ndarray:
    """The demo's per-pixel loop, kept here as the slow reference."""
    hist = np.zeros(degree**3)
    step = 256 // degree
    for b, g, r in bgr.reshape(-1, 3).tolist():
        hist[(r // step) * degree * degree + (g // step) * degree + b // step] += 1
    return hist / hist.sum()


def demo_hsv_bin(r: int, g: int, b: int) -> int:
    """The demo's 72-bin rules per pixel, with the red bin fixed (h > 315 or h <= 20)."""
    h, s, v = colorsys.rgb_to_hsv(r / 255, g / 255, b / 255)
    h *= 360
    edges = [20, 40, 75, 155, 190, 270, 295, 315]
    hb = 0 if (h > 315 or h <= 20) else next(i for i, e in enumerate(edges) if h <= e)
    sb = 0 if s <= 0.2 else (1 if s <= 0.7 else 2)
    vb = 0 if v <= 0.2 else (1 if v <= 0.7 else 2)
    return 9 * hb + 3 * sb + vb


@pytest.mark.parametrize("degree", [4, 8])
def test_rgb_histogram_equals_the_demo_loop(degree: int) -> None:
    bgr = photo("chelsea.png")[::6, ::6]
    np.testing.assert_allclose(RgbHistogram(degree).extract(bgr), demo_rgb_histogram(bgr, degree), atol=1e-7)


def far_from_edges(r: int, g: int, b: int) -> bool:
    h, s, v = colorsys.rgb_to_hsv(r / 255, g / 255, b / 255)
    hue_gap = min(abs(h * 360 - e) for e in (20, 40, 75, 155, 190, 270, 295, 315, 360, 0))
    return hue_gap > 1.5 and min(abs(s - 0.2), abs(s - 0.7)) > 0.01 and min(abs(v - 0.2), abs(v - 0.7)) > 0.01


def test_hsv72_equals_per_pixel_rules_away_from_bin_edges() -> None:
    pixels = [p for p in photo("coffee.png")[::4, ::4].reshape(-1, 3).tolist() if far_from_edges(p[2], p[1], p[0])]
    strip = np.array(pixels, np.uint8).reshape(1, -1, 3)
    expected = np.bincount([demo_hsv_bin(r, g, b) for b, g, r in pixels], minlength=72)
    np.testing.assert_allclose(Hsv72Histogram().extract(strip) * len(pixels), expected, atol=1e-3)


def test_hsv72_quantisation_moves_few_pixels() -> None:
    """OpenCV's 8-bit HSV (hue steps of 1.4 degrees) may move pixels sitting on an edge."""
    bgr = photo("coffee.png")[::8, ::8]
    expected = np.bincount([demo_hsv_bin(r, g, b) for b, g, r in bgr.reshape(-1, 3).tolist()], minlength=72)
    got = Hsv72Histogram().extract(bgr) * bgr.shape[0] * bgr.shape[1]
    assert np.abs(got - expected).sum() / 2 <= 0.02 * expected.sum()


def test_pure_red_has_a_bin() -> None:
    """The demo's red test (h <= 20 and h > 315) was never true: red was lost."""
    red = np.zeros((4, 4, 3), np.uint8)
    red[..., 2] = 255
    magenta_red = np.zeros((4, 4, 3), np.uint8)
    magenta_red[..., 2], magenta_red[..., 0] = 255, 40  # hue about 351 degrees
    for image in (red, magenta_red):
        hist = Hsv72Histogram().extract(image)
        assert hist[9 * 0 + 3 * 2 + 2] == pytest.approx(1.0)


def test_histograms_are_l1_normalised_and_sized() -> None:
    bgr = photo("astronaut.png")
    for extractor, dim in ((RgbHistogram(), 512), (Hsv72Histogram(), 72)):
        v = extractor.extract(bgr)
        assert v.shape == (dim,) and v.dtype == np.float32
        assert v.sum() == pytest.approx(1.0, abs=1e-5)
