"""Query-side regions: a photo of an object in clutter finds the object's stored image, and
the scan over several query regions is exactly the best-region brute force."""
import cv2
import numpy as np
import pytest
from cli_runner import imgsearch
from photos import SKIMAGE_DATA, photo, write_collection

from imgsearch.scan.metrics import get_metric
from imgsearch.scan.store_scan import StoreScan
from imgsearch.serve.resident import ResidentIndex
from imgsearch.store import open_store
from imgsearch.store.records import ImageRecord
from imgsearch.store.url import parse_database_url


def on_a_wall(obj: np.ndarray, coverage: float = 0.2) -> np.ndarray:
    """The object hung off-centre on a brick wall that is not in the collection, turned a
    little and re-compressed, as a photo of a painting in a gallery."""
    wall = cv2.cvtColor(cv2.imread(str(SKIMAGE_DATA / "brick.png"), cv2.IMREAD_GRAYSCALE), cv2.COLOR_GRAY2BGR)
    wall = cv2.resize(wall, (1200, 900))
    h, w = obj.shape[:2]
    scale = (coverage * 1200 * 900 / (h * w)) ** 0.5
    pasted = cv2.resize(obj, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    ph, pw = pasted.shape[:2]
    matrix = cv2.getRotationMatrix2D((pw / 2, ph / 2), 4, 1.0)
    matrix[:, 2] += (700 - pw / 2, 300 - ph / 2)
    mask = cv2.warpAffine(np.full((ph, pw), 255, np.uint8), matrix, (1200, 900)) > 127
    out = wall.copy()
    out[mask] = cv2.warpAffine(pasted, matrix, (1200, 900))[mask]
    return cv2.imdecode(cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, 80])[1], cv2.IMREAD_COLOR)


def test_a_photo_of_the_object_in_clutter_finds_its_original(tmp_path, db_url) -> None:
    folder = tmp_path / "photos"
    write_collection(folder)
    assert imgsearch("build", folder, "--db", db_url, "-e", "cnn-spoc").code == 0
    query = tmp_path / "gallery.jpg"
    cv2.imwrite(str(query), on_a_wall(photo("astronaut.png")))
    ranked = {}
    for regions in ("none", "map", "crops"):
        run = imgsearch("query", query, "--db", db_url, "-e", "cnn-spoc", "--regions", regions, "--json")
        assert run.code == 0, run.err
        ranked[regions] = [r["path"] for r in run.json()["results"]]
    assert ranked["map"][0].endswith("astronaut.jpg") and ranked["crops"][0].endswith("astronaut.jpg")
    default = imgsearch("query", query, "--db", db_url, "-e", "cnn-spoc", "--json").json()
    assert [r["path"] for r in default["results"]] == ranked["crops"]  # crops are the default


@pytest.mark.parametrize("parallel", [1, 2])
def test_the_region_scan_is_the_best_region_brute_force(db_url, parallel) -> None:
    rng = np.random.default_rng(21)
    X = rng.random((700, 24), dtype=np.float32) ** 3
    Q = rng.random((5, 24), dtype=np.float32) ** 3
    with open_store(parse_database_url(db_url), create=True) as store:
        row = store.register_extractor("synthetic", "{}", 24)
        store.write_batch([(ImageRecord(f"{i}.jpg".encode(), b"x", 1, 1, "0" * 64, 1, 1), {row.id: v})
                           for i, v in enumerate(X[:600])])
        store.pack(row, pack_rows=64)
        store.write_batch([(ImageRecord(f"{i}.jpg".encode(), b"x", 1, 1, "0" * 64, 1, 1), {row.id: v})
                           for i, v in enumerate(X[600:], start=600)])  # a tail too
        ids = np.array(sorted(img.id for img in store.stored_images().values()))
        for name in ("pearson", "bhattacharyya", "cosine"):
            metric = get_metric(name)
            best = (metric.prepare_rows(X) @ metric.prepare_rows(Q).T).max(axis=1)
            expected = ids[np.argsort(-best, kind="stable")[:15]].tolist()
            scanned = StoreScan(store, 50, parallel).top_k(row, metric, Q, 15)
            assert [i for i, _ in scanned.ranking] == expected, name
            np.testing.assert_allclose([s for _, s in scanned.ranking], np.sort(best)[::-1][:15], atol=1e-5)
            resident = ResidentIndex(lambda: open_store(parse_database_url(db_url)), row, [metric])
            try:
                prepared = metric.prepare_rows(Q)
                assert [i for i, _ in resident.current().top_k(name, prepared, 15).ranking] == expected, name
            finally:
                resident.close()


def test_regions_are_refused_where_they_do_not_apply(tmp_path) -> None:
    folder = tmp_path / "photos"
    write_collection(folder, ("coffee.png", "chelsea.png"))
    db = f"sqlite:///{tmp_path / 'r.sqlite3'}"
    assert imgsearch("build", folder, "--db", db, "-e", "hsv72").code == 0
    query = tmp_path / "q.jpg"
    cv2.imwrite(str(query), photo("coffee.png"))
    # Colour histograms have no regions: the whole photo is the query, as before.
    assert imgsearch("query", query, "--db", db, "-e", "hsv72", "--json").json()["results"][0]["path"].endswith("coffee.jpg")
    run = imgsearch("eval", folder, "-e", "hsv72", "--regions", "map", "--whiten", "lw")
    assert run.code == 1 and "--regions is measured on its own" in run.err
