"""`imgsearch compare A B` and /api/compare: every stored descriptor's verdict on two images,
the same numbers the search and duplicates paths compute."""
import json

import cv2
import numpy as np
import pytest
from cli_runner import imgsearch
from photos import photo, write_collection
from served import serving
from test_verify import TRUE_CORNERS, printed

from imgsearch.hashes import dihedral_variants, hamming
from imgsearch.store import open_store
from imgsearch.store.url import parse_database_url


@pytest.fixture
def indexed(tmp_path):
    folder = tmp_path / "photos"
    write_collection(folder)
    db = f"sqlite:///{tmp_path / 'idx.sqlite3'}"
    assert imgsearch("build", folder, "--db", db, "-e", "rgb", "-e", "phash", "-e", "sift").code == 0
    return db


def test_compare_a_phone_photo_with_the_stored_print_and_with_another_image(indexed, tmp_path) -> None:
    phone = tmp_path / "phone.jpg"
    cv2.imwrite(str(phone), printed(photo("coffee.png"), photo("brick.png")))  # 1600 x 1200
    same = imgsearch("compare", phone, "coffee.jpg", "--db", indexed, "--json")
    assert same.code == 0, same.err
    found = same.json()
    assert found["b"] == "b/coffee.jpg" and found["missing"] == []
    assert found["verified"]["sift"]["inliers"] >= 15
    np.testing.assert_allclose(np.array(found["verified"]["sift"]["corners"]), TRUE_CORNERS, atol=8)
    # the rgb score is the one `query` ranks by
    query = imgsearch("query", phone, "--db", indexed, "-e", "rgb", "-m", "pearson", "--rerank", "none", "-k", "20",
                      "--json").json()
    ranked = {r["path"]: r["score"] for r in query["results"]}
    assert found["scores"]["rgb"]["pearson"] == pytest.approx(ranked["b/coffee.jpg"], abs=1e-5)

    other = imgsearch("compare", "coffee.jpg", "chelsea.jpg", "--db", indexed, "--json").json()
    assert other["verified"]["sift"]["corners"] is None  # unrelated photos do not verify
    with open_store(parse_database_url(indexed)) as store:
        ids = {store.find_images(n.encode())[0].id: n for n in ("coffee.jpg", "chelsea.jpg")}
        stored_ids, hashes = store.image_hashes(store.find_extractor("phash"))
    by_name = {ids[i]: h for i, h in zip(stored_ids.tolist(), hashes) if i in ids}
    expected = hamming(by_name["coffee.jpg"], dihedral_variants(np.array([by_name["chelsea.jpg"]]))[:, 0]).min()
    assert other["hash_bits"]["phash"] == expected
    text = imgsearch("compare", phone, "coffee.jpg", "--db", indexed)
    assert "sift: the same object" in text.out and "phash:" in text.out and "rgb" in text.out


def test_the_api_compares_an_upload_or_two_names_as_the_command_line_does(indexed, tmp_path) -> None:
    phone = tmp_path / "phone.jpg"
    cv2.imwrite(str(phone), printed(photo("coffee.png"), photo("brick.png")))
    cli = imgsearch("compare", phone, "coffee.jpg", "--db", indexed, "--json").json()
    names = imgsearch("compare", "coffee.jpg", "chelsea.jpg", "--db", indexed, "--json").json()
    with serving(indexed, tmp_path) as served, served.client() as http:
        upload = http.post("/api/compare", files={"image": ("phone.jpg", phone.read_bytes())}, data={"b": "coffee.jpg"})
        assert upload.status_code == 200, upload.text
        answer = upload.json()
        assert answer["scores"] == cli["scores"] and answer["hash_bits"] == cli["hash_bits"]
        assert answer["verified"]["sift"]["inliers"] == cli["verified"]["sift"]["inliers"]
        named = http.post("/api/compare", json={"a": "coffee.jpg", "b": "chelsea.jpg"})
        assert {k: v for k, v in named.json().items()} == json.loads(json.dumps(names))
        assert http.post("/api/compare", json={"a": "coffee.jpg"}).status_code == 400
        assert http.post("/api/compare", json={"a": "coffee.jpg", "b": "nope.jpg"}).status_code == 404
