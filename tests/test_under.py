"""A folder filter (`query --under`, the API's `under`, the page's field): the scan scores
only the images under the folder, so the answer is exactly the top-K among them."""
import cv2
import pytest
from cli_runner import imgsearch
from photos import PHOTOS, photo, variant, write_collection
from served import serving
from test_page import search_page


@pytest.fixture
def collection(tmp_path):
    folder = tmp_path / "photos"
    write_collection(folder)
    (folder / "a" / "deeper").mkdir()
    cv2.imwrite(str(folder / "a" / "deeper" / "cat-again.jpg"), variant(photo("chelsea.png")))
    db = f"sqlite:///{tmp_path / 'idx.sqlite3'}"
    assert imgsearch("build", folder, "--db", db, "-e", "rgb", "-e", "sift").code == 0
    return folder, db


def ranking(run) -> list[tuple[str, float]]:
    assert run.code == 0, run.err
    return [(r["path"], r["score"]) for r in run.json()["results"]]


@pytest.mark.parametrize("rerank", ["none", "aqe"])
def test_the_top_k_under_a_folder_is_the_whole_ranking_restricted_to_it(collection, tmp_path, rerank) -> None:
    folder, db = collection
    query = tmp_path / "query.jpg"
    cv2.imwrite(str(query), variant(photo("coffee.png")))
    everything = ranking(imgsearch("query", query, "--db", db, "-e", "rgb", "--rerank", rerank, "-k", "100", "--json"))
    assert len(everything) == len(PHOTOS) + 1
    for under in ("a", str(folder / "a"), "a/deeper"):
        prefix = "a/deeper/" if under.endswith("deeper") else "a/"
        expected = [r for r in everything if r[0].startswith(prefix)]
        k = min(3, len(expected))
        found = ranking(imgsearch("query", query, "--db", db, "-e", "rgb", "--rerank", rerank, "-k", str(k),
                                  "--under", under, "--json"))
        if rerank == "none":  # exact: the first k of the whole ranking that are under the folder
            assert [p for p, _ in found] == [p for p, _ in expected[:k]]
            assert [s for _, s in found] == pytest.approx([s for _, s in expected[:k]], abs=1e-6)
        assert found and all(path.startswith(prefix) for path, _ in found)


def test_a_verified_photo_query_stays_under_the_folder(collection, tmp_path) -> None:
    folder, db = collection
    query = tmp_path / "cat.jpg"
    cv2.imwrite(str(query), photo("chelsea.png"))
    found = ranking(imgsearch("query", query, "--db", db, "-e", "rgb", "--under", "b", "-k", "20", "--json"))
    assert found and all(path.startswith("b/") for path, _ in found)  # the cat (a/) is not found under b/


def test_folders_outside_empty_or_with_a_graph_reranking_are_clear_errors(collection, tmp_path) -> None:
    folder, db = collection
    outside = imgsearch("query", "coffee.jpg", "--db", db, "-e", "rgb", "--under", str(tmp_path))
    assert outside.code != 0 and "is not under the indexed collection" in outside.err
    empty = imgsearch("query", "coffee.jpg", "--db", db, "-e", "rgb", "--under", "nowhere")
    assert empty.code != 0 and "no indexed image is under nowhere" in empty.err
    graph = imgsearch("query", "coffee.jpg", "--db", db, "-e", "rgb", "--under", "a", "--rerank", "diffusion")
    assert graph.code != 0 and "does not combine with a folder" in graph.err
    folder_query = imgsearch("query", folder, "--db", db, "-e", "rgb")
    assert folder_query.code != 0 and "is a folder" in folder_query.err


def test_the_api_answers_under_a_folder_as_the_command_line_does(collection, tmp_path) -> None:
    folder, db = collection
    cli = ranking(imgsearch("query", "coffee.jpg", "--db", db, "-e", "rgb", "-k", "3", "--under", "a", "--json"))
    with serving(db, tmp_path) as served, served.client() as http:
        answer = http.post("/api/search", json={"name": "coffee.jpg", "extractor": "rgb", "k": 3, "under": "a"}).json()
        assert [r["path"] for r in answer["results"]] == [p for p, _ in cli]
        assert [r["score"] for r in answer["results"]] == pytest.approx([s for _, s in cli], abs=1e-6)
        assert answer["under"] == "a" and answer["total"] == len([p for p in folder.rglob("*.jpg") if "/a/" in str(p)])
        for bad in ("/etc", "../photos", "a/../../x"):
            refused = http.post("/api/search", json={"name": "coffee.jpg", "extractor": "rgb", "under": bad})
            # no such folder in the collection: a well-formed request naming what is not there
            assert refused.status_code == 404 and "relative to its root" in refused.json()["error"], bad


def test_the_page_searches_only_under_the_folder_typed(collection, tmp_path, browser) -> None:
    folder, db = collection
    query = tmp_path / "cat.jpg"
    cv2.imwrite(str(query), photo("chelsea.png"))
    with serving(db, tmp_path) as served:
        page = search_page(browser, served)
        page.fill("#under", "b")
        page.set_input_files("#file", str(query))
        page.wait_for_function("document.querySelector('#status').textContent.includes('under b searched')")
        paths = [b.get_attribute("data-path") for b in page.locator("#results li button.hit").all()]
        assert paths and all(p.startswith("b/") for p in paths)
