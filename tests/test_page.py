"""The web page in a real browser: Debian's chromium driven by Playwright (no browser
download), against a real `imgsearch serve`."""
import json
import os
import re
import shutil
from pathlib import Path

from cli_runner import imgsearch
from photos import photo, variant, write_collection, write_one_scene
from served import serving


def indexed_photos(tmp_path: Path, *extractors: str) -> str:
    """The sample photos indexed with these extractors; the index's URL."""
    folder = tmp_path / "photos"
    write_collection(folder)
    db = f"sqlite:///{tmp_path / 'idx.sqlite3'}"
    assert imgsearch("build", folder, "--db", db, *(a for e in extractors for a in ("-e", e))).code == 0
    return db


def search_page(browser, served):
    """The search page, loaded, searching with rgb."""
    page = browser.new_page(viewport={"width": 1280, "height": 800})
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
        page.wait_for_selector("#results li button.hit")
        first = page.locator("#results li button.hit").first
        assert first.get_attribute("data-path").endswith("chelsea.jpg")
        assert "#1" in first.inner_text()
        status = page.locator("#status").inner_text()
        assert re.fullmatch(r"9 photos searched in [\d.,]+ ms\.", status), status  # plainly, no jargon
        assert "rows scanned" in page.locator("#details").inner_text()
        assert "re-ranking none" in page.locator("#details").inner_text()
        original = page.locator("#results li .actions a").first
        assert re.fullmatch(r"/api/images/\d+/file", original.get_attribute("href"))
        assert page.request.get(served.base + original.get_attribute("href")).headers["content-type"] == "image/jpeg"
        page.context.grant_permissions(["clipboard-read", "clipboard-write"])
        page.locator("#results li .actions button.copy").first.click()
        assert page.evaluate("navigator.clipboard.readText()") == first.get_attribute("data-path")
        page.wait_for_function("[...document.querySelectorAll('#results img')].every(i => i.complete && i.naturalWidth > 0)")
        assert page.locator("#more").is_hidden()  # all nine shown: nothing more to load
        page.screenshot(path=str(tmp_path / "gallery.png"))
        clicked = page.locator("#results li button.hit").nth(1)
        clicked_path = clicked.get_attribute("data-path")
        clicked.focus()
        page.keyboard.press("Enter")  # works without a mouse
        page.wait_for_function(f"document.querySelector('#current-label').textContent.endsWith({clicked_path!r})")
        page.wait_for_function("document.querySelector('#status').textContent.startsWith('8 photos searched')")
        # the keyboard stays on the new results, not on <body>
        page.wait_for_function("document.activeElement.matches('#results li button.hit')")
        paths = [b.get_attribute("data-path") for b in page.locator("#results li button.hit").all()]
        assert clicked_path not in paths and len(paths) == 8  # its own row is left out, as in `query`
        page.set_viewport_size({"width": 390, "height": 800})
        page.screenshot(path=str(tmp_path / "narrow.png"))
        if os.environ.get("SCREENSHOT_DIR"):
            shutil.copy(tmp_path / "gallery.png", Path(os.environ["SCREENSHOT_DIR"]) / "serve-page.png")
            shutil.copy(tmp_path / "narrow.png", Path(os.environ["SCREENSHOT_DIR"]) / "serve-page-390.png")


def test_the_duplicates_page_shows_photographs_of_one_scene_apart_with_nothing_to_remove(browser, tmp_path) -> None:
    folder = tmp_path / "photos"
    write_one_scene(folder / "trip")
    db = f"sqlite:///{tmp_path / 'idx.sqlite3'}"
    assert imgsearch("build", folder, "--db", db, "-e", "cnn-spoc", "-e", "phash", "-e", "sift").code == 0
    with serving(db, tmp_path) as served:
        page = browser.new_page(viewport={"width": 1000, "height": 700})
        page.goto(served.base + "/duplicates")
        page.wait_for_selector(".group.scene")
        page.wait_for_function("[...document.querySelectorAll('.group img')].every(i => i.complete && i.naturalWidth > 0)")
        assert page.locator(".group").count() == 2
        scene = page.locator(".group.scene")
        assert scene.locator("input[type=checkbox]").count() == 0
        assert "a photograph of its own" in scene.inner_text() and "same scene" in scene.inner_text()
        assert "1 selected to remove" in page.locator("#selected").inner_text()
        assert "keep them all" in page.locator("#status").inner_text()
        page.screenshot(path=str(tmp_path / "duplicates-scene.png"))
        if os.environ.get("SCREENSHOT_DIR"):
            shutil.copy(tmp_path / "duplicates-scene.png", Path(os.environ["SCREENSHOT_DIR"]) / "duplicates-scene.png")


def test_the_duplicates_page_shows_groups_opens_one_large_and_downloads_what_to_remove(browser, tmp_path) -> None:
    import cv2

    folder = tmp_path / "photos"
    write_collection(folder)
    cv2.imwrite(str(folder / "a" / "chelsea-small.jpg"), cv2.resize(photo("chelsea.png"), None, fx=0.7, fy=0.7))
    shutil.copy(folder / "b" / "coffee.jpg", folder / "a" / "coffee-copy.jpg")
    db = f"sqlite:///{tmp_path / 'idx.sqlite3'}"
    assert imgsearch("build", folder, "--db", db, "-e", "cnn-spoc", "-e", "rgb").code == 0
    with serving(db, tmp_path) as served:
        page = browser.new_page(viewport={"width": 1000, "height": 700}, accept_downloads=True)
        page.goto(served.base + "/")
        page.click("text=Duplicates")  # the pages link to each other
        page.wait_for_selector(".group")
        # the descriptor is a choice of what the index holds, not free text
        assert page.eval_on_selector_all("#extractor option", "os => os.map(o => o.value)") == ["cnn-spoc", "rgb"]
        assert page.input_value("#extractor") == "cnn-spoc"
        page.wait_for_function("[...document.querySelectorAll('.group img')].every(i => i.complete && i.naturalWidth > 0)")
        rows = page.locator(".group")
        assert rows.count() == 2
        assert "keep" in rows.first.locator("figcaption").first.inner_text()
        assert "2 groups, 2 copies" in page.locator("#status").inner_text()
        assert "2 selected to remove" in page.locator("#selected").inner_text()
        page.screenshot(path=str(tmp_path / "duplicates.png"))
        with page.expect_download() as csv_download:
            page.click("#download-csv")
        assert sorted(Path(csv_download.value.path()).read_text().splitlines()) == ["a/chelsea-small.jpg",
                                                                                    "a/coffee-copy.jpg", "path"]
        rows.first.locator("input[type=checkbox]").nth(1).uncheck()
        with page.expect_download() as json_download:
            page.click("#download-json")
        remaining = json.loads(Path(json_download.value.path()).read_text())["to_remove"]
        assert len(remaining) == 1
        rows.first.locator("button.view").first.click()  # the group, large: kept and copy side by side
        page.wait_for_function("document.querySelector('#viewer').open && document.querySelector('#right').complete "
                               "&& document.querySelector('#right').naturalWidth > 0")
        left, right = page.locator("#left").bounding_box(), page.locator("#right").bounding_box()
        assert right["x"] >= left["x"] + left["width"] - 1 and abs(left["y"] - right["y"]) < 2
        assert left["width"] > 300  # large: not a thumbnail
        page.screenshot(path=str(tmp_path / "duplicates-open.png"))
        page.click("#close")
        search = rows.first.locator("figcaption a").first
        target = rows.first.locator("input[type=checkbox]").first.get_attribute("data-path")
        search.click()  # each tile can start a search
        page.wait_for_selector("#results li button.hit")
        assert page.locator("#current-label").inner_text() == "Query: " + target
        if os.environ.get("SCREENSHOT_DIR"):
            for name in ("duplicates.png", "duplicates-open.png"):
                shutil.copy(tmp_path / name, Path(os.environ["SCREENSHOT_DIR"]) / ("duplicates-page.png" if name ==
                                                                                    "duplicates.png" else name))


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
        page.wait_for_selector("#results li button.hit.verified")
        first = page.locator("#results li button.hit").first
        assert first.get_attribute("data-path").endswith("coffee.jpg")
        assert "same object" in first.inner_text()
        assert page.locator("#results li button.hit.verified").count() == 1  # nothing else is that object
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


def test_a_photo_of_another_object_on_the_same_desk_is_badged_same_scene_only(browser, tmp_path) -> None:
    from test_scene import write_desk_photos

    folder, query = tmp_path / "photos", tmp_path / "desk-astronaut.jpg"
    write_desk_photos(folder, query)
    db = f"sqlite:///{tmp_path / 'desk.sqlite3'}"
    assert imgsearch("build", folder, "--db", db).code == 0
    with serving(db, tmp_path) as served:
        page = search_page(browser, served)
        page.set_input_files("#file", str(query))
        page.wait_for_selector("#results li button.hit.scene")
        first = page.locator("#results li button.hit").first
        assert first.get_attribute("data-path") == "sofa-astronaut.jpg" and "verified" in first.get_attribute("class")
        assert "same object" in first.inner_text()
        scene = page.locator("#results li button.hit.scene")
        assert scene.count() == 1 and scene.get_attribute("data-path") == "desk-coffee.jpg"
        assert "same scene only" in scene.inner_text() and "same object" not in scene.inner_text()
        page.screenshot(path=str(tmp_path / "scene.png"))
        if os.environ.get("SCREENSHOT_DIR"):
            shutil.copy(tmp_path / "scene.png", Path(os.environ["SCREENSHOT_DIR"]) / "scene-page.png")


def offline(page) -> list[str]:
    """Every request to anywhere but this machine fails, as without internet; the list of
    what was tried, each as "resource-type URL"."""
    tried: list[str] = []

    def route(r) -> None:
        if r.request.url.startswith("http://127.0.0.1:"):
            r.continue_()
        else:
            tried.append(f"{r.request.resource_type} {r.request.url}")
            r.abort()

    page.route("**/*", route)
    return tried


def test_the_api_docs_load_and_list_the_endpoints_without_internet(browser, tmp_path) -> None:
    db = indexed_photos(tmp_path, "rgb")
    with serving(db, tmp_path) as served:
        page = browser.new_page(viewport={"width": 1100, "height": 800})
        tried = offline(page)
        page.goto(served.base + "/docs")
        page.wait_for_selector(".opblock-summary-path", timeout=30_000)
        paths = {p.inner_text().replace("\u200b", "") for p in page.locator(".opblock-summary-path").all()}
        assert {"/api/search", "/api/stats", "/api/duplicates"} <= paths, paths
        page.goto(served.base + "/redoc")
        page.get_by_text("/api/search").first.wait_for(state="attached", timeout=30_000)
        assert "Search" in page.locator("h1").first.inner_text() or page.locator("[role=menuitem]").count() > 3
        # all they could miss is redoc's "by Redocly" badge image
        assert all(t.startswith("image ") for t in tried), tried


def test_a_failed_search_says_why_in_a_sentence_and_leaves_nothing_stale(browser, tmp_path) -> None:
    import cv2

    db = indexed_photos(tmp_path, "rgb")
    good = tmp_path / "cat.jpg"
    cv2.imwrite(str(good), photo("chelsea.png"))
    not_an_image = tmp_path / "notes.jpg"
    not_an_image.write_text("these are not pixels")
    with serving(db, tmp_path) as served:
        page = search_page(browser, served)
        page.set_input_files("#file", str(good))
        page.wait_for_selector("#results li button.hit")
        searched = []
        page.on("request", lambda r: searched.append(r.url) if r.url.endswith("/api/search") else None)
        page.set_input_files("#file", str(not_an_image))
        page.wait_for_function("document.querySelector('#status').classList.contains('error')")
        assert page.locator("#status").inner_text() == "That file is not an image this server can read."
        assert page.locator("#results li").count() == 0 and page.locator("#current").is_hidden()
        page.set_input_files("#file", str(not_an_image))  # the same file again: searched again
        page.wait_for_function("document.querySelector('#status').classList.contains('error')")
        assert len(searched) == 2, searched
        page.route("**/api/search", lambda route: route.abort())  # the server gone
        page.set_input_files("#file", str(good))
        page.wait_for_function("document.querySelector('#status').textContent.startsWith('The server cannot be reached')")
        assert page.locator("#results li").count() == 0


def test_a_box_drawn_or_placed_with_the_keyboard_searches_what_is_inside_it(browser, tmp_path) -> None:
    """The query photo holds the coffee cup on the left and the rocket on the right: a box
    around either finds that one first, by mouse and by keyboard alike."""
    import cv2
    import numpy as np

    db = indexed_photos(tmp_path, "rgb")
    left, right = cv2.resize(photo("coffee.png"), (400, 400)), cv2.resize(photo("rocket.jpg"), (400, 400))
    both = tmp_path / "both.jpg"
    cv2.imwrite(str(both), np.hstack([left, right]))  # 800 x 400
    with serving(db, tmp_path) as served:
        page = search_page(browser, served)
        page.set_input_files("#file", str(both))
        page.wait_for_selector("#results li button.hit")
        page.wait_for_function("document.querySelector('#current-image').naturalWidth > 0")
        image = page.locator("#current-image").bounding_box()
        page.mouse.move(image["x"] + image["width"] * 0.55, image["y"] + image["height"] * 0.05)
        page.mouse.down()
        page.mouse.move(image["x"] + image["width"] * 0.95, image["y"] + image["height"] * 0.95, steps=5)
        page.mouse.up()
        page.wait_for_function("document.querySelector('#current-label').textContent.includes('the part in the box')")
        page.wait_for_function("document.querySelector('#results li button.hit') && "
                               "document.querySelector('#results li button.hit').dataset.path.endsWith('rocket.jpg')")
        page.screenshot(path=str(tmp_path / "box.png"))
        page.click("#box-start")  # the keyboard: a box in the middle, moved left, searched
        for _ in range(5):
            page.keyboard.press("ArrowLeft")
        page.keyboard.press("Enter")
        page.wait_for_function("document.querySelector('#results li button.hit') && "
                               "document.querySelector('#results li button.hit').dataset.path.endsWith('coffee.jpg')")
        if os.environ.get("SCREENSHOT_DIR"):
            shutil.copy(tmp_path / "box.png", Path(os.environ["SCREENSHOT_DIR"]) / "box-page.png")
