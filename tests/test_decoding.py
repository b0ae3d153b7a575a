"""Decoding once at the size the extractors need (issue: builds at the speed of a camera
roll): a JPEG at a reduced DCT scale, the image's own size and orientation kept, the rule
stored with each new extractor, and extractors stored before the rule keeping the full decode."""
import io
import json
import sqlite3

import cv2
import numpy as np
import pytest
from cli_runner import imgsearch
from photos import photo
from PIL import Image

from imgsearch.decoding import DEFAULT_DECODE_SIDE, decode_side_of
from imgsearch.features.registry import make_extractor
from imgsearch.index.images import SkippedFile, decode_bytes, decode_to_side
from imgsearch.store import open_store
from imgsearch.store.url import parse_database_url


def camera_jpeg(width: int = 4000, height: int = 3000, orientation: int | None = None) -> bytes:
    """A large JPEG with detail at every scale (a photo tiled and noised), optionally
    with an EXIF orientation."""
    tile = cv2.resize(photo("chelsea.png"), (width // 4, height // 3))
    pixels = np.tile(tile, (3, 4, 1))[:height, :width]
    pixels = np.clip(pixels + np.random.default_rng(0).normal(0, 6, pixels.shape), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels[..., ::-1])
    out = io.BytesIO()
    if orientation is None:
        image.save(out, "JPEG", quality=90)
    else:
        exif = image.getexif()
        exif[0x0112] = orientation
        image.save(out, "JPEG", quality=90, exif=exif.tobytes())
    return out.getvalue()


def test_a_large_jpeg_is_decoded_at_a_reduced_scale_with_its_own_size_kept() -> None:
    data = camera_jpeg()
    sized = decode_to_side(data, 1024)
    assert sized.pixels.shape == (768, 1024, 3) and (sized.height, sized.width) == (3000, 4000)
    assert sized.scale == pytest.approx(1024 / 4000)
    # the same picture as the full decode shrunk (DCT scaling averages as an area resize does)
    full = cv2.resize(decode_bytes(data), (1024, 768), interpolation=cv2.INTER_AREA)
    assert np.abs(sized.pixels.astype(int) - full.astype(int)).mean() < 2.0
    turned = decode_to_side(camera_jpeg(orientation=6), 1024)
    assert turned.pixels.shape == (1024, 768, 3) and (turned.height, turned.width) == (4000, 3000)


def test_small_and_non_jpeg_images_decode_as_before() -> None:
    small = cv2.imencode(".jpg", cv2.resize(photo("coffee.png"), (384, 256)))[1].tobytes()
    np.testing.assert_array_equal(decode_to_side(small, 1024).pixels, decode_bytes(small))  # Corel's size: unchanged
    png = cv2.imencode(".png", cv2.resize(photo("coffee.png"), (2000, 1000)))[1].tobytes()
    sized = decode_to_side(png, 1024)
    assert sized.pixels.shape == (512, 1024, 3) and (sized.height, sized.width) == (1000, 2000)


def test_a_jpeg_header_claiming_too_many_pixels_is_refused_before_decoding(monkeypatch) -> None:
    import imgsearch.index.images as images

    monkeypatch.setattr(images, "MAX_PIXELS", 10_000_000)
    with pytest.raises(SkippedFile, match="too many pixels"):
        decode_to_side(camera_jpeg(), 1024)  # 12 MP


def test_a_build_stores_the_decode_rule_and_keypoints_in_the_photos_own_pixels(tmp_path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    data = camera_jpeg()
    (folder / "big.jpg").write_bytes(data)
    db = f"sqlite:///{tmp_path / 'idx.sqlite3'}"
    assert imgsearch("build", folder, "--db", db, "-e", "hsv72", "-e", "sift").code == 0
    with open_store(parse_database_url(db)) as store:
        image = store.find_images(b"big.jpg")[0]
        assert (image.width, image.height) == (4000, 3000)  # the photo's own size
        hsv, sift = store.find_extractor("hsv72"), store.find_extractor("sift")
        assert decode_side_of(hsv.params) == decode_side_of(sift.params) == DEFAULT_DECODE_SIDE
        expected = make_extractor("hsv72").extract(decode_to_side(data, DEFAULT_DECODE_SIDE).pixels)
        np.testing.assert_allclose(store.vector(hsv, image.id), expected, atol=1e-7)
        keypoints = store.local_features(sift, [image.id])[image.id].keypoints
        assert keypoints[:, 0].max() > 3000 and keypoints[:, 1].max() > 2000  # not the 1024 px decode's


def test_an_extractor_stored_before_the_rule_keeps_the_full_decode(tmp_path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    cv2.imwrite(str(folder / "first.jpg"), photo("coffee.png"))
    db_path = tmp_path / "idx.sqlite3"
    assert imgsearch("build", folder, "--db", db_path, "-e", "hsv72").code == 0
    with sqlite3.connect(db_path) as conn:  # as an index of the previous version stored it
        params = json.loads(conn.execute("SELECT params FROM extractors WHERE name = 'hsv72'").fetchone()[0])
        del params["decode_side"]
        conn.execute("UPDATE extractors SET params = ? WHERE name = 'hsv72'",
                     (json.dumps(params, sort_keys=True, separators=(",", ":")),))
    data = camera_jpeg(2400, 1800)
    (folder / "second.jpg").write_bytes(data)
    assert imgsearch("build", folder, "--db", db_path, "-e", "hsv72").code == 0
    with open_store(parse_database_url(str(db_path))) as store:
        row = store.find_extractor("hsv72")
        assert decode_side_of(row.params) is None
        stored = store.vector(row, store.find_images(b"second.jpg")[0].id)
    np.testing.assert_allclose(stored, make_extractor("hsv72").extract(decode_bytes(data)), atol=1e-7)
    assert imgsearch("query", folder / "second.jpg", "--db", db_path, "-e", "hsv72").code == 0
