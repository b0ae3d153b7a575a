"""The shipped network and the CNN extractors, end to end. Nothing is downloaded."""
import json

import numpy as np
import pytest
from cli_runner import imgsearch
from photos import PHOTOS, photo, variant, write_collection

from imgsearch.features.cnn import MODEL_FILE, Backbone, CnnExtractor, backbone, preprocess

EGYPTIAN_CAT, ESPRESSO, MOPED, MOTOR_SCOOTER = 285, 967, 665, 670


def test_the_network_recognises_real_photos() -> None:
    for name, expected in (("chelsea.png", {EGYPTIAN_CAT}), ("coffee.png", {ESPRESSO}),
                           ("motorcycle_left.png", {MOPED, MOTOR_SCOOTER})):
        _, logits = backbone().run(preprocess(photo(name), 256))
        assert int(np.argmax(logits[0])) in expected, name


def test_feature_map_shape_and_range() -> None:
    features, logits = backbone().run(preprocess(photo("chelsea.png"), 256))  # 300 x 451 -> 160 x 256
    assert features.shape == (1, 1280, 5, 8) and logits.shape == (1, 1000)
    assert features.min() >= 0 and features.max() <= 6.0 + 1e-5  # ReLU6
    np.testing.assert_allclose(logits[0], np.load(MODEL_FILE.with_name("efficientnet_lite0_classifier.npz"))["weight"]
                               @ features[0].mean(axis=(1, 2)) + np.load(MODEL_FILE.with_name("efficientnet_lite0_classifier.npz"))["bias"],
                               atol=1e-3)


def test_opencv_dnn_and_onnxruntime_agree() -> None:
    pytest.importorskip("onnxruntime")
    blob = preprocess(photo("coffee.png"), 320)
    ours = Backbone(runtime="opencv").run(blob)
    theirs = Backbone(runtime="auto").run(blob)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, atol=1e-4)


def test_multiscale_descriptor_is_the_normalised_mean_of_scales() -> None:
    bgr = photo("rocket.jpg")
    single = [CnnExtractor("gem", scales=(s,)).extract(bgr) for s in (1.0, 0.5)]
    both = CnnExtractor("gem", scales=(1.0, 0.5)).extract(bgr)
    mean = np.mean(single, axis=0)
    np.testing.assert_allclose(both, mean / np.linalg.norm(mean), atol=1e-5)


@pytest.mark.parametrize("pooling", ["gem", "cam"])
def test_a_batch_of_images_gets_each_image_s_own_descriptor(pooling) -> None:
    """extract_many runs same-shaped inputs as one batch: each row must still be its own
    image's extract(), the class-weighted pooling's logits included."""
    extractor = CnnExtractor(pooling, max_side=256, scales=(1.0, 0.5))
    cat, coffee = photo("chelsea.png"), photo("coffee.png")
    images = [cat, coffee, 255 - cat, cat[50:250, 100:400].copy(), 255 - coffee]  # pairs of one shape
    np.testing.assert_allclose(extractor.extract_many(images), np.stack([extractor.extract(i) for i in images]),
                               atol=1e-5)


def test_pwa_fits_part_channels_and_round_trips_through_params() -> None:
    images = [photo(n) for n in PHOTOS[:5]]
    fitted = CnnExtractor("pwa", n_parts=4).fit(images)
    assert len(fitted.params["parts"]) == 4 and fitted.dim == 4 * 1280
    restored = CnnExtractor("pwa", n_parts=4).restore(json.loads(fitted.params_json()))
    np.testing.assert_array_equal(restored.extract(images[0]), fitted.extract(images[0]))


@pytest.mark.parametrize("extractor", ["cnn-gem", "cnn-pwa", "cnn-cam", "cnn-rmac"])
def test_build_then_query_finds_an_edited_copy(extractor, db_url, tmp_path) -> None:
    folder = tmp_path / "photos"
    write_collection(folder)
    edited = tmp_path / "edited.jpg"
    import cv2

    for name, stem in (("chelsea.png", "chelsea"), ("rocket.jpg", "rocket")):
        cv2.imwrite(str(edited), variant(photo(name)))
        if stem == "chelsea":
            run = imgsearch("build", folder, "--db", db_url, "-e", extractor, "-j", "2")
            assert run.code == 0, run.err
        run = imgsearch("query", edited, "--db", db_url, "-e", extractor, "-m", "cosine", "--json")
        assert run.code == 0, run.err
        assert run.json()["results"][0]["name"] == f"{stem}.jpg"


def test_a_build_with_other_cnn_options_is_refused_and_queries_use_the_stored_ones(tmp_path) -> None:
    folder = tmp_path / "photos"
    write_collection(folder, ("coffee.png", "chelsea.png", "rocket.jpg"))
    db = f"sqlite:///{tmp_path / 'i.sqlite3'}"
    assert imgsearch("build", folder, "--db", db, "-e", "cnn-spoc", "--max-side", "320").code == 0
    run = imgsearch("build", folder, "--db", db, "-e", "cnn-spoc")
    assert run.code != 0 and "not comparable" in run.err and "Traceback" not in run.err
    run = imgsearch("query", "coffee.jpg", "--db", db, "-e", "cnn-spoc", "--include-self", "--json")
    assert run.code == 0, run.err
    assert run.json()["results"][0]["score"] == pytest.approx(1.0, abs=1e-5)
    edited = tmp_path / "coffee-edit.jpg"
    import cv2

    cv2.imwrite(str(edited), variant(photo("coffee.png")))
    assert imgsearch("query", edited, "--db", db, "-e", "cnn-spoc", "--json").json()["results"][0]["name"] == "coffee.jpg"
