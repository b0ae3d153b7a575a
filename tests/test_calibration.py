"""The weak-match cue: the index's own cut for unrelated photos (a high percentile of the
scores of pairs of different images, per extractor and metric), and answers that say when
even their best match stays below it."""
import json

import cv2
import numpy as np
import pytest
from cli_runner import imgsearch
from photos import photo, variant, write_collection
from served import serving
from test_page import search_page

from imgsearch.index.calibration import PERCENTILE, key
from imgsearch.scan.metrics import METRICS
from imgsearch.store import open_store
from imgsearch.store.url import parse_database_url


@pytest.fixture
def indexed(tmp_path):
    folder = tmp_path / "photos"
    write_collection(folder)
    db = f"sqlite:///{tmp_path / 'idx.sqlite3'}"
    run = imgsearch("build", folder, "--db", db, "-e", "rgb", "-e", "hsv72")
    assert run.code == 0 and "unrelated photos score below" in run.out, run.out + run.err
    return db


def unrelated(path) -> None:
    """A picture like nothing in the sample photos: flat grey with faint noise."""
    rng = np.random.default_rng(0)
    cv2.imwrite(str(path), np.clip(128 + rng.normal(0, 3, (300, 400, 3)), 0, 255).astype(np.uint8))


def test_the_stored_cut_is_the_percentile_of_the_pairs_of_different_images(indexed) -> None:
    with open_store(parse_database_url(indexed)) as store:
        for name in ("rgb", "hsv72"):
            row = store.find_extractor(name)
            ids = sorted(store.image_ids_with_features(row))
            vectors = store.vectors(row, ids)
            x = np.vstack([vectors[i] for i in ids])
            for metric_name, metric in METRICS.items():
                prepared = metric.prepare_rows(x)
                pairs = (prepared @ prepared.T)[np.triu_indices(len(ids), k=1)]
                stored = json.loads(store.get_meta(key(name, metric_name)))
                assert stored["cut"] == pytest.approx(np.percentile(pairs, PERCENTILE), abs=1e-5)
                assert stored["images"] == len(ids) == stored["sample"]


def test_a_query_says_whether_its_best_match_is_close(indexed, tmp_path) -> None:
    copy, nothing_alike = tmp_path / "cat.jpg", tmp_path / "grey.jpg"
    cv2.imwrite(str(copy), variant(photo("chelsea.png")))
    unrelated(nothing_alike)
    close = imgsearch("query", copy, "--db", indexed, "-e", "hsv72", "--json")
    assert close.json()["close_match"] is True and "no close match" not in close.err
    weak = imgsearch("query", nothing_alike, "--db", indexed, "-e", "hsv72", "--json")
    assert weak.json()["close_match"] is False and "no close match" in weak.err
    assert "no close match below (hsv72)" in imgsearch("stats", "--db", indexed).out
    # a re-ranking with scores of its own scale says nothing
    assert imgsearch("query", copy, "--db", indexed, "-e", "hsv72", "--rerank", "aqe", "--json").json()["close_match"] is None


def test_the_page_says_no_close_match_above_weak_results(indexed, tmp_path, browser) -> None:
    copy, nothing_alike = tmp_path / "cat.jpg", tmp_path / "grey.jpg"
    cv2.imwrite(str(copy), variant(photo("chelsea.png")))
    unrelated(nothing_alike)
    with serving(indexed, tmp_path) as served:
        page = search_page(browser, served)
        page.select_option("#extractor", "hsv72")
        page.set_input_files("#file", str(nothing_alike))
        page.wait_for_selector("#results li button.hit")
        assert page.locator("#weak").is_visible() and "No close match" in page.locator("#weak").inner_text()
        page.set_input_files("#file", str(copy))
        page.wait_for_function("document.querySelector('#current-label').textContent.endsWith('cat.jpg')")
        page.wait_for_selector("#results li button.hit")
        assert page.locator("#weak").is_hidden()
