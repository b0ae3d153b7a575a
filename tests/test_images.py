import cv2
import numpy as np
import pytest
from bad_files import exif_rotated_jpeg, jpeg_bytes, png_bomb, write_bad_files
from photos import photo

from imgsearch.index.images import SkippedFile, decode_bytes, load_image


def test_bad_files_are_skipped_with_their_reason(tmp_path) -> None:
    expected = write_bad_files(tmp_path)
    for name, reason in expected.items():
        if name.endswith(".txt"):
            continue  # never decoded: filtered by type during the walk
        with pytest.raises(SkippedFile, match=reason):
            load_image(tmp_path / name)


def test_decompression_bomb_is_refused_before_allocation() -> None:
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(SkippedFile, match="too many pixels"):
        decode_bytes(png_bomb(30_000, 30_000))
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 200_000  # 30k x 30k x 3 bytes would be 2.6 GB


def test_greyscale_alpha_and_16_bit_become_8_bit_bgr() -> None:
    grey = cv2.imencode(".png", photo("coffee.png")[..., 1])[1].tobytes()
    rgba = cv2.imencode(".png", np.dstack([photo("coffee.png"), np.full((400, 600), 128, np.uint8)]))[1].tobytes()
    deep = cv2.imencode(".png", photo("coffee.png").astype(np.uint16) * 257)[1].tobytes()
    for data in (grey, rgba, deep):
        pixels = decode_bytes(data)
        assert pixels.dtype == np.uint8 and pixels.shape == (400, 600, 3)
    np.testing.assert_array_equal(decode_bytes(deep), photo("coffee.png"))


def test_exif_orientation_is_applied() -> None:
    upright = photo("chelsea.png")  # 300 x 451, landscape
    sideways = cv2.rotate(upright, cv2.ROTATE_90_COUNTERCLOCKWISE)  # stored as portrait
    pixels = decode_bytes(exif_rotated_jpeg(sideways, orientation=6))  # 6: rotate 90 CW to view
    assert pixels.shape[:2] == upright.shape[:2]
    assert np.abs(pixels.astype(int) - upright.astype(int)).mean() < 8


def test_unicode_and_odd_names_load(tmp_path) -> None:
    path = tmp_path / "猫 'quote'; 100% \u200f.jpg"
    path.write_bytes(jpeg_bytes(photo("chelsea.png")))
    assert load_image(path).pixels.shape == (300, 451, 3)
