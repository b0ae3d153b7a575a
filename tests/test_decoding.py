"""Decoding once at the size the extractors need (issue: builds at the speed of a camera
roll): a JPEG at a reduced DCT scale, the image's own size and orientation kept, the rule
stored with each new extractor, and extractors stored before the rule keeping the full decode."""
import io
import json

import cv2
import numpy as np
import pytest
from cli_runner import imgsearch
from photos import photo
from PIL import Image

from imgsearch.decoding import DEFAULT_DECODE_SIDE, decode_side_of, decoded_differently
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


def old_index(tmp_path, extractors: tuple[str, ...], db: str | None = None) -> tuple:
    """An index as the version before the decode rule stored it: a Corel-sized photo and a
    2400 x 1800 one, every extractor's rule removed and the large photo's vectors those of
    the full decode."""
    folder = tmp_path / "photos"
    folder.mkdir()
    cv2.imwrite(str(folder / "small.jpg"), photo("coffee.png"))
    big = camera_jpeg(2400, 1800)
    (folder / "big.jpg").write_bytes(big)
    db = db or f"sqlite:///{tmp_path / 'idx.sqlite3'}"
    assert imgsearch("build", folder, "--db", db, *(a for e in extractors for a in ("-e", e))).code == 0
    with open_store(parse_database_url(db)) as store:
        with store.transaction():
            for row in store.extractors():
                values = json.loads(row.params)
                del values["decode_side"]
                store.execute("UPDATE extractors SET params = ? WHERE id = ?",
                              (json.dumps(values, sort_keys=True, separators=(",", ":")), row.id))
        big_id = store.find_images(b"big.jpg")[0].id
        for name in extractors:
            row = store.find_extractor(name)
            if row.kind == "vector":
                store.replace_vectors(row, {big_id: make_extractor(name).extract(decode_bytes(big))})
                store.set_meta(f"calibration:{name}:pearson", json.dumps({"cut": 9.0, "images": 2, "sample": 2}))
    return folder, db, big


def test_an_index_stored_before_the_rule_extracts_its_larger_images_again_once(tmp_path, db_url) -> None:
    folder, db_path, big = old_index(tmp_path, ("hsv72", "sift", "phash"), db_url)
    assert imgsearch("graph", "--db", db_path, "-e", "hsv72", "-m", "pearson", "-n", "1").code == 0
    with open_store(parse_database_url(str(db_path))) as store:
        small_id = store.find_images(b"small.jpg")[0].id
        small_before = store.vector(store.find_extractor("hsv72"), small_id)
    run = imgsearch("build", folder, "--db", db_path, "-e", "hsv72", "-e", "sift", "-e", "phash")
    assert run.code == 0, run.err
    for name in ("hsv72", "sift", "phash"):
        assert (f"{name}: stored from the full decode, now decoded to at most 1,024 px a side: "
                "the 1 image larger than that is extracted again") in run.out
    assert "indexed 1, unchanged 1" in run.out  # the small photo decodes as before: not read again
    assert "graph hsv72/pearson k=1: 1 lists computed" in run.out
    with open_store(parse_database_url(str(db_path))) as store:
        image = store.find_images(b"big.jpg")[0]
        rows = {name: store.find_extractor(name) for name in ("hsv72", "sift", "phash")}
        assert all(decode_side_of(row.params) == DEFAULT_DECODE_SIDE for row in rows.values())
        sized = decode_to_side(big, DEFAULT_DECODE_SIDE)
        np.testing.assert_allclose(store.vector(rows["hsv72"], image.id), make_extractor("hsv72").extract(sized.pixels),
                                   atol=1e-7)
        np.testing.assert_array_equal(store.vector(rows["hsv72"], small_id), small_before)
        keypoints = store.local_features(rows["sift"], [image.id])[image.id].keypoints
        assert keypoints[:, 0].max() > 1500  # back in the photo's own pixels
        assert store.image_hash(rows["phash"], image.id) is not None
        # the old rule's cut is dropped (two images are too few to measure another)
        assert store.get_meta("calibration:hsv72:pearson") is None
    again = imgsearch("build", folder, "--db", db_path, "-e", "hsv72", "-e", "sift", "-e", "phash")
    assert again.code == 0 and "stored from" not in again.out and "unchanged 2" in again.out
    top = imgsearch("query", folder / "big.jpg", "--db", db_path, "-e", "hsv72", "--include-self", "--json")
    assert top.json()["results"][0]["path"].endswith("big.jpg") and top.json()["results"][0]["score"] > 0.999


def test_a_build_killed_while_bringing_an_index_to_the_rule_leaves_no_mix_and_the_rerun_finishes(
        tmp_path, monkeypatch) -> None:
    import imgsearch.index.decode_rule as decode_rule
    from imgsearch.index.build import build

    folder, db_path, big = old_index(tmp_path, ("hsv72",))

    def killed(*args) -> None:
        raise KeyboardInterrupt  # after the old rows are forgotten, before the rule is stored

    monkeypatch.setattr(decode_rule, "forget_calibration", killed)
    with open_store(parse_database_url(db_path)) as store:
        with pytest.raises(KeyboardInterrupt):
            build(store, str(folder), ("hsv72",), workers=1, batch_size=8, progress=False)
        row = store.find_extractor("hsv72")
        big_id = store.find_images(b"big.jpg")[0].id
        assert decode_side_of(row.params) is None and store.vector(row, big_id) is None  # no vector of either rule
    monkeypatch.undo()
    with open_store(parse_database_url(db_path)) as store:
        report = build(store, str(folder), ("hsv72",), workers=1, batch_size=8, progress=False)
        row = store.find_extractor("hsv72")
        assert report.indexed == 1 and decode_side_of(row.params) == DEFAULT_DECODE_SIDE
        np.testing.assert_allclose(store.vector(row, big_id),
                                   make_extractor("hsv72").extract(decode_to_side(big, DEFAULT_DECODE_SIDE).pixels),
                                   atol=1e-7)


def test_only_images_larger_than_the_smaller_of_two_rules_decode_differently() -> None:
    assert not decoded_differently(None, 1024, 1024) and decoded_differently(None, 1024, 1025)
    assert decoded_differently(1024, 912, 1000) and not decoded_differently(1024, 912, 912)
    assert not decoded_differently(1024, 1024, 4000)

