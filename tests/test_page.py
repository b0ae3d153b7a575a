"""The web page in a real browser: Debian's chromium driven by Playwright (no browser
download), against a real `imgsearch serve`."""
import os
import shutil
from pathlib import Path

import pytest
from cli_runner import imgsearch
from photos import photo, variant, write_collection
from served import serving

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail("the page test needs Debian's chromium (apt-get install chromium; .ci/run installs it)",
                    pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        yield launched
        launched.close()


def indexed_photos(tmp_path: Path, *extractors: str) -> str:
    """The sample photos indexed with these extractors; the index's URL."""
    folder = tmp_path / "photos"
    write_collection(folder)
    db = f"sqlite:///{tmp_path / 'idx.sqlite3'}"
    assert imgsearch("build", folder, "--db", db, *(a for e in extractors for a in ("-e", e))).code == 0
    return db


def search_page(browser, served):
    """The search page, loaded, searching with rgb."""
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    page.goto(served.base + "/")
    page.wait_for_selector("#extractor option", state="attached")
    page.select_option("#extractor", "rgb")
    return page


def test_upload_shows_a_gallery_and_a_click_searches_by_that_image(browser, tmp_path) -> None:
    import cv2

    db = indexed_photos(tmp_path, "rgb", "hsv72")
    query = tmp_path / "my-cat.jpg"
    cv2.imwrite(str(query), variant(photo("chelsea.png")))
    with serving(db, tmp_path) as served:
        page = search_page(browser, served)
        page.set_input_files("#file", str(query))
        page.wait_for_selector("#results li button")
        first = page.locator("#results li button").first
        assert first.get_attribute("data-path").endswith("chelsea.jpg")
        assert "#1" in first.inner_text()
        assert "rows scanned" in page.locator("#status").inner_text()
        page.wait_for_function("[...document.querySelectorAll('#results img')].every(i => i.complete && i.naturalWidth > 0)")
        assert page.locator("#more").is_hidden()  # all nine shown: nothing more to load
        page.screenshot(path=str(tmp_path / "gallery.png"))
        clicked = page.locator("#results li button").nth(1)
        clicked_path = clicked.get_attribute("data-path")
        clicked.focus()
        page.keyboard.press("Enter")  # works without a mouse
        page.wait_for_function(f"document.querySelector('#current-label').textContent.endsWith({clicked_path!r})")
        page.wait_for_function("document.querySelector('#status').textContent.startsWith('8 images')")
        paths = [b.get_attribute("data-path") for b in page.locator("#results li button").all()]
        assert clicked_path not in paths and len(paths) == 8  # its own row is left out, as in `query`
        page.set_viewport_size({"width": 390, "height": 800})
        page.screenshot(path=str(tmp_path / "narrow.png"))
        if os.environ.get("SCREENSHOT_DIR"):
            shutil.copy(tmp_path / "gallery.png", Path(os.environ["SCREENSHOT_DIR"]) / "serve-page.png")


def test_the_duplicates_page_shows_each_group_as_a_row_of_thumbnails(browser, tmp_path) -> None:
    import cv2

    folder = tmp_path / "photos"
    write_collection(folder)
    cv2.imwrite(str(folder / "a" / "chelsea-small.jpg"), cv2.resize(photo("chelsea.png"), None, fx=0.7, fy=0.7))
    shutil.copy(folder / "b" / "coffee.jpg", folder / "a" / "coffee-copy.jpg")
    db = f"sqlite:///{tmp_path / 'idx.sqlite3'}"
    assert imgsearch("build", folder, "--db", db, "-e", "cnn-spoc").code == 0
    with serving(db, tmp_path) as served:
        page = browser.new_page(viewport={"width": 1000, "height": 600})
        page.goto(served.base + "/duplicates")
        page.wait_for_selector(".group")
        page.wait_for_function("[...document.querySelectorAll('.group img')].every(i => i.complete && i.naturalWidth > 0)")
        rows = page.locator(".group")
        assert rows.count() == 2
        assert "keep" in rows.first.locator("figcaption").first.inner_text()
        assert "2 groups, 2 copies" in page.locator("#status").inner_text()
        page.screenshot(path=str(tmp_path / "duplicates.png"))
        if os.environ.get("SCREENSHOT_DIR"):
            shutil.copy(tmp_path / "duplicates.png", Path(os.environ["SCREENSHOT_DIR"]) / "duplicates-page.png")


def test_a_verified_result_is_marked_and_outlined_on_the_query_photo(browser, tmp_path) -> None:
    import cv2
    from test_verify import TRUE_CORNERS, printed

    db = indexed_photos(tmp_path, "rgb", "sift")
    query = tmp_path / "phone.jpg"
    cv2.imwrite(str(query), printed(photo("coffee.png"), photo("brick.png")))  # 1600 x 1200
    with serving(db, tmp_path) as served:
        page = search_page(browser, served)
        page.select_option("#rerank", "verify")
        page.set_input_files("#file", str(query))
        page.wait_for_selector("#results li button.verified")
        first = page.locator("#results li button").first
        assert first.get_attribute("data-path").endswith("coffee.jpg")
        assert "same object" in first.inner_text()
        assert page.locator("#results li button.verified").count() == 1  # nothing else is that object
        assert page.get_attribute("#outline-shape", "points") == ""
        first.focus()
        page.wait_for_function("document.querySelector('#outline-shape').getAttribute('points') !== ''")
        box = page.evaluate("""() => {
            const shape = document.querySelector('#outline-shape').getBoundingClientRect();
            const image = document.querySelector('#current-image').getBoundingClientRect();
            return [shape.left - image.left, shape.top - image.top, shape.width, shape.height, image.width];
        }""")
        scale = box[4] / 1600  # the photo is shown at this fraction of its pixels
        low, high = TRUE_CORNERS.min(axis=0) * scale, TRUE_CORNERS.max(axis=0) * scale
        assert abs(box[0] - low[0]) < 4 and abs(box[1] - low[1]) < 4, box
        assert abs(box[2] - (high - low)[0]) < 6 and abs(box[3] - (high - low)[1]) < 6, box
        page.screenshot(path=str(tmp_path / "verified.png"))
        if os.environ.get("SCREENSHOT_DIR"):
            shutil.copy(tmp_path / "verified.png", Path(os.environ["SCREENSHOT_DIR"]) / "verified-page.png")
        first.blur()
        page.wait_for_function("document.querySelector('#outline-shape').getAttribute('points') === ''")
