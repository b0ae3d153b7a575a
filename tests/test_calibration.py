"""The weak-match cue: the index's own cut for an unrelated photo's best match (the median,
over the collection's images, of each one's best score against all the others, per
extractor and metric), and answers that say when even their best match stays below it;
no cut from too few images."""
import json

import cv2
import numpy as np
import pytest
from cli_runner import imgsearch
from photos import photo, variant, write_collection
from served import serving
from test_page import search_page

from imgsearch.index.calibration import MIN_IMAGES, PERCENTILE, key
from imgsearch.scan.metrics import METRICS
from imgsearch.store import open_store
from imgsearch.store.url import parse_database_url


def write_patchworks(folder, n: int) -> None:
    """n pictures unlike each other: each a few random saturated colours in random blocks."""
    rng = np.random.default_rng(3)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        hsv = np.stack([rng.integers(0, 180, 3), np.full(3, 255), rng.integers(128, 256, 3)], axis=1)
        colours = cv2.cvtColor(hsv.astype(np.uint8)[None], cv2.COLOR_HSV2BGR)[0]
        blocks = rng.integers(0, 3, (6, 8))
        picture = cv2.resize(colours[blocks], (320, 240), interpolation=cv2.INTER_NEAREST)
        cv2.imwrite(str(folder / f"patchwork-{i:03d}.png"), picture)


@pytest.fixture
def indexed(tmp_path):
    folder = tmp_path / "photos"
    write_collection(folder)
    write_patchworks(folder / "c", MIN_IMAGES)
    db = f"sqlite:///{tmp_path / 'idx.sqlite3'}"
    run = imgsearch("build", folder, "--db", db, "-e", "rgb", "-e", "hsv72")
    assert run.code == 0 and "unrelated photos' best match scores about" in run.out, run.out + run.err
    return db


def unrelated(path) -> None:
    """A picture like nothing in the sample photos: flat grey with faint noise."""
    rng = np.random.default_rng(0)
    cv2.imwrite(str(path), np.clip(128 + rng.normal(0, 3, (300, 400, 3)), 0, 255).astype(np.uint8))


def test_the_stored_cut_is_the_median_best_score_of_the_images_against_the_others(indexed) -> None:
    with open_store(parse_database_url(indexed)) as store:
        for name in ("rgb", "hsv72"):
            row = store.find_extractor(name)
            ids = sorted(store.image_ids_with_features(row))
            vectors = store.vectors(row, ids)
            x = np.vstack([vectors[i] for i in ids])
            for metric_name, metric in METRICS.items():
                prepared = metric.prepare_rows(x)
                scores = prepared @ prepared.T
                np.fill_diagonal(scores, -np.inf)
                stored = json.loads(store.get_meta(key(name, metric_name)))
                assert stored["cut"] == pytest.approx(np.percentile(scores.max(axis=1), PERCENTILE), abs=1e-5)
                assert stored["images"] == len(ids) == stored["sample"] and stored["best_of"] == len(ids) - 1


def test_a_small_collection_gets_no_cue_rather_than_a_cut_from_a_handful_of_pairs(tmp_path) -> None:
    folder = tmp_path / "photos"
    write_collection(folder)
    db = f"sqlite:///{tmp_path / 'small.sqlite3'}"
    assert imgsearch("build", folder, "--db", db, "-e", "hsv72").code == 0
    nothing_alike = tmp_path / "grey.jpg"
    unrelated(nothing_alike)
    assert imgsearch("query", nothing_alike, "--db", db, "-e", "hsv72", "--json").json()["close_match"] is None
    with open_store(parse_database_url(db)) as store:
        assert store.get_meta(key("hsv72", "pearson")) is None


def test_a_query_says_whether_its_best_match_is_close(indexed, tmp_path) -> None:
    copy, nothing_alike = tmp_path / "cat.jpg", tmp_path / "grey.jpg"
    cv2.imwrite(str(copy), variant(photo("chelsea.png")))
    unrelated(nothing_alike)
    close = imgsearch("query", copy, "--db", indexed, "-e", "hsv72", "--json")
    assert close.json()["close_match"] is True and "no close match" not in close.err
    weak = imgsearch("query", nothing_alike, "--db", indexed, "-e", "hsv72", "--json")
    assert weak.json()["close_match"] is False and "no close match" in weak.err
    assert "no close match below (hsv72)" in imgsearch("stats", "--db", indexed).out
    # the text says it where the page does: above the results
    text = imgsearch("query", nothing_alike, "--db", indexed, "-e", "hsv72").out.splitlines()
    assert text[2] == "no close match: even the best score is in the range of unrelated photos of this index"
    assert "no close match" not in imgsearch("query", copy, "--db", indexed, "-e", "hsv72").out
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


def test_the_default_re_ranking_keeps_the_cue(tmp_path) -> None:
    """The default's scores are its expansion's, not the metric's: whether the first match
    is close is judged by the metric's own score of it against the calibrated cut."""
    folder = tmp_path / "photos"
    write_collection(folder)
    write_patchworks(folder / "c", MIN_IMAGES)
    db = f"sqlite:///{tmp_path / 'idx.sqlite3'}"
    assert imgsearch("build", folder, "--db", db, "-e", "cnn-spoc").code == 0
    copy, nothing_alike = tmp_path / "cat.jpg", tmp_path / "grey.jpg"
    cv2.imwrite(str(copy), variant(photo("chelsea.png")))
    unrelated(nothing_alike)
    default = imgsearch("query", copy, "--db", db, "--json").json()
    plain = imgsearch("query", copy, "--db", db, "--rerank", "none", "--json").json()
    assert default["rerank"] == "dba-aqe:3" and default["results"][0]["id"] == plain["results"][0]["id"]
    assert default["close_match"] is not None and default["close_match"] == plain["close_match"]
    # no image scores above the plain best: with that below the cut, the default says so too
    assert imgsearch("query", nothing_alike, "--db", db, "--rerank", "none", "--json").json()["close_match"] is False
    weak = imgsearch("query", nothing_alike, "--db", db, "--json")
    assert weak.json()["close_match"] is False and "no close match" in weak.err
